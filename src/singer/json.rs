//! A byte-level JSON scanner for Singer lines: it walks a line in place,
//! skipping (and checking) what alto does not need, so that a hash rule
//! rewrites only the bytes of the values it hashes and everything else is
//! copied as it came.
//!
//! It accepts what Python's `json.loads` accepts (what Singer targets read):
//! the JSON grammar, plus `NaN`, `Infinity` and `-Infinity`; whitespace is
//! space, tab, CR and LF; control characters inside strings are refused;
//! integers of more than 4300 digits are refused (Python's limit on
//! converting them). Strings are decoded only when alto needs their text.

use std::borrow::Cow;

/// Deeper nesting is refused (Python's recursion limit is about this).
pub const MAX_DEPTH: usize = 1000;

/// Python refuses to convert integers with more digits than this.
const MAX_INT_DIGITS: usize = 4300;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    #[error("not JSON (at byte {0})")]
    Invalid(usize),
    #[error("JSON nested more than {MAX_DEPTH} deep")]
    TooDeep,
    #[error("a string that is not UTF-8 or holds a lone surrogate (at byte {0})")]
    BadString(usize),
}

/// The bytes that end a run of plain string content.
static STOP: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = true;
        c += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// Where the first quote, backslash or control character (a byte [`STOP`]
/// holds) is among these eight bytes, if any: the classic "has zero byte"
/// and "has byte less than" tricks, whose lowest flagged byte is exact
/// (a false flag can only follow a true one).
#[inline]
fn first_stop(w: u64) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    let flags = zero(w ^ (ONES * b'"' as u64)) | zero(w ^ (ONES * b'\\' as u64)) | below_space;
    (flags != 0).then(|| flags.trailing_zeros() as usize / 8)
}

/// [`first_stop`] for sixteen bytes, in one SSE2 register (which every
/// x86_64 has).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn first_stop16(w: &[u8; 16]) -> Option<usize> {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is part of x86_64; one unaligned load of the 16 bytes
    // `w` holds.
    let mask = unsafe {
        let v = _mm_loadu_si128(w.as_ptr().cast());
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        // Below a space: unsigned max with 0x1f leaves 0x1f.
        let low = _mm_set1_epi8(0x1f);
        let control = _mm_cmpeq_epi8(_mm_max_epu8(v, low), low);
        _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control)) as u32
    };
    (mask != 0).then(|| mask.trailing_zeros() as usize)
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn first_stop16(w: &[u8; 16]) -> Option<usize> {
    let word = |i: usize| u64::from_le_bytes(w[i..i + 8].try_into().unwrap_or_default());
    first_stop(word(0)).or_else(|| first_stop(word(8)).map(|at| at + 8))
}

/// A position in a line being scanned.
pub struct Scanner<'a> {
    pub bytes: &'a [u8],
    pub pos: usize,
}

/// A string as it stands in the line: `start..end` is its content between
/// the quotes; `escaped` tells whether it holds backslash escapes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawStr {
    pub start: usize,
    pub end: usize,
    pub escaped: bool,
}

/// What a scalar is, for Python's `str()` of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scalar {
    Str(RawStr),
    Number { start: usize, end: usize },
    True,
    False,
    Null,
}

impl<'a> Scanner<'a> {
    pub fn new(bytes: &'a [u8]) -> Scanner<'a> {
        Scanner { bytes, pos: 0 }
    }

    fn invalid(&self) -> ScanError {
        ScanError::Invalid(self.pos)
    }

    /// Skips whitespace; the next byte, if any.
    #[inline(always)]
    pub fn peek(&mut self) -> Option<u8> {
        // Whitespace is at most a space: anything above it is the answer,
        // the usual case, decided in one compare.
        match self.bytes.get(self.pos) {
            Some(&c) if c > b' ' => Some(c),
            // One space, as in `"a": 1, "b": 2`.
            Some(b' ') => match self.bytes.get(self.pos + 1) {
                Some(&c) if c > b' ' => {
                    self.pos += 1;
                    Some(c)
                }
                _ => self.peek_past_whitespace(),
            },
            _ => self.peek_past_whitespace(),
        }
    }

    #[inline(never)]
    fn peek_past_whitespace(&mut self) -> Option<u8> {
        while let Some(&c) = self.bytes.get(self.pos) {
            if matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
                self.pos += 1;
            } else {
                return Some(c);
            }
        }
        None
    }

