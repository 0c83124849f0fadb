//! Singer messages as they flow through a pipe: alto reads only what it must.
//! `StreamHasher` is the `~` hash rule stream map: the selected fields'
//! values become the md5 hex digest of their Python `str()` (strings hash
//! their UTF-8 bytes), and their schema `{"type": "string", "format": "hash"}`.

use std::borrow::Cow;
use std::collections::HashMap;

use md5::{Digest, Md5};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// The head of a message: its type and stream, without building the rest.
#[derive(Deserialize)]
pub struct Head<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    #[serde(borrow, default)]
    pub stream: Option<Cow<'a, str>>,
}

/// fnmatch: `*`, `?`, `[...]`, `[!...]`; case-sensitive.
pub fn fnmatch(pattern: &str, text: &str) -> bool {
    if !pattern.contains(['*', '?', '[']) {
        return pattern == text;
    }
    super::catalog::Glob::new(pattern).matches(text)
}

pub use crate::config::project::python_str;

fn md5_hex(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Md5::digest(s.as_bytes());
    let mut out = String::with_capacity(32);
    for b in digest.iter() {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 0xf) as usize] as char);
    }
    out
}

/// The `~` hash rules of a tap, applied to its messages.
pub struct StreamHasher {
    patterns: Vec<String>,
    affected: HashMap<String, bool>,
    /// crumb → whether its value is hashed (records repeat the same fields).
    crumbs: std::cell::RefCell<HashMap<String, bool>>,
}

impl StreamHasher {
    /// `None` when the select list has no `~` rules.
    pub fn new(select: &[String]) -> Option<StreamHasher> {
        let patterns: Vec<String> = select
            .iter()
            .filter_map(|s| s.strip_prefix('~'))
            .map(str::to_string)
            .collect();
        (!patterns.is_empty()).then(|| StreamHasher {
            patterns,
            affected: HashMap::new(),
            crumbs: std::cell::RefCell::new(HashMap::new()),
        })
    }

    /// Whether any rule can touch this stream's messages.
    pub fn affects(&mut self, stream: &str) -> bool {
        if let Some(a) = self.affected.get(stream) {
            return *a;
        }
        let a = self
            .patterns
            .iter()
            .any(|p| fnmatch(p.split('.').next().unwrap_or(p), stream) || p.starts_with(stream));
        self.affected.insert(stream.to_string(), a);
        a
    }

    fn crumb_selected(&self, crumb: &str) -> bool {
        if let Some(hit) = self.crumbs.borrow().get(crumb) {
            return *hit;
        }
        let hit = self.patterns.iter().any(|p| fnmatch(p, crumb));
        self.crumbs.borrow_mut().insert(crumb.to_string(), hit);
        hit
    }

    /// Transforms one line (without its newline). `None`: pass it on as is.
    pub fn transform(&mut self, line: &[u8]) -> Option<Vec<u8>> {
        let head: Head = serde_json::from_slice(line).ok()?;
        let stream = head.stream.as_deref()?.to_string();
        let kind = head.kind.to_string();
        if (kind != "RECORD" && kind != "SCHEMA") || !self.affects(&stream) {
            return None;
        }
        if kind == "RECORD" {
            return self.transform_record(line, &stream);
        }
        let mut msg: Map<String, Value> = serde_json::from_slice(line).ok()?;
        if let Some(Value::Object(props)) =
            msg.get_mut("schema").and_then(|s| s.get_mut("properties"))
        {
            for (k, v) in props.iter_mut() {
                self.hash_schema(v, &format!("{stream}.{k}"));
            }
        }
        serde_json::to_vec(&msg).ok()
    }

    /// A RECORD: only the fields that are hashed, or that hold objects and
    /// lists to look into, are parsed; the rest is copied as raw JSON.
    fn transform_record(&self, line: &[u8], stream: &str) -> Option<Vec<u8>> {
        type RawMap = indexmap::IndexMap<String, Box<RawValue>>;
        let mut msg: RawMap = serde_json::from_slice(line).ok()?;
        let mut record: RawMap = serde_json::from_str(msg.get("record")?.get()).ok()?;
        let mut changed = false;
        for (k, raw) in record.iter_mut() {
            let crumb = format!("{stream}.{k}");
            let container = matches!(raw.get().as_bytes().first(), Some(b'{') | Some(b'['));
            if !container && !self.crumb_selected(&crumb) {
                continue;
            }
            let mut v: Value = serde_json::from_str(raw.get()).ok()?;
            let before = v.clone();
            self.hash_value(&mut v, &crumb);
            if v != before {
                *raw = serde_json::value::to_raw_value(&v).ok()?;
                changed = true;
            }
        }
        if !changed {
            return None;
        }
        msg.insert(
            "record".into(),
            serde_json::value::to_raw_value(&record).ok()?,
        );
        serde_json::to_vec(&msg).ok()
    }

