//! Handlers for Search and HybridSearch, and the request/response conversions they share.
//!
//! A `milvus.SearchRequest` becomes an engine [`EngineSearch`]: `topk` (or `limit`), `offset` (a
//! search param, or inside the `params` JSON), `anns_field`, `metric_type`, `params` (index
//! params, and `radius`/`range_filter` for range search), `group_by_field` / `group_size` /
//! `strict_group_size`, the filter `dsl` with its template values, and the query vectors.
//! `round_decimal` (0..=6) rounds the returned scores.
//!
//! HybridSearch converts each sub-request the same way (each has its own vectors, field, filter,
//! params and limit; the top-level partitions apply to a sub-request that names none) and fuses
//! them with the ranker of `rank_params`: `strategy` `rrf` with `params {"k": 60}`, or
//! `weighted` with `params {"weights": [..], "norm_score": true}` (weights in [0, 1], one per
//! sub-request), then `offset`, `limit` and `round_decimal` apply to the fused list.
//!
//! Iterators: a Search with `iterator=True` and `search_iter_v2=True` is one page of a search
//! iterator v2 ([`crate::iterator`]). The v1 iterator (older clients, pymilvus's ORM) needs
//! nothing special: it pages with range search and `pk not in [..]` filters.

use quiver_core::{Error, Result};
use quiver_engine::{
    CollectionMeta, HybridRequest, Ranker, SearchRequest as EngineSearch, SearchResult,
};
use serde_json::Value as Json;

use crate::columns::{column_to_proto, ids};
use crate::data::{output_names, pk_is_varchar};
use crate::params::{query_vectors, template_values, Params, QueryVectors};
use crate::proto::milvus::*;
use crate::proto::schema::SearchResultData;
use crate::service::Ctx;
use crate::status::ok;

/// The engine request for one `SearchRequest`, its key/value params, and its query texts when
/// the query is text (embedded by [`embed_texts`] once the field is known). `default_partitions`
/// apply when the request names none (the top-level partitions of a hybrid search).
pub fn engine_request(
    req: &SearchRequest,
    default_partitions: &[String],
) -> Result<(EngineSearch, Params, Vec<String>)> {
    let p = Params::new(&req.search_params);
    let params = p.json_object("params")?;
    let limit = p.usize("topk")?.or(p.usize("limit")?).ok_or_else(|| {
        Error::InvalidArgument("topk (limit) is required in search_params".into())
    })?;
    let offset = match p.usize("offset")? {
        Some(o) => o,
        None => params.get("offset").and_then(|v| v.as_u64()).unwrap_or(0) as usize,
    };
    let partitions = if req.partition_names.is_empty() {
        default_partitions.to_vec()
    } else {
        req.partition_names.clone()
    };
    let (mut vectors, mut binary_vectors, mut texts, mut sparse_vectors) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    match query_vectors(&req.placeholder_group)? {
        QueryVectors::F32(v) => vectors = v,
        QueryVectors::Binary(v) => binary_vectors = v,
        QueryVectors::Text(t) => texts = t,
        QueryVectors::Sparse(v) => sparse_vectors = v,
    }
    let s = EngineSearch {
        anns_field: p.str("anns_field").map(str::to_string),
        vectors,
        binary_vectors,
        sparse_vectors,
        texts: Vec::new(),
        metric: p.str("metric_type").map(str::to_string),
        limit,
        offset,
        filter: req.dsl.clone(),
        filter_params: template_values(&req.expr_template_values)?,
        output_fields: req.output_fields.clone(),
        partitions,
        radius: None,
        range_filter: None,
        group_by: p.str("group_by_field").map(str::to_string),
        group_size: p.usize("group_size")?,
        strict_group_size: p.bool("strict_group_size"),
        params,
        exact: false,
        index_id: None,
    };
    Ok((s, p, texts))
}

/// Turn query texts into vectors with the TextEmbedding function of the searched field (the
/// request's `anns_field`, else the collection's only function output or only vector field).
/// The output of a BM25 function takes the texts as they are: the engine analyses them.
pub fn embed_texts(
    ctx: &Ctx,
    m: &CollectionMeta,
    s: &mut EngineSearch,
    texts: &[String],
) -> Result<()> {
    if texts.is_empty() {
        return Ok(());
    }
    let field = s.anns_field.clone().filter(|f| !f.is_empty()).or_else(|| {
        let outputs: Vec<&String> = m
            .schema
            .functions
            .iter()
            .filter(|f| {
                f.function_type == crate::functions::TEXT_EMBEDDING
                    || f.function_type == crate::functions::BM25
            })
            .flat_map(|f| &f.output_field_names)
            .collect();
        let vf: Vec<usize> = m.schema.vector_fields().collect();
        match (outputs.as_slice(), vf.as_slice()) {
            ([one], _) => Some((*one).clone()),
            (_, [one]) => Some(m.schema.fields[*one].name.clone()),
            _ => None,
        }
    });
    let sparse = field
        .as_deref()
        .and_then(|f| m.schema.field(f))
        .is_some_and(|f| f.data_type == quiver_core::DataType::SparseFloatVector);
    if sparse {
        s.texts = texts.to_vec();
        s.anns_field = field;
        return Ok(());
    }
    s.vectors = crate::functions::embed_queries(
        ctx.shared.embedders.as_deref(),
        m,
        field.as_deref(),
        texts,
    )?;
    s.anns_field = field;
    Ok(())
}

