//! The envelope shared by every persisted index, and bounds-checked
//! little-endian readers and writers for the payloads.
//!
//! # Envelope (all integers little-endian)
//!
//! | offset   | size | field                                                   |
//! |----------|------|---------------------------------------------------------|
//! | 0        | 4    | magic `b"QVIX"`                                         |
//! | 4        | 2    | format version ([`FORMAT_VERSION`], currently 1)        |
//! | 6        | 2    | kind: 1 HNSW, 2 IVF_FLAT, 3 IVF_SQ8, 4 IVF_PQ, 5 binary HNSW |
//! | 8        | 8    | payload length `P`                                      |
//! | 16       | `P`  | payload (kind-specific: see `hnsw` and `ivf` modules)   |
//! | 16 + `P` | 4    | CRC32C of bytes `[0, 16 + P)`                           |
//!
//! Inside payloads, an *array* is a `u64` element count followed by the
//! elements (`u8`, `u32` or `f32`, little-endian, no padding). The reader
//! checks the magic, version, kind, exact total length and checksum before
//! parsing, then every count against the bytes left, so a truncated or
//! corrupted file is an [`IndexError`], never a panic or a huge allocation.
//! The index loaders then check every structural invariant (ids in range,
//! counts within capacity) because search code relies on them.

use crate::IndexError;

/// Magic bytes at offset 0 of every index file.
pub const MAGIC: [u8; 4] = *b"QVIX";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;
const HEADER: usize = 16;

/// What a persisted index holds (the `kind` field of the envelope).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexKind {
    /// [`crate::HnswIndex`].
    Hnsw = 1,
    /// [`crate::IvfIndex`] with f32 rows scanned from the segment.
    IvfFlat = 2,
    /// [`crate::IvfIndex`] with SQ8 codes.
    IvfSq8 = 3,
    /// [`crate::IvfIndex`] with PQ codes.
    IvfPq = 4,
    /// [`crate::BinaryHnswIndex`] (HNSW over packed binary rows).
    BinaryHnsw = 5,
}

impl IndexKind {
    fn from_u16(v: u16) -> Option<Self> {
        Some(match v {
            1 => IndexKind::Hnsw,
            2 => IndexKind::IvfFlat,
            3 => IndexKind::IvfSq8,
            4 => IndexKind::IvfPq,
            5 => IndexKind::BinaryHnsw,
            _ => return None,
        })
    }
}

/// The kind of a persisted index, after checking its envelope (magic,
/// version, length and checksum).
pub fn peek_kind(bytes: &[u8]) -> Result<IndexKind, IndexError> {
    Ok(check_envelope(bytes)?.0)
}

