//! `entities/*`: insert, upsert, delete, get, query, search, hybrid_search.
//!
//! Each builds the gRPC request Milvus's REST layer builds: rows become `FieldData` columns
//! (after a DescribeCollection for the schema, as Milvus does), `get`/`delete` by `id` become
//! `pk in [...]` filters, `query` sends `limit`/`offset` query params (no limit for
//! `count(*)`), and `search` sends `topk`, `offset`, `anns_field`, `metric_type`, the
//! `searchParams.params` object as the `params` JSON, grouping keys, and the query vectors as a
//! FloatVector placeholder group. Search hits come back flattened over all query vectors, each
//! `{<pk>: id, "distance": score, ...output fields}`, with `topks` (hits per query vector) to
//! split them.

use serde_json::{json, Value as Json};

use super::body::Body;
use super::collections::describe_schema;
use super::rows::{self, ids_json, pk_filter, placeholder_group, result_rows};
use super::{offload, rest_code, rpc, Call, RestError, RestResult};
use crate::proto::common::{DslType, KeyValuePair};
use crate::proto::milvus::*;
use crate::proto::schema as pb;

fn kv(key: &str, value: impl Into<String>) -> KeyValuePair {
    KeyValuePair {
        key: key.into(),
        value: value.into(),
    }
}

/// `{"code":0,"data":data,"cost":0}`: DML and read answers carry Milvus's `cost` key.
fn ok_cost(data: Json) -> RestResult {
    Ok(json!({"code": 0, "cost": 0, "data": data}))
}

/// The rows of an insert/upsert: `data` is a list of row objects (or one object).
fn data_rows(b: &Body) -> Result<Vec<Json>, RestError> {
    let rows = match b.get("data") {
        Some(Json::Array(a)) => a.clone(),
        Some(o @ Json::Object(_)) => vec![o.clone()],
        Some(_) => return Err(RestError::format("data must be a list of row objects")),
        None => vec![],
    };
    if rows.is_empty() {
        return Err(RestError::missing("data"));
    }
    Ok(rows)
}

async fn schema_of(call: &Call, name: &str) -> Result<pb::CollectionSchema, RestError> {
    Ok(describe_schema(call, name)
        .await?
        .schema
        .unwrap_or_default())
}

/// `entities/insert` (`upsert == false`) and `entities/upsert`.
pub async fn insert(call: Call, b: Body, upsert: bool) -> RestResult {
    let name = b.str("collectionName")?;
    let rows = data_rows(&b)?;
    let num_rows = rows.len() as u32;
    let schema = schema_of(&call, &name).await?;
    let fields_data = offload(move || Ok(rows::rows_to_columns(&schema, &rows)?)).await?;
    let partition_name = b.opt_str("partitionName")?;
    let (count, r) = if upsert {
        let req = UpsertRequest {
            collection_name: name,
            partition_name,
            fields_data,
            num_rows,
            ..Default::default()
        };
        let r = rpc!(call, upsert, req)?;
        (r.upsert_cnt, r)
    } else {
        let req = InsertRequest {
            collection_name: name,
            partition_name,
            fields_data,
            num_rows,
            ..Default::default()
        };
        let r = rpc!(call, insert, req)?;
        (r.insert_cnt, r)
    };
    let ids = ids_json(r.i_ds.as_ref(), call.int64);
    let (count_key, ids_key) = if upsert {
        ("upsertCount", "upsertIds")
    } else {
        ("insertCount", "insertIds")
    };
    ok_cost(json!({count_key: count, ids_key: ids}))
}

/// The `pk in [...]` filter for a body's `id`, or 1806.
async fn id_filter(call: &Call, name: &str, id: &Json) -> Result<String, RestError> {
    let schema = schema_of(call, name).await?;
    pk_filter(&schema, id).map_err(|e| {
        RestError::new(
            rest_code::CHECK_PRIMARY_KEY,
            format!(
                "please check the primary key and its' type can only in [int, string], \
                 error: {e}"
            ),
        )
    })
}

