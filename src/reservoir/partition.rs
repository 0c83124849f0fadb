//! Partitions: one stream's Singer lines under one schema, beginning with its
//! SCHEMA message. alto writes zstd (`.singer.zst`); gzip partitions of the
//! original alto (`.singer.gz`, lines separated by blank lines, with whatever
//! junk the tap printed) are read too.

use std::io::{BufRead, BufReader, Read, Write};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How a partition's bytes are compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    Zstd,
    Gzip,
}

impl Encoding {
    pub fn of_path(path: &str) -> Encoding {
        if path.ends_with(".gz") {
            Encoding::Gzip
        } else {
            Encoding::Zstd
        }
    }
}

/// The longest path segment [`segment`] makes, in bytes: far below file
/// systems' 255, with room for what object stores add.
pub const MAX_SEGMENT: usize = 120;

/// A stream or tap name as one path segment, encoded once: bytes outside
/// `[A-Za-z0-9_.-]` (and a leading `_` or `.`) become `=XX`, which no object
/// store encodes again, so no name can climb out of its directory or be
/// taken for the index (`_index.json`) or a temporary file. A name longer
/// than [`MAX_SEGMENT`] keeps a readable prefix and ends in `==` and 16 hex
/// digits of its blake3.
pub fn segment(name: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(name.len());
    for (i, b) in name.bytes().enumerate() {
        let plain = b.is_ascii_alphanumeric() || b == b'-' || (i > 0 && matches!(b, b'_' | b'.'));
        if plain {
            out.push(b as char);
        } else {
            let _ = write!(out, "={b:02X}");
        }
    }
    if out.is_empty() {
        return "=".into();
    }
    if out.len() <= MAX_SEGMENT {
        return out;
    }
    let hash = blake3::hash(name.as_bytes()).to_hex();
    let mut cut = MAX_SEGMENT - 18;
    // Never cut an `=XX` escape in two.
    if let Some(eq) = out[cut.saturating_sub(2)..cut].rfind('=') {
        cut = cut - 2 + eq;
    }
    format!("{}=={}", &out[..cut], &hash[..16])
}

/// The schema group of a SCHEMA message: 16 hex digits of the blake3 of its
/// schema, key properties and bookmark properties, canonically encoded.
pub fn schema_id(msg: &Value) -> String {
    let canon = canonical(&serde_json::json!({
        "schema": msg.get("schema").unwrap_or(&Value::Null),
        "key_properties": msg.get("key_properties").unwrap_or(&Value::Null),
        "bookmark_properties": msg.get("bookmark_properties").unwrap_or(&Value::Null),
    }));
    let bytes = serde_json::to_vec(&canon).unwrap_or_default();
    blake3::hash(&bytes).to_hex()[..16].to_string()
}

/// Objects with sorted keys (serde_json keeps insertion order here).
fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), canonical(&m[k])))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// Compresses a partition: the SCHEMA line, then the body (complete lines).
pub fn encode(schema_line: &[u8], body: &[u8], level: i32) -> std::io::Result<Vec<u8>> {
    let mut enc = zstd::stream::Encoder::new(Vec::with_capacity(body.len() / 4 + 1024), level)?;
    enc.write_all(schema_line)?;
    enc.write_all(b"\n")?;
    enc.write_all(body)?;
    enc.finish()
}

/// A reader of a partition's decompressed lines.
pub fn decoder<'a>(encoding: Encoding, bytes: &'a [u8]) -> std::io::Result<Box<dyn BufRead + 'a>> {
    Ok(match encoding {
        Encoding::Zstd => Box::new(BufReader::with_capacity(
            1 << 16,
            zstd::stream::Decoder::with_buffer(bytes)?,
        )),
        Encoding::Gzip => Box::new(BufReader::with_capacity(
            1 << 16,
            flate2::read::MultiGzDecoder::new(bytes),
        )),
    })
}

