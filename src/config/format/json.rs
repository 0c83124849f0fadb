//! JSON: serde_json parses and reports errors; a small scanner over the
//! already-valid text then records where each node is.

use std::collections::HashMap;

use serde_json::Value;

use super::{KeyPath, Parsed, SpanMap, SyntaxError, child};
use crate::config::source::offset_of;

pub fn parse(text: &str) -> Result<Parsed, SyntaxError> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        SyntaxError::new(
            e.to_string()
                .split(" at line")
                .next()
                .unwrap_or("invalid JSON"),
            offset_of(text, e.line(), e.column()).min(text.len().saturating_sub(1)),
            1,
        )
    })?;
    let mut spans = SpanMap::new();
    let mut scanner = Scanner {
        bytes: text.as_bytes(),
        pos: 0,
        spans: &mut spans,
        duplicate: None,
    };
    // The text is valid JSON, so the scanner fails only on a key given twice
    // (serde_json keeps the last one); else only the spans would be missing
    // and errors would point at the file's start.
    let _ = scanner.value(Vec::new());
    if let Some(e) = scanner.duplicate {
        return Err(e);
    }
    Ok(Parsed { value, spans })
}

struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
    spans: &'a mut SpanMap,
    /// A key given twice in one object.
    duplicate: Option<SyntaxError>,
}

impl Scanner<'_> {
    fn ws(&mut self) {
        while self.pos < self.bytes.len() && self.bytes[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn value(&mut self, path: KeyPath) -> Option<()> {
        self.ws();
        let start = self.pos;
        match self.peek()? {
            b'{' => {
                self.spans.insert(path.clone(), (start, 1));
                self.pos += 1;
                let mut seen: HashMap<String, (usize, usize)> = HashMap::new();
                loop {
                    self.ws();
                    if self.peek()? == b'}' {
                        self.pos += 1;
                        break;
                    }
                    let key_start = self.pos;
                    let key = self.string()?;
                    let key_span = (key_start, self.pos - key_start);
                    if let Some(&first) = seen.get(&key) {
                        self.duplicate = Some(SyntaxError::duplicate(&key, key_span, first));
                        return None;
                    }
                    seen.insert(key.clone(), key_span);
                    self.ws();
                    if self.peek()? != b':' {
                        return None;
                    }
                    self.pos += 1;
                    self.value(child(&path, key))?;
                    self.ws();
                    match self.peek()? {
                        b',' => self.pos += 1,
                        b'}' => {
                            self.pos += 1;
                            break;
                        }
                        _ => return None,
                    }
                }
            }
            b'[' => {
                self.spans.insert(path.clone(), (start, 1));
                self.pos += 1;
                let mut i = 0usize;
                loop {
                    self.ws();
                    if self.peek()? == b']' {
                        self.pos += 1;
                        break;
                    }
                    self.value(child(&path, i.to_string()))?;
                    i += 1;
                    self.ws();
                    match self.peek()? {
                        b',' => self.pos += 1,
                        b']' => {
                            self.pos += 1;
                            break;
                        }
                        _ => return None,
                    }
                }
            }
            b'"' => {
                self.string()?;
                self.spans.insert(path, (start, self.pos - start));
            }
            _ => {
                while let Some(b) = self.peek() {
                    if matches!(b, b',' | b'}' | b']') || b.is_ascii_whitespace() {
                        break;
                    }
                    self.pos += 1;
                }
                self.spans.insert(path, (start, self.pos - start));
            }
        }
        Some(())
    }

    fn string(&mut self) -> Option<String> {
        let start = self.pos;
        if self.peek()? != b'"' {
            return None;
        }
        self.pos += 1;
        while self.pos < self.bytes.len() {
            match self.bytes[self.pos] {
                b'\\' => self.pos += 2,
                b'"' => {
                    self.pos += 1;
                    let raw = std::str::from_utf8(&self.bytes[start..self.pos]).ok()?;
                    return serde_json::from_str(raw).ok();
                }
                _ => self.pos += 1,
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_given_twice_is_an_error_at_both() {
        let text = "{\"default\": {\"taps\": {\"a\": {}}, \"x\": [{\"taps\": 1}], \"taps\": {}}}";
        let err = parse(text).unwrap_err();
        assert!(err.message.contains("`taps` is given twice"), "{err:?}");
        assert_eq!(err.offset, text.rfind("\"taps\"").unwrap());
        assert_eq!(&text[err.offset..err.offset + err.len], "\"taps\"");
        let first = err.first.expect("the first place");
        assert_eq!(first.0, text.find("\"taps\"").unwrap());
        // Escapes spell the same key.
        let err = parse("{\"a\": 1, \"\\u0061\": 2}").unwrap_err();
        assert!(err.message.contains("`a` is given twice"), "{err:?}");
        // The same key in two objects is fine.
        assert!(parse("[{\"a\": 1}, {\"a\": 2}]").is_ok());
    }

    #[test]
    fn errors_after_multibyte_text_point_at_the_fault() {
        let text = "{\"a\": \"éé日本\", \"b\": }";
        let err = parse(text).unwrap_err();
        assert_eq!(&text[err.offset..err.offset + err.len], "}");
        let text = "{\"a\": \"é\",\n \"b\": \"日本\" x}";
        let err = parse(text).unwrap_err();
        assert_eq!(&text[err.offset..err.offset + err.len], "x");
    }
}