fn check_envelope(bytes: &[u8]) -> Result<(IndexKind, &[u8]), IndexError> {
    if bytes.len() < HEADER + 4 {
        return Err(IndexError::corrupt(format!(
            "{} bytes is shorter than the {}-byte envelope",
            bytes.len(),
            HEADER + 4
        )));
    }
    if bytes[0..4] != MAGIC {
        return Err(IndexError::corrupt("bad magic (not a Quiver index file)"));
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    if version != FORMAT_VERSION {
        return Err(IndexError::UnsupportedVersion {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let kind_raw = u16::from_le_bytes([bytes[6], bytes[7]]);
    let kind = IndexKind::from_u16(kind_raw)
        .ok_or_else(|| IndexError::corrupt(format!("unknown index kind {kind_raw}")))?;
    let len = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    let expect = (bytes.len() - HEADER - 4) as u64;
    if len != expect {
        return Err(IndexError::corrupt(format!(
            "payload length {len} but the file holds {expect} bytes (truncated or extended)"
        )));
    }
    let body = &bytes[..bytes.len() - 4];
    let stored = u32::from_le_bytes(bytes[bytes.len() - 4..].try_into().expect("4 bytes"));
    let crc = crc32c::crc32c(body);
    if crc != stored {
        return Err(IndexError::corrupt(format!(
            "checksum mismatch (stored {stored:08x}, computed {crc:08x})"
        )));
    }
    Ok((kind, &body[HEADER..]))
}

/// Builds a payload, then seals it in the envelope.
pub(crate) struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn new(kind: IndexKind, capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(capacity + HEADER + 4);
        buf.extend_from_slice(&MAGIC);
        buf.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        buf.extend_from_slice(&(kind as u16).to_le_bytes());
        buf.extend_from_slice(&0u64.to_le_bytes());
        Writer { buf }
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub(crate) fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub(crate) fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub(crate) fn u8s(&mut self, v: &[u8]) {
        self.u64(v.len() as u64);
        self.buf.extend_from_slice(v);
    }

    pub(crate) fn u32s(&mut self, v: &[u32]) {
        self.u64(v.len() as u64);
        self.buf.reserve(v.len() * 4);
        for x in v {
            self.buf.extend_from_slice(&x.to_le_bytes());
        }
    }

    pub(crate) fn f32s(&mut self, v: &[f32]) {
        self.u64(v.len() as u64);
        self.buf.reserve(v.len() * 4);
        for x in v {
            self.buf.extend_from_slice(&x.to_le_bytes());
        }
    }

    pub(crate) fn finish(mut self) -> Vec<u8> {
        let len = (self.buf.len() - HEADER) as u64;
        self.buf[8..16].copy_from_slice(&len.to_le_bytes());
        let crc = crc32c::crc32c(&self.buf);
        self.buf.extend_from_slice(&crc.to_le_bytes());
        self.buf
    }
}

/// Reads a payload written by [`Writer`], checking every bound.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Checks the envelope and that it holds `kind`.
    pub(crate) fn open(
        bytes: &'a [u8],
        kinds: &[IndexKind],
    ) -> Result<(IndexKind, Self), IndexError> {
        let (kind, payload) = check_envelope(bytes)?;
        if !kinds.contains(&kind) {
            return Err(IndexError::corrupt(format!(
                "file holds a {kind:?} index, expected one of {kinds:?}"
            )));
        }
        Ok((
            kind,
            Reader {
                buf: payload,
                pos: 0,
            },
        ))
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], IndexError> {
        if self.buf.len() - self.pos < n {
            return Err(IndexError::corrupt(format!(
                "truncated payload reading {what} ({n} bytes at offset {})",
                self.pos
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub(crate) fn u8(&mut self, what: &str) -> Result<u8, IndexError> {
        Ok(self.take(1, what)?[0])
    }

    pub(crate) fn u32(&mut self, what: &str) -> Result<u32, IndexError> {
        Ok(u32::from_le_bytes(
            self.take(4, what)?.try_into().expect("4"),
        ))
    }

    pub(crate) fn u64(&mut self, what: &str) -> Result<u64, IndexError> {
        Ok(u64::from_le_bytes(
            self.take(8, what)?.try_into().expect("8"),
        ))
    }

    /// An array's count, checked against `expect` (when given) and the bytes left.
    fn count(
        &mut self,
        elem: usize,
        expect: Option<usize>,
        what: &str,
    ) -> Result<usize, IndexError> {
        let c = self.u64(what)?;
        if let Some(e) = expect {
            if c != e as u64 {
                return Err(IndexError::corrupt(format!(
                    "{what}: {c} elements, expected {e}"
                )));
            }
        }
        let left = (self.buf.len() - self.pos) as u64;
        if c.checked_mul(elem as u64).is_none_or(|b| b > left) {
            return Err(IndexError::corrupt(format!(
                "{what}: {c} elements do not fit in the {left} bytes left"
            )));
        }
        Ok(c as usize)
    }

    pub(crate) fn u8s(
        &mut self,
        expect: Option<usize>,
        what: &str,
    ) -> Result<&'a [u8], IndexError> {
        let c = self.count(1, expect, what)?;
        self.take(c, what)
    }

    pub(crate) fn u32s(
        &mut self,
        expect: Option<usize>,
        what: &str,
    ) -> Result<Vec<u32>, IndexError> {
        let c = self.count(4, expect, what)?;
        let raw = self.take(c * 4, what)?;
        Ok(raw
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4")))
            .collect())
    }

    pub(crate) fn f32s(
        &mut self,
        expect: Option<usize>,
        what: &str,
    ) -> Result<Vec<f32>, IndexError> {
        let c = self.count(4, expect, what)?;
        let raw = self.take(c * 4, what)?;
        Ok(raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().expect("4")))
            .collect())
    }

    /// Errors unless the whole payload was consumed.
    pub(crate) fn finish(self) -> Result<(), IndexError> {
        if self.pos != self.buf.len() {
            return Err(IndexError::corrupt(format!(
                "{} unexpected bytes after the payload",
                self.buf.len() - self.pos
            )));
        }
        Ok(())
    }
}

pub(crate) fn metric_code(m: quiver_simd::Metric) -> u8 {
    match m {
        quiver_simd::Metric::L2 => 0,
        quiver_simd::Metric::Ip => 1,
        quiver_simd::Metric::Cosine => 2,
    }
}

pub(crate) fn metric_from_code(c: u8) -> Result<quiver_simd::Metric, IndexError> {
    Ok(match c {
        0 => quiver_simd::Metric::L2,
        1 => quiver_simd::Metric::Ip,
        2 => quiver_simd::Metric::Cosine,
        _ => return Err(IndexError::corrupt(format!("unknown metric code {c}"))),
    })
}