pub async fn delete(call: Call, b: Body) -> RestResult {
    let name = b.str("collectionName")?;
    let mut expr = b.opt_str("filter")?;
    if expr.is_empty() {
        let id = b.get("id").ok_or_else(|| RestError::missing("filter"))?;
        expr = id_filter(&call, &name, id).await?;
    }
    let req = DeleteRequest {
        collection_name: name,
        partition_name: b.opt_str("partitionName")?,
        expr,
        expr_template_values: rows::template_values(&b.object("exprParams")?)?,
        ..Default::default()
    };
    let r = rpc!(call, delete, req)?;
    ok_cost(json!({"deleteCount": r.delete_cnt}))
}

/// `outputFields`, `["*"]` when absent (Milvus's default for query and get).
fn output_fields_or_all(b: &Body) -> Result<Vec<String>, RestError> {
    if b.get("outputFields").is_none() {
        return Ok(vec!["*".into()]);
    }
    b.strings("outputFields")
}

/// Query results as rows (converted on a blocking thread: results can be large).
async fn query_rows(r: QueryResults, int64: bool) -> RestResult {
    offload(move || query_rows_now(&r, int64)).await
}

fn query_rows_now(r: &QueryResults, int64: bool) -> RestResult {
    let n = r
        .fields_data
        .iter()
        .filter(|f| !f.is_dynamic)
        .map(crate::columns::field_len)
        .max()
        .unwrap_or(0);
    let rows = result_rows(&r.fields_data, n, int64)?;
    ok_cost(Json::Array(rows.into_iter().map(Json::Object).collect()))
}

pub async fn get(call: Call, b: Body) -> RestResult {
    let name = b.str("collectionName")?;
    let id = b.get("id").ok_or_else(|| RestError::missing("id"))?;
    let expr = id_filter(&call, &name, id).await?;
    let req = QueryRequest {
        collection_name: name,
        expr,
        output_fields: output_fields_or_all(&b)?,
        partition_names: b.strings("partitionNames")?,
        use_default_consistency: true,
        ..Default::default()
    };
    query_rows(rpc!(call, query, req)?, call.int64).await
}

pub async fn query(call: Call, b: Body) -> RestResult {
    let output_fields = output_fields_or_all(&b)?;
    let count =
        output_fields.len() == 1 && output_fields[0].trim().eq_ignore_ascii_case("count(*)");
    let mut query_params = Vec::new();
    if let Some(o) = b.opt_usize("offset")?.filter(|o| *o > 0) {
        query_params.push(kv("offset", o.to_string()));
    }
    let limit = b.opt_usize("limit")?.unwrap_or(100);
    if limit > 0 && !count {
        query_params.push(kv("limit", limit.to_string()));
    }
    let req = QueryRequest {
        collection_name: b.str("collectionName")?,
        expr: b.opt_str("filter")?,
        output_fields,
        partition_names: b.strings("partitionNames")?,
        query_params,
        use_default_consistency: true,
        expr_template_values: rows::template_values(&b.object("exprParams")?)?,
        ..Default::default()
    };
    query_rows(rpc!(call, query, req)?, call.int64).await
}

/// The `search_params` key/value pairs of one (sub-)search.
fn search_params(s: &Body, limit: usize) -> Result<Vec<KeyValuePair>, RestError> {
    let sp = s.nested("searchParams")?;
    let mut params = sp.object("params")?;
    // hybrid_search sub-requests put `metricType`/`params` next to `data`.
    params.extend(s.object("params")?);
    let metric = Some(sp.opt_str("metricType")?)
        .filter(|m| !m.is_empty())
        .map_or_else(|| s.opt_str("metricType"), Ok)?;
    let mut kvs = vec![
        kv("topk", limit.to_string()),
        kv("offset", s.opt_usize("offset")?.unwrap_or(0).to_string()),
        kv("params", Json::Object(params).to_string()),
        kv("round_decimal", "-1"),
        kv(
            "ignore_growing",
            sp.opt_bool("ignoreGrowing")?.unwrap_or(false).to_string(),
        ),
        kv("anns_field", s.opt_str("annsField")?),
        kv("group_by_field", s.opt_str("groupingField")?),
    ];
    if !metric.is_empty() {
        kvs.push(kv("metric_type", metric));
    }
    if let Some(g) = s.opt_usize("groupSize")? {
        kvs.push(kv("group_size", g.to_string()));
    }
    if let Some(strict) = s.opt_bool("strictGroupSize")? {
        kvs.push(kv("strict_group_size", strict.to_string()));
    }
    Ok(kvs)
}

