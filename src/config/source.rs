//! Source files of a configuration and the places values came from, so that any
//! error can point into the file (or the environment variable) that caused it.

use std::path::PathBuf;
use std::sync::Arc;

use miette::{NamedSource, SourceSpan};

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
    /// `ALTO_*` variables of the process environment or `.env`.
    Environment,
}

impl Layer {
    /// Values from these layers are redacted in dumps and logs.
    pub fn is_secret(self) -> bool {
        matches!(self, Layer::Secrets | Layer::Environment)
    }
}

/// One configuration text alto read: a file, or the synthetic listing of the
/// `ALTO_*` variables it applied.
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
    pub fn span(self) -> SourceSpan {
        (self.offset, self.len).into()
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
    pub fn named(&self, origin: Origin) -> NamedSource<String> {
        match self.get(origin.source) {
            Some(f) => NamedSource::new(&f.name, f.text.to_string()),
            None => NamedSource::new("<unknown>", String::new()),
        }
    }
}

/// Converts character offsets (as YAML parsers report them) into byte offsets.
pub struct CharIndex<'a> {
    text: &'a str,
    ascii: bool,
}

impl<'a> CharIndex<'a> {
    pub fn new(text: &'a str) -> Self {
        CharIndex {
            text,
            ascii: text.is_ascii(),
        }
    }

    pub fn byte(&self, char_index: usize) -> usize {
        if self.ascii {
            return char_index.min(self.text.len());
        }
        self.text
            .char_indices()
            .nth(char_index)
            .map(|(b, _)| b)
            .unwrap_or(self.text.len())
    }
}

/// A byte offset from a 1-based line and column.
pub fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let mut offset = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            let col = column.saturating_sub(1);
            return offset + l.char_indices().nth(col).map(|(b, _)| b).unwrap_or(l.len());
        }
        offset += l.len();
    }
    text.len()
}
