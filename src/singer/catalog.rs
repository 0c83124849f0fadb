//! Select and metadata rules (provisional: replaced by the full implementation).

use serde_json::{Map, Value};
use thiserror::Error;

use super::message::fnmatch;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Strategy {
    #[default]
    Prune,
    Deselect,
}

#[derive(Debug, Clone, Default)]
pub struct Rules {
    pub select: Vec<String>,
    pub metadata: Map<String, Value>,
    pub strategy: Strategy,
}

#[derive(Debug, Error, miette::Diagnostic)]
pub enum CatalogError {
    #[error("{0}")]
    Invalid(String),
}

impl Rules {
    pub fn from_json(v: &Value) -> Result<Rules, CatalogError> {
        let select = v
            .get("select")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let metadata = v
            .get("metadata")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        Ok(Rules {
            select,
            metadata,
            strategy: Strategy::Prune,
        })
    }
}

pub struct Applied {
    pub catalog: Value,
    pub warnings: Vec<String>,
}

pub struct Selection {
    pub stream: String,
    pub field: Vec<String>,
    pub inclusion: String,
    pub selected: bool,
}

fn selected(select: &[String], crumb: &str) -> bool {
    let mut on = false;
    for r in select.iter().filter(|r| !r.starts_with('~')) {
        let (neg, pat) = match r.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, r.as_str()),
        };
        let pat = if pat.contains('.') {
            pat.to_string()
        } else {
            format!("{pat}.*")
        };
        if fnmatch(&pat, crumb) {
            on = !neg;
        }
    }
    on
}

pub fn apply(base: &Value, rules: &Rules) -> Result<Applied, CatalogError> {
    let mut select = rules.select.clone();
    if select
        .iter()
        .all(|r| r.starts_with('!') || r.starts_with('~'))
    {
        select.insert(0, "*.*".into());
    }
    let streams = base
        .get("streams")
        .and_then(Value::as_array)
        .ok_or_else(|| CatalogError::Invalid("no streams".into()))?;
    let mut out = Vec::new();
    for s in streams {
        let id = s
            .get("tap_stream_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let mut s = s.clone();
        let props: Vec<String> = s
            .pointer("/schema/properties")
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        let keep: Vec<String> = props
            .iter()
            .filter(|p| selected(&select, &format!("{id}.{p}")))
            .cloned()
            .collect();
        if keep.is_empty() {
            continue;
        }
        if let Some(Value::Object(m)) = s.pointer_mut("/schema/properties") {
            m.retain(|k, _| keep.contains(k));
        }
        if let Some(Value::Array(md)) = s.get_mut("metadata") {
            for e in md.iter_mut() {
                let bc: Vec<String> = e
                    .get("breadcrumb")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                let on = bc.is_empty() || bc.get(1).is_some_and(|f| keep.contains(f));
                if let Some(Value::Object(m)) = e.get_mut("metadata") {
                    m.insert("selected".into(), Value::Bool(on));
                }
            }
        }
        out.push(s);
    }
    Ok(Applied {
        catalog: serde_json::json!({"streams": out}),
        warnings: vec![],
    })
}

pub fn list(base: &Value, select: &[String]) -> Result<Vec<Selection>, CatalogError> {
    let _ = (base, select);
    Ok(Vec::new())
}
