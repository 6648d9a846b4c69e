//! Byte-level encoding of segment headers and records (see the crate docs for
//! the format table). Everything here is pure: no I/O.

use std::path::{Path, PathBuf};

/// Magic bytes at offset 0 of every segment file.
pub const MAGIC: [u8; 8] = *b"QVWAL\0\0\0";
/// The only segment format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// Segment header: magic(8) + version(4) + first_lsn(8) + crc32c(4).
pub const HEADER_LEN: u64 = 24;
/// Record header: len(4) + crc(4) + lsn(8).
pub const RECORD_HEADER_LEN: u64 = 16;
/// Segment file extension.
pub const SEGMENT_EXT: &str = "wal";
/// Number of decimal digits in a segment file name.
pub const NAME_DIGITS: usize = 20;

const MASK_DELTA: u32 = 0xa282_ead8;

/// LevelDB-style CRC mask: rotate right by 15 and add a constant, so that a
/// CRC stored inside data that is itself checksummed (e.g. a WAL embedded in a
/// payload) does not produce trivially valid-looking checksums.
pub fn mask_crc(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(MASK_DELTA)
}

/// Masked CRC32C over `lsn (u64 LE) ++ payload`.
pub fn record_crc(lsn: u64, payload: &[u8]) -> u32 {
    let crc = crc32c::crc32c(&lsn.to_le_bytes());
    mask_crc(crc32c::crc32c_append(crc, payload))
}

/// Encodes the 24-byte segment header for a segment starting at `first_lsn`.
pub fn encode_header(first_lsn: u64) -> [u8; HEADER_LEN as usize] {
    encode_header_with_version(first_lsn, FORMAT_VERSION)
}

/// Like [`encode_header`] with an explicit version (tests use it to build
/// headers of unknown versions).
pub fn encode_header_with_version(first_lsn: u64, version: u32) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[0..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&version.to_le_bytes());
    h[12..20].copy_from_slice(&first_lsn.to_le_bytes());
    let crc = mask_crc(crc32c::crc32c(&h[0..20]));
    h[20..24].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Why a 24-byte header was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// The first 8 bytes are not [`MAGIC`].
    BadMagic,
    /// Magic is right but the version field is not [`FORMAT_VERSION`].
    /// Checked before the CRC: the version field's position is part of the
    /// contract for every version, the CRC's position is not.
    UnsupportedVersion(u32),
    /// The header CRC does not match.
    BadCrc,
}

/// Decodes a full header, returning its `first_lsn`.
pub fn decode_header(h: &[u8; HEADER_LEN as usize]) -> Result<u64, HeaderError> {
    if h[0..8] != MAGIC {
        return Err(HeaderError::BadMagic);
    }
    let version = u32::from_le_bytes(h[8..12].try_into().expect("4 bytes"));
    if version != FORMAT_VERSION {
        return Err(HeaderError::UnsupportedVersion(version));
    }
    let stored = u32::from_le_bytes(h[20..24].try_into().expect("4 bytes"));
    if stored != mask_crc(crc32c::crc32c(&h[0..20])) {
        return Err(HeaderError::BadCrc);
    }
    Ok(u64::from_le_bytes(h[12..20].try_into().expect("8 bytes")))
}

/// A decoded (not yet verified) record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    pub len: u32,
    pub crc: u32,
    pub lsn: u64,
}

impl RecordHeader {
    pub fn decode(b: &[u8]) -> RecordHeader {
        RecordHeader {
            len: u32::from_le_bytes(b[0..4].try_into().expect("4 bytes")),
            crc: u32::from_le_bytes(b[4..8].try_into().expect("4 bytes")),
            lsn: u64::from_le_bytes(b[8..16].try_into().expect("8 bytes")),
        }
    }
}

/// Appends one encoded record to `out`. The caller guarantees
/// `payload.len() <= u32::MAX`.
pub fn encode_record(out: &mut Vec<u8>, lsn: u64, payload: &[u8]) {
    let len = u32::try_from(payload.len()).expect("payload length checked by caller");
    out.reserve(RECORD_HEADER_LEN as usize + payload.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&record_crc(lsn, payload).to_le_bytes());
    out.extend_from_slice(&lsn.to_le_bytes());
    out.extend_from_slice(payload);
}

/// `<dir>/<first_lsn as 20 digits>.wal`
pub fn segment_path(dir: &Path, first_lsn: u64) -> PathBuf {
    dir.join(format!(
        "{first_lsn:0width$}.{SEGMENT_EXT}",
        width = NAME_DIGITS
    ))
}

/// Parses a segment file name; `None` for any other file (ignored).
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".wal")?;
    if stem.len() != NAME_DIGITS || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_rejections() {
        let h = encode_header(42);
        assert_eq!(decode_header(&h), Ok(42));
        let mut bad = h;
        bad[0] = b'X';
        assert_eq!(decode_header(&bad), Err(HeaderError::BadMagic));
        let v2 = encode_header_with_version(42, 2);
        assert_eq!(decode_header(&v2), Err(HeaderError::UnsupportedVersion(2)));
        let mut bad = h;
        bad[15] ^= 1;
        assert_eq!(decode_header(&bad), Err(HeaderError::BadCrc));
        assert_eq!(decode_header(&[0; 24]), Err(HeaderError::BadMagic));
    }

    #[test]
    fn record_encoding_and_zero_detection() {
        let mut out = Vec::new();
        encode_record(&mut out, 7, b"abc");
        assert_eq!(out.len(), 19);
        let h = RecordHeader::decode(&out);
        assert_eq!((h.len, h.lsn), (3, 7));
        assert_eq!(h.crc, record_crc(7, b"abc"));
        // An all-zero record header never verifies.
        assert_ne!(record_crc(0, &[]), 0);
    }

    #[test]
    fn names() {
        let p = segment_path(Path::new("/d"), 1);
        assert_eq!(p, Path::new("/d/00000000000000000001.wal"));
        assert_eq!(parse_segment_name("00000000000000000001.wal"), Some(1));
        assert_eq!(parse_segment_name("1.wal"), None);
        assert_eq!(parse_segment_name("0000000000000000000a.wal"), None);
        assert_eq!(parse_segment_name("00000000000000000001.wal.tmp"), None);
        assert_eq!(parse_segment_name("LOCK"), None);
    }
}