fn round_scores(scores: &mut [f32], decimals: i64) {
    if (0..=6).contains(&decimals) {
        let f = 10f64.powi(decimals as i32);
        for s in scores {
            *s = ((*s as f64 * f).round() / f) as f32;
        }
    }
}

/// The Milvus response for engine results.
fn results(
    ctx: &Ctx,
    m: &CollectionMeta,
    mut r: SearchResult,
    requested: &[String],
    top_k: usize,
    nq: usize,
    round_decimal: i64,
) -> SearchResults {
    round_scores(&mut r.scores, round_decimal);
    let results = SearchResultData {
        num_queries: nq as i64,
        top_k: top_k as i64,
        fields_data: r.fields.iter().map(column_to_proto).collect(),
        scores: r.scores,
        ids: Some(ids(&r.pks, pk_is_varchar(&m.schema))),
        topks: r.topks.iter().map(|&k| k as i64).collect(),
        output_fields: output_names(&m.schema, requested, &r.fields),
        group_by_field_value: r.group_values.as_ref().map(column_to_proto),
        primary_field_name: m.schema.pk_field().name.clone(),
        ..Default::default()
    };
    SearchResults {
        status: Some(ok()),
        results: Some(results),
        collection_name: m.name.clone(),
        session_ts: ctx.engine().now_ts(),
    }
}

