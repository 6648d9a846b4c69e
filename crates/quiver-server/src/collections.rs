//! Handlers for collections, partitions and index definitions.
//!
//! CreateCollection is idempotent for an identical schema (as in Milvus) and refuses a
//! different schema under an existing name. Index definitions are stored flattened
//! (`index_type`, `metric_type`, build params as strings; a `params` JSON object is spread into
//! its keys); a missing `index_type` means AUTOINDEX and a vector index without a metric gets
//! COSINE, Milvus's default. DescribeIndex answers in Milvus's shape: `index_type`,
//! `metric_type`, and the build params as one `params` JSON string, with state Finished and
//! `indexed_rows == total_rows == row count` (search is exact, so nothing is ever pending);
//! GetIndexState and GetIndexBuildProgress answer the same for one index.

use std::collections::BTreeMap;

use quiver_core::{DataType, Error, Result};
use quiver_engine::{CollectionMeta, CreateCollection, IndexMeta, IndexProgress};
use serde_json::Value as Json;

use crate::admin::utc_ms;
use crate::functions::registry_error;
use crate::proto::common::{KeyValuePair, Status};
use crate::proto::milvus::*;
use crate::schema::{kv_list, kv_map, same_schema, schema_from_bytes, schema_to_proto};
use crate::service::Ctx;
use crate::status::ok;

fn row_count_stats(rows: u64) -> Vec<KeyValuePair> {
    vec![KeyValuePair {
        key: "row_count".into(),
        value: rows.to_string(),
    }]
}

/// `name@version` -> (name, version); `what` names the setting in the error.
fn model_ref(what: &str, v: &str) -> Result<(String, u32)> {
    v.rsplit_once('@')
        .and_then(|(m, ver)| Some((m.to_string(), ver.parse::<u32>().ok()?)))
        .ok_or_else(|| Error::InvalidArgument(format!("{what} must be name@version, got {v:?}")))
}

/// Field bindings asked for by collection properties: `quiver.model = name@version` (the one
/// vector field) or `quiver.model.<field> = name@version`, or by a field's `quiver.model` type
/// param.
fn model_properties(
    props: &BTreeMap<String, String>,
    schema: &quiver_core::CollectionSchema,
) -> Result<Vec<(String, String, u32)>> {
    let mut out = Vec::new();
    for (k, v) in props {
        let field = if k == "quiver.model" {
            let vf: Vec<usize> = schema.vector_fields().collect();
            match vf.as_slice() {
                [one] => schema.fields[*one].name.clone(),
                _ => {
                    return Err(Error::InvalidArgument(
                        "quiver.model needs exactly one vector field; use quiver.model.<field>"
                            .into(),
                    ))
                }
            }
        } else if let Some(f) = k.strip_prefix("quiver.model.") {
            f.to_string()
        } else {
            continue;
        };
        let (model, version) = model_ref(k, v)?;
        out.push((field, model, version));
    }
    // A field type param works too (SDKs that pass them through; pymilvus drops unknown ones).
    for f in &schema.fields {
        if let Some(v) = f.type_params.get("quiver.model") {
            let (model, version) = model_ref(&format!("quiver.model of field {}", f.name), v)?;
            out.push((f.name.clone(), model, version));
        }
    }
    Ok(out)
}

/// Bind the fields the properties name (the collection exists).
fn bind_from_properties(ctx: &Ctx, coll: &str, bindings: &[(String, String, u32)]) -> Result<()> {
    if bindings.is_empty() {
        return Ok(());
    }
    let reg = ctx.shared.registry.as_ref().ok_or_else(|| {
        Error::Unavailable("the model registry is not open on this server".into())
    })?;
    for (field, model, version) in bindings {
        crate::rest::v1::bind(
            ctx.engine(),
            reg,
            &ctx.db,
            coll,
            field,
            model,
            *version,
            "collection property",
            &ctx.user,
        )
        .map_err(registry_error)?;
    }
    Ok(())
}

