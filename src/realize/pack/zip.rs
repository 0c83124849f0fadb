//! The zip archive a PEX is: entries stored uncompressed, written as
//! Python's `zipfile` writes them for pex (`--no-compress`, every entry
//! dated 1980-01-01 00:00, Unix modes), after a preamble (the shebang line).
//! Offsets count from the start of the file, preamble included.

use std::io::{self, Write};

/// Python's `zipfile.ZIP64_LIMIT`: past it `zipfile` writes zip64 records,
/// which this writer does not; a caller leaves such a PEX to pex.
pub const LIMIT: u64 = (1 << 31) - 1;

/// Whether Python's zipfile writes an entry of `size` bytes with zip64
/// fields: when its size, with 5% to spare, passes the limit.
fn needs_zip64(size: u64) -> bool {
    size as f64 * 1.05 > LIMIT as f64
}

/// DOS date of 1980-01-01 (`(1980 - 1980) << 9 | 1 << 5 | 1`), time 00:00.
const DOS_DATE: u16 = 33;
/// zipfile's `DEFAULT_VERSION`: what a stored entry needs, and the version
/// that made it (high byte 3: Unix).
const VERSION: u16 = 20;
const MADE_BY: u16 = (3 << 8) | VERSION;
/// zipfile's flag for a name that is not ASCII (stored as UTF-8).
const UTF8: u16 = 0x800;

#[derive(Debug, thiserror::Error)]
pub enum ZipError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("the archive passes 2 GiB, which needs zip64 records")]
    TooLarge,
}

/// Writes entries one after another; the central directory at [`finish`].
///
/// [`finish`]: ZipWriter::finish
pub struct ZipWriter<W: Write> {
    out: W,
    offset: u64,
    central: Vec<u8>,
    count: u64,
}

impl<W: Write> ZipWriter<W> {
    pub fn new(mut out: W, preamble: &[u8]) -> Result<ZipWriter<W>, ZipError> {
        out.write_all(preamble)?;
        Ok(ZipWriter {
            out,
            offset: preamble.len() as u64,
            central: Vec::new(),
            count: 0,
        })
    }

    /// A directory entry: `name` ends with `/`, mode 0o40755 as pex writes it.
    pub fn dir(&mut self, name: &str) -> Result<(), ZipError> {
        self.entry(name, (0o40755 << 16) | 0x10, &[])
    }

    /// A file entry with Unix `mode` (file type bits included, e.g. 0o100644).
    pub fn file(&mut self, name: &str, mode: u32, data: &[u8]) -> Result<(), ZipError> {
        self.entry(name, mode << 16, data)
    }

    fn entry(&mut self, name: &str, external: u32, data: &[u8]) -> Result<(), ZipError> {
        let size = data.len() as u64;
        if needs_zip64(size) || self.offset > LIMIT {
            return Err(ZipError::TooLarge);
        }
        let flags = if name.is_ascii() { 0 } else { UTF8 };
        let crc = crc32fast::hash(data);
        let name = name.as_bytes();
        let mut local = Vec::with_capacity(30 + name.len());
        local.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        local.extend_from_slice(&VERSION.to_le_bytes());
        local.extend_from_slice(&flags.to_le_bytes());
        local.extend_from_slice(&0u16.to_le_bytes()); // stored
        local.extend_from_slice(&0u16.to_le_bytes()); // time 00:00
        local.extend_from_slice(&DOS_DATE.to_le_bytes());
        local.extend_from_slice(&crc.to_le_bytes());
        local.extend_from_slice(&(size as u32).to_le_bytes());
        local.extend_from_slice(&(size as u32).to_le_bytes());
        local.extend_from_slice(&(name.len() as u16).to_le_bytes());
        local.extend_from_slice(&0u16.to_le_bytes()); // no extra field
        local.extend_from_slice(name);

        let c = &mut self.central;
        c.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        c.extend_from_slice(&MADE_BY.to_le_bytes());
        c.extend_from_slice(&VERSION.to_le_bytes());
        c.extend_from_slice(&flags.to_le_bytes());
        c.extend_from_slice(&0u16.to_le_bytes());
        c.extend_from_slice(&0u16.to_le_bytes());
        c.extend_from_slice(&DOS_DATE.to_le_bytes());
        c.extend_from_slice(&crc.to_le_bytes());
        c.extend_from_slice(&(size as u32).to_le_bytes());
        c.extend_from_slice(&(size as u32).to_le_bytes());
        c.extend_from_slice(&(name.len() as u16).to_le_bytes());
        c.extend_from_slice(&0u16.to_le_bytes()); // extra
        c.extend_from_slice(&0u16.to_le_bytes()); // comment
        c.extend_from_slice(&0u16.to_le_bytes()); // disk
        c.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
        c.extend_from_slice(&external.to_le_bytes());
        c.extend_from_slice(&(self.offset as u32).to_le_bytes());
        c.extend_from_slice(name);

        self.out.write_all(&local)?;
        self.out.write_all(data)?;
        self.offset += local.len() as u64 + size;
        self.count += 1;
        Ok(())
    }

    /// Writes the central directory and its end record; the writer back.
    pub fn finish(mut self) -> Result<W, ZipError> {
        let size = self.central.len() as u64;
        if self.offset + size > LIMIT || self.count > 0xffff {
            return Err(ZipError::TooLarge);
        }
        self.out.write_all(&self.central)?;
        let mut end = Vec::with_capacity(22);
        end.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        end.extend_from_slice(&0u16.to_le_bytes());
        end.extend_from_slice(&0u16.to_le_bytes());
        end.extend_from_slice(&(self.count as u16).to_le_bytes());
        end.extend_from_slice(&(self.count as u16).to_le_bytes());
        end.extend_from_slice(&(size as u32).to_le_bytes());
        end.extend_from_slice(&(self.offset as u32).to_le_bytes());
        end.extend_from_slice(&0u16.to_le_bytes()); // comment
        self.out.write_all(&end)?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zip64_starts_where_python_s_zipfile_starts_it() {
        // 2 045 222 520 * 1.05 is just under 2**31 - 1; one byte more is not.
        assert!(!needs_zip64(2_045_222_520));
        assert!(needs_zip64(2_045_222_521));
        assert!(needs_zip64(LIMIT));
    }
}
