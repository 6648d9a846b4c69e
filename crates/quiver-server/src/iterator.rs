//! Search iterator v2 (pymilvus's `search_iterator`): paging through one query's hits in search
//! order (score, then primary key) without repeating or skipping a hit.
//!
//! The client sends `iterator=True`, `search_iter_v2=True` and the batch size as `topk`; from the
//! second page on it also sends `search_iter_id` (the token of our first answer) and
//! `search_iter_last_bound` (the score of the last hit we returned). Every answer carries
//! `search_iterator_v2_results {token, last_bound}`; a non-empty token is how the client knows
//! that the server speaks v2 (an empty one makes it fall back to the v1 iterator).
//!
//! A page after a bound `b` is:
//! 1. the hits whose score equals `b` and whose key is greater than the last key returned (a range
//!    search pinned to `b`, with `pk > cursor` added to the filter), then, if the page is not full,
//! 2. the hits strictly worse than `b` (a range search just below `b`).
//!
//! Ranges are set in f32 with the neighbouring float of `b`, so "equal" and "strictly worse" are
//! exact; a radius/range_filter the user gave is intersected with each page's range. The last key
//! of each page is kept per token in a bounded map (entries expire after [`TTL`]). Without it
//! (expired, or the server restarted) step 1 is skipped: hits tied with the bound are then lost,
//! as in Milvus. A score recomputed differently between pages (a growing segment sealed in
//! between uses another kernel, which may round the last bit differently) can do the same.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use quiver_core::{Error, Result};
use quiver_engine::{CollectionMeta, Pk, SearchRequest as EngineSearch, SearchResult};
use serde_json::Value as Json;

use crate::params::Params;
use crate::proto::schema::SearchIteratorV2Results;
use crate::service::Ctx;

/// How long an iterator's cursor is kept after its last page.
pub const TTL: Duration = Duration::from_secs(30 * 60);
/// Most iterators remembered at once (the least recently used are dropped first).
pub const MAX_ITERATORS: usize = 4096;
/// Cursors kept per iterator (a retried page finds its cursor too).
const PER_ITERATOR: usize = 4;

/// The template parameter that carries the cursor key into the filter.
const CURSOR_PARAM: &str = "quiver_iter_cursor";

struct Entry {
    /// (bound as f32 bits, last key at that bound), newest last.
    cursors: Vec<(u32, Pk)>,
    used: Instant,
}

/// The last key of every live iterator.
#[derive(Default)]
pub struct Cursors {
    map: Mutex<HashMap<String, Entry>>,
}

impl std::fmt::Debug for Cursors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cursors").finish_non_exhaustive()
    }
}

impl Cursors {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remember that the page of `token` ended at (`bound`, `pk`).
    pub fn remember(&self, token: &str, bound: f32, pk: Pk) {
        let mut map = self.lock();
        let now = Instant::now();
        if !map.contains_key(token) && map.len() >= MAX_ITERATORS {
            map.retain(|_, e| now.duration_since(e.used) < TTL);
            if map.len() >= MAX_ITERATORS {
                if let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, e)| e.used)
                    .map(|(k, _)| k.clone())
                {
                    map.remove(&oldest);
                }
            }
        }
        let e = map.entry(token.to_string()).or_insert_with(|| Entry {
            cursors: Vec::new(),
            used: now,
        });
        e.used = now;
        e.cursors.retain(|(b, _)| *b != bound.to_bits());
        e.cursors.push((bound.to_bits(), pk));
        if e.cursors.len() > PER_ITERATOR {
            e.cursors.remove(0);
        }
    }

    /// The last key returned at `bound` by `token`'s pages, if still known.
    pub fn lookup(&self, token: &str, bound: f32) -> Option<Pk> {
        let mut map = self.lock();
        let e = map.get_mut(token)?;
        if Instant::now().duration_since(e.used) >= TTL {
            map.remove(token);
            return None;
        }
        e.used = Instant::now();
        e.cursors
            .iter()
            .rev()
            .find(|(b, _)| *b == bound.to_bits())
            .map(|(_, pk)| pk.clone())
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The next float towards +infinity.
fn next_up(x: f32) -> f32 {
    if x.is_nan() || x == f32::INFINITY {
        return x;
    }
    if x == 0.0 {
        return f32::from_bits(1);
    }
    let bits = x.to_bits();
    f32::from_bits(if x > 0.0 { bits + 1 } else { bits - 1 })
}

/// The next float towards -infinity.
fn next_down(x: f32) -> f32 {
    -next_up(-x)
}

/// Which hits relative to the bound a page search keeps.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Band {
    Equal(f32),
    Worse(f32),
}

