//! alto in the pipe between tap and target, when `~` hash rules apply.
//!
//! Lines are taken from the read buffer in place: a run of lines that pass
//! unchanged is written on in one piece. Rewritten lines are gathered in
//! alto's buffer and their digests worked out together, a read buffer's
//! worth at a time (md5 in SIMD lanes); then the runs and the rewritten
//! lines go on in order. A line of a stream no rule can touch is not parsed
//! (see [`crate::singer::message`]); every other line is scanned once, as a
//! Python target would read it. A line that is not a Singer message is
//! logged (redacted, control characters escaped) and skipped, as the
//! reservoir does; whitespace-only lines pass. Each read buffer's worth goes
//! on in one gathered write, so nothing is held back when the tap pauses
//! (but for half a millisecond after a small read, see [`GATHER`]).

use std::collections::{BTreeMap, HashMap};
use std::io::{ErrorKind, IoSlice, Read, Write};

use crate::run::{Redactor, RunError, RunLog};
use crate::singer::message::{Digests, StreamHasher};

/// How long alto waits after a read that found less than a quarter of its
/// buffer, before reading again. A tap writes a few KiB at a time (Python's
/// 8 KiB buffer, or a flush per message) and alto keeps up with it: read as
/// they come, its writes wake alto, and alto's wake the target, once per
/// write. Waiting half a millisecond (a STATE message is held back no
/// longer than that) lets them gather into reads of tens of KiB: with one
/// `~` rule on 2 million records, a fifth of the context switches and
/// about 8% less wall time.
const GATHER: std::time::Duration = std::time::Duration::from_micros(500);

/// Where skipped lines are reported.
pub struct Report<'a> {
    pub tap: &'a str,
    pub redactor: &'a Redactor,
    pub log: Option<&'a RunLog>,
}

/// What became of one line.
enum Fate {
    Pass,
    Rewritten,
    Skipped,
}

struct Middle<'a> {
    hasher: StreamHasher,
    /// Rewritten lines and the runs between them, their digests owed.
    out: Vec<u8>,
    digests: Digests,
    line_no: u64,
    skipped: u64,
    records: Counts,
    report: Report<'a>,
}

/// RECORD messages per stream. Lines come in runs of one stream: a run is
/// counted on its own, and added up when another stream's line comes.
#[derive(Default)]
struct Counts {
    done: HashMap<String, u64>,
    run: Option<(String, u64)>,
}

impl Counts {
    fn count(&mut self, stream: &str) {
        match &mut self.run {
            Some((s, n)) if s == stream => *n += 1,
            _ => {
                self.end_run();
                self.run = Some((stream.to_string(), 1));
            }
        }
    }

    fn end_run(&mut self) {
        if let Some((s, n)) = self.run.take() {
            *self.done.entry(s).or_default() += n;
        }
    }

    fn into_map(mut self) -> BTreeMap<String, u64> {
        self.end_run();
        self.done.into_iter().collect()
    }
}

/// A piece of what goes on: a range of the read buffer, or of `out`.
enum Piece {
    Read(usize, usize),
    Rewritten(usize, usize),
}

/// What went through: lines skipped, RECORD messages per stream.
#[derive(Debug, Default)]
pub struct Passed {
    pub skipped: u64,
    pub records: BTreeMap<String, u64>,
}

