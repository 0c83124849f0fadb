//! Source files of a configuration and the places values came from, so that any
//! error can point into the file (or the environment variable) that caused it.

use std::cell::Cell;
use std::path::PathBuf;
use std::sync::Arc;

use miette::{MietteError, NamedSource, SourceCode, SourceSpan, SpanContents};

/// Which layer of the configuration a source belongs to. Decides precedence and
/// whether values read from it are secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    /// `alto.{yaml,yml,toml,json,kdl}`
    Main,
    /// `alto.local.*`
    Local,
    /// `alto.secrets.*`
    Secrets,
    /// Secrets read from HashiCorp Vault (the Dynaconf-style layer).
    Vault,
    /// `ALTO_*` variables of the process environment or `.env`.
    Environment,
}

impl Layer {
    /// Values from these layers are redacted in dumps and logs.
    pub fn is_secret(self) -> bool {
        matches!(self, Layer::Secrets | Layer::Vault | Layer::Environment)
    }
}

/// One configuration text alto read: a file, or the synthetic listing of the
/// `ALTO_*` variables or Vault keys it applied.
#[derive(Debug)]
pub struct SourceFile {
    /// What error messages call it (a path relative to the root, or `<environment>`).
    pub name: String,
    pub path: Option<PathBuf>,
    pub text: Arc<str>,
    pub layer: Layer,
}

/// Where one value came from: a source and a byte span inside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin {
    pub source: usize,
    pub offset: usize,
    pub len: usize,
}

impl Origin {
    /// The span to label: a value longer than [`LONG_LINE`] is labelled by
    /// its beginning.
    pub fn span(self) -> SourceSpan {
        (self.offset, self.len.min(LONG_LINE)).into()
    }
}

/// Every source of one loaded project, indexed by `Origin::source`.
#[derive(Debug, Default)]
pub struct Sources {
    files: Vec<SourceFile>,
}

impl Sources {
    pub fn add(&mut self, file: SourceFile) -> usize {
        self.files.push(file);
        self.files.len() - 1
    }

    pub fn get(&self, id: usize) -> Option<&SourceFile> {
        self.files.get(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &SourceFile> {
        self.files.iter()
    }

    pub fn layer(&self, origin: Origin) -> Option<Layer> {
        self.get(origin.source).map(|f| f.layer)
    }

    /// The source text for a diagnostic.
    pub fn named(&self, origin: Origin) -> Snippet {
        match self.get(origin.source) {
            Some(f) => snippet(&f.name, f.text.clone()),
            None => snippet("<unknown>", ""),
        }
    }
}

/// The source a diagnostic shows: a named text that long lines cannot break.
pub type Snippet = NamedSource<SourceText>;

/// A named source for a diagnostic.
pub fn snippet(name: &str, text: impl Into<Arc<str>>) -> Snippet {
    NamedSource::new(name, SourceText(text.into()))
}

/// Lines longer than this many bytes are shown as a window around the place;
/// longer labels label their beginning (see [`Origin::span`]).
pub const LONG_LINE: usize = 1_000;
/// How many bytes of a long line are shown on each side of the place.
const WINDOW: usize = 80;

/// The text of a source as diagnostics read it. miette's renderer cannot
/// underline a place more than 65 535 columns into a line (it panics), and a
/// minified JSON file or a YAML scalar of a million characters is no help on
/// a terminal anyway: when the lines around a place are longer than
/// [`LONG_LINE`] bytes, the diagnostic shows only [`WINDOW`] bytes on each
/// side of it (line and column numbers stay those of the file).
#[derive(Debug, Clone)]
pub struct SourceText(Arc<str>);

impl SourceText {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl SourceCode for SourceText {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let text: &str = &self.0;
        let contents = text.read_span(span, context_lines_before, context_lines_after)?;
        let long = contents
            .data()
            .split(|b| *b == b'\n' || *b == b'\r')
            .any(|line| line.len() > LONG_LINE);
        if !long {
            return Ok(contents);
        }
        // `read_span` succeeded, so the span lies within the text.
        let mut start = span.offset().min(text.len());
        while !text.is_char_boundary(start) {
            start -= 1;
        }
        let mut end = span.offset().saturating_add(span.len()).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        let line_start = text[..start]
            .rfind(['\n', '\r'])
            .map(|i| i + 1)
            .unwrap_or(0);
        let line_end = text[end..]
            .find(['\n', '\r'])
            .map(|i| end + i)
            .unwrap_or(text.len());
        let mut from = start.saturating_sub(WINDOW).max(line_start);
        while !text.is_char_boundary(from) {
            from -= 1;
        }
        if end - start > LONG_LINE {
            // Two labels far apart on one line, which miette asks to show
            // together: refused, it shows each on its own.
            return Err(MietteError::OutOfBounds);
        }
        let mut to = end.saturating_add(WINDOW).min(line_end);
        while !text.is_char_boundary(to) {
            to += 1;
        }
        // Without context lines, miette reads exactly the window and counts
        // its line and column in the whole text.
        text.read_span(&(from, to - from).into(), 0, 0)
    }
}

/// Converts character offsets (as YAML parsers report them) into byte offsets.
/// Parsers ask in increasing order, so it walks on from the last answer
/// instead of from the start: converting every offset of a file is linear.
pub struct CharIndex<'a> {
    text: &'a str,
    ascii: bool,
    /// The last answer: (character index, byte offset).
    cursor: Cell<(usize, usize)>,
}

impl<'a> CharIndex<'a> {
    pub fn new(text: &'a str) -> Self {
        CharIndex {
            text,
            ascii: text.is_ascii(),
            cursor: Cell::new((0, 0)),
        }
    }