/// A number in the search `params` (range search bounds).
fn param_f32(s: &EngineSearch, key: &str) -> Option<f32> {
    s.params.get(key).and_then(|v| {
        v.as_f64()
            .or_else(|| v.as_str().and_then(|t| t.trim().parse().ok()))
            .map(|f| f as f32)
    })
}

/// Restrict `s` to `band` intersected with the user's own range. `false` if nothing is left.
///
/// The engine keeps `radius < d <= range_filter` when larger scores are better and
/// `range_filter <= d < radius` otherwise.
fn restrict(s: &mut EngineSearch, higher_is_better: bool, band: Band) -> bool {
    let (user_radius, user_filter) = (param_f32(s, "radius"), param_f32(s, "range_filter"));
    let (radius, range_filter) = if higher_is_better {
        // (exclusive low, inclusive high)
        let (lo, hi) = match band {
            Band::Equal(b) => (next_down(b), b),
            Band::Worse(b) => (f32::NEG_INFINITY, next_down(b)),
        };
        let lo = user_radius.map_or(lo, |r| lo.max(r));
        let hi = user_filter.map_or(hi, |f| hi.min(f));
        if lo >= hi {
            return false;
        }
        (lo, hi)
    } else {
        // (exclusive high, inclusive low)
        let (hi, lo) = match band {
            Band::Equal(b) => (next_up(b), b),
            Band::Worse(b) => (f32::INFINITY, next_up(b)),
        };
        let hi = user_radius.map_or(hi, |r| hi.min(r));
        let lo = user_filter.map_or(lo, |f| lo.max(f));
        if lo >= hi {
            return false;
        }
        (hi, lo)
    };
    s.radius = Some(radius as f64);
    s.range_filter = Some(range_filter as f64);
    true
}

/// Whether larger scores rank first for this search (IP, COSINE) or smaller ones (L2).
fn higher_is_better(m: &CollectionMeta, s: &EngineSearch) -> bool {
    let field = match s.anns_field.as_deref().filter(|f| !f.is_empty()) {
        Some(f) => Some(f.to_string()),
        None => m
            .schema
            .vector_fields()
            .next()
            .map(|i| m.schema.fields[i].name.clone()),
    };
    let metric = s
        .metric
        .clone()
        .filter(|x| !x.is_empty())
        .or_else(|| {
            field
                .as_deref()
                .and_then(|f| m.index_on(f))
                .and_then(|i| i.metric())
                .map(str::to_string)
        })
        .unwrap_or_else(|| {
            let binary = field
                .as_deref()
                .and_then(|f| m.schema.field(f))
                .is_some_and(|f| f.data_type == quiver_core::DataType::BinaryVector);
            if binary { "HAMMING" } else { "COSINE" }.into()
        });
    !(metric.eq_ignore_ascii_case("L2")
        || metric.eq_ignore_ascii_case("HAMMING")
        || metric.eq_ignore_ascii_case("JACCARD"))
}

/// Append `b`'s hits to `a`'s (both for one query, with the same output columns).
fn concat(mut a: SearchResult, b: SearchResult) -> SearchResult {
    if a.pks.is_empty() {
        return b;
    }
    if b.pks.is_empty() {
        return a;
    }
    for (ca, cb) in a.fields.iter_mut().zip(&b.fields) {
        for row in 0..cb.column.len() {
            ca.column.push_from(&cb.column, row);
        }
    }
    a.pks.extend(b.pks);
    a.scores.extend(b.scores);
    a.topks = vec![a.pks.len()];
    a
}

fn pk_json(pk: &Pk) -> Json {
    match pk {
        Pk::Int(i) => Json::from(*i),
        Pk::Str(s) => Json::String(s.clone()),
    }
}

