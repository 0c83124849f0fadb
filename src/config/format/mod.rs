//! The file formats a configuration may be written in. Each parser turns text
//! into a JSON value plus the byte span of every node, keyed by its path.

mod json;
mod kdl;
mod toml;
mod yaml;

use std::collections::HashMap;

use serde_json::Value;

/// A path into a configuration tree: map keys, and list indices as decimal strings.
pub type KeyPath = Vec<String>;

/// Byte spans of the nodes of one parsed file, by path.
pub type SpanMap = HashMap<KeyPath, (usize, usize)>;

/// A file's value and where each of its nodes is.
#[derive(Debug, Default)]
pub struct Parsed {
    pub value: Value,
    pub spans: SpanMap,
}

/// A file that does not parse: what is wrong and the byte span where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub message: String,
    pub offset: usize,
    pub len: usize,
    /// For a key given twice in one map: where it was first given.
    pub first: Option<(usize, usize)>,
}

impl SyntaxError {
    pub fn new(message: impl Into<String>, offset: usize, len: usize) -> Self {
        SyntaxError {
            message: message.into(),
            offset,
            len,
            first: None,
        }
    }

    /// A key given twice in one map, at `again`, first given at `first`.
    /// alto refuses it in every format rather than keep one silently.
    pub fn duplicate(key: &str, again: (usize, usize), first: (usize, usize)) -> Self {
        const SHOWN: usize = 60;
        let shown: String = if key.chars().count() > SHOWN {
            key.chars().take(SHOWN).chain(['…']).collect()
        } else {
            key.to_string()
        };
        SyntaxError {
            message: format!("`{shown}` is given twice in the same map"),
            offset: again.0,
            len: again.1,
            first: Some(first),
        }
    }
}

/// The byte-order mark some editors put at the start of a UTF-8 file.
pub const BOM: char = '\u{feff}';

/// The formats alto reads, by file extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
    Toml,
    Kdl,
}

