//! The layout a tap keeps writing a stream's RECORD lines in: the bytes
//! between the values (`{"type": "RECORD", "stream": "users", "record":
//! {"id": `, then `, "email": `, ..., then `}}`), learned from a line the
//! full walk read, and what each value is to the hash rules.
//!
//! A line that has exactly those bytes between its values is the same
//! JSON but for the values, so each value is read (and checked) where it
//! stands, a covered one hashed as the walk would hash it, without looking
//! at the keys, the spacing or the nesting again. A line that differs
//! anywhere (another key, spacing, order, a value that would need the walk)
//! goes to the full walk, which may learn its layout instead: the output is
//! the walk's, byte for byte, either way.

use super::{Node, Walk, hash_all, same_bytes, stream_name};
use crate::singer::json::Scanner;

/// What a value of the layout is to the hash rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Field {
    /// Nothing at or below it is hashed: skipped (and checked).
    Plain,
    /// A rule covers it: every leaf hashed.
    Covered,
    /// A rule may cover something below it: a scalar is skipped, an
    /// object or a list walked from the root's child at this index. With
    /// no index (the `record` itself when it was no object, or a field
    /// past what the root remembers), an object or a list ends the read.
    Below(Option<usize>),
}

/// A value as the walk met it: where it stands in the line, what it is,
/// and the nesting it starts at.
#[derive(Clone, Copy, Debug)]
pub(super) struct Span {
    pub start: usize,
    pub end: usize,
    pub field: Field,
    pub depth: usize,
}

/// Longer lines, or more values, are not learned (memory stays small
/// whatever a tap writes).
const MAX_BYTES: usize = 16 * 1024;
const MAX_VALUES: usize = 512;
/// Lines a stream whose layouts keep changing rests from them, at most
/// (the rest doubles each time).
const MAX_PAUSE: u32 = 1024;

/// A stream's learned layout.
#[derive(Default)]
pub(super) struct Shape {
    /// The gaps between values, one after another, the tail last.
    bytes: Vec<u8>,
    /// Per value: where its gap ends in `bytes`, what it is, its depth.
    values: Vec<(usize, Field, usize)>,
    /// Where the stream's name stands in a line that fits.
    stream: (usize, usize),
    learned: bool,
    /// Whether a line has fitted since it was learned.
    fitted: bool,
    /// Lines in a row that did not.
    misses: u32,
    /// Lines still to go to the walk without trying or learning.
    pause: u32,
    /// Layouts in a row that missed the line after they were learned.
    unfit: u32,
}

impl Shape {
    /// Whether to try this layout (and to learn from the walk): not while
    /// paused, which one more line of the stream shortens.
    pub fn ready(&mut self) -> bool {
        if self.pause > 0 {
            self.pause -= 1;
            return false;
        }
        true
    }

    pub fn learned(&self) -> bool {
        self.learned
    }

    /// Learns the layout of `line` from the values the walk met, in order;
    /// `stream` is where the stream's name stands. A value the layout could
    /// not stand for (a `Below` one without an index that is an object or a
    /// list) leaves it unlearned, as do spans that do not fit the line.
    pub fn learn(&mut self, line: &[u8], spans: &[Span], stream: (usize, usize)) {
        self.learned = false;
        self.bytes.clear();
        self.values.clear();
        if line.len() > MAX_BYTES || spans.len() > MAX_VALUES {
            return;
        }
        let mut from = 0;
        for s in spans {
            let Some(gap) = line.get(from..s.start) else {
                return;
            };
            if s.field == Field::Below(None) && matches!(line.get(s.start), Some(b'{' | b'[')) {
                return;
            }
            self.bytes.extend_from_slice(gap);
            self.values.push((self.bytes.len(), s.field, s.depth));
            from = s.end;
        }
        let Some(tail) = line.get(from..) else {
            return;
        };
        self.bytes.extend_from_slice(tail);
        self.stream = stream;
        self.learned = true;
        self.fitted = false;
        self.misses = 0;
    }

