//! YAML through yaml-rust2's event parser, which reports where each node starts.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};
use yaml_rust2::Yaml;

use super::kdl::MAX_DEPTH;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::{KeyPath, Parsed, SpanMap, SyntaxError, child};
use crate::config::source::CharIndex;

/// How many aliases (`*name`) one file may use. Each copies its anchor's
/// node, so nested anchors grow exponentially ("billion laughs"): a few
/// hundred bytes would otherwise expand to gigabytes.
pub const MAX_ALIASES: usize = 10_000;
/// How many nodes (scalars, lists and maps) aliases may add to one file, in
/// all: the config a real file shares through anchors is a few thousand.
/// (A million would take `alto dump` seconds and half a gigabyte.)
pub const MAX_ALIAS_NODES: usize = 100_000;

enum Frame {
    Seq {
        items: Vec<Value>,
        path: KeyPath,
        anchor: usize,
        /// The nodes in it so far, itself included.
        nodes: usize,
    },
    Map {
        map: Map<String, Value>,
        path: KeyPath,
        anchor: usize,
        nodes: usize,
        key: Option<String>,
        /// The pending key is a plain `<<`: a merge key, not a key named "<<".
        merge_key: bool,
        merges: Vec<Value>,
    },
}

struct Builder<'a> {
    chars: CharIndex<'a>,
    text: &'a str,
    stack: Vec<Frame>,
    /// Each anchor's node and how many nodes it holds.
    anchors: HashMap<usize, (Value, usize)>,
    /// Aliases expanded so far, and the nodes they added.
    aliases: usize,
    alias_nodes: usize,
    spans: SpanMap,
    /// Where each mapping key is written, to point at both places of a key
    /// given twice.
    key_spans: SpanMap,
    root: Option<Value>,
    documents: usize,
    error: Option<SyntaxError>,
}

impl Builder<'_> {
    fn fail(&mut self, message: impl Into<String>, offset: usize) {
        self.fail_with(SyntaxError::new(message, offset, 1));
    }

    fn fail_with(&mut self, error: SyntaxError) {
        if self.error.is_none() {
            self.error = Some(error);
        }
    }

    /// Counts `n` finished nodes into the collection being built.
    fn count(&mut self, n: usize) {
        match self.stack.last_mut() {
            Some(Frame::Seq { nodes, .. } | Frame::Map { nodes, .. }) => {
                *nodes = nodes.saturating_add(n)
            }
            None => {}
        }
    }

    /// The path the next node will get, or `None` when it is a mapping key.
    fn next_path(&self) -> Option<KeyPath> {
        match self.stack.last() {
            None => Some(Vec::new()),
            Some(Frame::Seq { items, path, .. }) => Some(child(path, items.len().to_string())),
            Some(Frame::Map {
                key: Some(k), path, ..
            }) => Some(child(path, k.clone())),
            Some(Frame::Map { key: None, .. }) => None,
        }
    }

    /// Puts a finished node into its parent: a sequence item, a mapping key
    /// (`merge`: a plain `<<`, which is not a key) or a mapping value.
    fn place(&mut self, value: Value, offset: usize, len: usize, merge: bool) {
        let mut duplicate = None;
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(value);
                }
            }
            Some(Frame::Seq { items, .. }) => items.push(value),
            Some(Frame::Map {
                map,
                key,
                merges,
                merge_key,
                path,
                ..
            }) => match key.take() {
                Some(_) if *merge_key => {
                    *merge_key = false;
                    merges.push(value)
                }
                Some(k) => {
                    map.insert(k, value);
                }
                None => {
                    let k = match value {
                        Value::String(s) => s,
                        Value::Bool(_) | Value::Number(_) => value.to_string(),
                        Value::Null => "null".to_string(),
                        _ => {
                            self.fail(
                                "a mapping key must be a plain value, not a list or a map",
                                offset,
                            );
                            return;
                        }
                    };
                    if merge {
                        *merge_key = true;
                    } else {
                        let at = child(path, k.clone());
                        if map.contains_key(&k) {
                            let first = self.key_spans.get(&at).copied().unwrap_or((offset, len));
                            duplicate = Some(SyntaxError::duplicate(&k, (offset, len), first));
                        } else {
                            self.key_spans.insert(at, (offset, len));
                        }
                    }
                    *key = Some(k);
                }
            },
        }
        if let Some(e) = duplicate {
            self.fail_with(e);
        }
    }
}