impl Middle<'_> {
    /// One line, without its newline.
    fn line(&mut self, body: &[u8]) -> Fate {
        self.line_no += 1;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Fate::Pass;
        }
        match self
            .hasher
            .apply_owing(body, &mut self.out, &mut self.digests)
        {
            Ok(a) => {
                if let ("RECORD", Some(stream)) = (&*a.head.kind, &a.head.stream) {
                    self.records.count(stream);
                }
                if a.rewritten {
                    Fate::Rewritten
                } else {
                    Fate::Pass
                }
            }
            Err(why) => {
                self.skipped += 1;
                crate::run::skipped_line(
                    self.report.tap,
                    self.line_no,
                    &why.to_string(),
                    body,
                    self.report.redactor,
                    self.report.log,
                );
                Fate::Skipped
            }
        }
    }

    fn too_long(&self, max: usize) -> RunError {
        RunError::LineTooLong {
            plugin: self.report.tap.to_string(),
            limit: max,
        }
    }

    /// Passes the whole lines of `buf` on in one gathered write (at the
    /// end of the tap's output, the last line without its newline too):
    /// how many bytes were passed, `None` when the target stopped reading.
    fn pass(
        &mut self,
        buf: &[u8],
        at_end: bool,
        to: &mut impl Write,
        pieces: &mut Vec<Piece>,
        max: usize,
    ) -> Result<Option<usize>, RunError> {
        let mut pos = 0;
        let mut pending = 0;
        pieces.clear();
        loop {
            let (body, end) = match memchr::memchr(b'\n', &buf[pos..]) {
                Some(nl) => (&buf[pos..pos + nl], pos + nl + 1),
                None if at_end && pos < buf.len() => (&buf[pos..], buf.len()),
                None => break,
            };
            if body.len() > max {
                return Err(self.too_long(max));
            }
            let before = self.out.len();
            match self.line(body) {
                Fate::Pass => {}
                fate => {
                    if pending < pos {
                        pieces.push(Piece::Read(pending, pos));
                    }
                    if let Fate::Rewritten = fate {
                        if end > pos + body.len() {
                            self.out.push(b'\n');
                        }
                        // Rewritten lines in a row are one slice: the
                        // kernel copies each slice of a gathered write on
                        // its own.
                        match pieces.last_mut() {
                            Some(Piece::Rewritten(_, e)) if *e == before => *e = self.out.len(),
                            _ => pieces.push(Piece::Rewritten(before, self.out.len())),
                        }
                    }
                    pending = end;
                }
            }
            pos = end;
        }
        if pending < pos {
            pieces.push(Piece::Read(pending, pos));
        }
        self.digests.fill(&mut self.out);
        // One allocation a read buffer: the slices borrow this buffer.
        let mut slices: Vec<IoSlice> = Vec::with_capacity(pieces.len());
        slices.extend(pieces.iter().filter_map(|p| {
            let piece = match *p {
                Piece::Read(a, b) => &buf[a..b],
                Piece::Rewritten(a, b) => &self.out[a..b],
            };
            (!piece.is_empty()).then(|| IoSlice::new(piece))
        }));
        let written = write_all_vectored(to, &mut slices);
        self.out.clear();
        Ok(written.is_ok().then_some(pos))
    }
}

/// Copies the tap's output to the target, applying the hash rules, until
/// the tap's output ends or the target stops reading. The number of lines
/// skipped; a line longer than `max` bytes fails.
///
/// The read buffer is alto's own: the part of a line a read cut off is
/// moved to its front and the next read lands after it, so every read's
/// whole lines go on in one gathered write (a `BufReader` hands a cut-off
/// line out alone, one more write and one more wake-up of the target per
/// read). A line longer than the buffer grows it, up to `max`.
pub fn run(
    mut from: impl Read,
    mut to: impl Write,
    hasher: StreamHasher,
    report: Report,
    max: usize,
) -> Result<Passed, RunError> {
    let capacity = 1 << 16;
    let mut buf = vec![0u8; capacity];
    let mut m = Middle {
        hasher,
        out: Vec::new(),
        digests: Digests::default(),
        line_no: 0,
        skipped: 0,
        records: Counts::default(),
        report,
    };
    let mut pieces = Vec::new();
    // `buf[..end]` was read; what is there is a cut-off line.
    let mut end = 0;
    loop {
        if end == buf.len() {
            if end > max {
                return Err(m.too_long(max));
            }
            buf.resize(buf.len().saturating_mul(2).min(max.saturating_add(1)), 0);
        }
        let n = match from.read(&mut buf[end..]) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            // Both pipes close with this thread: the tap stops on a broken
            // pipe, the target at the end of its input.
            Err(_) => break,
        };
        // A short read: the tap has nothing more for now. What was read is
        // written below; the writer is flushed too (nothing to do on a
        // pipe, but a buffered writer must not keep a slow tap's STATE back).
        let drained = end + n < buf.len();
        let at_end = n == 0;
        end += n;
        let passed = match m.pass(&buf[..end], at_end, &mut to, &mut pieces, max)? {
            Some(passed) => passed,
            None => break,
        };
        if at_end {
            break;
        }
        buf.copy_within(passed..end, 0);
        end -= passed;
        if end < capacity && buf.len() > capacity {
            // A long line has gone: its memory goes too.
            buf.truncate(capacity);
            buf.shrink_to_fit();
        }
        if drained {
            if to.flush().is_err() {
                break;
            }
            if n < capacity / 4 {
                // Little had come: let the tap's next writes gather in
                // the pipe (see `GATHER`).
                std::thread::sleep(GATHER);
            }
        }
    }
    let _ = to.flush();
    Ok(Passed {
        skipped: m.skipped,
        records: m.records.into_map(),
    })
}

