//! KDL, mapped naturally onto the config tree:
//! a node's name is a key; one argument is a scalar; several arguments are a
//! list; properties (`a=1`) and children (`{ ... }`) are a map; children all named
//! `-` are a list (`- "x"`, `- { k "v" }`); an empty block `{}` is an empty map.
//!
//! A name given twice in one map — two sibling nodes, two properties of a
//! node, or a property and a child — is an error, as a key given twice is in
//! every format (KDL itself would let the last property win).

use std::borrow::Cow;
use std::collections::HashMap;

use kdl::{KdlDocument, KdlEntry, KdlNode, KdlValue};
use serde_json::{Map, Number, Value};

use super::{KeyPath, Parsed, SpanMap, SyntaxError, child};

/// How deeply blocks (`{ ... }`) may nest, slashdashes (`/-`) in a row
/// counting as levels too: the limit serde_json sets for JSON.
pub const MAX_DEPTH: usize = 128;

/// The stack the KDL parser runs on (reserved, and used only as deep as it
/// recurses): see [`prescan`].
const PARSER_STACK: usize = 256 << 20;
/// The stack one step of the parser's recursion may take: a block takes up
/// to 40 KiB in a debug build, a slashdash 28, a comment's `*` 5.
const STEP_STACK: usize = 64 << 10;
/// The stack a thread that alto did not start has at least (a test's has 2 MiB).
const OTHER_STACK: usize = 1 << 20;

pub fn parse(text: &str) -> Result<Parsed, SyntaxError> {
    parse_on(text, PARSER_STACK)
}

/// Parses on a thread of `stack` bytes, after [`prescan`] made sure the
/// parser's recursion fits in it.
fn parse_on(text: &str, stack: usize) -> Result<Parsed, SyntaxError> {
    let prepared = prescan(text, stack / STEP_STACK)?;
    std::thread::scope(|scope| {
        let thread = std::thread::Builder::new()
            .name("alto-kdl".into())
            .stack_size(stack)
            .spawn_scoped(scope, || parse_prepared(&prepared));
        match thread {
            Ok(handle) => handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            // No thread to be had: parse here, within what any thread has.
            Err(_) => parse_prepared(&prescan(text, OTHER_STACK / STEP_STACK)?),
        }
    })
}

/// The spacing and newlines KDL knows.
fn is_newline(c: char) -> bool {
    matches!(
        c,
        '\n' | '\r' | '\u{85}' | '\u{0B}' | '\u{0C}' | '\u{2028}' | '\u{2029}'
    )
}

fn is_space(c: char) -> bool {
    matches!(
        c,
        '\t' | ' ' | '\u{A0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200A}' | '\u{202F}' | '\u{205F}' | '\u{3000}'
    )
}