/// A search through a serving alias's name takes the bundle's field and search parameters as
/// defaults (what the request gives wins).
fn apply_bundle(ctx: &Ctx, name: &str, s: &mut EngineSearch) {
    let Some(reg) = &ctx.shared.registry else {
        return;
    };
    let Ok(sa) = reg.serving(name) else {
        return;
    };
    if sa.bundle.db != ctx.db {
        return;
    }
    if s.anns_field.as_deref().is_none_or(str::is_empty) {
        s.anns_field = Some(sa.bundle.field.clone());
    }
    if let Some(defaults) = sa.bundle.search_params.as_object() {
        for (k, v) in defaults {
            s.params.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
}

/// Search: through the running experiment when the collection name is a serving alias that
/// has one (see [`crate::experiments`]), else [`plain_search`].
pub fn search(ctx: &Ctx, req: SearchRequest) -> Result<SearchResults> {
    if let Some(x) = &ctx.shared.experiments {
        if let Some(live) = x.running(&ctx.db, &req.collection_name) {
            return x.search(ctx, &live, req);
        }
    }
    plain_search(ctx, req)
}

/// One search, as the request says (a serving alias's bundle fills in what it leaves out).
pub fn plain_search(ctx: &Ctx, req: SearchRequest) -> Result<SearchResults> {
    let (mut s, p, texts) = engine_request(&req, &[])?;
    apply_bundle(ctx, &req.collection_name, &mut s);
    let round_decimal = p.i64("round_decimal")?.unwrap_or(-1);
    let m = ctx
        .engine()
        .describe_collection(&ctx.db, &req.collection_name)?;
    embed_texts(ctx, &m, &mut s, &texts)?;
    let anns = s.anns_field.clone().filter(|f| !f.is_empty()).or_else(|| {
        let v: Vec<usize> = m.schema.vector_fields().collect();
        (v.len() == 1).then(|| m.schema.fields[v[0]].name.clone())
    });
    if let Some(f) = &anns {
        ctx.check_space(&m, f)?;
    }
    let (nq, limit) = (s.nq(), s.limit);
    if p.bool("iterator") && p.bool("search_iter_v2") {
        let (r, info) = crate::iterator::search_page(ctx, &m, &req.collection_name, s, &p)?;
        let mut resp = results(ctx, &m, r, &req.output_fields, limit, nq, round_decimal);
        if let Some(data) = resp.results.as_mut() {
            data.search_iterator_v2_results = Some(info);
        }
        return Ok(resp);
    }
    let r = ctx.engine().search(&ctx.db, &req.collection_name, &s)?;
    if let Some(f) = &anns {
        ctx.shared.query_log.record(m.id, f, &s.vectors);
    }
    Ok(results(
        ctx,
        &m,
        r,
        &req.output_fields,
        limit,
        nq,
        round_decimal,
    ))
}

fn number(v: &Json, what: &str) -> Result<f64> {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        .ok_or_else(|| Error::InvalidArgument(format!("{what} must be a number, got {v}")))
}

/// The ranker of a hybrid search's `rank_params`.
pub fn ranker(rank: &Params) -> Result<Ranker> {
    let params = rank.json_object("params")?;
    let strategy = rank.str("strategy").unwrap_or("rrf").to_ascii_lowercase();
    match strategy.as_str() {
        "rrf" => {
            let k = match params.get("k") {
                None => 60.0,
                Some(v) => number(v, "the RRF parameter k")?,
            };
            Ok(Ranker::Rrf { k })
        }
        "weighted" => {
            let weights = params
                .get("weights")
                .and_then(Json::as_array)
                .ok_or_else(|| {
                    Error::InvalidArgument(
                        "the weighted ranker needs params {\"weights\": [..]}".into(),
                    )
                })?
                .iter()
                .map(|w| number(w, "a rank weight"))
                .collect::<Result<Vec<f64>>>()?;
            if let Some(w) = weights.iter().find(|w| !(0.0..=1.0).contains(*w)) {
                return Err(Error::InvalidArgument(format!(
                    "rank param weight should be in range [0, 1], got {w}"
                )));
            }
            let normalize = match params.get("norm_score") {
                None | Some(Json::Null) => true,
                Some(Json::Bool(b)) => *b,
                Some(Json::String(s)) if s.eq_ignore_ascii_case("true") => true,
                Some(Json::String(s)) if s.eq_ignore_ascii_case("false") => false,
                Some(other) => {
                    return Err(Error::InvalidArgument(format!(
                        "norm_score must be a boolean, got {other}"
                    )))
                }
            };
            Ok(Ranker::Weighted { weights, normalize })
        }
        other => Err(Error::InvalidArgument(format!(
            "unsupported rank strategy {other:?} (expected rrf or weighted)"
        ))),
    }
}

pub fn hybrid_search(ctx: &Ctx, req: HybridSearchRequest) -> Result<SearchResults> {
    let rank = Params::new(&req.rank_params);
    if rank.str("group_by_field").is_some() {
        return Err(Error::Unsupported("group-by in a hybrid search".into()));
    }
    let ranker = ranker(&rank)?;
    let limit = rank
        .usize("limit")?
        .ok_or_else(|| Error::InvalidArgument("limit is required in rank_params".into()))?;
    let offset = rank.usize("offset")?.unwrap_or(0);
    let round_decimal = rank.i64("round_decimal")?.unwrap_or(-1);
    let m = ctx
        .engine()
        .describe_collection(&ctx.db, &req.collection_name)?;
    let requests = req
        .requests
        .iter()
        .map(|r| {
            let (mut s, _, texts) = engine_request(r, &req.partition_names)?;
            embed_texts(ctx, &m, &mut s, &texts)?;
            Ok(s)
        })
        .collect::<Result<Vec<_>>>()?;
    let nq = requests.first().map_or(0, |r| r.nq());
    let h = HybridRequest {
        requests,
        ranker,
        limit,
        offset,
        output_fields: req.output_fields.clone(),
    };
    let r = ctx
        .engine()
        .hybrid_search(&ctx.db, &req.collection_name, &h)?;
    Ok(results(
        ctx,
        &m,
        r,
        &req.output_fields,
        limit,
        nq,
        round_decimal,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::common::KeyValuePair;

    fn kv(k: &str, v: &str) -> KeyValuePair {
        KeyValuePair {
            key: k.into(),
            value: v.into(),
        }
    }

    #[test]
    fn rounding_only_for_non_negative_decimals() {
        let mut s = [0.123456f32, 1.98765];
        round_scores(&mut s, -1);
        assert_eq!(s, [0.123456, 1.98765]);
        round_scores(&mut s, 2);
        assert_eq!(s, [0.12, 1.99]);
    }

    #[test]
    fn rankers_parse() {
        let p = Params::new(&[kv("strategy", "rrf"), kv("params", r#"{"k": 10}"#)]);
        assert_eq!(ranker(&p).unwrap(), Ranker::Rrf { k: 10.0 });
        let p = Params::new(&[kv("strategy", "rrf")]);
        assert_eq!(ranker(&p).unwrap(), Ranker::Rrf { k: 60.0 });
        let p = Params::new(&[
            kv("strategy", "weighted"),
            kv("params", r#"{"weights": [0.25, 1], "norm_score": false}"#),
        ]);
        assert_eq!(
            ranker(&p).unwrap(),
            Ranker::Weighted {
                weights: vec![0.25, 1.0],
                normalize: false
            }
        );
        let p = Params::new(&[
            kv("strategy", "weighted"),
            kv("params", r#"{"weights": [0.5]}"#),
        ]);
        assert_eq!(
            ranker(&p).unwrap(),
            Ranker::Weighted {
                weights: vec![0.5],
                normalize: true
            }
        );
        for bad in [
            r#"{"weights": [1.5]}"#,
            r#"{"weights": "x"}"#,
            r#"{"weights": [0.5], "norm_score": 3}"#,
        ] {
            let p = Params::new(&[kv("strategy", "weighted"), kv("params", bad)]);
            assert!(ranker(&p).is_err(), "{bad}");
        }
        assert!(ranker(&Params::new(&[kv("strategy", "max")])).is_err());
    }
}
