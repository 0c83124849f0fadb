//! KDL, mapped naturally onto the config tree:
//! a node's name is a key; one argument is a scalar; several arguments are a
//! list; properties (`a=1`) and children (`{ ... }`) are a map; children all named
//! `-` are a list (`- "x"`, `- { k "v" }`); an empty block `{}` is an empty map.
//!
//! A name given twice in one map — two sibling nodes, two properties of a
//! node, or a property and a child — is an error, as a key given twice is in
//! every format (KDL itself would let the last property win).

use std::collections::HashMap;

use kdl::{KdlDocument, KdlEntry, KdlNode, KdlValue};
use serde_json::{Map, Number, Value};

use super::{KeyPath, Parsed, SpanMap, SyntaxError, child};

pub fn parse(text: &str) -> Result<Parsed, SyntaxError> {
    let doc: KdlDocument = text.parse().map_err(|e: kdl::KdlError| {
        let first = e.diagnostics.first();
        let (offset, len) = first
            .map(|d| (d.span.offset(), d.span.len()))
            .unwrap_or((0, 1));
        let message = first
            .and_then(|d| d.message.clone().or_else(|| d.label.clone()))
            .unwrap_or_else(|| "invalid KDL".to_string());
        let help = first.and_then(|d| d.help.clone());
        SyntaxError::new(
            match help {
                Some(h) => format!("{message} ({h})"),
                None => message,
            },
            offset.min(text.len()),
            len.max(1),
        )
    })?;
    let mut spans = SpanMap::new();
    let value = document(&doc, &Vec::new(), &mut spans, &mut HashMap::new())?;
    Ok(Parsed { value, spans })
}

/// The names of one map and where each is first given.
type Names = HashMap<String, (usize, usize)>;

/// A document's nodes as a list (all named `-`) or a map; `names` holds the
/// names the map already has (the properties of the node it belongs to).
fn document(
    doc: &KdlDocument,
    path: &KeyPath,
    spans: &mut SpanMap,
    names: &mut Names,
) -> Result<Value, SyntaxError> {
    let nodes = doc.nodes();
    if !nodes.is_empty() && nodes.iter().all(|n| n.name().value() == "-") {
        let mut items = Vec::with_capacity(nodes.len());
        for (i, n) in nodes.iter().enumerate() {
            let p = child(path, i.to_string());
            spans.insert(p.clone(), (n.span().offset(), n.span().len().max(1)));
            items.push(node(n, &p, spans)?);
        }
        return Ok(Value::Array(items));
    }
    let mut map = Map::new();
    for n in nodes {
        let key = n.name().value().to_string();
        if key == "-" {
            return Err(err(n, "`-` list items cannot be mixed with named nodes"));
        }
        let at = (n.name().span().offset(), n.name().span().len().max(1));
        if let Some(&first) = names.get(&key) {
            return Err(SyntaxError::duplicate(&key, at, first));
        }
        names.insert(key.clone(), at);
        let p = child(path, key.clone());
        spans.insert(p.clone(), at);
        let v = node(n, &p, spans)?;
        map.insert(key, v);
    }
    Ok(Value::Object(map))
}