    /// Reads `line` by this layout, hashing into the walk's writer as the
    /// walk would (`root`: the stream's paths): the stream's name when it
    /// fits, `None` (with what was written left for the caller to drop)
    /// when it does not.
    pub fn read<'l>(
        &mut self,
        line: &'l [u8],
        walk: &mut Walk<'_, 'l, '_>,
        root: &mut Node,
    ) -> Option<&'l str> {
        if !self.learned {
            return None;
        }
        let mut sc = Scanner::new(line);
        let mut gap = 0;
        for &(end, field, depth) in &self.values {
            sc.pos = starts_with_at(line, sc.pos, &self.bytes[gap..end])?;
            gap = end;
            match field {
                // A scalar read here, not in a call.
                Field::Plain => {
                    if sc.scalar().ok()?.is_none() {
                        sc.skip(depth).ok()?;
                    }
                }
                Field::Covered => hash_all(&mut sc, &mut walk.w, depth).ok()?,
                Field::Below(index) => {
                    if sc.scalar().ok()?.is_none() {
                        let child = &mut root.children.get_mut(index?)?.1;
                        walk.value(&mut sc, child, depth).ok()?;
                    }
                }
            }
        }
        if !same_bytes(line.get(sc.pos..)?, &self.bytes[gap..]) {
            return None;
        }
        let name = stream_name(line.get(self.stream.0..self.stream.1)?)?;
        self.fitted = true;
        self.misses = 0;
        self.unfit = 0;
        Some(name)
    }

    /// A line of the stream did not fit: whether to learn its layout
    /// instead. A layout that has fitted is kept over one odd line (a
    /// second in a row replaces it). When layouts keep missing the line
    /// after they were learned (a tap whose lines keep changing layout),
    /// the stream rests from trying and learning a while, longer each
    /// time (up to [`MAX_PAUSE`] lines), then learns afresh.
    pub fn missed(&mut self) -> bool {
        self.misses += 1;
        if self.fitted {
            return self.misses >= 2;
        }
        self.unfit += 1;
        if self.unfit < 2 {
            return true;
        }
        self.pause = MAX_PAUSE.min(1 << (self.unfit - 2).min(31));
        self.learned = false;
        false
    }
}

/// Where `lit` ends if it stands in `line` at `at`. Gaps are short: words
/// compared in registers, the last one overlapping, no call to memcmp.
#[inline]
fn starts_with_at(line: &[u8], at: usize, lit: &[u8]) -> Option<usize> {
    let end = at + lit.len();
    let here = line.get(at..end)?;
    let word = |b: &[u8], i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or_default());
    let same = match lit.len() {
        // The usual gap (`, "email": `): two words, overlapping.
        8..=16 => {
            let last = lit.len() - 8;
            word(here, 0) == word(lit, 0) && word(here, last) == word(lit, last)
        }
        0..8 => same_bytes(here, lit),
        n => {
            let last = n - 8;
            let mut i = 0;
            while i < last {
                if word(here, i) != word(lit, i) {
                    return None;
                }
                i += 8;
            }
            word(here, last) == word(lit, last)
        }
    };
    same.then_some(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A layout that fitted outlives one odd line; layouts that keep
    /// missing make the stream rest, longer each time.
    #[test]
    fn layouts_that_keep_missing_rest() {
        let line = br#"{"a": 1}"#;
        let span = Span {
            start: 6,
            end: 7,
            field: Field::Plain,
            depth: 3,
        };
        let mut shape = Shape::default();
        shape.learn(line, &[span], (0, 0));
        assert!(shape.learned());
        shape.fitted = true;
        assert!(!shape.missed(), "kept over one odd line");
        assert!(shape.missed(), "replaced after a second");
        let mut rests = Vec::new();
        for _ in 0..14 {
            shape.learn(line, &[span], (0, 0));
            if shape.missed() {
                continue;
            }
            assert!(!shape.learned(), "a rest ends in learning afresh");
            let mut n = 0;
            while !shape.ready() {
                n += 1;
            }
            rests.push(shape.pause + n);
        }
        assert_eq!(rests[..4], [1, 2, 4, 8]);
        assert_eq!(*rests.last().unwrap(), MAX_PAUSE);
    }

    #[test]
    fn literals_are_found_where_they_stand() {
        let line = b"{\"a\": 1, \"bcdefghijklmnop\": 2}";
        assert_eq!(starts_with_at(line, 0, b"{\"a\": "), Some(6));
        assert_eq!(
            starts_with_at(line, 7, b", \"bcdefghijklmnop\": "),
            Some(28)
        );
        assert_eq!(starts_with_at(line, 7, b", \"bcdefghijklmnoq\": "), None);
        assert_eq!(starts_with_at(line, 7, b", \"bcdefgh"), Some(17));
        assert_eq!(starts_with_at(line, 7, b", \"bcdefgX"), None);
        assert_eq!(starts_with_at(line, 29, b"}"), Some(30));
        assert_eq!(starts_with_at(line, 29, b"}}"), None);
        assert_eq!(starts_with_at(line, 30, b""), Some(30));
    }
}
