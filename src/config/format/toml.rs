//! TOML: `toml` parses the values, its span-keeping `DeTable` says where they are.

use serde_json::{Map, Number, Value};
use toml::de::{DeTable, DeValue};

use super::{KeyPath, Parsed, SpanMap, SyntaxError, child};

pub fn parse(text: &str) -> Result<Parsed, SyntaxError> {
    let table: toml::Table = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        SyntaxError::new(
            e.message().trim(),
            span.start.min(text.len()),
            span.len()
                .max(1)
                .min(text.len().saturating_sub(span.start).max(1)),
        )
    })?;
    let mut spans = SpanMap::new();
    if let Ok(spanned) = DeTable::parse(text) {
        record_table(spanned.get_ref(), &Vec::new(), &mut spans);
    }
    Ok(Parsed {
        value: convert_table(table),
        spans,
    })
}

fn record_table(table: &DeTable<'_>, path: &KeyPath, spans: &mut SpanMap) {
    for (k, v) in table.iter() {
        let p = child(path, k.get_ref().to_string());
        record_value(v.get_ref(), v.span(), k.span(), &p, spans);
    }
}

fn record_value(
    v: &DeValue<'_>,
    span: std::ops::Range<usize>,
    key_span: std::ops::Range<usize>,
    path: &KeyPath,
    spans: &mut SpanMap,
) {
    match v {
        DeValue::Table(t) => {
            // Tables are best shown by their key (`[default.taps.x]` or `x = {..}`).
            spans.insert(path.clone(), (key_span.start, key_span.len().max(1)));
            record_table(t, path, spans);
        }
        DeValue::Array(items) => {
            spans.insert(path.clone(), (key_span.start, key_span.len().max(1)));
            for (i, item) in items.iter().enumerate() {
                let p = child(path, i.to_string());
                record_value(item.get_ref(), item.span(), item.span(), &p, spans);
            }
        }
        _ => {
            spans.insert(path.clone(), (span.start, span.len().max(1)));
        }
    }
}

fn convert_table(t: toml::Table) -> Value {
    let mut m = Map::new();
    for (k, v) in t {
        m.insert(k, convert(v));
    }
    Value::Object(m)
}

pub fn convert(v: toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s),
        toml::Value::Integer(i) => Value::Number(i.into()),
        toml::Value::Float(f) => Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(f.to_string())),
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.into_iter().map(convert).collect()),
        toml::Value::Table(t) => convert_table(t),
    }
}