fn node(n: &KdlNode, path: &KeyPath, spans: &mut SpanMap) -> Result<Value, SyntaxError> {
    let args: Vec<_> = n.entries().iter().filter(|e| e.name().is_none()).collect();
    let props: Vec<_> = n.entries().iter().filter(|e| e.name().is_some()).collect();
    if !args.is_empty() && (n.children().is_some() || !props.is_empty()) {
        return Err(err(
            n,
            "a node holds either arguments (a value or a list) or properties and children (a map), not both",
        ));
    }
    let mut names = Names::new();
    for e in &props {
        let key = prop_name(e);
        let at = e
            .name()
            .map(|k| (k.span().offset(), k.span().len().max(1)))
            .unwrap_or((e.span().offset(), 1));
        if let Some(&first) = names.get(&key) {
            return Err(SyntaxError::duplicate(&key, at, first));
        }
        names.insert(key, at);
    }
    if let Some(children) = n.children() {
        let mut v = document(children, path, spans, &mut names)?;
        if !props.is_empty() {
            match &mut v {
                Value::Object(m) => {
                    for e in &props {
                        let key = prop_name(e);
                        let p = child(path, key.clone());
                        spans.insert(p, (e.span().offset(), e.span().len().max(1)));
                        m.insert(key, scalar(e.value()));
                    }
                }
                _ => return Err(err(n, "properties cannot be mixed with `-` list items")),
            }
        }
        return Ok(v);
    }
    if !props.is_empty() {
        let mut m = Map::new();
        for e in &props {
            let key = prop_name(e);
            let p = child(path, key.clone());
            spans.insert(p, (e.span().offset(), e.span().len().max(1)));
            m.insert(key, scalar(e.value()));
        }
        return Ok(Value::Object(m));
    }
    match args.len() {
        0 => Ok(Value::Null),
        1 => {
            spans.insert(
                path.clone(),
                (args[0].span().offset(), args[0].span().len().max(1)),
            );
            Ok(scalar(args[0].value()))
        }
        _ => {
            let mut items = Vec::with_capacity(args.len());
            for (i, e) in args.iter().enumerate() {
                let p = child(path, i.to_string());
                spans.insert(p, (e.span().offset(), e.span().len().max(1)));
                items.push(scalar(e.value()));
            }
            Ok(Value::Array(items))
        }
    }
}

fn scalar(v: &KdlValue) -> Value {
    match v {
        KdlValue::String(s) => Value::String(s.clone()),
        KdlValue::Integer(i) => i64::try_from(*i)
            .map(|i| Value::Number(i.into()))
            .or_else(|_| u64::try_from(*i).map(|u| Value::Number(u.into())))
            .unwrap_or_else(|_| Value::String(i.to_string())),
        KdlValue::Float(f) => Number::from_f64(*f)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(f.to_string())),
        KdlValue::Bool(b) => Value::Bool(*b),
        KdlValue::Null => Value::Null,
    }
}

fn prop_name(e: &KdlEntry) -> String {
    e.name().map(|k| k.value().to_string()).unwrap_or_default()
}

fn err(n: &KdlNode, message: &str) -> SyntaxError {
    SyntaxError::new(message, n.span().offset(), n.name().span().len().max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn mapping() {
        let p = parse(
            "default {\n  one \"x\"\n  many 1 2 \"three\"\n  map a=1 b=#false\n  empty {}\n  none\n  items {\n    - \"a\"\n    - { entity \"b\"; path \"b.csv\" }\n  }\n}\n",
        )
        .unwrap();
        assert_eq!(
            p.value,
            json!({"default": {"one": "x", "many": [1, 2, "three"], "map": {"a": 1, "b": false}, "empty": {}, "none": null, "items": ["a", {"entity": "b", "path": "b.csv"}]}})
        );
    }

    #[test]
    fn a_name_given_twice_is_an_error_at_both() {
        let text = "default {\n  taps {\n  }\n  taps {\n  }\n}\n";
        let err = parse(text).unwrap_err();
        assert!(err.message.contains("`taps` is given twice"), "{err:?}");
        assert_eq!(err.offset, text.rfind("taps").unwrap());
        assert_eq!(err.first.map(|f| f.0), text.find("taps"));
        // Two properties of one node, or a property and a child.
        for text in ["config a=1 a=2\n", "config a=1 {\n  a 2\n}\n"] {
            let err = parse(text).unwrap_err();
            assert!(
                err.message.contains("`a` is given twice"),
                "{text:?}: {err:?}"
            );
            assert_eq!(err.first.map(|f| f.0), text.find("a="), "{text:?}");
        }
        // `-` items are a list, not names.
        assert!(parse("l {\n  - 1\n  - 1\n}\n").is_ok());
    }

    #[test]
    fn args_and_children_conflict() {
        assert!(parse("a 1 { b 2 }\n").is_err());
        assert!(parse("a 1\na 2\n").is_err());
    }
}