pub fn create_collection(ctx: &Ctx, req: CreateCollectionRequest) -> Result<Status> {
    let (schema, mut properties) = schema_from_bytes(&req.schema, &req.collection_name)?;
    properties.extend(kv_map(&req.properties));
    let mut bindings = model_properties(&properties, &schema)?;
    // TextEmbedding functions bind their output fields to the version they name.
    for (field, model, version) in
        crate::functions::create_bindings(&schema, ctx.shared.registry.as_deref())?
    {
        if let Some((_, m, v)) = bindings.iter().find(|(f, _, _)| f == &field) {
            if (m, *v) != (&model, version) {
                return Err(Error::InvalidArgument(format!(
                    "field {field} is bound to {m}@{v} by a property but its TextEmbedding \
                     function names {model}@{version}"
                )));
            }
            continue;
        }
        bindings.push((field, model, version));
    }
    // Refuse an unknown model version before the collection exists.
    if let Some(reg) = &ctx.shared.registry {
        for (_, model, version) in &bindings {
            reg.version(model, *version).map_err(registry_error)?;
        }
    }
    let name = schema.name.clone();
    let create = CreateCollection {
        schema: schema.clone(),
        properties,
        shards_num: req.shards_num,
        consistency_level: req.consistency_level,
        num_partitions: req.num_partitions,
    };
    match ctx.engine().create_collection(&ctx.db, create) {
        Ok(_) => {
            if let Err(e) = bind_from_properties(ctx, &name, &bindings) {
                // Do not leave a collection behind that claims a binding it does not have.
                let _ = ctx.engine().drop_collection(&ctx.db, &name);
                return Err(e);
            }
            Ok(ok())
        }
        Err(Error::AlreadyExists {
            kind: "collection", ..
        }) => {
            let existing = ctx.engine().describe_collection(&ctx.db, &name)?;
            let mut requested = schema;
            requested.validate()?;
            if existing.name == name && same_schema(&existing.schema, &requested) {
                Ok(ok())
            } else {
                Err(Error::InvalidArgument(format!(
                    "create duplicate collection with different parameters, collection: {name}"
                )))
            }
        }
        Err(e) => Err(e),
    }
}

pub fn drop_collection(ctx: &Ctx, req: DropCollectionRequest) -> Result<Status> {
    // A collection a serving alias serves, or served in its recent revisions, stays (rollback
    // needs its data).
    if let Some(reg) = &ctx.shared.registry {
        if let Ok(m) = ctx
            .engine()
            .describe_collection(&ctx.db, &req.collection_name)
        {
            if reg
                .kept_collections()
                .contains(&(ctx.db.clone(), m.name.clone()))
            {
                return Err(Error::FailedPrecondition(format!(
                    "collection {} is kept for a serving alias (current or one of its last {} revisions): roll the alias forward first",
                    m.name,
                    quiver_registry::KEEP_REVISIONS
                )));
            }
        }
    }
    ctx.engine()
        .drop_collection(&ctx.db, &req.collection_name)?;
    Ok(ok())
}

/// Remove every row; schema, partitions, indexes and aliases stay.
pub fn truncate_collection(
    ctx: &Ctx,
    req: TruncateCollectionRequest,
) -> Result<TruncateCollectionResponse> {
    ctx.engine()
        .truncate_collection(&ctx.db, &req.collection_name)?;
    Ok(TruncateCollectionResponse { status: Some(ok()) })
}

/// Add a nullable field to a collection that may hold data (existing rows read NULL).
pub fn add_collection_field(ctx: &Ctx, req: AddCollectionFieldRequest) -> Result<Status> {
    use prost::Message;
    let f = crate::proto::schema::FieldSchema::decode(req.schema.as_slice())
        .map_err(|e| Error::InvalidArgument(format!("the field schema does not decode: {e}")))?;
    let field = crate::schema::field_from_proto(&f)?;
    ctx.engine()
        .add_field(&ctx.db, &req.collection_name, field, None)?;
    Ok(ok())
}

pub fn has_collection(ctx: &Ctx, req: HasCollectionRequest) -> Result<BoolResponse> {
    let value = ctx.engine().has_collection(&ctx.db, &req.collection_name)?;
    Ok(BoolResponse {
        status: Some(ok()),
        value,
    })
}

/// Describe by name (or alias), or by id when no name is given.
fn find(ctx: &Ctx, name: &str, id: i64) -> Result<CollectionMeta> {
    if name.is_empty() && id != 0 {
        return ctx
            .engine()
            .collection_meta_by_id(id as u64)
            .ok_or_else(|| Error::CollectionNotFound(format!("id {id}")));
    }
    ctx.engine().describe_collection(&ctx.db, name)
}

