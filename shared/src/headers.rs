//! The request headers a record keeps: a few lower-cased names (most often one or two) with their
//! values or `[redacted]`. A small vector sorted by name, not a `BTreeMap`: the map's first node
//! is a ~560-byte allocation per request, and with its owned names it was an eighth of
//! `analyze`'s time on a capture whose requests carry only `Host`. Names are static where the
//! dissector knows them (the kept names are a fixed list); read from JSON or MessagePack they
//! are owned. On the wire it is the same JSON object as before, in the same (sorted) order.

use std::borrow::Cow;
use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A header name: static when the dissector chose it from its list.
pub type HeaderName = Cow<'static, str>;

/// Header name → value, each name once, sorted by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers(Vec<(HeaderName, String)>);

impl Headers {
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&String> {
        self.find(name).ok().map(|i| &self.0[i].1)
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.find(name).is_ok()
    }

    /// Sets `name` to `value` (replacing a value it had).
    pub fn insert(&mut self, name: impl Into<HeaderName>, value: String) {
        let name = name.into();
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
    pub fn iter(&self) -> impl Iterator<Item = (&str, &String)> {
        self.0.iter().map(|(k, v)| (&**k, v))
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
    type Output = String;

    fn index(&self, name: &str) -> &String {
        self.get(name).unwrap_or_else(|| panic!("no header {name:?}"))
    }
}

impl<K: Into<HeaderName>> FromIterator<(K, String)> for Headers {
    fn from_iter<I: IntoIterator<Item = (K, String)>>(iter: I) -> Self {
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
            map.serialize_entry(&**k, v)?;
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
                while let Some((k, v)) = map.next_entry::<String, String>()? {
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
        h.insert("user-agent", "curl/8".into());
        h.insert("host", "web".into());
        h.insert(String::from("accept"), "*/*".into());
        h.insert("host", "api".into());
        let names: Vec<&str> = h.iter().map(|(k, _)| k).collect();
        assert_eq!(names, ["accept", "host", "user-agent"]);
        assert_eq!((h.get("host").map(String::as_str), h.len()), (Some("api"), 3));
        assert!(h.contains_key("accept") && !h.contains_key("cookie") && h.get("zz").is_none());
        assert_eq!(h["user-agent"], "curl/8");
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