/// Code points KDL does not allow anywhere.
fn is_disallowed(c: char) -> bool {
    matches!(
        c,
        '\u{0}'..='\u{8}'
            | '\u{E}'..='\u{1F}'
            | '\u{7F}'
            | '\u{200E}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

/// Reads the text the way the KDL parser will, without recursing, before it
/// is handed to the parser, which recurses once for every block, every
/// slashdash, and every `*` or `/` inside a comment, and would overflow the
/// stack on hostile input:
///
/// - blocks and runs of slashdashes deeper than [`MAX_DEPTH`] are an error
///   (strings, raw strings and comments skipped as KDL v2 reads them);
/// - the inside of every comment is blanked (same bytes: spaces for all but
///   newlines), which leaves the comment rule nothing to recurse on;
/// - the parser recurses at most once per `{`, `/` and `*` left in the text
///   it reads, so when there are at most `steps` of them, nothing it does
///   can overflow. A longer text is parsed only if it is well formed as far
///   as this scan can tell: on malformed text (a string that does not end,
///   a quote glued to a word, a `}` without its `{`, ...) the parser's error
///   recovery may read strings where this scan read none and the other way
///   round, so the malformed place is the error.
fn prescan(text: &str, steps: usize) -> Result<Cow<'_, str>, SyntaxError> {
    let mut scan = Prescan {
        text,
        pos: 0,
        depth: 0,
        slashdashes: 0,
        word: false,
        malformed: None,
        blank: Vec::new(),
    };
    scan.run()?;
    let mut prepared = Cow::Borrowed(text);
    if !scan.blank.is_empty() {
        let mut bytes = text.as_bytes().to_vec();
        for (start, end) in scan.blank {
            for b in &mut bytes[start..end] {
                if *b != b'\n' && *b != b'\r' {
                    *b = b' ';
                }
            }
        }
        // Whole characters (between ASCII delimiters) became ASCII spaces.
        if let Ok(blanked) = String::from_utf8(bytes) {
            prepared = Cow::Owned(blanked);
        }
    }
    if let Some((at, message)) = scan.malformed {
        let recursing = prepared
            .bytes()
            .filter(|b| matches!(b, b'{' | b'/' | b'*'))
            .count();
        if recursing > steps {
            return Err(SyntaxError::new(message, at, 1));
        }
    }
    Ok(prepared)
}

struct Prescan<'a> {
    text: &'a str,
    pos: usize,
    /// Open blocks.
    depth: usize,
    /// Slashdashes since the last node, value or block.
    slashdashes: usize,
    /// The last character was part of a word (a string cannot start here).
    word: bool,
    /// The first malformed place and what is wrong there.
    malformed: Option<(usize, &'static str)>,
    /// Byte ranges inside comments.
    blank: Vec<(usize, usize)>,
}

impl Prescan<'_> {
    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn at(&self, i: usize) -> &str {
        self.text.get(i..).unwrap_or("")
    }

    fn malformed(&mut self, at: usize, message: &'static str) {
        if self.malformed.is_none() {
            self.malformed = Some((at, message));
        }
    }

    fn check_depth(&self, at: usize) -> Result<(), SyntaxError> {
        if self.depth + self.slashdashes <= MAX_DEPTH {
            return Ok(());
        }
        // Past a malformed place the count may be wrong: that place is the error.
        Err(match self.malformed {
            Some((m, message)) => SyntaxError::new(message, m, 1),
            None => SyntaxError::new(
                format!("recursion limit exceeded: blocks nest deeper than {MAX_DEPTH} levels"),
                at,
                1,
            ),
        })
    }

    fn run(&mut self) -> Result<(), SyntaxError> {
        while let Some(c) = self.peek() {
            let at = self.pos;
            let rest = self.at(at);
            match c {
                '"' => self.string(at),
                '#' => {
                    let hashes = rest.bytes().take_while(|b| *b == b'#').count();
                    if self.at(at + hashes).starts_with('"') {
                        self.raw_string(at, hashes);
                    } else {
                        // `#true`, `#null`, ...
                        self.pos += hashes;
                        self.word = true;
                        self.slashdashes = 0;
                    }
                }
                '/' if rest.starts_with("//") => {
                    let end = rest
                        .char_indices()
                        .find(|(_, c)| is_newline(*c))
                        .map(|(i, _)| at + i)
                        .unwrap_or(self.text.len());
                    self.blank.push((at + 2, end));
                    self.pos = end;
                    self.word = false;
                }
                '/' if rest.starts_with("/*") => self.comment(at),
                '/' if rest.starts_with("/-") => {
                    self.slashdashes += 1;
                    self.check_depth(at)?;
                    self.pos += 2;
                    self.word = false;
                }
                '{' => {
                    self.depth += 1;
                    self.check_depth(at)?;
                    self.slashdashes = 0;
                    self.pos += 1;
                    self.word = false;
                }
                '}' | ';' => {
                    // A value cannot follow a block's end directly.
                    if c == '}' {
                        if self.depth == 0 {
                            self.malformed(at, "this `}` closes no block");
                        }
                        self.depth = self.depth.saturating_sub(1);
                    }
                    self.slashdashes = 0;
                    self.pos += 1;
                    self.word = c == '}';
                }
                '\\' => {
                    self.escline(at);
                    self.pos += 1;
                    self.word = false;
                }
                '(' | ')' | '=' => {
                    self.pos += 1;
                    self.word = false;
                }
                c if is_space(c) || is_newline(c) => {
                    self.pos += c.len_utf8();
                    self.word = false;
                }
                c => {
                    if c == '/' {
                        self.malformed(
                            at,
                            "a `/` starts a comment (`//`, `/*`) or a slashdash (`/-`) only",
                        );
                    } else if is_disallowed(c) {
                        self.malformed(at, "this character is not allowed in KDL");
                    }
                    self.pos += c.len_utf8();
                    self.word = true;
                    self.slashdashes = 0;
                }
            }
        }
        Ok(())
    }

    /// A quoted string, single- or multi-line, starting at `at`.
    fn string(&mut self, at: usize) {
        if self.word {
            self.malformed(at, "a string cannot start in the middle of a word");
        }
        self.word = true;
        self.slashdashes = 0;
        let multi = self.at(at).starts_with("\"\"\"");
        let mut i = at + if multi { 3 } else { 1 };
        if multi && !self.at(i).starts_with(is_newline) {
            self.malformed(
                at,
                "a multi-line string starts with `\"\"\"` and a new line",
            );
        }
        loop {
            let Some(c) = self.at(i).chars().next() else {
                self.malformed(at, "this string does not end");
                self.pos = self.text.len();
                return;
            };
            match c {
                '\\' => {
                    i += 1;
                    match self.at(i).chars().next() {
                        Some(e) if is_space(e) || is_newline(e) => {
                            // A whitespace escape: all of it.
                            i += self
                                .at(i)
                                .chars()
                                .take_while(|c| is_space(*c) || is_newline(*c))
                                .map(char::len_utf8)
                                .sum::<usize>();
                        }
                        Some('u') => {
                            let len = unicode_escape(self.at(i + 1));
                            if len == 0 {
                                self.malformed(
                                    i - 1,
                                    "a `\\u` escape is `\\u{` and 1 to 6 hex digits `}`",
                                );
                            }
                            i += 1 + len;
                        }
                        Some(e) => {
                            if !matches!(e, '"' | '\\' | 'b' | 'f' | 'n' | 'r' | 't' | 's') {
                                self.malformed(i - 1, "an unknown escape in a string");
                            }
                            i += e.len_utf8();
                        }
                        None => {}
                    }
                }
                '"' if multi => {
                    if self.at(i).starts_with("\"\"\"") {
                        self.check_lines(at, at + 3, i, true);
                        self.pos = i + 3;
                        return;
                    }
                    i += 1;
                }
                '"' => {
                    self.pos = i + 1;
                    return;
                }
                c if !multi && is_newline(c) => {
                    self.malformed(
                        at,
                        "a string ends on its line; `\"\"\"` starts one of several lines",
                    );
                    self.pos = i;
                    return;
                }
                c => {
                    if is_disallowed(c) {
                        self.malformed(i, "this character is not allowed in KDL");
                    }
                    i += c.len_utf8();
                }
            }
        }
    }

    /// A raw string (`#"..."#`, `##"""..."""##`) starting at `at`.
    fn raw_string(&mut self, at: usize, hashes: usize) {
        if self.word {
            self.malformed(at, "a string cannot start in the middle of a word");
        }
        self.word = true;
        self.slashdashes = 0;
        let quote = at + hashes;
        let multi = self.at(quote).starts_with("\"\"\"");
        let body = quote + if multi { 3 } else { 1 };
        let close = format!(
            "{}{}",
            if multi { "\"\"\"" } else { "\"" },
            "#".repeat(hashes)
        );
        if multi && !self.at(body).starts_with(is_newline) {
            self.malformed(
                at,
                "a multi-line string starts with `\"\"\"` and a new line",
            );
        }
        let found = self.at(body).find(close.as_str()).map(|i| body + i);
        let newline = if multi {
            None
        } else {
            self.at(body)
                .char_indices()
                .find(|(_, c)| is_newline(*c))
                .map(|(i, _)| body + i)
        };
        match (found, newline) {
            (Some(end), nl) if nl.is_none_or(|nl| end < nl) => {
                if multi {
                    self.check_lines(at, body, end, false);
                }
                self.pos = end + close.len();
            }
            (_, Some(nl)) => {
                self.malformed(
                    at,
                    "a string ends on its line; `\"\"\"` starts one of several lines",
                );
                self.pos = nl;
            }
            _ => {
                self.malformed(at, "this string does not end");
                self.pos = self.text.len();
            }
        }
    }

    /// A `/* */` comment, nested ones inside it, starting at `at`.
    fn comment(&mut self, at: usize) {
        match comment_end(self.text, at) {
            Some(end) => {
                self.blank.push((at + 2, end - 2));
                self.pos = end;
            }
            None => {
                self.malformed(at, "this comment does not end");
                self.blank.push((at + 2, self.text.len()));
                self.pos = self.text.len();
            }
        }
        self.word = false;
    }

    /// A `\` outside strings continues a node on the next line: only
    /// spacing and comments may follow it on its line.
    fn escline(&mut self, at: usize) {
        let mut i = at + 1;
        loop {
            let rest = self.at(i);
            let spaces: usize = rest
                .chars()
                .take_while(|c| is_space(*c))
                .map(char::len_utf8)
                .sum();
            i += spaces;
            let rest = self.at(i);
            if rest.starts_with("/*") {
                match comment_end(self.text, i) {
                    Some(end) => i = end,
                    None => return,
                }
            } else {
                if !(rest.is_empty() || rest.starts_with("//") || rest.starts_with(is_newline)) {
                    self.malformed(at, "a `\\` outside a string must end its line");
                }
                return;
            }
        }
    }

    /// The lines of a multi-line string whose body runs from `body` (its
    /// opening quotes) to `close` (its closing ones): the last holds only
    /// spacing, and every other starts with that spacing or holds only
    /// spacing. The parser's error recovery reads strings that break this
    /// differently.
    fn check_lines(&mut self, at: usize, body: usize, close: usize, escapes: bool) {
        let text = self.text.get(body..close).unwrap_or("");
        let mut lines = Vec::new();
        let mut start = 0;
        let mut chars = text.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if escapes && c == '\\' {
                // An escape: whitespace after it (newlines too) stays on this line.
                while chars
                    .next_if(|(_, c)| is_space(*c) || is_newline(*c))
                    .is_some()
                {}
                if !matches!(text[i + 1..].chars().next(), Some(c) if is_space(c) || is_newline(c))
                {
                    chars.next();
                }
            } else if c == '\r' && chars.peek().is_some_and(|(_, c)| *c == '\n') {
                continue;
            } else if is_newline(c) {
                lines.push(&text[start..i]);
                start = i + c.len_utf8();
            }
        }
        let last = &text[start..];
        let blank = |l: &str| l.chars().all(is_space);
        // The first piece is what follows the opening quotes on their line.
        let ok = blank(last)
            && lines.first().is_some_and(|l| l.is_empty())
            && lines[1..].iter().all(|l| blank(l) || l.starts_with(last));
        if !ok {
            self.malformed(
                at,
                "a multi-line string ends with `\"\"\"` on a line of its own, and each of its lines starts with the spacing before that",
            );
        }
    }
}

