//! The zip archive a PEX is: entries stored uncompressed, written as
//! Python's `zipfile` writes them for pex (`--no-compress`, every entry
//! dated 1980-01-01 00:00, Unix modes), after a preamble (the shebang line).
//! Offsets count from the start of the file, preamble included.
//! Also the reading of an archive held in memory ([`entries`]), for the
//! wheels alto unpacks itself.

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
    #[error("not a zip archive alto reads: {0}")]
    Malformed(&'static str),
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

/// A file in an archive read by [`entries`]: its name and its data.
pub struct Entry<'a> {
    pub name: &'a [u8],
    method: u16,
    crc: u32,
    size: usize,
    data: &'a [u8],
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The entries of `archive`, from its central directory. No zip64 and no
/// encryption: what a wheel of tens of MB is.
pub fn entries(archive: &[u8]) -> Result<Vec<Entry<'_>>, ZipError> {
    let bad = ZipError::Malformed;
    // The end record: 22 bytes and a comment of up to 64 KiB, last in the file.
    let lowest = archive.len().saturating_sub(22 + 0xffff);
    let end = (lowest..=archive.len().saturating_sub(22))
        .rev()
        .find(|&at| u32_at(archive, at) == Some(0x0605_4b50))
        .ok_or(bad("no end of central directory record"))?;
    let count = u16_at(archive, end + 10).ok_or(bad("short end record"))?;
    let start = u32_at(archive, end + 16).ok_or(bad("short end record"))?;
    if count == 0xffff || start == 0xffff_ffff {
        return Err(bad("zip64"));
    }
    let mut at = start as usize;
    let mut found = Vec::with_capacity(count.into());
    for _ in 0..count {
        let field =
            |offset: usize| u32_at(archive, at + offset).ok_or(bad("short central directory"));
        let half =
            |offset: usize| u16_at(archive, at + offset).ok_or(bad("short central directory"));
        if field(0)? != 0x0201_4b50 {
            return Err(bad("central directory entry without its signature"));
        }
        if half(8)? & 1 != 0 {
            return Err(bad("encrypted entry"));
        }
        let (method, crc) = (half(10)?, field(16)?);
        let (packed, size) = (field(20)? as usize, field(24)? as usize);
        let name_len = usize::from(half(28)?);
        let skip = name_len + usize::from(half(30)?) + usize::from(half(32)?);
        let local = field(42)? as usize;
        let name = archive
            .get(at + 46..at + 46 + name_len)
            .ok_or(bad("short central directory"))?;
        if u32_at(archive, local) != Some(0x0403_4b50) {
            return Err(bad("entry without its local header"));
        }
        let data_at = local
            + 30
            + usize::from(u16_at(archive, local + 26).ok_or(bad("short local header"))?)
            + usize::from(u16_at(archive, local + 28).ok_or(bad("short local header"))?);
        let data = archive
            .get(data_at..data_at + packed)
            .ok_or(bad("entry data past the end"))?;
        found.push(Entry {
            name,
            method,
            crc,
            size,
            data,
        });
        at += 46 + skip;
    }
    Ok(found)
}

impl Entry<'_> {
    /// The entry's bytes, inflated and checked against its CRC-32 and size
    /// (alto itself hands them on as they come: [`Entry::inflate`]).
    #[cfg(test)]
    pub fn read(&self) -> Result<Vec<u8>, ZipError> {
        // The size is the archive's word: room for it grows as bytes come.
        let mut bytes = Vec::with_capacity(self.size.min(1 << 26));
        self.inflate(|chunk| {
            bytes.extend_from_slice(&chunk);
            Ok(())
        })?;
        Ok(bytes)
    }

    /// Hands the entry's bytes to `each` in chunks of up to 1 MiB as they
    /// are inflated (so that a caller can write them on another thread),
    /// then checks their CRC-32 and size: an `Err` after chunks were handed
    /// on means they are not the entry.
    pub fn inflate(
        &self,
        mut each: impl FnMut(Vec<u8>) -> Result<(), ZipError>,
    ) -> Result<(), ZipError> {
        const CHUNK: usize = 1 << 20;
        let mut crc = crc32fast::Hasher::new();
        let mut total = 0;
        let mut emit = |chunk: Vec<u8>| {
            total += chunk.len();
            // Never more than the entry says it holds.
            if total > self.size {
                return Err(ZipError::Malformed("entry longer than its size"));
            }
            crc.update(&chunk);
            each(chunk)
        };
        match self.method {
            0 => {
                for chunk in self.data.chunks(CHUNK) {
                    emit(chunk.to_vec())?;
                }
            }
            8 => {
                let mut inflate = flate2::Decompress::new(false);
                loop {
                    let consumed = inflate.total_in() as usize;
                    let input = self.data.get(consumed..).unwrap_or_default();
                    let mut out = Vec::with_capacity(CHUNK);
                    let status = inflate
                        .decompress_vec(input, &mut out, flate2::FlushDecompress::Finish)
                        .map_err(|_| ZipError::Malformed("corrupt deflate data"))?;
                    let stuck = out.is_empty() && inflate.total_in() as usize == consumed;
                    if !out.is_empty() {
                        emit(out)?;
                    }
                    if status == flate2::Status::StreamEnd {
                        break;
                    }
                    if stuck {
                        return Err(ZipError::Malformed("deflate data cut short"));
                    }
                }
            }
            _ => return Err(ZipError::Malformed("compression other than deflate")),
        }
        if total != self.size || crc.finalize() != self.crc {
            return Err(ZipError::Malformed(
                "entry does not match its size and CRC-32",
            ));
        }
        Ok(())
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

    #[test]
    fn reads_what_python_s_zipfile_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.whl");
        let made = std::process::Command::new("python3")
            .arg("-c")
            .arg(
                "import sys, zipfile\n\
                 with zipfile.ZipFile(sys.argv[1], 'w') as z:\n\
                 \x20   z.writestr('x/big', bytes(range(256)) * 20000, zipfile.ZIP_DEFLATED)\n\
                 \x20   z.writestr('x/stored', b'plain', zipfile.ZIP_STORED)\n\
                 \x20   z.writestr('x/empty', b'', zipfile.ZIP_DEFLATED)\n\
                 \x20   z.comment = b'a comment'\n",
            )
            .arg(&path)
            .status()
            .unwrap();
        assert!(made.success());
        let archive = std::fs::read(&path).unwrap();
        let found = entries(&archive).unwrap();
        let read: Vec<(&[u8], Vec<u8>)> =
            found.iter().map(|e| (e.name, e.read().unwrap())).collect();
        assert_eq!(
            read,
            [
                (&b"x/big"[..], (0..=255).collect::<Vec<u8>>().repeat(20_000)),
                (&b"x/stored"[..], b"plain".to_vec()),
                (&b"x/empty"[..], Vec::new()),
            ]
        );
        // A flipped byte in the deflated data is caught, never a panic; so is
        // every truncation.
        let mut bad = archive.clone();
        bad[60] ^= 0x55;
        assert!(entries(&bad).and_then(|e| e[0].read()).is_err());
        for cut in 0..archive.len() {
            if let Ok(found) = entries(&archive[..cut]) {
                found.iter().for_each(|e| drop(e.read()));
            }
        }
        assert!(entries(b"not a zip").is_err());
    }
}