pub fn describe_collection(
    ctx: &Ctx,
    req: DescribeCollectionRequest,
) -> Result<DescribeCollectionResponse> {
    let m = find(ctx, &req.collection_name, req.collection_id)?;
    let db_id = ctx
        .engine()
        .describe_database(&m.db)
        .map_or(0, |d| d.id as i64);
    Ok(DescribeCollectionResponse {
        status: Some(ok()),
        schema: Some(schema_to_proto(&m.schema, &m.db)),
        collection_id: m.id as i64,
        virtual_channel_names: (0..m.shards_num)
            .map(|i| format!("quiver-dml_{i}_{}v{i}", m.id))
            .collect(),
        physical_channel_names: (0..m.shards_num)
            .map(|i| format!("quiver-dml_{i}"))
            .collect(),
        created_timestamp: m.created_ts,
        created_utc_timestamp: utc_ms(m.created_ts),
        shards_num: m.shards_num,
        aliases: ctx.engine().aliases_of(m.id),
        consistency_level: m.consistency_level,
        collection_name: m.name.clone(),
        properties: kv_list(&m.properties),
        db_name: m.db.clone(),
        num_partitions: m.partitions.len() as i64,
        db_id,
        request_time: ctx.engine().now_ts(),
        update_timestamp: m.updated_ts,
        update_timestamp_str: utc_ms(m.updated_ts).to_string(),
        ..Default::default()
    })
}

pub fn show_collections(ctx: &Ctx, req: ShowCollectionsRequest) -> Result<ShowCollectionsResponse> {
    let mut all = ctx.engine().list_collections(&ctx.db)?;
    #[allow(deprecated)]
    let wanted = &req.collection_names;
    if !wanted.is_empty() {
        if let Some(missing) = wanted.iter().find(|n| !all.iter().any(|m| &m.name == *n)) {
            return Err(Error::CollectionNotFound(missing.clone()));
        }
        all.retain(|m| wanted.contains(&m.name));
    }
    #[allow(deprecated)]
    Ok(ShowCollectionsResponse {
        status: Some(ok()),
        collection_names: all.iter().map(|m| m.name.clone()).collect(),
        collection_ids: all.iter().map(|m| m.id as i64).collect(),
        created_timestamps: all.iter().map(|m| m.created_ts).collect(),
        created_utc_timestamps: all.iter().map(|m| utc_ms(m.created_ts)).collect(),
        in_memory_percentages: all.iter().map(|m| if m.loaded { 100 } else { 0 }).collect(),
        query_service_available: all.iter().map(|m| m.loaded).collect(),
    })
}

pub fn get_collection_statistics(
    ctx: &Ctx,
    req: GetCollectionStatisticsRequest,
) -> Result<GetCollectionStatisticsResponse> {
    let rows = ctx.engine().row_count(&ctx.db, &req.collection_name, &[])?;
    Ok(GetCollectionStatisticsResponse {
        status: Some(ok()),
        stats: row_count_stats(rows),
    })
}

pub fn rename_collection(ctx: &Ctx, req: RenameCollectionRequest) -> Result<Status> {
    let new_db = if req.new_db_name.trim().is_empty() {
        ctx.db.as_str()
    } else {
        req.new_db_name.trim()
    };
    ctx.engine()
        .rename_collection(&ctx.db, &req.old_name, new_db, &req.new_name)?;
    Ok(ok())
}

pub fn alter_collection(ctx: &Ctx, req: AlterCollectionRequest) -> Result<Status> {
    let m = ctx
        .engine()
        .describe_collection(&ctx.db, &req.collection_name)?;
    let bindings = model_properties(&kv_map(&req.properties), &m.schema)?;
    bind_from_properties(ctx, &m.name, &bindings)?;
    ctx.engine().alter_collection_properties(
        &ctx.db,
        &req.collection_name,
        kv_map(&req.properties),
        &req.delete_keys,
    )?;
    Ok(ok())
}

// ---------------------------------------------------------------- partitions

pub fn create_partition(ctx: &Ctx, req: CreatePartitionRequest) -> Result<Status> {
    ctx.engine()
        .create_partition(&ctx.db, &req.collection_name, &req.partition_name)?;
    Ok(ok())
}

pub fn drop_partition(ctx: &Ctx, req: DropPartitionRequest) -> Result<Status> {
    ctx.engine()
        .drop_partition(&ctx.db, &req.collection_name, &req.partition_name)?;
    Ok(ok())
}

pub fn has_partition(ctx: &Ctx, req: HasPartitionRequest) -> Result<BoolResponse> {
    let value = ctx
        .engine()
        .has_partition(&ctx.db, &req.collection_name, &req.partition_name)?;
    Ok(BoolResponse {
        status: Some(ok()),
        value,
    })
}

