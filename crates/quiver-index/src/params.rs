//! Milvus index parameters: names, defaults, ranges, and parsing.
//!
//! | index type  | build params (default)                      | search params (default)            |
//! |-------------|---------------------------------------------|------------------------------------|
//! | `FLAT`      | none                                        | none                               |
//! | `HNSW`      | `M` in [2, 2048] (16), `efConstruction` in [1, 2^31-1] (200) | `ef` in [1, 2^31-1] ([`DEFAULT_EF`]) |
//! | `AUTOINDEX` | HNSW with [`AUTOINDEX_M`], [`AUTOINDEX_EF_CONSTRUCTION`] | `ef`, or `level` in [1, 5]  |
//! | `IVF_FLAT`  | `nlist` in [1, 65536] (128)                 | `nprobe` in [1, nlist] (8)         |
//! | `IVF_SQ8`   | `nlist`                                     | `nprobe`, `refine_k` in [1, 100] (1) |
//! | `IVF_PQ`    | `nlist`, `m` (required, divides dim), `nbits` in [1, 16] (8) | `nprobe`, `refine_k` (1) |
//!
//! Quiver-only build keys: `seed` (u64, default 42: builds are reproducible
//! with one thread), `traversal` (HNSW: `sq4` (default), `sq8` or `f32`:
//! what the search walks on, see [`Traversal`]). Other keys (`metric_type`, `index_type`, unknown names)
//! are ignored, as Milvus does.
//!
//! Choices where Milvus differs or is unspecified (documented, deliberate):
//! * `ef < k` is not an error: search raises `ef` to `k` (knowhere 2.3
//!   refused it with "ef should be larger than k"; newer versions clamp).
//! * A missing `ef` means [`DEFAULT_EF`] (knowhere: `max(k, 16)`), because
//!   a default should keep recall@10 above 0.99 on real embeddings, and
//!   traversal on 4-bit codes makes a wider beam cheap.
//! * `AUTOINDEX` ignores user `M` / `efConstruction` (as Milvus does) and
//!   uses the values tuned on wn-gloss (see [`AUTOINDEX_M`]); its search
//!   `level` `L` maps to `ef = DEFAULT_EF << (L - 1)`.
//! * `refine_k` (Milvus 2.5's name for re-ranking depth): SQ8 and PQ
//!   candidates, `ceil(k * refine_k)` of them, are re-scored with the
//!   segment's `f32` rows, so the scores returned are always exact.
//! * `m` must divide `dim`; that is checked when the index is built
//!   ([`IndexSpec::check_dim`]), since parsing does not know `dim`.

use std::collections::BTreeMap;

use crate::IndexError;

/// `ef` used when a search gives none. Measured on wn-gloss through the engine (M 16,
/// efConstruction 200, one search thread): ef 64 gives recall@10 0.990 at 12.8k QPS, 96 gives
/// 0.994 at 9.4k, 128 gives 0.996 at 7.5k. A default should leave a margin above 0.99 on real
/// embeddings (Milvus Lite's default HNSW reaches 0.992 on the same set); behind a server the
/// per-request cost dwarfs the difference (about 1.6k requests/s either way).
pub const DEFAULT_EF: usize = 128;
/// HNSW `M` when none is given.
pub const DEFAULT_M: usize = 16;
/// HNSW `efConstruction` when none is given.
pub const DEFAULT_EF_CONSTRUCTION: usize = 200;
/// `M` of AUTOINDEX. Measured on wn-gloss (SQ4 traversal, one search
/// thread, QPS at recall@10 0.99 / build CPU / index MiB): M 16 efC 200:
/// 12.5k / 23 s / 33.6; M 24 efC 200: 12.0k / 28 s / 40.1; M 30 efC 360
/// (Milvus's HNSW defaults): 13.9k / 54 s / 45.0; M 16 efC 400: 14.1k /
/// 46 s / 33.6. The larger settings buy ~10% QPS for 2-2.3x build time
/// (and, for M 30, a third more graph memory); a background per-segment
/// build favours M 16 efC 200.
pub const AUTOINDEX_M: usize = 16;
/// `efConstruction` of AUTOINDEX.
pub const AUTOINDEX_EF_CONSTRUCTION: usize = 200;
/// IVF `nlist` when none is given (Milvus's default).
pub const DEFAULT_NLIST: usize = 128;
/// IVF `nprobe` when none is given (Milvus's default).
pub const DEFAULT_NPROBE: usize = 8;
/// Seed when none is given.
pub const DEFAULT_SEED: u64 = 42;