/// Writes all of `slices`, as few system calls as the writer allows (no
/// copy into a buffer of alto's first).
fn write_all_vectored(to: &mut impl Write, mut slices: &mut [IoSlice]) -> std::io::Result<()> {
    while !slices.is_empty() {
        match to.write_vectored(slices) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `run` with the rule `~users.email` and lines of at most `max`
    /// bytes, skipped lines reported nowhere.
    fn hashing_email(from: impl Read, to: impl Write, max: usize) -> Result<Passed, RunError> {
        let hasher = StreamHasher::new(&["*.*".into(), "~users.email".into()]).unwrap();
        let redactor = Redactor::default();
        let report = Report {
            tap: "tap-x",
            redactor: &redactor,
            log: None,
        };
        run(from, to, hasher, report, max)
    }

    fn run_hashing_email(from: impl Read, to: impl Write) -> Passed {
        hashing_email(from, to, 1 << 20).unwrap()
    }

    fn through(input: &[u8], cap: usize) -> (Vec<u8>, Passed) {
        let mut out = Vec::new();
        let passed = run_hashing_email(std::io::BufReader::with_capacity(cap, input), &mut out);
        (out, passed)
    }

    /// Lines pass in order, byte for byte unless hashed; what is not a
    /// Singer message is dropped; long lines and a last line without a
    /// newline are handled too.
    #[test]
    fn lines_pass_hashed_or_skipped_in_order() {
        let long = format!(
            r#"{{"type":"RECORD","stream":"other","record":{{"n":"{}"}}}}"#,
            "x".repeat(200_000)
        );
        let input = format!(
            "{}\nnot json\n{}\n\n{}\n{}\n{}",
            r#"{"type":"SCHEMA","stream":"users","schema":{"properties":{"email":{"type":"string"}}}}"#,
            r#"{"type":"RECORD","stream":"users","record":{"email":"a@b.c"}}"#,
            long,
            r#"{"type":"STATE","value":{"x":1}}"#,
            r#"{"type":"RECORD","stream":"users","record":{"email":"last"}}"#,
        );
        let (out, passed) = through(input.as_bytes(), 64);
        let (again, _) = through(input.as_bytes(), 1 << 16);
        assert_eq!(out, again);
        assert_eq!(passed.skipped, 1);
        // Counted as they pass, whether a rule touched the stream or not.
        assert_eq!(
            passed.records,
            BTreeMap::from([("other".into(), 1), ("users".into(), 2)])
        );
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.split('\n').collect();
        assert_eq!(lines.len(), 6, "{text:.300}");
        assert!(lines[0].contains(r#""format":"hash""#));
        assert!(!lines[1].contains("a@b.c") && lines[1].contains(r#""email":""#));
        assert_eq!(lines[2], "");
        assert_eq!(lines[3], long);
        assert_eq!(lines[4], r#"{"type":"STATE","value":{"x":1}}"#);
        assert!(!lines[5].contains("last") && lines[5].ends_with("}}"));
    }

    /// How many slices each gathered write was given.
    #[derive(Default)]
    struct Gathered {
        data: Vec<u8>,
        slices: Vec<usize>,
    }

    impl std::io::Write for &mut Gathered {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }
        fn write_vectored(&mut self, bufs: &[IoSlice]) -> std::io::Result<usize> {
            self.slices.push(bufs.len());
            let mut n = 0;
            for b in bufs {
                self.data.extend_from_slice(b);
                n += b.len();
            }
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Rewritten lines in a row go on as one slice (the kernel copies each
    /// slice on its own); a line that passes between them is its own.
    #[test]
    fn rewritten_lines_in_a_row_are_one_slice() {
        let hashed = r#"{"type":"RECORD","stream":"users","record":{"email":"a"}}"#;
        let state = r#"{"type":"STATE","value":{"n":1}}"#;
        let input = format!("{hashed}\n{hashed}\n{hashed}\n{state}\n{hashed}\n{hashed}\n");
        let mut out = Gathered::default();
        run_hashing_email(input.as_bytes(), &mut out);
        assert_eq!(out.slices, [3]);
        let text = String::from_utf8(out.data).unwrap();
        assert_eq!(text.lines().count(), 6);
        assert_eq!(text.lines().nth(3), Some(state));
        assert!(!text.contains(r#""email":"a""#));
    }

    /// A line that a read cut off goes on with the next read's lines, in
    /// one gathered write (not alone, waking the target once more).
    #[test]
    fn a_cut_off_line_goes_on_with_the_next_reads_lines() {
        let hashed = r#"{"type":"RECORD","stream":"users","record":{"email":"a"}}"#;
        let state = r#"{"type":"STATE","value":{"n":1}}"#;
        let input = format!("{state}\n{hashed}\n{state}\n");
        let cut = state.len() + 10;
        let chunks = Chunks(vec![
            input.as_bytes()[..cut].to_vec(),
            input.as_bytes()[cut..].to_vec(),
        ]);
        let mut out = Gathered::default();
        run_hashing_email(chunks, &mut out);
        assert_eq!(out.slices.len(), 2, "one write a read: {:?}", out.slices);
        let text = String::from_utf8(out.data).unwrap();
        assert_eq!(text.lines().count(), 3);
        assert!(!text.contains(r#""email":"a""#));
    }

    /// A line longer than the limit fails the run, whether or not a read
    /// cut it off; one within it passes whole, however many reads it took.
    #[test]
    fn lines_are_bounded_across_reads() {
        let run_max = |input: &[u8], max: usize| {
            let mut out = Vec::new();
            let chunks = Chunks(input.chunks(1000).map(<[u8]>::to_vec).collect());
            hashing_email(chunks, &mut out, max).map(|_| out)
        };
        let long = format!(r#"{{"type":"STATE","value":"{}"}}"#, "x".repeat(100_000));
        for input in [long.clone(), format!("{long}\n")] {
            assert!(matches!(
                run_max(input.as_bytes(), 50_000),
                Err(RunError::LineTooLong { limit: 50_000, .. })
            ));
            assert_eq!(
                run_max(input.as_bytes(), 200_000).unwrap(),
                input.as_bytes()
            );
        }
    }

    /// A reader that hands out one chunk a read, as a slow tap's pipe does.
    struct Chunks(Vec<Vec<u8>>);

    impl std::io::Read for Chunks {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0.is_empty() {
                return Ok(0);
            }
            // What does not fit is left for the next read.
            let n = self.0[0].len().min(buf.len());
            buf[..n].copy_from_slice(&self.0[0][..n]);
            self.0[0].drain(..n);
            if self.0[0].is_empty() {
                self.0.remove(0);
            }
            Ok(n)
        }
    }

    /// What had reached the target at each flush.
    #[derive(Default)]
    struct Flushes {
        data: Vec<u8>,
        at: Vec<usize>,
    }

    impl std::io::Write for &mut Flushes {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.data.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.at.push(self.data.len());
            Ok(())
        }
    }

    /// Each line a slow tap sends reaches the target before the next comes.
    #[test]
    fn a_slow_taps_lines_are_not_held_back() {
        let lines: Vec<Vec<u8>> = [
            r#"{"type":"RECORD","stream":"users","record":{"email":"a"}}"#,
            r#"{"type":"STATE","value":{"n":1}}"#,
        ]
        .iter()
        .map(|l| format!("{l}\n").into_bytes())
        .collect();
        let mut flushes = Flushes::default();
        run_hashing_email(Chunks(lines.clone()), &mut flushes);
        let first = flushes.data.iter().position(|&b| b == b'\n').unwrap() + 1;
        assert_eq!(flushes.at[0], first, "the first line went on alone");
        assert_eq!(flushes.at[1], flushes.data.len());
        assert!(flushes.data.ends_with(&lines[1]));
    }
}