/// One page of a search iterator v2 (see the module docs).
pub fn search_page(
    ctx: &Ctx,
    m: &CollectionMeta,
    coll: &str,
    mut s: EngineSearch,
    p: &Params,
) -> Result<(SearchResult, SearchIteratorV2Results)> {
    if s.nq() != 1 {
        return Err(Error::InvalidArgument(
            "a search iterator searches exactly one query vector".into(),
        ));
    }
    if s.group_by.as_deref().is_some_and(|g| !g.is_empty()) {
        return Err(Error::Unsupported("group-by in a search iterator".into()));
    }
    s.offset = 0;
    let batch = s.limit;
    let token = match p.str("search_iter_id") {
        Some(t) => t.to_string(),
        None => format!("quiver-{:x}", ctx.engine().now_ts()),
    };
    let bound = p
        .str("search_iter_last_bound")
        .map(|b| {
            b.parse::<f32>().map_err(|_| {
                Error::InvalidArgument(format!(
                    "search_iter_last_bound must be a number, got {b:?}"
                ))
            })
        })
        .transpose()?;
    let engine = ctx.engine();
    let page = match bound {
        None => engine.search(&ctx.db, coll, &s)?,
        Some(bound) => {
            let higher = higher_is_better(m, &s);
            let mut page = SearchResult {
                topks: vec![0],
                ..Default::default()
            };
            if let Some(cursor) = ctx.shared.cursors.lookup(&token, bound) {
                let mut ties = s.clone();
                if restrict(&mut ties, higher, Band::Equal(bound)) {
                    let pk = &m.schema.pk_field().name;
                    ties.filter = if s.filter.trim().is_empty() {
                        format!("{pk} > {{{CURSOR_PARAM}}}")
                    } else {
                        format!("({}) and {pk} > {{{CURSOR_PARAM}}}", s.filter)
                    };
                    ties.filter_params
                        .insert(CURSOR_PARAM.into(), pk_json(&cursor));
                    page = engine.search(&ctx.db, coll, &ties)?;
                }
            }
            if page.pks.len() < batch {
                let mut worse = s.clone();
                worse.limit = batch - page.pks.len();
                if restrict(&mut worse, higher, Band::Worse(bound)) {
                    page = concat(page, engine.search(&ctx.db, coll, &worse)?);
                }
            }
            page
        }
    };
    let last_bound = page.scores.last().copied().or(bound).unwrap_or(0.0);
    if let (Some(&score), Some(pk)) = (page.scores.last(), page.pks.last()) {
        ctx.shared.cursors.remember(&token, score, pk.clone());
    }
    Ok((page, SearchIteratorV2Results { token, last_bound }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbouring_floats() {
        assert_eq!(next_up(1.0), 1.0 + f32::EPSILON);
        assert!(next_down(1.0) < 1.0 && next_up(next_down(1.0)) == 1.0);
        assert_eq!(next_up(0.0), f32::from_bits(1));
        assert_eq!(next_down(0.0), -f32::from_bits(1));
        assert!(next_up(-1.0) > -1.0 && next_down(next_up(-1.0)) == -1.0);
        assert_eq!(next_up(f32::INFINITY), f32::INFINITY);
    }

    #[test]
    fn bands_and_user_ranges() {
        let mut s = EngineSearch::default();
        assert!(restrict(&mut s, true, Band::Equal(0.5)));
        assert_eq!(
            (s.radius, s.range_filter),
            (Some(next_down(0.5) as f64), Some(0.5))
        );
        assert!(restrict(&mut s, true, Band::Worse(0.5)));
        assert_eq!(
            (s.radius, s.range_filter),
            (Some(f64::NEG_INFINITY), Some(next_down(0.5) as f64))
        );
        assert!(restrict(&mut s, false, Band::Worse(2.0)));
        assert_eq!(
            (s.radius, s.range_filter),
            (Some(f64::INFINITY), Some(next_up(2.0) as f64))
        );
        // A user range that ends above the bound leaves nothing below it.
        s.params.insert("radius".into(), serde_json::json!(0.8));
        assert!(!restrict(&mut s, true, Band::Worse(0.5)));
        assert!(restrict(&mut s, true, Band::Worse(0.9)));
        assert_eq!(s.radius, Some(0.8f32 as f64));
        // L2: the user's radius caps the worse band.
        s.params.insert("radius".into(), serde_json::json!(3.0));
        assert!(restrict(&mut s, false, Band::Worse(2.0)));
        assert_eq!(s.radius, Some(3.0));
        assert!(!restrict(&mut s, false, Band::Worse(3.0)));
    }

    #[test]
    fn cursors_are_bounded_and_found_by_bound() {
        let c = Cursors::default();
        c.remember("t", 0.5, Pk::Int(3));
        c.remember("t", 0.25, Pk::Int(9));
        assert_eq!(c.lookup("t", 0.5), Some(Pk::Int(3)));
        assert_eq!(c.lookup("t", 0.25), Some(Pk::Int(9)));
        assert_eq!(c.lookup("t", 0.125), None);
        assert_eq!(c.lookup("u", 0.5), None);
        for i in 0..PER_ITERATOR + 2 {
            c.remember("t", i as f32, Pk::Int(i as i64));
        }
        assert_eq!(c.lookup("t", 0.5), None);
        for i in 0..MAX_ITERATORS + 10 {
            c.remember(&format!("k{i}"), 1.0, Pk::Int(1));
        }
        assert!(c.len() <= MAX_ITERATORS);
        assert_eq!(
            c.lookup(&format!("k{}", MAX_ITERATORS + 9), 1.0),
            Some(Pk::Int(1))
        );
    }
}