const INT_MAX: u64 = i32::MAX as u64;

/// What HNSW computes distances on while walking the graph. The results
/// are always re-scored with the segment's `f32` rows.
///
/// Measured on wn-gloss (107k x 384, M 16, one search thread, this
/// machine): SQ4 and SQ8 give the same recall@10 at a given `ef` (within
/// 0.001), SQ4 at about 1.3x the QPS of SQ8 (half the bytes per distance:
/// graph search is bound by memory traffic) and 2.5-2.9x hnswlib's QPS at
/// equal recall; SQ4 adds `dim / 2` bytes a row, so index plus rows stay
/// within 2% of hnswlib's memory. Hence SQ4 is the default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Traversal {
    /// The segment's `f32` rows (no extra memory, slowest).
    F32,
    /// SQ8 codes held by the index (`dim` bytes a row).
    Sq8,
    /// SQ4 codes held by the index (`dim / 2` bytes a row). Default.
    Sq4,
}

/// HNSW build parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct HnswParams {
    /// Max neighbours per node on upper levels; level 0 holds `2 * M`.
    pub m: usize,
    /// Beam width while inserting.
    pub ef_construction: usize,
    /// Seed of the level draws.
    pub seed: u64,
    /// Distance representation during search.
    pub traversal: Traversal,
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams {
            m: DEFAULT_M,
            ef_construction: DEFAULT_EF_CONSTRUCTION,
            seed: DEFAULT_SEED,
            traversal: Traversal::Sq4,
        }
    }
}

/// How IVF lists store the rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IvfStorage {
    /// Row ids only; the segment's `f32` rows are scanned.
    Flat,
    /// SQ8 codes (one byte per dimension).
    Sq8,
    /// PQ codes: `m` sub-quantisers of `2^nbits` centroids each, on residuals.
    Pq {
        /// Number of sub-vectors (divides `dim`).
        m: usize,
        /// Bits per sub-vector code, 1..=16.
        nbits: u32,
    },
}

/// IVF build parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct IvfParams {
    /// Number of k-means lists.
    pub nlist: usize,
    /// What the lists hold.
    pub storage: IvfStorage,
    /// Seed of sampling and k-means++.
    pub seed: u64,
    /// Lloyd iterations.
    pub iters: usize,
}

impl IvfParams {
    /// Defaults for a storage kind (Milvus's `nlist` = 128, 10 iterations).
    pub fn new(nlist: usize, storage: IvfStorage) -> Self {
        IvfParams {
            nlist,
            storage,
            seed: DEFAULT_SEED,
            iters: 10,
        }
    }
}

/// A validated index definition.
#[derive(Clone, Debug, PartialEq)]
pub enum IndexSpec {
    /// Exact search; nothing to build.
    Flat,
    /// HNSW (also what AUTOINDEX means).
    Hnsw(HnswParams),
    /// IVF_FLAT, IVF_SQ8 or IVF_PQ.
    Ivf(IvfParams),
}

impl IndexSpec {
    /// The Milvus index type name.
    pub fn index_type(&self) -> &'static str {
        match self {
            IndexSpec::Flat => "FLAT",
            IndexSpec::Hnsw(_) => "HNSW",
            IndexSpec::Ivf(p) => match p.storage {
                IvfStorage::Flat => "IVF_FLAT",
                IvfStorage::Sq8 => "IVF_SQ8",
                IvfStorage::Pq { .. } => "IVF_PQ",
            },
        }
    }

    /// Checks what depends on the vector dimension (`m` divides `dim`).
    pub fn check_dim(&self, dim: usize) -> Result<(), IndexError> {
        if let IndexSpec::Ivf(IvfParams {
            storage: IvfStorage::Pq { m, .. },
            ..
        }) = self
        {
            if dim == 0 || !dim.is_multiple_of(*m) {
                return Err(IndexError::invalid(
                    "m",
                    m,
                    format!("a divisor of dim {dim}"),
                ));
            }
        }
        Ok(())
    }
}

