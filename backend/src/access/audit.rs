//! The audit log: who signed in (and out, and was signed out by an admin), who opened which saved
//! session or link, who exported what (window, filter, record count), who made sessions and
//! links, and who was refused — one JSON object per line, to `--audit-log FILE` or to standard
//! error, each counted by kind (`Counting`: `/metrics`' `podtap_audit_events_total`). An event
//! names people and ids, never records' contents.

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};

/// Where events are counted.
pub trait Counting: Send + Sync {
    fn count(&self, event: &'static str);
}

/// The log.
pub struct Audit {
    /// None: standard error.
    out: Mutex<Option<Box<dyn Write + Send>>>,
    counting: Option<Arc<dyn Counting>>,
}

impl Default for Audit {
    fn default() -> Self {
        Audit { out: Mutex::new(None), counting: None }
    }
}

impl Audit {
    /// To `out` (standard error when none), counted by `counting`.
    pub fn new(out: Option<Box<dyn Write + Send>>, counting: Option<Arc<dyn Counting>>) -> Self {
        Audit { out: Mutex::new(out), counting }
    }

    /// Writes one event: `event` and its fields, stamped with the time.
    pub fn record(&self, event: &'static str, fields: Value) {
        if let Some(c) = &self.counting {
            c.count(event);
        }
        let mut line = Map::new();
        line.insert("ts".into(), json!(jiff::Timestamp::now().to_string()));
        line.insert("event".into(), json!(event));
        if let Value::Object(f) = fields {
            line.extend(f.into_iter().filter(|(_, v)| !v.is_null()));
        }
        let mut text = Value::Object(line).to_string();
        text.push('\n');
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let written = match out.as_mut() {
            Some(w) => w.write_all(text.as_bytes()).and_then(|()| w.flush()),
            None => std::io::stderr().write_all(text.as_bytes()),
        };
        if let Err(e) = written {
            tracing::warn!("the audit log could not be written: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    struct Count(AtomicUsize);
    impl Counting for Count {
        fn count(&self, _: &'static str) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn each_event_is_one_json_line_and_counted() {
        let buf = Shared::default();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let audit = Audit::new(Some(Box::new(buf.clone())), Some(count.clone()));
        audit.record("export", json!({"user": "alice", "records": 12, "filter": null}));
        audit.record("refused", json!({"path": "/api/v1/map"}));
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!((lines[0]["event"].as_str(), lines[0]["user"].as_str()), (Some("export"), Some("alice")));
        assert!(lines[0].get("filter").is_none(), "absent fields are left out");
        assert_eq!(count.0.load(Ordering::Relaxed), 2);
    }
}
