//! The merged configuration tree and, for every node, the layer and place it
//! came from. Layering rules live here: maps merge, scalars replace, lists
//! from a later layer are appended.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::format::{KeyPath, SpanMap, child};
use super::source::Origin;

#[derive(Debug, Default)]
pub struct Tree {
    pub value: Value,
    origins: HashMap<KeyPath, Origin>,
}

/// Where the nodes of a layer being merged come from.
pub struct LayerSource<'a> {
    pub source: usize,
    pub spans: &'a SpanMap,
    /// A span for nodes the format did not locate (e.g. the whole variable).
    pub fallback: (usize, usize),
}

impl LayerSource<'_> {
    fn origin(&self, src_path: &[String]) -> Origin {
        let mut p = src_path.to_vec();
        loop {
            if let Some(&(offset, len)) = self.spans.get(&p) {
                return Origin {
                    source: self.source,
                    offset,
                    len,
                };
            }
            if p.pop().is_none() {
                return Origin {
                    source: self.source,
                    offset: self.fallback.0,
                    len: self.fallback.1,
                };
            }
        }
    }
}

impl Tree {
    pub fn new() -> Self {
        Tree {
            value: Value::Object(Map::new()),
            origins: HashMap::new(),
        }
    }

    /// Merges `src` (found at `src_path` in its file) into the node at `dst_path`.
    pub fn merge(
        &mut self,
        src: Value,
        src_path: &KeyPath,
        dst_path: &KeyPath,
        layer: &LayerSource,
    ) {
        let mut dst = &mut self.value;
        for (i, seg) in dst_path.iter().enumerate() {
            if !dst.is_object() {
                *dst = Value::Object(Map::new());
            }
            let Value::Object(m) = dst else { return };
            if !m.contains_key(seg) {
                self.origins
                    .insert(dst_path[..=i].to_vec(), layer.origin(src_path));
            }
            dst = m.entry(seg.clone()).or_insert(Value::Null);
        }
        merge_value(dst, src, src_path, dst_path, layer, &mut self.origins);
    }

    /// The origin of the node at `path`, or of its nearest located ancestor.
    pub fn origin(&self, path: &[String]) -> Option<Origin> {
        let mut p = path.to_vec();
        loop {
            if let Some(o) = self.origins.get(&p) {
                return Some(*o);
            }
            p.pop()?;
        }
    }

    /// The origin recorded for exactly this node.
    pub fn exact_origin(&self, path: &[String]) -> Option<Origin> {
        self.origins.get(path).copied()
    }

    pub fn get(&self, path: &[String]) -> Option<&Value> {
        get(&self.value, path)
    }
}

pub fn get<'v>(mut v: &'v Value, path: &[String]) -> Option<&'v Value> {
    for seg in path {
        v = match v {
            Value::Object(m) => m.get(seg)?,
            Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(v)
}

fn record_all(
    v: &Value,
    src_path: &mut KeyPath,
    dst_path: &mut KeyPath,
    layer: &LayerSource,
    origins: &mut HashMap<KeyPath, Origin>,
) {
    origins.insert(dst_path.clone(), layer.origin(src_path));
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                src_path.push(k.clone());
                dst_path.push(k.clone());
                record_all(c, src_path, dst_path, layer, origins);
                src_path.pop();
                dst_path.pop();
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                src_path.push(i.to_string());
                dst_path.push(i.to_string());
                record_all(c, src_path, dst_path, layer, origins);
                src_path.pop();
                dst_path.pop();
            }
        }
        _ => {}
    }
}

fn merge_value(
    dst: &mut Value,
    src: Value,
    src_path: &KeyPath,
    dst_path: &KeyPath,
    layer: &LayerSource,
    origins: &mut HashMap<KeyPath, Origin>,
) {
    match (dst, src) {
        (Value::Object(d), Value::Object(s)) => {
            origins
                .entry(dst_path.clone())
                .or_insert_with(|| layer.origin(src_path));
            for (k, v) in s {
                let sp = child(src_path, k.clone());
                let dp = child(dst_path, k.clone());
                match d.get_mut(&k) {
                    Some(existing) => merge_value(existing, v, &sp, &dp, layer, origins),
                    None => {
                        record_all(&v, &mut sp.clone(), &mut dp.clone(), layer, origins);
                        d.insert(k, v);
                    }
                }
            }
        }
        (Value::Array(d), Value::Array(s)) => {
            let base = d.len();
            for (i, v) in s.into_iter().enumerate() {
                let mut sp = child(src_path, i.to_string());
                let mut dp = child(dst_path, (base + i).to_string());
                record_all(&v, &mut sp, &mut dp, layer, origins);
                d.push(v);
            }
        }
        (d, s) => {
            record_all(
                &s,
                &mut src_path.clone(),
                &mut dst_path.clone(),
                layer,
                origins,
            );
            *d = s;
        }
    }
}

/// Merges `over` onto `base` the way a plugin spec overrides another
/// (`inherit_from`, per-tap target overrides): maps merge, everything else,
/// lists included, is replaced.
pub fn overlay(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(existing) => overlay(existing, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// Whether a config key matches a name typed by a user in an environment
/// variable or a `this.` path: case-insensitive, `_` matching `-`.
pub fn key_matches(key: &str, name: &str) -> bool {
    key.len() == name.len()
        && key.chars().zip(name.chars()).all(|(a, b)| {
            let norm = |c: char| {
                if c == '-' {
                    '_'
                } else {
                    c.to_ascii_lowercase()
                }
            };
            norm(a) == norm(b)
        })
}

/// The key of `map` that `name` designates: itself if present, else the
/// first key matching loosely.
pub fn find_key<'m>(map: &'m Map<String, Value>, name: &str) -> Option<&'m String> {
    if let Some((k, _)) = map.get_key_value(name) {
        return Some(k);
    }
    map.keys().find(|k| key_matches(k, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn layering_rules() {
        let spans = SpanMap::new();
        let l = LayerSource {
            source: 0,
            spans: &spans,
            fallback: (0, 0),
        };
        let mut t = Tree::new();
        t.merge(
            json!({"a": {"x": 1, "l": [1]}, "s": "a"}),
            &vec![],
            &vec![],
            &l,
        );
        let l2 = LayerSource {
            source: 1,
            spans: &spans,
            fallback: (0, 0),
        };
        t.merge(
            json!({"a": {"y": 2, "l": [2]}, "s": "b"}),
            &vec![],
            &vec![],
            &l2,
        );
        assert_eq!(
            t.value,
            json!({"a": {"x": 1, "l": [1, 2], "y": 2}, "s": "b"})
        );
        assert_eq!(
            t.exact_origin(&["a".into(), "l".into(), "1".into()])
                .unwrap()
                .source,
            1
        );
        assert_eq!(
            t.exact_origin(&["a".into(), "l".into(), "0".into()])
                .unwrap()
                .source,
            0
        );
        assert_eq!(t.exact_origin(&["s".into()]).unwrap().source, 1);
    }

    #[test]
    fn overlay_replaces_lists() {
        let mut b = json!({"a": [1], "m": {"x": 1}});
        overlay(&mut b, &json!({"a": [2], "m": {"y": 2}}));
        assert_eq!(b, json!({"a": [2], "m": {"x": 1, "y": 2}}));
    }

    #[test]
    fn loose_key_matching() {
        assert!(key_matches("tap-x", "TAP_X"));
        assert!(key_matches("tap_under", "TAP_UNDER"));
        assert!(!key_matches("tap-x", "tap-y"));
    }
}