/// One line of a partition, as replay and compaction see it.
pub enum Line<'a> {
    Schema(&'a [u8]),
    /// A message to pass on (RECORD, ACTIVATE_VERSION, BATCH).
    Message(&'a [u8]),
    /// A blank line, or junk the original stored: skipped.
    Skip,
}

/// Reads every line of a partition, classifying each. `legacy` partitions
/// (the original's gzip) are checked line by line; alto's own are trusted
/// after their blake3 matched.
pub fn for_each_line(
    encoding: Encoding,
    bytes: &[u8],
    mut f: impl FnMut(Line) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut r = decoder(encoding, bytes)?;
    let mut buf = Vec::with_capacity(1 << 12);
    let mut first = true;
    loop {
        buf.clear();
        if r.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        let line = trim_newline(&buf);
        let kind = if line.iter().all(u8::is_ascii_whitespace) {
            Line::Skip
        } else if first || encoding == Encoding::Gzip {
            match crate::singer::message::head(line) {
                Ok(h) if h.kind == "SCHEMA" => Line::Schema(line),
                Ok(h) if h.kind == "STATE" => Line::Skip,
                Ok(_) => Line::Message(line),
                Err(_) => Line::Skip,
            }
        } else {
            Line::Message(line)
        };
        if !matches!(kind, Line::Skip) {
            first = false;
        }
        f(kind)?;
    }
    Ok(())
}

pub fn trim_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Decompresses a whole partition (tests, small partitions).
pub fn decompress(encoding: Encoding, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    decoder(encoding, bytes)?.read_to_end(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_stay_in_their_directory() {
        assert_eq!(segment("users"), "users");
        assert_eq!(segment("public-users.v2"), "public-users.v2");
        assert_eq!(segment("public_users"), "public_users");
        assert_eq!(segment("a/b"), "a=2Fb");
        assert_eq!(segment(".."), "=2E.");
        assert_eq!(segment(""), "=");
        assert_eq!(segment("a%b"), "a=25b");
        // Never the index's name, nor a hidden or temporary file's.
        assert_eq!(segment("_index.json"), "=5Findex.json");
        assert_eq!(segment(".tmp"), "=2Etmp");
        // Non-ASCII: encoded once, by alto, in characters object stores keep.
        assert_eq!(segment("é"), "=C3=A9");
    }

    #[test]
    fn long_names_keep_a_readable_prefix_and_stay_distinct() {
        let a = "é".repeat(200);
        let b = format!("{}x", "é".repeat(199));
        let (sa, sb) = (segment(&a), segment(&b));
        assert!(sa.len() <= MAX_SEGMENT, "{}", sa.len());
        assert!(sa.starts_with("=C3=A9=C3=A9"));
        assert_ne!(sa, sb);
        let long = "s".repeat(1000);
        assert!(segment(&long).len() <= MAX_SEGMENT);
        assert!(segment(&long).starts_with("sss"));
        // The prefix never ends in a cut escape.
        for n in 30..80 {
            let s = segment(&format!("{}{}", "a".repeat(n), "é".repeat(100)));
            let (prefix, _) = s.split_once("==").unwrap();
            assert!(
                !prefix.ends_with('=') && !prefix[prefix.len() - 2..].starts_with('='),
                "{s}"
            );
        }
    }

    #[test]
    fn schema_ids_ignore_key_order() {
        let a: Value = serde_json::from_str(
            r#"{"type":"SCHEMA","stream":"s","schema":{"properties":{"a":{"type":"integer"},"b":{}}},"key_properties":["a"]}"#,
        )
        .unwrap();
        let b: Value = serde_json::from_str(
            r#"{"stream":"s","key_properties":["a"],"type":"SCHEMA","schema":{"properties":{"b":{},"a":{"type":"integer"}}}}"#,
        )
        .unwrap();
        assert_eq!(schema_id(&a), schema_id(&b));
        let c: Value = serde_json::from_str(
            r#"{"type":"SCHEMA","stream":"s","schema":{"properties":{"a":{"type":"string"}}},"key_properties":["a"]}"#,
        )
        .unwrap();
        assert_ne!(schema_id(&a), schema_id(&c));
    }

    #[test]
    fn round_trip_and_gzip() {
        let z = encode(
            b"{\"type\":\"SCHEMA\",\"stream\":\"s\",\"schema\":{}}",
            b"{\"type\":\"RECORD\",\"stream\":\"s\",\"record\":{}}\n",
            3,
        )
        .unwrap();
        let mut seen = Vec::new();
        for_each_line(Encoding::Zstd, &z, |l| {
            seen.push(match l {
                Line::Schema(_) => "schema",
                Line::Message(_) => "message",
                Line::Skip => "skip",
            });
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, ["schema", "message"]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(b"{\"type\":\"SCHEMA\",\"stream\":\"s\",\"schema\":{}}\n\n{\"type\":\"RECORD\",\"stream\":\"s\",\"record\":{}}\n\nWARNING: junk\n\n").unwrap();
        let gz = gz.finish().unwrap();
        let mut seen = Vec::new();
        for_each_line(Encoding::Gzip, &gz, |l| {
            if let Line::Message(m) | Line::Schema(m) = l {
                seen.push(String::from_utf8_lossy(m).into_owned());
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(seen.len(), 2);
    }
}