fn resolve_scalar(s: String, style: TScalarStyle, tag: &Option<Tag>) -> Value {
    if let Some(tag) = tag
        && tag.suffix == "str"
    {
        return Value::String(s);
    }
    if style != TScalarStyle::Plain {
        return Value::String(s);
    }
    match Yaml::from_str(&s) {
        Yaml::Null => Value::Null,
        Yaml::Boolean(b) => Value::Bool(b),
        Yaml::Integer(i) => Value::Number(i.into()),
        Yaml::Real(r) => r
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number)
            .unwrap_or(Value::String(s)),
        _ => Value::String(s),
    }
}

impl MarkedEventReceiver for Builder<'_> {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let offset = self.chars.byte(mark.index());
        match ev {
            Event::DocumentStart => {
                self.documents += 1;
                if self.documents > 1 {
                    self.fail(
                        "a config file holds one YAML document; remove the extra `---`",
                        offset,
                    );
                }
            }
            Event::Scalar(s, style, anchor, tag) => {
                let len = match style {
                    TScalarStyle::Plain => s.len(),
                    TScalarStyle::SingleQuoted | TScalarStyle::DoubleQuoted => s.len() + 2,
                    _ => s.len().max(1),
                };
                let len = len.min(self.text.len().saturating_sub(offset));
                let value = resolve_scalar(s, style, &tag);
                if let Some(path) = self.next_path() {
                    self.spans.insert(path, (offset, len));
                } else if let Value::String(k) = &value {
                    // A key: point its path at the key itself until the value replaces it.
                    if let Some(Frame::Map { path, .. }) = self.stack.last() {
                        let p = child(path, k.clone());
                        self.spans.insert(p, (offset, len));
                    }
                }
                if anchor > 0 {
                    self.anchors.insert(anchor, (value.clone(), 1));
                }
                self.count(1);
                let is_merge_key = style == TScalarStyle::Plain && value.as_str() == Some("<<");
                self.place(value, offset, len, is_merge_key);
            }
            Event::Alias(id) => {
                let Some(&(_, nodes)) = self.anchors.get(&id) else {
                    self.fail("unknown alias", offset);
                    return;
                };
                self.aliases += 1;
                self.alias_nodes = self.alias_nodes.saturating_add(nodes);
                if self.aliases > MAX_ALIASES || self.alias_nodes > MAX_ALIAS_NODES {
                    self.fail(
                        format!(
                            "too many aliases: a file may use at most {MAX_ALIASES} aliases, \
                             adding at most {MAX_ALIAS_NODES} values in all \
                             (nested anchors grow exponentially)"
                        ),
                        offset,
                    );
                    return;
                }
                let Some((v, _)) = self.anchors.get(&id).cloned() else {
                    return;
                };
                if let Some(path) = self.next_path() {
                    self.spans.entry(path).or_insert((offset, 1));
                }
                self.count(nodes);
                self.place(v, offset, 1, false)
            }
            Event::SequenceStart(anchor, _) => {
                let path = self.next_path();
                if path.is_none() {
                    self.fail("a mapping key must be a plain value, not a list", offset);
                    return;
                }
                let path = path.unwrap_or_default();
                self.spans.entry(path.clone()).or_insert((offset, 1));
                self.stack.push(Frame::Seq {
                    items: Vec::new(),
                    path,
                    anchor,
                    nodes: 1,
                });
            }
            Event::MappingStart(anchor, _) => {
                let path = self.next_path();
                if path.is_none() {
                    self.fail("a mapping key must be a plain value, not a map", offset);
                    return;
                }
                let path = path.unwrap_or_default();
                self.spans.entry(path.clone()).or_insert((offset, 1));
                self.stack.push(Frame::Map {
                    map: Map::new(),
                    path,
                    anchor,
                    nodes: 1,
                    key: None,
                    merge_key: false,
                    merges: Vec::new(),
                });
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq {
                    items,
                    anchor,
                    nodes,
                    ..
                }) = self.stack.pop()
                {
                    let v = Value::Array(items);
                    if anchor > 0 {
                        self.anchors.insert(anchor, (v.clone(), nodes));
                    }
                    self.count(nodes);
                    self.place(v, offset, 1, false);
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map {
                    mut map,
                    anchor,
                    merges,
                    nodes,
                    ..
                }) = self.stack.pop()
                {
                    // `<<: *base` merge keys: explicit keys win over merged ones.
                    for merged in merges {
                        let maps = match merged {
                            Value::Array(items) => items,
                            other => vec![other],
                        };
                        for m in maps {
                            match m {
                                Value::Object(m) => {
                                    for (k, v) in m {
                                        map.entry(k).or_insert(v);
                                    }
                                }
                                _ => {
                                    self.fail(
                                        "a `<<` merge key needs a map or a list of maps",
                                        offset,
                                    );
                                }
                            }
                        }
                    }
                    let v = Value::Object(map);
                    if anchor > 0 {
                        self.anchors.insert(anchor, (v.clone(), nodes));
                    }
                    self.count(nodes);
                    self.place(v, offset, 1, false);
                }
            }
            _ => {}
        }
    }
}