impl Format {
    /// Extensions in the order alto looks for them.
    pub const EXTENSIONS: [(&'static str, Format); 5] = [
        ("yaml", Format::Yaml),
        ("yml", Format::Yaml),
        ("toml", Format::Toml),
        ("json", Format::Json),
        ("kdl", Format::Kdl),
    ];

    pub fn from_name(name: &str) -> Option<Format> {
        match name.to_ascii_lowercase().as_str() {
            "yaml" | "yml" => Some(Format::Yaml),
            "json" => Some(Format::Json),
            "toml" => Some(Format::Toml),
            "kdl" => Some(Format::Kdl),
            _ => None,
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Yaml => "yaml",
            Format::Json => "json",
            Format::Toml => "toml",
            Format::Kdl => "kdl",
        }
    }

    /// Parses a file's text. A UTF-8 byte-order mark at its start (as some
    /// Windows editors write) is not content; spans still count its bytes, so
    /// they point into the text as read.
    pub fn parse(self, text: &str) -> Result<Parsed, SyntaxError> {
        let Some(body) = text.strip_prefix(BOM) else {
            return self.parse_body(text);
        };
        let shift = BOM.len_utf8();
        match self.parse_body(body) {
            Ok(mut parsed) => {
                for span in parsed.spans.values_mut() {
                    span.0 += shift;
                }
                Ok(parsed)
            }
            Err(mut e) => {
                e.offset += shift;
                if let Some(first) = &mut e.first {
                    first.0 += shift;
                }
                Err(e)
            }
        }
    }

    fn parse_body(self, text: &str) -> Result<Parsed, SyntaxError> {
        match self {
            Format::Yaml => yaml::parse(text),
            Format::Json => json::parse(text),
            Format::Toml => toml::parse(text),
            Format::Kdl => kdl::parse(text),
        }
    }
}

pub(crate) fn child(path: &[String], key: impl Into<String>) -> KeyPath {
    let mut p = path.to_vec();
    p.push(key.into());
    p
}

/// A TOML value as a config value (datetimes become strings).
pub fn toml_value(v: ::toml::Value) -> Value {
    toml::convert(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const YAML: &str = "default:\n  taps:\n    tap-x:\n      pip_url: tap-x==1\n      select: ['a.*', \"!b.c\"]\n      config: {n: 1, f: 1.5, b: true, z: null}\n";
    const JSON: &str = r#"{"default": {"taps": {"tap-x": {"pip_url": "tap-x==1", "select": ["a.*", "!b.c"], "config": {"n": 1, "f": 1.5, "b": true, "z": null}}}}}"#;
    const TOML: &str = "[default.taps.tap-x]\npip_url = \"tap-x==1\"\nselect = ['a.*', \"!b.c\"]\nconfig = { n = 1, f = 1.5, b = true }\n";
    const KDL: &str = "default {\n  taps {\n    tap-x {\n      pip_url \"tap-x==1\"\n      select \"a.*\" \"!b.c\"\n      config n=1 f=1.5 b=#true z=#null\n    }\n  }\n}\n";

    fn expected(with_null: bool) -> Value {
        let mut v = json!({"default": {"taps": {"tap-x": {"pip_url": "tap-x==1", "select": ["a.*", "!b.c"], "config": {"n": 1, "f": 1.5, "b": true}}}}});
        if with_null {
            v["default"]["taps"]["tap-x"]["config"]["z"] = Value::Null;
        }
        v
    }

    #[test]
    fn all_formats_agree() {
        assert_eq!(Format::Yaml.parse(YAML).unwrap().value, expected(true));
        assert_eq!(Format::Json.parse(JSON).unwrap().value, expected(true));
        assert_eq!(Format::Toml.parse(TOML).unwrap().value, expected(false));
        assert_eq!(Format::Kdl.parse(KDL).unwrap().value, expected(true));
    }

    #[test]
    fn spans_point_at_values() {
        for (fmt, text) in [
            (Format::Yaml, YAML),
            (Format::Json, JSON),
            (Format::Toml, TOML),
            (Format::Kdl, KDL),
        ] {
            let parsed = fmt.parse(text).unwrap();
            let path: KeyPath = ["default", "taps", "tap-x", "pip_url"]
                .iter()
                .map(|s| s.to_string())
                .collect();
            let (off, len) = parsed.spans[&path];
            let snippet = &text[off..off + len];
            assert!(snippet.contains("tap-x==1"), "{fmt:?}: {snippet:?}");
            let sel: KeyPath = ["default", "taps", "tap-x", "select", "1"]
                .iter()
                .map(|s| s.to_string())
                .collect();
            let (off, len) = parsed.spans[&sel];
            assert!(text[off..off + len].contains("!b.c"), "{fmt:?}");
        }
    }

    #[test]
    fn a_byte_order_mark_is_not_content() {
        let pip_url: KeyPath = ["default", "taps", "tap-x", "pip_url"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        for (fmt, text) in [
            (Format::Yaml, YAML),
            (Format::Json, JSON),
            (Format::Toml, TOML),
            (Format::Kdl, KDL),
        ] {
            let with_bom = format!("\u{feff}{text}");
            let parsed = fmt
                .parse(&with_bom)
                .unwrap_or_else(|e| panic!("{fmt:?}: {e:?}"));
            assert_eq!(parsed.value, fmt.parse(text).unwrap().value, "{fmt:?}");
            // Spans point into the text as read, mark included.
            let (off, len) = parsed.spans[&pip_url];
            assert!(with_bom[off..off + len].contains("tap-x==1"), "{fmt:?}");
        }
        let text = "\u{feff}{\"default\": }";
        let err = Format::Json.parse(text).unwrap_err();
        assert_eq!(&text[err.offset..err.offset + err.len], "}");
    }

    #[test]
    fn syntax_errors_have_a_place() {
        for (fmt, text) in [
            (Format::Yaml, "default:\n  a: [1, 2\n"),
            (Format::Json, "{\"default\": {\"a\": }}"),
            (Format::Toml, "[default]\na = \n"),
            (Format::Kdl, "default {\n  a \"unterminated\n}\n"),
        ] {
            let err = fmt.parse(text).unwrap_err();
            assert!(err.offset <= text.len(), "{fmt:?}: {err:?}");
            assert!(!err.message.is_empty());
        }
    }
}
