//! Reading Singer lines from a plugin's output with a bound on their length:
//! a plugin that never ends a line (or sends one of gigabytes) fails the run
//! clearly instead of growing alto's memory without end.

use std::io::{BufRead, ErrorKind};

/// The longest line alto reads from a plugin (`ALTO_MAX_LINE_BYTES`, default
/// 256 MiB).
pub fn max_line_bytes() -> usize {
    std::env::var("ALTO_MAX_LINE_BYTES")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|v| *v > 0)
        .unwrap_or(256 << 20)
}

/// What one read gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    /// A line (with its `\n`, unless it was the last) of this many bytes.
    Line(usize),
    /// The end of the output.
    End,
    /// A line longer than the limit: nothing more should be read.
    TooLong,
}

/// Appends the next line to `buf` (which the caller clears), reading at most
/// `max` bytes before its newline.
pub fn read_line(r: &mut impl BufRead, buf: &mut Vec<u8>, max: usize) -> std::io::Result<Read> {
    let start = buf.len();
    loop {
        let avail = match r.fill_buf() {
            Ok(a) => a,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if avail.is_empty() {
            return Ok(if buf.len() == start {
                Read::End
            } else {
                Read::Line(buf.len() - start)
            });
        }
        let (take, done) = match memchr::memchr(b'\n', avail) {
            Some(i) => (i + 1, true),
            None => (avail.len(), false),
        };
        let body = buf.len() - start + take - usize::from(done);
        if body > max {
            return Ok(Read::TooLong);
        }
        buf.extend_from_slice(&avail[..take]);
        r.consume(take);
        if done {
            return Ok(Read::Line(buf.len() - start));
        }
    }
}

/// Reads and drops the rest of the current line.
pub fn skip_line(r: &mut impl BufRead) -> std::io::Result<()> {
    loop {
        let avail = match r.fill_buf() {
            Ok(a) => a,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if avail.is_empty() {
            return Ok(());
        }
        match memchr::memchr(b'\n', avail) {
            Some(i) => {
                r.consume(i + 1);
                return Ok(());
            }
            None => {
                let n = avail.len();
                r.consume(n);
            }
        }
    }
}

/// A buffer that held a very long line is given back, so one such line does
/// not keep its memory for the rest of the run.
pub fn shrink(buf: &mut Vec<u8>) {
    if buf.capacity() > 4 << 20 {
        *buf = Vec::with_capacity(1 << 12);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_read_up_to_the_limit() {
        let text = b"short\n0123456789\nlast";
        let mut r = std::io::BufReader::with_capacity(4, &text[..]);
        let mut buf = Vec::new();
        assert_eq!(read_line(&mut r, &mut buf, 10).unwrap(), Read::Line(6));
        assert_eq!(buf, b"short\n");
        buf.clear();
        assert_eq!(read_line(&mut r, &mut buf, 10).unwrap(), Read::Line(11));
        buf.clear();
        assert_eq!(read_line(&mut r, &mut buf, 10).unwrap(), Read::Line(4));
        buf.clear();
        assert_eq!(read_line(&mut r, &mut buf, 10).unwrap(), Read::End);
        let mut r = std::io::BufReader::with_capacity(4, &b"0123456789a\n"[..]);
        assert_eq!(read_line(&mut r, &mut buf, 10).unwrap(), Read::TooLong);
        // Memory stays within the limit (plus one read), whatever the line.
        assert!(buf.len() <= 10);
    }
}