pub fn parse(text: &str) -> Result<Parsed, SyntaxError> {
    let mut builder = Builder {
        chars: CharIndex::new(text),
        text,
        stack: Vec::new(),
        anchors: HashMap::new(),
        aliases: 0,
        alias_nodes: 0,
        spans: SpanMap::new(),
        key_spans: SpanMap::new(),
        root: None,
        documents: 0,
        error: None,
    };
    let mut parser = Parser::new_from_str(text);
    // The events one after another: yaml-rust2's `load` recurses once per
    // level of nesting, and block nesting (`- - - ...`) has no limit of its
    // own, so a hostile file could overflow the stack.
    let mut depth = 0usize;
    loop {
        let (ev, mark) = match parser.next_token() {
            Ok(next) => next,
            Err(e) => {
                let offset = builder.chars.byte(e.marker().index());
                return Err(SyntaxError::new(e.info(), offset, 1));
            }
        };
        match ev {
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                depth += 1;
                if depth > MAX_DEPTH {
                    let offset = builder.chars.byte(mark.index());
                    return Err(SyntaxError::new(
                        format!(
                            "recursion limit exceeded: collections nest deeper than {MAX_DEPTH} levels"
                        ),
                        offset,
                        1,
                    ));
                }
            }
            Event::SequenceEnd | Event::MappingEnd => depth = depth.saturating_sub(1),
            _ => {}
        }
        let end = ev == Event::StreamEnd;
        builder.on_event(ev, mark);
        if end {
            break;
        }
    }
    if let Some(err) = builder.error {
        return Err(err);
    }
    Ok(Parsed {
        value: builder.root.unwrap_or(Value::Null),
        spans: builder.spans,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Nesting is bounded whatever its style: block sequences have no
    /// limit in the scanner, and used to overflow the stack.
    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        for text in ["- ".repeat(5000), "a:\n".to_string() + &"- ".repeat(5000)] {
            let err = parse(&text).unwrap_err();
            assert!(err.message.contains("recursion limit"), "{err:?}");
        }
        let ok = "- ".repeat(MAX_DEPTH) + "1\n";
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn anchors_and_merge_keys() {
        let p = parse("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\n").unwrap();
        assert_eq!(
            p.value,
            json!({"base": {"x": 1, "y": 2}, "other": {"x": 1, "y": 3}})
        );
    }

    #[test]
    fn quoted_scalars_stay_strings() {
        let p = parse("a: '1'\nb: \"true\"\nc: 1\nd: yes\ne: !!str 5\n").unwrap();
        assert_eq!(
            p.value,
            json!({"a": "1", "b": "true", "c": 1, "d": "yes", "e": "5"})
        );
    }

    #[test]
    fn non_ascii_offsets_are_bytes() {
        let text = "a: \"é\"\nb: x\n";
        let p = parse(text).unwrap();
        let (off, _) = p.spans[&vec!["b".to_string()]];
        assert_eq!(&text[off..off + 1], "x");
    }

    fn at(text: &str, span: (usize, usize)) -> &str {
        &text[span.0..span.0 + span.1]
    }

    #[test]
    fn a_key_given_twice_is_an_error_at_both() {
        let text = "default:\n  taps:\n    tap-x: {}\n  project_name: p\n  taps:\n    tap-y: {}\n";
        let err = parse(text).unwrap_err();
        assert!(err.message.contains("`taps` is given twice"), "{err:?}");
        assert_eq!(err.offset, text.rfind("taps").unwrap());
        assert_eq!(at(text, (err.offset, err.len)), "taps");
        let first = err.first.expect("the first place");
        assert_eq!(first.0, text.find("taps").unwrap());
        assert_eq!(at(text, first), "taps");
        // In flow maps, quoted or not, numbers as keys, and aliases as keys.
        for text in [
            "a: {x: 1, 'x': 2}\n",
            "a: {1: x, \"1\": y}\n",
            "k: &k x\nm:\n  x: 1\n  *k : 2\n",
            "a: 1\nb: 2\na: 3\n",
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.message.contains("given twice"), "{text:?}: {err:?}");
            assert!(err.first.is_some(), "{text:?}");
        }
        // Keys of different maps, and keys a `<<` merge also brings, are not.
        let p = parse("a: {x: 1}\nb: {x: 2}\nc:\n  <<: {x: 1, y: 2}\n  x: 3\n").unwrap();
        assert_eq!(p.value["c"], json!({"x": 3, "y": 2}));
        let p = parse("b: &b {x: 1}\nc:\n  \"<<\": 1\n  <<: *b\n").unwrap();
        assert_eq!(p.value["c"], json!({"<<": 1, "x": 1}));
    }

    /// "Billion laughs": nine levels of nine aliases of the level below.
    fn alias_bomb(levels: usize) -> String {
        let mut text = "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n".to_string();
        for i in 1..=levels {
            let refs = vec![format!("*a{}", i - 1); 9].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        text
    }

    #[test]
    fn alias_expansion_is_bounded() {
        let start = std::time::Instant::now();
        let text = alias_bomb(9);
        let err = parse(&text).unwrap_err();
        assert!(err.message.contains("aliases"), "{err:?}");
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        // Many aliases, each expanding to little.
        let mut text = "x: &x [1]\nl:\n".to_string();
        for _ in 0..MAX_ALIASES + 1 {
            text.push_str("  - *x\n");
        }
        let err = parse(&text).unwrap_err();
        assert!(err.message.contains("aliases"), "{err:?}");
        // What a real config does with anchors is far below both limits.
        let mut text =
            "_base: &base {capabilities: [catalog, state], config: {a: 1, b: [1, 2, 3]}}\ntaps:\n"
                .to_string();
        for i in 0..2_000 {
            text.push_str(&format!(
                "  tap-{i}:\n    <<: *base\n    pip_url: tap-{i}\n"
            ));
        }
        let p = parse(&text).unwrap();
        assert_eq!(p.value["taps"]["tap-1999"]["config"]["b"][2], 3);
        assert!(parse(&alias_bomb(4)).is_ok());
    }

    #[test]
    fn two_documents_are_an_error() {
        assert!(parse("a: 1\n---\nb: 2\n").is_err());
    }
}

#[cfg(test)]
mod quoted_merge_key_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_quoted_merge_key_is_a_plain_key() {
        let p = parse("a:\n  \"<<\": null\n  b: 1\n").unwrap();
        assert_eq!(p.value, json!({"a": {"<<": null, "b": 1}}));
    }
}