    /// Skips whitespace and `c`, or fails.
    #[inline]
    pub fn expect(&mut self, c: u8) -> Result<(), ScanError> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.invalid())
        }
    }

    /// Whether only whitespace is left.
    pub fn at_end(&mut self) -> bool {
        self.peek().is_none()
    }

    /// After a member of an object (or array): `true` if another follows
    /// (a `,` was eaten), `false` at the closing `close` (eaten).
    #[inline]
    pub fn more(&mut self, close: u8) -> Result<bool, ScanError> {
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                Ok(true)
            }
            Some(c) if c == close => {
                self.pos += 1;
                Ok(false)
            }
            _ => Err(self.invalid()),
        }
    }

    /// At `{` or `[` (eaten): `true` if the container has members.
    #[inline]
    pub fn open(&mut self, close: u8) -> Result<bool, ScanError> {
        self.pos += 1;
        if self.peek() == Some(close) {
            self.pos += 1;
            return Ok(false);
        }
        Ok(true)
    }

    /// A string at the cursor (after whitespace).
    #[inline(always)]
    pub fn string(&mut self) -> Result<RawStr, ScanError> {
        if self.peek() != Some(b'"') {
            return Err(self.invalid());
        }
        self.string_here()
    }

    /// A string whose opening quote is at the cursor (a [`Self::peek`]
    /// saw it).
    #[inline(always)]
    pub fn string_here(&mut self) -> Result<RawStr, ScanError> {
        let start = self.pos + 1;
        let mut i = start;
        let mut escaped = false;
        let b = self.bytes;
        loop {
            // Up to the next quote, backslash or control character:
            // sixteen bytes at a time, then (near the end of the line)
            // eight, then one.
            loop {
                if let Some(w) = b.get(i..i + 16).and_then(|w| <&[u8; 16]>::try_from(w).ok()) {
                    match first_stop16(w) {
                        Some(at) => {
                            i += at;
                            break;
                        }
                        None => {
                            i += 16;
                            continue;
                        }
                    }
                }
                match b.get(i..i + 8) {
                    Some(w) => {
                        let word = u64::from_le_bytes(w.try_into().unwrap_or_default());
                        if let Some(at) = first_stop(word) {
                            i += at;
                            break;
                        }
                        i += 8;
                    }
                    None => {
                        while b.get(i).is_some_and(|&c| !STOP[c as usize]) {
                            i += 1;
                        }
                        break;
                    }
                }
            }
            match b.get(i) {
                Some(b'"') => {
                    self.pos = i + 1;
                    return Ok(RawStr {
                        start,
                        end: i,
                        escaped,
                    });
                }
                Some(b'\\') => {}
                // A control character, or the end of the line.
                _ => {
                    self.pos = i;
                    return Err(self.invalid());
                }
            }
            escaped = true;
            i += 1;
            match b.get(i) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 1,
                Some(b'u') => {
                    let hex = b.get(i + 1..i + 5).ok_or(ScanError::Invalid(i))?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return Err(ScanError::Invalid(i));
                    }
                    i += 5;
                }
                _ => return Err(ScanError::Invalid(i)),
            }
        }
    }

    /// A number at the cursor (after whitespace), Python's `NaN` and
    /// `Infinity` included.
    #[inline(always)]
    fn number(&mut self) -> Result<(usize, usize), ScanError> {
        let b = self.bytes;
        let start = self.pos;
        let mut i = start;
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        let digits = |i: &mut usize| {
            let from = *i;
            while b.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i - from
        };
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                digits(&mut i);
            }
            Some(b'I') if b[i..].starts_with(b"Infinity") => {
                self.pos = i + 8;
                return Ok((start, self.pos));
            }
            Some(b'N') if i == start && b[i..].starts_with(b"NaN") => {
                self.pos = i + 3;
                return Ok((start, self.pos));
            }
            _ => return Err(ScanError::Invalid(i)),
        }
        let int_end = i;
        let mut float = false;
        if b.get(i) == Some(&b'.') {
            i += 1;
            if digits(&mut i) == 0 {
                return Err(ScanError::Invalid(i));
            }
            float = true;
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            if digits(&mut i) == 0 {
                return Err(ScanError::Invalid(i));
            }
            float = true;
        }
        if !float && int_end - start > MAX_INT_DIGITS {
            return Err(ScanError::Invalid(start));
        }
        self.pos = i;
        Ok((start, i))
    }

    #[inline(always)]
    fn literal(&mut self, word: &[u8]) -> Result<(), ScanError> {
        if self.bytes[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.invalid())
        }
    }

    /// A scalar at the cursor; `None` (nothing eaten) at `{` or `[`.
    #[inline(always)]
    pub fn scalar(&mut self) -> Result<Option<Scalar>, ScanError> {
        Ok(Some(match self.peek() {
            Some(b'"') => Scalar::Str(self.string_here()?),
            Some(b'{' | b'[') => return Ok(None),
            Some(b't') => {
                self.literal(b"true")?;
                Scalar::True
            }
            Some(b'f') => {
                self.literal(b"false")?;
                Scalar::False
            }
            Some(b'n') => {
                self.literal(b"null")?;
                Scalar::Null
            }
            Some(_) => {
                let (start, end) = self.number()?;
                Scalar::Number { start, end }
            }
            None => return Err(self.invalid()),
        }))
    }

    /// Skips (and checks) one value; `depth` is the nesting it starts at.
    /// A loop, not recursion: what is open is a stack of bits (set for an
    /// object), so deep nesting costs no call stack.
    #[inline]
    pub fn skip(&mut self, depth: usize) -> Result<(), ScanError> {
        if depth > MAX_DEPTH {
            return Err(ScanError::TooDeep);
        }
        match self.scalar()? {
            Some(_) => Ok(()),
            None => self.skip_container(depth),
        }
    }

    /// [`Self::skip`] at `{` or `[`.
    #[inline(never)]
    fn skip_container(&mut self, depth: usize) -> Result<(), ScanError> {
        let mut objects = [0u64; MAX_DEPTH / 64 + 2];
        let mut open = 0usize;
        loop {
            // At a value, `open` containers deep in this one.
            if depth + open > MAX_DEPTH {
                return Err(ScanError::TooDeep);
            }
            if self.scalar()?.is_none() {
                let object = self.bytes[self.pos] == b'{';
                if self.open(if object { b'}' } else { b']' })? {
                    let (word, bit) = (open / 64, 1u64 << (open % 64));
                    if object {
                        objects[word] |= bit;
                        self.string()?;
                        self.expect(b':')?;
                    } else {
                        objects[word] &= !bit;
                    }
                    open += 1;
                    continue;
                }
            }
            // After a value: close what ends here, up to the next member.
            loop {
                if open == 0 {
                    return Ok(());
                }
                let top = open - 1;
                let object = objects[top / 64] & (1u64 << (top % 64)) != 0;
                if self.more(if object { b'}' } else { b']' })? {
                    if object {
                        self.string()?;
                        self.expect(b':')?;
                    }
                    break;
                }
                open = top;
            }
        }
    }

    /// The UTF-8 bytes of a string's text, for hashing: a string without
    /// escapes is its own bytes (checked inline when ASCII, the usual case);
    /// one that is not UTF-8 or holds a lone surrogate is an error.
    #[inline]
    pub fn text_bytes(&self, s: RawStr) -> Result<Cow<'a, [u8]>, ScanError> {
        let raw = &self.bytes[s.start..s.end];
        if s.escaped {
            return Ok(Cow::Owned(self.text(s, false)?.into_owned().into_bytes()));
        }
        if raw.is_ascii() || std::str::from_utf8(raw).is_ok() {
            Ok(Cow::Borrowed(raw))
        } else {
            Err(ScanError::BadString(s.start))
        }
    }

    /// The text of a string. `lossy`: a lone surrogate or a byte that is
    /// not UTF-8 becomes U+FFFD (for keys, matched against rules);
    /// otherwise either is an error (a value Python could not encode).
    pub fn text(&self, s: RawStr, lossy: bool) -> Result<Cow<'a, str>, ScanError> {
        let raw = &self.bytes[s.start..s.end];
        let bad = ScanError::BadString(s.start);
        if !s.escaped {
            return match std::str::from_utf8(raw) {
                Ok(t) => Ok(Cow::Borrowed(t)),
                Err(_) if lossy => Ok(String::from_utf8_lossy(raw)),
                Err(_) => Err(bad),
            };
        }
        let mut out = String::with_capacity(raw.len());
        let mut i = 0;
        while i < raw.len() {
            let Some(off) = memchr::memchr(b'\\', &raw[i..]) else {
                push_utf8(&mut out, &raw[i..], lossy).ok_or(bad)?;
                break;
            };
            push_utf8(&mut out, &raw[i..i + off], lossy).ok_or(bad)?;
            i += off + 1;
            let c = raw[i];
            i += 1;
            match c {
                b'b' => out.push('\u{8}'),
                b'f' => out.push('\u{c}'),
                b'n' => out.push('\n'),
                b'r' => out.push('\r'),
                b't' => out.push('\t'),
                b'u' => {
                    let unit = hex4(&raw[i..i + 4]);
                    i += 4;
                    let c = if (0xD800..0xDC00).contains(&unit)
                        && raw.get(i..i + 2) == Some(&b"\\u"[..])
                        && raw.len() >= i + 6
                        && (0xDC00..0xE000).contains(&hex4(&raw[i + 2..i + 6]))
                    {
                        let low = hex4(&raw[i + 2..i + 6]);
                        i += 6;
                        char::from_u32(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))
                    } else {
                        char::from_u32(unit)
                    };
                    match c {
                        Some(c) => out.push(c),
                        None if lossy => out.push('\u{FFFD}'),
                        None => return Err(bad),
                    }
                }
                other => out.push(other as char),
            }
        }
        Ok(Cow::Owned(out))
    }
}