/// One search request message from a body (`entities/search`, or a hybrid sub-search).
fn search_request(name: &str, s: &Body, limit: usize) -> Result<SearchRequest, RestError> {
    let placeholder = placeholder_group(s.get("data"))?;
    Ok(SearchRequest {
        collection_name: name.to_string(),
        partition_names: s.strings("partitionNames")?,
        dsl: s.opt_str("filter")?,
        placeholder_group: placeholder,
        dsl_type: DslType::BoolExprV1 as i32,
        output_fields: s.strings("outputFields")?,
        search_params: search_params(s, limit)?,
        nq: s.get("data").and_then(Json::as_array).map_or(0, Vec::len) as i64,
        use_default_consistency: true,
        expr_template_values: rows::template_values(&s.object("exprParams")?)?,
        ..Default::default()
    })
}

/// Search hits as Milvus's flattened rows plus `topks`.
/// Search hits as rows (converted on a blocking thread).
async fn search_rows(r: SearchResults, int64: bool) -> RestResult {
    offload(move || search_rows_now(&r, int64)).await
}

fn search_rows_now(r: &SearchResults, int64: bool) -> RestResult {
    let Some(res) = &r.results else {
        return Ok(json!({"code": 0, "cost": 0, "data": [], "topks": []}));
    };
    let n = res.scores.len();
    let mut rows = result_rows(&res.fields_data, n, int64)?;
    let pk = if res.primary_field_name.is_empty() {
        "id"
    } else {
        res.primary_field_name.as_str()
    };
    for ((row, id), score) in rows
        .iter_mut()
        .zip(ids_json(res.ids.as_ref(), int64))
        .zip(&res.scores)
    {
        row.insert(pk.to_string(), id);
        row.insert("distance".into(), rows::f32_json(*score));
    }
    let data: Vec<Json> = rows.into_iter().map(Json::Object).collect();
    Ok(json!({"code": 0, "cost": 0, "data": data, "topks": res.topks}))
}

pub async fn search(call: Call, b: Body) -> RestResult {
    let name = b.str("collectionName")?;
    let limit = b.opt_usize("limit")?.unwrap_or(100);
    let req = search_request(&name, &b, limit)?;
    search_rows(rpc!(call, search, req)?, call.int64).await
}

/// `entities/hybrid_search` (and its old name `advanced_search`): one SearchRequest per
/// `search[]` entry, fused by `rerank{strategy, params}` (RRF with k=60 when absent).
pub async fn hybrid_search(call: Call, b: Body) -> RestResult {
    let name = b.str("collectionName")?;
    let searches = b.objects("search")?;
    if searches.is_empty() {
        return Err(RestError::missing("search"));
    }
    let output_fields = b.strings("outputFields")?;
    let partition_names = b.strings("partitionNames")?;
    let mut requests = Vec::with_capacity(searches.len());
    for s in &searches {
        let limit = s.opt_usize("limit")?.unwrap_or(100);
        let mut r = search_request(&name, s, limit)?;
        r.output_fields = output_fields.clone();
        r.partition_names = partition_names.clone();
        requests.push(r);
    }
    let rerank = b.nested("rerank")?;
    let strategy = Some(rerank.opt_str("strategy")?)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "rrf".into());
    let rank_params = vec![
        kv("strategy", strategy),
        kv("params", Json::Object(rerank.object("params")?).to_string()),
        kv("limit", b.opt_usize("limit")?.unwrap_or(100).to_string()),
        kv("offset", b.opt_usize("offset")?.unwrap_or(0).to_string()),
        kv("round_decimal", "-1"),
    ];
    let req = HybridSearchRequest {
        collection_name: name,
        partition_names,
        requests,
        rank_params,
        output_fields,
        use_default_consistency: true,
        ..Default::default()
    };
    search_rows(rpc!(call, hybrid_search, req)?, call.int64).await
}