pub fn show_partitions(ctx: &Ctx, req: ShowPartitionsRequest) -> Result<ShowPartitionsResponse> {
    let m = find(ctx, &req.collection_name, req.collection_id)?;
    let mut parts = m.partitions.clone();
    if !req.partition_names.is_empty() {
        if let Some(missing) = req
            .partition_names
            .iter()
            .find(|n| m.partition(n).is_none())
        {
            return Err(Error::PartitionNotFound(missing.clone()));
        }
        parts.retain(|p| req.partition_names.contains(&p.name));
    }
    #[allow(deprecated)]
    Ok(ShowPartitionsResponse {
        status: Some(ok()),
        partition_names: parts.iter().map(|p| p.name.clone()).collect(),
        partition_i_ds: parts.iter().map(|p| p.id as i64).collect(),
        created_timestamps: parts.iter().map(|p| p.created_ts).collect(),
        created_utc_timestamps: parts.iter().map(|p| utc_ms(p.created_ts)).collect(),
        in_memory_percentages: parts
            .iter()
            .map(|_| if m.loaded { 100 } else { 0 })
            .collect(),
    })
}

pub fn get_partition_statistics(
    ctx: &Ctx,
    req: GetPartitionStatisticsRequest,
) -> Result<GetPartitionStatisticsResponse> {
    let rows = ctx.engine().row_count(
        &ctx.db,
        &req.collection_name,
        std::slice::from_ref(&req.partition_name),
    )?;
    Ok(GetPartitionStatisticsResponse {
        status: Some(ok()),
        stats: row_count_stats(rows),
    })
}

// ---------------------------------------------------------------- indexes