fn hex4(h: &[u8]) -> u32 {
    h.iter().fold(0, |acc, &c| {
        acc * 16
            + match c {
                b'0'..=b'9' => u32::from(c - b'0'),
                b'a'..=b'f' => u32::from(c - b'a' + 10),
                _ => u32::from(c.wrapping_sub(b'A') + 10),
            }
    })
}

fn push_utf8(out: &mut String, bytes: &[u8], lossy: bool) -> Option<()> {
    match std::str::from_utf8(bytes) {
        Ok(t) => out.push_str(t),
        Err(_) if lossy => out.push_str(&String::from_utf8_lossy(bytes)),
        Err(_) => return None,
    }
    Some(())
}

/// Python's `str()` of a JSON number as `json.loads` reads it: integers as
/// written (`-0` is `0`), floats as Python's `repr` (`1.0`, `1e+16`),
/// `NaN` and `Infinity` as `nan` and `inf`.
pub fn python_number(text: &[u8]) -> Cow<'_, [u8]> {
    match text {
        b"NaN" => return Cow::Borrowed(b"nan"),
        b"Infinity" => return Cow::Borrowed(b"inf"),
        b"-Infinity" => return Cow::Borrowed(b"-inf"),
        b"-0" => return Cow::Borrowed(b"0"),
        _ => {}
    }
    if prints_as_itself(text) {
        return Cow::Borrowed(text);
    }
    // Rust's parse rounds correctly, as Python's float() does; out of range
    // is infinity in both.
    let f: f64 = std::str::from_utf8(text)
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(f64::NAN);
    Cow::Owned(crate::config::project::python_float(f).into_bytes())
}