/// Validated search parameters.
#[derive(Clone, Debug, PartialEq)]
pub enum SearchParams {
    /// Exact search.
    Flat,
    /// HNSW beam width (raised to `k` at search time).
    Hnsw {
        /// Beam width.
        ef: usize,
    },
    /// IVF probing.
    Ivf {
        /// Lists probed.
        nprobe: usize,
        /// Re-ranking depth factor for SQ8 / PQ (`>= 1`).
        refine_k: f32,
    },
}

fn parse_int(name: &str, raw: &str, lo: u64, hi: u64, allowed: &str) -> Result<u64, IndexError> {
    let v: u64 = raw
        .trim()
        .parse()
        .map_err(|_| IndexError::invalid(name, raw, allowed))?;
    if v < lo || v > hi {
        return Err(IndexError::invalid(name, raw, allowed));
    }
    Ok(v)
}

fn get_int(
    params: &BTreeMap<String, String>,
    name: &str,
    lo: u64,
    hi: u64,
    default: Option<u64>,
) -> Result<u64, IndexError> {
    let allowed = format!("integer in [{lo}, {hi}]");
    match params.get(name) {
        Some(raw) => parse_int(name, raw, lo, hi, &allowed),
        None => default.ok_or(IndexError::MissingParam {
            name: name.to_string(),
            allowed,
        }),
    }
}

fn seed(params: &BTreeMap<String, String>) -> Result<u64, IndexError> {
    get_int(params, "seed", 0, u64::MAX, Some(DEFAULT_SEED))
}

/// Maps a Milvus `index_type` and its build parameters (as strings, the way
/// `CreateIndex` sends them) to a validated [`IndexSpec`]. The type name is
/// case-insensitive; see the module docs for names, defaults and ranges.
pub fn parse_build_params(
    index_type: &str,
    params: &BTreeMap<String, String>,
) -> Result<IndexSpec, IndexError> {
    let t = index_type.trim().to_ascii_uppercase();
    let ivf = |storage| -> Result<IndexSpec, IndexError> {
        let nlist = get_int(params, "nlist", 1, 65536, Some(DEFAULT_NLIST as u64))? as usize;
        let mut p = IvfParams::new(nlist, storage);
        p.seed = seed(params)?;
        Ok(IndexSpec::Ivf(p))
    };
    match t.as_str() {
        "FLAT" => Ok(IndexSpec::Flat),
        "HNSW" => {
            let m = get_int(params, "M", 2, 2048, Some(DEFAULT_M as u64))? as usize;
            let ef_construction = get_int(
                params,
                "efConstruction",
                1,
                INT_MAX,
                Some(DEFAULT_EF_CONSTRUCTION as u64),
            )? as usize;
            let traversal = match params
                .get("traversal")
                .map(|s| s.trim().to_ascii_lowercase())
            {
                None => Traversal::Sq4,
                Some(s) if s == "sq8" => Traversal::Sq8,
                Some(s) if s == "sq4" => Traversal::Sq4,
                Some(s) if s == "f32" => Traversal::F32,
                Some(s) => return Err(IndexError::invalid("traversal", s, "sq8, sq4 or f32")),
            };
            Ok(IndexSpec::Hnsw(HnswParams {
                m,
                ef_construction,
                seed: seed(params)?,
                traversal,
            }))
        }
        "AUTOINDEX" => Ok(IndexSpec::Hnsw(HnswParams {
            m: AUTOINDEX_M,
            ef_construction: AUTOINDEX_EF_CONSTRUCTION,
            seed: seed(params)?,
            traversal: Traversal::Sq4,
        })),
        "IVF_FLAT" => ivf(IvfStorage::Flat),
        "IVF_SQ8" => ivf(IvfStorage::Sq8),
        "IVF_PQ" => {
            let m = get_int(params, "m", 1, 65536, None)? as usize;
            let nbits = get_int(params, "nbits", 1, 16, Some(8))? as u32;
            ivf(IvfStorage::Pq { m, nbits })
        }
        _ => Err(IndexError::UnsupportedIndexType(index_type.to_string())),
    }
}