/// The end (just past `*/`) of the comment starting at `at`, nested ones
/// included, if it ends.
fn comment_end(text: &str, at: usize) -> Option<usize> {
    let mut i = at + 2;
    let mut open = 1;
    while open > 0 {
        let rest = text.get(i..)?;
        if rest.starts_with("*/") {
            open -= 1;
            i += 2;
        } else if rest.starts_with("/*") {
            open += 1;
            i += 2;
        } else {
            i += rest.chars().next()?.len_utf8();
        }
    }
    Some(i)
}

/// The length of a valid `{1F600}` after `\u`, or 0.
fn unicode_escape(rest: &str) -> usize {
    let Some(inner) = rest.strip_prefix('{') else {
        return 0;
    };
    let digits = inner.bytes().take_while(u8::is_ascii_hexdigit).count();
    if !(1..=6).contains(&digits) || !inner[digits..].starts_with('}') {
        return 0;
    }
    match u32::from_str_radix(&inner[..digits], 16)
        .ok()
        .and_then(char::from_u32)
    {
        Some(_) => digits + 2,
        None => 0,
    }
}

fn parse_prepared(text: &str) -> Result<Parsed, SyntaxError> {
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

    fn nested(levels: usize) -> String {
        format!("{}{}", "a {\n".repeat(levels), "}\n".repeat(levels))
    }

    #[test]
    fn nesting_is_limited_before_the_parser_recurses() {
        let p = parse(&nested(MAX_DEPTH)).unwrap();
        assert!(p.value["a"]["a"]["a"].is_object());
        for text in [
            nested(10_000),
            format!("{}x", "/- ".repeat(10_000)),
            format!("n {}x", "/- ".repeat(10_000)),
        ] {
            let err = parse(&text).unwrap_err();
            assert!(err.message.contains("recursion limit"), "{err:?}");
        }
        let err = parse(&nested(MAX_DEPTH + 1)).unwrap_err();
        assert_eq!(err.offset, "a {\n".len() * MAX_DEPTH + 2);
    }

    #[test]
    fn braces_in_strings_and_comments_do_not_nest() {
        let braces = "{".repeat(10_000);
        for text in [
            format!("a \"{braces}\"\n"),
            format!("a \"\\\"{braces}\"\n"),
            format!("a #\"{braces}\"#\n"),
            format!("a ##\"\"#{braces}\"##\n"),
            format!("a \"\"\"\n  {braces}\n  \"\"\"\n"),
            format!("a #\"\"\"\n  \"\"\" {braces}\n  \"\"\"#\n"),
            format!("// {braces}\na 1\n"),
            format!("/* /* {braces} */ */ a 1\n"),
            format!("a 1 /* {braces} */\n"),
        ] {
            let p = parse(&text).unwrap_or_else(|e| panic!("{:?}: {e:?}", &text[..20]));
            assert!(p.value.get("a").is_some(), "{:?}", &text[..20]);
        }
    }

    #[test]
    fn comments_full_of_stars_and_slashes_parse() {
        // The parser recurses once per `*` or `/` of a comment: alto blanks
        // comments out before parsing.
        let text = format!(
            "/* {} */\na \"/* not a comment */\" /* c\n */ 2\nb #\"//x\"# /*{}*/\n",
            "* / ".repeat(10_000),
            "/**/".repeat(5_000)
        );
        let p = parse(&text).unwrap();
        assert_eq!(
            p.value,
            json!({"a": ["/* not a comment */", 2], "b": "//x"})
        );
        let (off, len) = p.spans[&vec!["b".to_string()]];
        assert_eq!(&text[off..off + len], "#\"//x\"#");
    }

    #[test]
    fn broken_strings_cannot_hide_nesting() {
        let deep = "{ \"}\" ".repeat(10_000);
        for text in [
            format!("x (abc\" {deep}"),
            format!("x \"abc\n {deep}"),
            format!("x abc\" {deep}"),
            format!("x #abc\" {deep}"),
            format!("x \"abc {deep}"),
            format!("x /* {}", "* ".repeat(10_000)),
            format!("x a==\" {deep}"),
            format!("x a=\"\"\" {deep}"),
            format!("x \\\" {deep}"),
            format!("x (\"t\"\" {deep}"),
            format!("x 1\" {deep}"),
            format!("x (t)(u)\" {deep}"),
            format!("x #\"x\"#\" {deep}"),
            format!("x r#\" {deep}"),
            format!("x \"\\q {deep}"),
            format!("x \"\\u{{zz}} {deep}"),
            format!("x \"\u{1} {deep}"),
            format!("x =\" {deep}"),
            format!("x a= \" {deep}"),
            format!("x #true\" {deep}"),
            format!("x #\"\"\"x\n {deep}"),
            format!("x \"\"\"x\n {deep}"),
            format!("x \"\"\"\n x\n{deep}"),
            format!("x #\"a\n {deep}"),
            format!("x ##\"a\"# {deep}"),
            format!("(t\" {deep}"),
            format!("\"a\"\" {deep}"),
            format!("x {{ }}\" {deep}"),
            format!("x ;\" {deep}"),
        ] {
            eprintln!("{:?}", &text[..12]);
            assert!(parse(&text).is_err(), "{:?}", &text[..12]);
        }
    }

    use proptest::prelude::*;

    /// Pieces of KDL that open or close strings, raw strings, comments,
    /// escapes and blocks: glued at random, they make the malformed text the
    /// parser's error recovery reads differently from the pre-scan.
    const PIECES: [&str; 36] = [
        "\"", "\"\"\"", "#", "##", "#\"", "\"#", "\\", "\\u{", "/", "/-", "/*", "*/", "//", "(",
        ")", "=", ";", "{", "}", "a", "1", " ", "\n", "\t", "é", "\u{2028}", "\r", "\u{1}",
        "\u{feff}", "#true", "\\\n", "}", "\"x\"", "*", "\"\"\"\n", "  ",
    ];

    /// What follows the broken start a thousand times: blocks whose ends are
    /// in strings or comments to the pre-scan, or the other way round.
    const DEEP: [&str; 8] = [
        "{ \"}\" ",
        "\"{\" } ",
        "{ #\"}\"# ",
        "#\"{\"# } ",
        "{ /* } */ ",
        "/* { */ } ",
        "// }\n{ ",
        "/- ",
    ];

    proptest! {
        // PROPTEST_CASES=5000 for a longer hunt; the default (256) runs in `cargo test`.
        /// Blanking comments changes nothing the parser makes of a text.
        #[test]
        fn prescan_changes_nothing_the_parser_reads(
            pieces in prop::collection::vec(prop::sample::select(PIECES.to_vec()), 0..24),
        ) {
            let text = format!("a {}", pieces.concat());
            if let Ok(prepared) = prescan(&text, usize::MAX) {
                let (raw, scanned) = std::thread::scope(|s| {
                    std::thread::Builder::new()
                        .stack_size(PARSER_STACK)
                        .spawn_scoped(s, || (parse_prepared(&text), parse_prepared(&prepared)))
                        .unwrap()
                        .join()
                        .unwrap()
                });
                match (raw, scanned) {
                    (Ok(a), Ok(b)) => {
                        prop_assert_eq!(a.value, b.value);
                        prop_assert_eq!(a.spans, b.spans);
                    }
                    (Err(_), Err(_)) => {}
                    (a, b) => prop_assert!(false, "{text:?}: {a:?} but {b:?}"),
                }
            }
        }

        /// Deep nesting behind malformed KDL never reaches the parser on a
        /// stack it would overflow (8 MiB here: a thousand levels would take
        /// 30).
        #[test]
        fn malformed_kdl_cannot_hide_deep_nesting(
            start in prop::collection::vec(prop::sample::select(PIECES.to_vec()), 0..10),
            deep in prop::sample::select(DEEP.to_vec()),
        ) {
            let text = format!("x {}{}", start.concat(), deep.repeat(1_000));
            let _ = parse_on(&text, 8 << 20);
        }
    }

    #[test]
    fn args_and_children_conflict() {
        assert!(parse("a 1 { b 2 }\n").is_err());
        assert!(parse("a 1\na 2\n").is_err());
    }
}