/// Whether Python prints the number as `text` itself, seen in one pass
/// without converting: an integer (JSON's has no leading zero; `-0` is
/// handled before), or a plain decimal (`-?int.frac`, no exponent) whose
/// float's `repr` is the text: at most 15 significant digits (so no shorter
/// decimal reads as the same float, and it reads back as itself), not
/// below 1e-4 (Python's exponent form), with no trailing zero but in `.0`.
fn prints_as_itself(text: &[u8]) -> bool {
    let t = text.strip_prefix(b"-").unwrap_or(text);
    let mut dot = None;
    for (i, &b) in t.iter().enumerate() {
        match b {
            b'0'..=b'9' => {}
            b'.' if dot.is_none() => dot = Some(i),
            // An exponent: converted.
            _ => return false,
        }
    }
    let Some(dot) = dot else {
        return true;
    };
    let (int, frac) = (&t[..dot], &t[dot + 1..]);
    if int.is_empty() || frac.is_empty() || (frac.len() > 1 && frac.ends_with(b"0")) {
        return false;
    }
    let significant = if int == b"0" {
        let zeros = frac.iter().take_while(|&&b| b == b'0').count();
        if zeros == frac.len() {
            // Zero itself: `0.0` (the trailing-zero rule left only this).
            return true;
        }
        if zeros >= 4 {
            return false;
        }
        frac.len() - zeros
    } else {
        int.len() + frac.len()
    };
    significant <= 15
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skip(text: &str) -> Result<(), ScanError> {
        let mut s = Scanner::new(text.as_bytes());
        s.skip(0)?;
        if s.at_end() {
            Ok(())
        } else {
            Err(ScanError::Invalid(s.pos))
        }
    }

    #[test]
    fn what_python_accepts() {
        for ok in [
            r#"{"a": [1, -0, 0.5, 1e5, 1E-5, -1.5e+3, true, false, null, "x\"\\\/\b\f\n\r\t\u00e9"], "b": {}}"#,
            "[]",
            " [ NaN , Infinity , -Infinity ] ",
            "\"\u{1F600}\"",
        ] {
            assert_eq!(skip(ok), Ok(()), "{ok}");
        }
        for bad in [
            "{",
            "[1,]",
            "{\"a\":1,}",
            "01",
            "1.",
            ".5",
            "-",
            "1e",
            "+1",
            "tru",
            "nul",
            "\"a\tb\"",
            "\"\\x\"",
            "\"\\u12\"",
            "{a: 1}",
            "[1 2]",
            "'a'",
            "-NaN",
            "{\"a\" 1}",
        ] {
            assert!(skip(bad).is_err(), "{bad}");
        }
        let deep = "[".repeat(MAX_DEPTH + 2) + &"]".repeat(MAX_DEPTH + 2);
        assert_eq!(skip(&deep), Err(ScanError::TooDeep));
        assert!(skip(&("[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1))).is_ok());
        // Objects and lists mixed, deeper than one word of the open stack:
        // each closes with its own bracket, members after a nested one.
        let (mut open, mut close) = (String::new(), String::new());
        for i in 0..100 {
            if i % 3 == 0 {
                open.push_str("[1, ");
                close.insert_str(0, ", {}]");
            } else {
                open.push_str(r#"{"k": "#);
                close.insert_str(0, r#", "z": [null]}"#);
            }
        }
        let mixed = format!("{open}true{close}");
        assert!(skip(&mixed).is_ok());
        assert!(serde_json::from_str::<serde_json::Value>(&mixed).is_ok());
        let crossed = mixed.replacen("]}", "}}", 1);
        assert_ne!(crossed, mixed);
        assert!(skip(&crossed).is_err(), "a list closed by a brace");
        let long = "1".repeat(4301);
        assert!(skip(&long).is_err());
        assert!(skip(&format!("{long}.5")).is_ok());
    }

    #[test]
    fn eight_bytes_at_a_time_stop_where_the_table_does() {
        let table = |w: [u8; 8]| w.iter().position(|&c| STOP[c as usize]);
        for c in 0..=255u8 {
            for at in 0..8 {
                for fill in [b'a', 0xff, 0x80, b'!', b'#', b']'] {
                    let mut w = [fill; 8];
                    w[at] = c;
                    assert_eq!(first_stop(u64::from_le_bytes(w)), table(w), "{w:?}");
                }
            }
        }
        // Any mix of bytes (a fixed-seed xorshift).
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..200_000 {
            let x = next();
            assert_eq!(first_stop(x), table(x.to_le_bytes()), "{x:#x}");
        }
        // Sixteen at a time, against the byte table.
        let table16 = |w: &[u8; 16]| w.iter().position(|&c| STOP[c as usize]);
        for c in 0..=255u8 {
            for at in 0..16 {
                for fill in [b'a', 0xff, 0x80, b'!', b'#', b']', 0x20] {
                    let mut w = [fill; 16];
                    w[at] = c;
                    assert_eq!(first_stop16(&w), table16(&w), "{w:?}");
                }
            }
        }
        for _ in 0..200_000 {
            let mut w = [0u8; 16];
            w[..8].copy_from_slice(&next().to_le_bytes());
            w[8..].copy_from_slice(&next().to_le_bytes());
            assert_eq!(first_stop16(&w), table16(&w), "{w:?}");
        }
    }

    #[test]
    fn strings_decode_as_python_does() {
        let text = |s: &str, lossy: bool| {
            let mut sc = Scanner::new(s.as_bytes());
            let raw = sc.string().unwrap();
            sc.text(raw, lossy).map(|c| c.into_owned())
        };
        assert_eq!(text(r#""plain""#, false).unwrap(), "plain");
        assert_eq!(
            text(r#""a\u00e9\n\/\ud83d\ude00""#, false).unwrap(),
            "aé\n/😀"
        );
        assert!(text(r#""\ud800""#, false).is_err());
        assert_eq!(text(r#""\ud800x""#, true).unwrap(), "\u{FFFD}x");
        assert_eq!(text(r#""\uDC00\uD800""#, true).unwrap(), "\u{FFFD}\u{FFFD}");
    }

    #[test]
    fn numbers_print_as_python_does() {
        for (json, py) in [
            ("1", "1"),
            ("-0", "0"),
            ("-0.0", "-0.0"),
            ("1.0", "1.0"),
            ("1e16", "1e+16"),
            ("1E2", "100.0"),
            ("0.00001", "1e-05"),
            (
                "123456789012345678901234567890",
                "123456789012345678901234567890",
            ),
            ("1e400", "inf"),
            ("-1e400", "-inf"),
            ("NaN", "nan"),
            ("-Infinity", "-inf"),
            ("0.1", "0.1"),
            ("2.5e-300", "2.5e-300"),
        ] {
            assert_eq!(python_number(json.as_bytes()), py.as_bytes(), "{json}");
        }
    }

    /// Python's `str(float(text))` of many decimal texts, against alto's.
    #[test]
    fn decimal_texts_print_as_python_prints_them() {
        use std::io::Write;
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut texts: Vec<String> = Vec::new();
        for _ in 0..4000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let int = match x % 4 {
                0 => "0".to_string(),
                1 => {
                    let digits = (x >> 8).to_string();
                    let n = (((x >> 3) % 17 + 1) as usize).min(digits.len());
                    digits[..n].to_string()
                }
                2 => ((x >> 16) % 1000).to_string(),
                _ => "-".to_string() + &((x >> 20) % 100).to_string(),
            };
            let frac = format!("{:020}", x >> 30)[..((x >> 5) % 12 + 1) as usize].to_string();
            let zeros = "0".repeat(((x >> 50) % 6) as usize);
            texts.push(format!("{int}.{zeros}{frac}"));
            texts.push(format!("{int}.{frac}0"));
        }
        texts.extend(
            [
                "0.0",
                "-0.0",
                "1.0",
                "0.0001",
                "0.00001",
                "123456789012345.5",
                "12345678901234.5",
            ]
            .map(String::from),
        );
        let input: String = texts.iter().map(|t| format!("{t}\n")).collect();
        let mut child = std::process::Command::new("python3")
            .args(["-c", "import sys\nfor l in sys.stdin: print(str(float(l)))"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3");
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        let want = String::from_utf8(out.stdout).unwrap();
        assert_eq!(want.lines().count(), texts.len());
        for (t, py) in texts.iter().zip(want.lines()) {
            assert_eq!(python_number(t.as_bytes()), py.as_bytes(), "{t}");
        }
    }

    /// Python's repr of many floats (random bits, halfway ties, powers of
    /// ten), from Python itself, against alto's.
    #[test]
    fn floats_print_as_python_prints_them() {
        use std::io::Write;
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut floats: Vec<f64> = Vec::new();
        for _ in 0..3000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let f = f64::from_bits(x);
            if f.is_finite() {
                floats.push(f);
            }
            // Short decimals and exact binary fractions (ties).
            floats.push((x % 1_000_000) as f64 / 64.0 + (x >> 40) as f64 * 1e3);
            floats.push((x % 100_000) as f64 * 10f64.powi((x % 40) as i32 - 20));
        }
        floats.extend([
            -85911400775.0 - 1.0 / 64.0,
            1e16,
            9999999999999998.0,
            1e-4,
            1e-5,
            5e-324,
            0.5,
        ]);
        let text: String = floats.iter().map(|f| format!("{:e}\n", f)).collect();
        let mut child = std::process::Command::new("python3")
            .args([
                "-c",
                "import sys\nfor l in sys.stdin: print(repr(float(l)))",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3");
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || stdin.write_all(text.as_bytes()));
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        let want = String::from_utf8(out.stdout).unwrap();
        for (f, py) in floats.iter().zip(want.lines()) {
            assert_eq!(crate::config::project::python_float(*f), py, "{f:e}");
        }
        assert_eq!(want.lines().count(), floats.len());
    }
}
