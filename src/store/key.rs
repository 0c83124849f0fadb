//! Keys and the canonical encoding they hash: a key is the first 32 hex
//! digits of blake3 over `alto-drv-v1:` and the inputs' canonical JSON.
//! A `Key` is made only by `Key::of` (hashing inputs) or `Key::parse`
//! (checking a name read from a file, a listing or a record), so a key is
//! always safe to use as a file or object name.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The encoding's version: bump it and every key changes.
const KEY_PREFIX: &str = "alto-drv-v1:";

/// A derivation key: 32 lower-case hex characters (128 bits) of blake3.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Key(String);

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Key {
    type Error = String;

    fn try_from(s: String) -> Result<Key, String> {
        Key::parse(&s).ok_or_else(|| format!("`{s}` is not a key (32 lower-case hex digits)"))
    }
}

impl From<Key> for String {
    fn from(k: Key) -> String {
        k.0
    }
}

impl Key {
    /// The key of a derivation's inputs.
    pub fn of(inputs: &Value) -> Key {
        let text = format!("{KEY_PREFIX}{}", canonical_json(inputs));
        Key(blake3::hash(text.as_bytes()).to_hex()[..32].to_string())
    }

    /// A key read from elsewhere, if it is one (guards paths built from
    /// remote listings and records).
    pub fn parse(s: &str) -> Option<Key> {
        (s.len() == 32
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
        .then(|| Key(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// JSON with object keys sorted at every level and no whitespace.
pub fn canonical_json(v: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                let mut out = serde_json::Map::new();
                for k in keys {
                    out.insert(k.clone(), sorted(&m[k.as_str()]));
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    serde_json::to_string(&sorted(v)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_keys_deserialize() {
        let k: Key = serde_json::from_str("\"0123456789abcdef0123456789abcdef\"").unwrap();
        assert_eq!(k.as_str(), "0123456789abcdef0123456789abcdef");
        assert!(serde_json::from_str::<Key>("\"../../etc/passwd\"").is_err());
        assert!(serde_json::from_str::<Key>("\"0123456789ABCDEF0123456789abcdef\"").is_err());
    }
}
