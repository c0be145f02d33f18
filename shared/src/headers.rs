//! The request headers a record keeps: a few lower-cased names (most often one or two) with their
//! values or `[redacted]`. A small vector sorted by name, not a `BTreeMap`: the map's first node
//! is a ~560-byte allocation per request, and with its owned names it was an eighth of
//! `analyze`'s time on a capture whose requests carry only `Host`. The first header and values
//! of up to 24 bytes are held inline, so a request with one short `Host` makes no allocation for
//! them: the dissector makes them on one thread and the joiner drops them on another, and
//! allocations across that boundary were the dearest part of a second core (BENCHMARKS.md,
//! sessions 30 and 31). Names are static where the dissector knows them (the kept names are a
//! fixed list); read from JSON or MessagePack they are owned. On the wire it is the same JSON
//! object as before, in the same (sorted) order.

use std::borrow::Cow;
use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use smallvec::SmallVec;

/// A header name: static when the dissector chose it from its list.
pub type HeaderName = Cow<'static, str>;

/// A header value: inline up to 24 bytes.
pub type HeaderValue = compact_str::CompactString;

/// Header name → value, each name once, sorted by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers(SmallVec<[(HeaderName, HeaderValue); 1]>);

impl Headers {
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.find(name).ok().map(|i| self.0[i].1.as_str())
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.find(name).is_ok()
    }

    /// Sets `name` to `value` (replacing a value it had).
    pub fn insert(&mut self, name: impl Into<HeaderName>, value: impl Into<HeaderValue>) {
        let (name, value) = (name.into(), value.into());
        match self.find(&name) {
            Ok(i) => self.0[i].1 = value,
            Err(i) => self.0.insert(i, (name, value)),
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// (name, value), by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (&**k, v.as_str()))
    }

    fn find(&self, name: &str) -> Result<usize, usize> {
        // A handful of entries: a scan, which also finds the place to insert.
        match self.0.iter().position(|(k, _)| &**k >= name) {
            Some(i) if self.0[i].0 == name => Ok(i),
            Some(i) => Err(i),
            None => Err(self.0.len()),
        }
    }
}

impl std::ops::Index<&str> for Headers {
    type Output = str;

    fn index(&self, name: &str) -> &str {
        self.get(name).unwrap_or_else(|| panic!("no header {name:?}"))
    }
}

impl<K: Into<HeaderName>, V: Into<HeaderValue>> FromIterator<(K, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut h = Headers::new();
        for (k, v) in iter {
            h.insert(k, v);
        }
        h
    }
}

impl Serialize for Headers {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(&**k, v.as_str())?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Headers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = Headers;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of header names to values")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Headers, A::Error> {
                let mut h = Headers::new();
                while let Some((k, v)) = map.next_entry::<String, HeaderValue>()? {
                    h.insert(k, v);
                }
                Ok(h)
            }
        }
        d.deserialize_map(Entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stay_sorted_and_once() {
        let mut h = Headers::new();
        h.insert("user-agent", "curl/8");
        h.insert("host", "web");
        h.insert(String::from("accept"), "*/*");
        h.insert("host", "api");
        let names: Vec<&str> = h.iter().map(|(k, _)| k).collect();
        assert_eq!(names, ["accept", "host", "user-agent"]);
        assert_eq!((h.get("host"), h.len()), (Some("api"), 3));
        assert!(h.contains_key("accept") && !h.contains_key("cookie") && h.get("zz").is_none());
        assert_eq!(&h["user-agent"], "curl/8");
    }

    /// Short values are held inline and long ones on the heap; both read back the same, and a
    /// replaced value may change between the two.
    #[test]
    fn short_and_long_values_read_back_alike() {
        let long = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0";
        let mut h = Headers::new();
        h.insert("host", "web.default:8080");
        h.insert("user-agent", long);
        assert!(!h.0[0].1.is_heap_allocated() && h.0[1].1.is_heap_allocated());
        assert_eq!((h.get("host"), h.get("user-agent")), (Some("web.default:8080"), Some(long)));
        h.insert("host", long);
        h.insert("user-agent", "curl/8");
        assert_eq!((h.get("host"), h.get("user-agent")), (Some(long), Some("curl/8")));
        let back: Headers = serde_json::from_str(&serde_json::to_string(&h).unwrap()).unwrap();
        assert_eq!(back, h);
    }

    /// The JSON object a `BTreeMap` made, both ways; MessagePack (the agents' wire) too.
    #[test]
    fn reads_and_writes_the_object_a_map_did() {
        let map: std::collections::BTreeMap<String, String> =
            [("x-b".to_string(), "2".to_string()), ("a".to_string(), "1".to_string())].into();
        let text = serde_json::to_string(&map).unwrap();
        let h: Headers = serde_json::from_str(&text).unwrap();
        assert_eq!(serde_json::to_string(&h).unwrap(), text);
        let packed = rmp_serde::to_vec_named(&h).unwrap();
        assert_eq!(rmp_serde::from_slice::<Headers>(&packed).unwrap(), h);
        assert!(serde_json::from_str::<Headers>("[1]").is_err());
    }
}