fn json_int(
    params: &serde_json::Map<String, serde_json::Value>,
    name: &str,
    lo: u64,
    hi: u64,
) -> Result<Option<u64>, IndexError> {
    let allowed = format!("integer in [{lo}, {hi}]");
    let Some(v) = params.get(name) else {
        return Ok(None);
    };
    let raw = match v {
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::String(s) => s.clone(),
        other => return Err(IndexError::invalid(name, other, allowed)),
    };
    parse_int(name, &raw, lo, hi, &allowed).map(Some)
}

/// Validates the `params` object of a Milvus search request against an
/// index: `ef` (and AUTOINDEX's `level`) for HNSW, `nprobe` and `refine_k`
/// for IVF. Values may be JSON numbers or numeric strings; other keys are
/// ignored.
pub fn parse_search_params(
    spec: &IndexSpec,
    params: &serde_json::Map<String, serde_json::Value>,
) -> Result<SearchParams, IndexError> {
    match spec {
        IndexSpec::Flat => Ok(SearchParams::Flat),
        IndexSpec::Hnsw(_) => {
            let ef = match json_int(params, "ef", 1, INT_MAX)? {
                Some(ef) => ef as usize,
                None => match json_int(params, "level", 1, 5)? {
                    Some(l) => DEFAULT_EF << (l - 1),
                    None => DEFAULT_EF,
                },
            };
            Ok(SearchParams::Hnsw { ef })
        }
        IndexSpec::Ivf(p) => {
            let nprobe = json_int(params, "nprobe", 1, p.nlist as u64)?
                .map_or(DEFAULT_NPROBE.min(p.nlist), |v| v as usize);
            let refine_k = match params.get("refine_k") {
                None => 1.0,
                Some(v) => {
                    let f = match v {
                        serde_json::Value::Number(n) => n.as_f64(),
                        serde_json::Value::String(s) => s.trim().parse().ok(),
                        _ => None,
                    };
                    match f {
                        Some(f) if (1.0..=100.0).contains(&f) => f as f32,
                        _ => return Err(IndexError::invalid("refine_k", v, "number in [1, 100]")),
                    }
                }
            };
            Ok(SearchParams::Ivf { nprobe, refine_k })
        }
    }
}

/// Whether a planner should scan the `n_allowed` candidate rows exactly
/// rather than walk an HNSW graph over `n_total` rows for the top `k`.
///
/// Cost model, fitted on wn-gloss (107k x 384, SQ4 traversal, default `ef`,
/// one thread; `examples/bench_ann.rs --filter`): a filtered walk must
/// visit about `1 / selectivity` times the nodes of an unfiltered one
/// (~0.7 us x `ef` / selectivity: 0.5 ms at 10%, 0.9 ms at 5%, 3 ms at 1%),
/// an exact scan costs ~0.14 us per allowed row (1,044 rows: 0.12 ms;
/// 10,722 rows: 1.5 ms). So scan when `n_allowed * selectivity < 5 *
/// max(k, 64)`: below ~5.5% selectivity on 107k rows, ~1.8% on 1M. Tiny
/// candidate sets (<= 1,024 rows, or <= 2 k) and empty segments always
/// scan.
pub fn should_brute_force(n_allowed: usize, n_total: usize, k: usize) -> bool {
    if n_total == 0 || n_allowed <= 1024 || n_allowed <= k.saturating_mul(2) {
        return true;
    }
    let sel = n_allowed as f64 / n_total as f64;
    (n_allowed as f64) * sel < 5.0 * k.max(DEFAULT_EF) as f64
}