/// A JSON value as the string Milvus keeps in index params (strings unquoted).
fn param_string(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Flatten CreateIndex `extra_params` into the stored index params.
/// Flatten CreateIndex's key/values (and its `params` JSON) into strings; a vector field without
/// `metric_type` gets `default_metric` (Milvus: COSINE, HAMMING for binary vectors).
pub fn index_params(
    extra: &[KeyValuePair],
    default_metric: Option<&str>,
) -> Result<BTreeMap<String, String>> {
    let mut params = BTreeMap::new();
    for kv in extra {
        if kv.key == "params" {
            match serde_json::from_str::<Json>(&kv.value) {
                Ok(Json::Object(m)) => {
                    for (k, v) in m {
                        params.insert(k, param_string(&v));
                    }
                }
                _ => {
                    return Err(Error::InvalidArgument(format!(
                        "index params must be a JSON object, got {:?}",
                        kv.value
                    )))
                }
            }
        } else {
            params.insert(kv.key.clone(), kv.value.clone());
        }
    }
    if params.get("index_type").is_none_or(|t| t.trim().is_empty()) {
        params.insert("index_type".into(), "AUTOINDEX".into());
    }
    if let Some(m) = default_metric {
        if params
            .get("metric_type")
            .is_none_or(|t| t.trim().is_empty())
        {
            params.insert("metric_type".into(), m.into());
        }
    }
    Ok(params)
}

pub fn create_index(ctx: &Ctx, req: CreateIndexRequest) -> Result<Status> {
    let m = ctx
        .engine()
        .describe_collection(&ctx.db, &req.collection_name)?;
    let field_name = if req.field_name.is_empty() {
        let vectors: Vec<usize> = m.schema.vector_fields().collect();
        match vectors.as_slice() {
            [one] => m.schema.fields[*one].name.clone(),
            _ => return Err(Error::InvalidArgument("field_name must be given".into())),
        }
    } else {
        req.field_name.clone()
    };
    let field = m
        .schema
        .field(&field_name)
        .ok_or_else(|| Error::FieldNotFound(field_name.clone()))?;
    let default_metric = field.data_type.is_vector().then(|| {
        if field.data_type == DataType::BinaryVector {
            "HAMMING"
        } else {
            "COSINE"
        }
    });
    let params = index_params(&req.extra_params, default_metric)?;
    ctx.engine().create_index(
        &ctx.db,
        &req.collection_name,
        &field_name,
        &req.index_name,
        params,
    )?;
    Ok(ok())
}

fn describe(i: &IndexMeta, p: &IndexProgress) -> IndexDescription {
    let mut params = Vec::new();
    let mut build = serde_json::Map::new();
    for (k, v) in &i.params {
        if k == "index_type" || k == "metric_type" {
            params.push(KeyValuePair {
                key: k.clone(),
                value: v.clone(),
            });
        } else {
            let value = serde_json::from_str::<Json>(v).unwrap_or_else(|_| Json::String(v.clone()));
            build.insert(k.clone(), value);
        }
    }
    if !build.is_empty() {
        params.push(KeyValuePair {
            key: "params".into(),
            value: Json::Object(build).to_string(),
        });
    }
    IndexDescription {
        index_name: i.name.clone(),
        index_id: i.id as i64,
        params,
        field_name: i.field.clone(),
        indexed_rows: p.indexed_rows as i64,
        total_rows: p.total_rows as i64,
        state: p.state as i32,
        index_state_fail_reason: p.fail_reason.clone(),
        pending_index_rows: p.pending_rows as i64,
    }
}

pub fn describe_index(ctx: &Ctx, req: DescribeIndexRequest) -> Result<DescribeIndexResponse> {
    let indexes = ctx.engine().list_indexes(&ctx.db, &req.collection_name)?;
    let mut found = Vec::new();
    for i in indexes
        .iter()
        .filter(|i| req.index_name.is_empty() || i.name == req.index_name)
        .filter(|i| req.field_name.is_empty() || i.field == req.field_name)
    {
        let (_, p) =
            ctx.engine()
                .index_progress(&ctx.db, &req.collection_name, &i.field, &i.name)?;
        found.push(describe(i, &p));
    }
    if found.is_empty() {
        return Err(Error::IndexNotFound {
            collection: req.collection_name,
            index: req.index_name,
        });
    }
    Ok(DescribeIndexResponse {
        status: Some(ok()),
        index_descriptions: found,
    })
}

pub fn get_index_state(ctx: &Ctx, req: GetIndexStateRequest) -> Result<GetIndexStateResponse> {
    let (_, p) = ctx.engine().index_progress(
        &ctx.db,
        &req.collection_name,
        &req.field_name,
        &req.index_name,
    )?;
    Ok(GetIndexStateResponse {
        status: Some(ok()),
        state: p.state as i32,
        fail_reason: p.fail_reason,
    })
}

pub fn get_index_build_progress(
    ctx: &Ctx,
    req: GetIndexBuildProgressRequest,
) -> Result<GetIndexBuildProgressResponse> {
    let (_, p) = ctx.engine().index_progress(
        &ctx.db,
        &req.collection_name,
        &req.field_name,
        &req.index_name,
    )?;
    Ok(GetIndexBuildProgressResponse {
        status: Some(ok()),
        indexed_rows: p.indexed_rows as i64,
        total_rows: p.total_rows as i64,
    })
}

pub fn drop_index(ctx: &Ctx, req: DropIndexRequest) -> Result<Status> {
    ctx.engine().drop_index(
        &ctx.db,
        &req.collection_name,
        &req.field_name,
        &req.index_name,
    )?;
    Ok(ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(k: &str, v: &str) -> KeyValuePair {
        KeyValuePair {
            key: k.into(),
            value: v.into(),
        }
    }

    #[test]
    fn index_params_default_and_flatten() {
        let p = index_params(
            &[
                kv("metric_type", "L2"),
                kv("params", r#"{"M": 16, "kind": "x"}"#),
            ],
            Some("COSINE"),
        )
        .unwrap();
        assert_eq!(p["index_type"], "AUTOINDEX");
        assert_eq!(p["metric_type"], "L2");
        assert_eq!(p["M"], "16");
        assert_eq!(p["kind"], "x");
        let p = index_params(&[], Some("COSINE")).unwrap();
        assert_eq!(p["metric_type"], "COSINE");
        let p = index_params(&[kv("index_type", "INVERTED")], None).unwrap();
        assert!(!p.contains_key("metric_type"));
        assert!(index_params(&[kv("params", "[1]")], Some("COSINE")).is_err());
        let meta = IndexMeta {
            id: 5,
            name: "v".into(),
            field: "v".into(),
            params: index_params(&[kv("params", r#"{"M": 16}"#)], Some("COSINE")).unwrap(),
            created_ts: 0,
        };
        let progress = IndexProgress {
            state: quiver_engine::IndexBuildState::InProgress,
            indexed_rows: 1,
            total_rows: 3,
            pending_rows: 2,
            fail_reason: String::new(),
        };
        let d = describe(&meta, &progress);
        assert_eq!(
            d.params.iter().find(|k| k.key == "params").unwrap().value,
            r#"{"M":16}"#
        );
        assert_eq!(
            (d.indexed_rows, d.total_rows, d.pending_index_rows, d.state),
            (1, 3, 2, crate::proto::common::IndexState::InProgress as i32)
        );
    }
}