    pub fn byte(&self, char_index: usize) -> usize {
        if self.ascii {
            return char_index.min(self.text.len());
        }
        let (mut chars, mut bytes) = self.cursor.get();
        if char_index < chars {
            (chars, bytes) = (0, 0);
        }
        let found = self.text[bytes..]
            .char_indices()
            .nth(char_index - chars)
            .map(|(b, _)| bytes + b);
        match found {
            Some(b) => {
                self.cursor.set((char_index, b));
                b
            }
            None => self.text.len(),
        }
    }
}

/// A byte offset from a 1-based line and a 1-based column counted in bytes
/// (as serde_json reports them), on a character boundary.
pub fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let mut offset = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            let mut at = offset + column.saturating_sub(1).min(l.len());
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            return at;
        }
        offset += l.len();
    }
    text.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn char_offsets_become_byte_offsets_in_any_order() {
        let text = "aé日x\nü";
        let idx = CharIndex::new(text);
        for (c, b) in [
            (0, 0),
            (2, 3),
            (3, 6),
            (1, 1),
            (5, 8),
            (6, 10),
            (9, 10),
            (4, 7),
        ] {
            assert_eq!(idx.byte(c), b, "char {c}");
        }
    }

    #[derive(Debug, thiserror::Error, miette::Diagnostic)]
    #[error("bad")]
    struct Two {
        #[source_code]
        src: Snippet,
        #[label("first")]
        first: SourceSpan,
        #[label("second")]
        second: Option<SourceSpan>,
    }

    fn render(text: &str, first: (usize, usize), second: Option<(usize, usize)>) -> String {
        let d = Two {
            src: snippet("f.yaml", text),
            first: first.into(),
            second: second.map(Into::into),
        };
        let mut out = String::new();
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
            .render_report(&mut out, &d)
            .unwrap();
        out
    }

    #[test]
    fn long_lines_show_a_window_whatever_the_labels() {
        let long = format!("a: {}\nb: 1\n", "é".repeat(50_000));
        let end = long.find('\n').unwrap();
        let cases = [
            // One label far into the line, a long label, one past a long line.
            ((end - 2, 2), None),
            ((10, 90_000), None),
            ((end + 1, 1), None),
            // Two labels on the line, far apart or close; one on the next line.
            ((5, 2), Some((end - 2, 2))),
            ((90_001, 2), Some((90_101, 2))),
            ((90_001, 2), Some((end + 4, 1))),
        ];
        for (first, second) in cases {
            let out = render(&long, first, second);
            eprintln!("{out}");
            assert!(
                out.len() < 6_000,
                "{first:?} {second:?}: {} bytes",
                out.len()
            );
            assert!(out.contains("first"), "{out}");
            if second.is_some() {
                assert!(out.contains("second"), "{out}");
            }
        }
    }

    #[test]
    fn byte_columns_land_on_character_boundaries() {
        let text = "{\"é\": 1,\n \"日\": }";
        assert_eq!(offset_of(text, 1, 1), 0);
        assert_eq!(&text[offset_of(text, 2, 9)..], "}");
        // A column inside a character moves back to its start.
        assert_eq!(offset_of(text, 2, 4), text.find('日').unwrap());
        assert_eq!(offset_of(text, 9, 1), text.len());
    }
}