    fn hash_value(&self, v: &mut Value, crumb: &str) {
        match v {
            Value::Object(m) => {
                for (k, c) in m.iter_mut() {
                    self.hash_value(c, &format!("{crumb}.{k}"));
                }
            }
            Value::Array(a) => {
                for c in a.iter_mut() {
                    self.hash_value(c, crumb);
                }
            }
            leaf => {
                if self.crumb_selected(crumb) {
                    *leaf = Value::String(md5_hex(&python_str(leaf)));
                }
            }
        }
    }

    fn hash_schema(&self, v: &mut Value, crumb: &str) {
        let is = |v: &Value, t: &str| match v.get("type") {
            Some(Value::String(s)) => s == t,
            Some(Value::Array(a)) => a.iter().any(|x| x == t),
            _ => false,
        };
        if is(v, "object") && v.get("properties").is_some() {
            if let Some(Value::Object(props)) = v.get_mut("properties") {
                for (k, c) in props.iter_mut() {
                    self.hash_schema(c, &format!("{crumb}.{k}"));
                }
            }
        } else if is(v, "array") && v.get("items").is_some() {
            if let Some(items) = v.get_mut("items") {
                self.hash_schema(items, crumb);
            }
        } else if self.crumb_selected(crumb) {
            *v = serde_json::json!({"type": "string", "format": "hash"});
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn globs() {
        assert!(fnmatch("*.*", "users.id"));
        assert!(fnmatch("us?rs", "users"));
        assert!(fnmatch("[a-c]x", "bx"));
        assert!(fnmatch("[!a-c]x", "dx"));
        assert!(!fnmatch("[!a-c]x", "ax"));
        assert!(!fnmatch("Users", "users"));
        assert!(fnmatch("a*b*c", "aXbYc"));
        assert!(!fnmatch("a*b*c", "aXbY"));
        assert!(fnmatch("[x", "[x"));
    }

    #[test]
    fn python_strings() {
        assert_eq!(python_str(&json!(1.5)), "1.5");
        assert_eq!(python_str(&json!(2.0)), "2.0");
        assert_eq!(python_str(&json!(1e16)), "1e+16");
        assert_eq!(python_str(&json!(0.00001)), "1e-05");
        assert_eq!(python_str(&json!(42)), "42");
        assert_eq!(python_str(&json!(true)), "True");
        assert_eq!(python_str(&json!(null)), "None");
    }

    #[test]
    fn hashing() {
        let mut h =
            StreamHasher::new(&["*.*".into(), "~users.email".into(), "~*.address.zip".into()])
                .unwrap();
        let rec = br#"{"type": "RECORD", "stream": "users", "record": {"id": 1, "email": "a@b.c", "address": {"zip": 12345, "city": "x"}}}"#;
        let out: Value = serde_json::from_slice(&h.transform(rec).unwrap()).unwrap();
        assert_eq!(out["record"]["email"], md5_hex("a@b.c"));
        assert_eq!(out["record"]["address"]["zip"], md5_hex("12345"));
        assert_eq!(out["record"]["address"]["city"], "x");
        assert_eq!(out["record"]["id"], 1);
        let schema = br#"{"type": "SCHEMA", "stream": "users", "schema": {"properties": {"email": {"type": ["string", "null"]}, "address": {"type": "object", "properties": {"zip": {"type": "integer"}}}}}, "key_properties": ["id"]}"#;
        let out: Value = serde_json::from_slice(&h.transform(schema).unwrap()).unwrap();
        assert_eq!(
            out["schema"]["properties"]["email"],
            json!({"type": "string", "format": "hash"})
        );
        assert_eq!(
            out["schema"]["properties"]["address"]["properties"]["zip"],
            json!({"type": "string", "format": "hash"})
        );
        assert!(h.transform(br#"{"type": "STATE", "value": {}}"#).is_none());
        let orders = br#"{"type": "RECORD", "stream": "orders", "record": {"email": "x"}}"#;
        // Nothing to hash in it: the line passes on untouched.
        assert!(h.transform(orders).is_none());
        let mut only_users = StreamHasher::new(&["~users.email".into()]).unwrap();
        assert!(only_users.transform(orders).is_none());
        assert!(h.transform(b"not json").is_none());
        assert!(StreamHasher::new(&["*.*".into()]).is_none());
    }
}
