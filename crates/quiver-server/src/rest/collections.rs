//! `collections/*`: list, has, describe, get_stats, get_load_state, create, drop, rename,
//! load (and refresh_load), release, alter_properties, drop_properties.
//!
//! `create` follows Milvus's REST handler: a quick form (`dimension`, `metricType` (COSINE by
//! default), `idType`, `autoID`, `primaryFieldName`, `vectorFieldName`, `params{max_length,
//! enableDynamicField, shardsNum, consistencyLevel, ttlSeconds}`) that creates the collection,
//! an index on the vector field and loads it; and a custom form (`schema{fields, autoID,
//! enableDynamicField}` + optional `indexParams`) that creates the collection, then each index,
//! then loads only when indexes were given. Each step is the gRPC request pymilvus would send.

use prost::Message;
use serde_json::{json, Map, Value as Json};

use super::body::{param_string, Body};
use super::{ok, rpc, Call, RestError, RestResult};
use crate::proto::common::{ConsistencyLevel, KeyValuePair, LoadState};
use crate::proto::milvus::*;
use crate::proto::schema::value_field::Data as Vf;
use crate::proto::schema::{self as pb, DataType as Dt};

/// Milvus's default metric for REST quick create.
const DEFAULT_METRIC: &str = "COSINE";

pub async fn list(call: Call, _: Body) -> RestResult {
    let r = rpc!(call, show_collections, ShowCollectionsRequest::default())?;
    ok(json!(r.collection_names))
}

pub async fn has(call: Call, b: Body) -> RestResult {
    let req = HasCollectionRequest {
        collection_name: b.str("collectionName")?,
        ..Default::default()
    };
    let r = rpc!(call, has_collection, req)?;
    ok(json!({"has": r.value}))
}

pub(super) async fn describe_schema(
    call: &Call,
    name: &str,
) -> Result<DescribeCollectionResponse, RestError> {
    let req = DescribeCollectionRequest {
        collection_name: name.to_string(),
        ..Default::default()
    };
    rpc!(*call, describe_collection, req)
}

fn kv_json(kvs: &[KeyValuePair]) -> Json {
    Json::Array(
        kvs.iter()
            .map(|kv| json!({"key": kv.key, "value": kv.value}))
            .collect(),
    )
}

fn default_json(v: &pb::ValueField) -> Json {
    match &v.data {
        None => Json::Null,
        Some(Vf::BoolData(b)) => json!(b),
        Some(Vf::IntData(i)) => json!(i),
        Some(Vf::LongData(i)) => json!(i),
        Some(Vf::FloatData(f)) => super::rows::f32_json(*f),
        Some(Vf::DoubleData(f)) => json!(f),
        Some(Vf::StringData(s)) => json!(s),
        Some(Vf::BytesData(b)) => serde_json::from_slice(b).unwrap_or(Json::Null),
    }
}

fn type_name(n: i32) -> &'static str {
    Dt::try_from(n).map_or("None", |t| t.as_str_name())
}

/// One field as Milvus's REST `printFieldsV2` shows it.
fn field_json(f: &pb::FieldSchema) -> Json {
    let mut m = Map::new();
    m.insert("name".into(), json!(f.name));
    m.insert("id".into(), json!(f.field_id));
    m.insert("type".into(), json!(type_name(f.data_type)));
    m.insert("primaryKey".into(), json!(f.is_primary_key));
    m.insert("partitionKey".into(), json!(f.is_partition_key));
    m.insert("clusteringKey".into(), json!(f.is_clustering_key));
    m.insert("autoId".into(), json!(f.auto_id));
    m.insert("description".into(), json!(f.description));
    m.insert("nullable".into(), json!(f.nullable));
    if !f.type_params.is_empty() {
        m.insert("params".into(), kv_json(&f.type_params));
    }
    if f.data_type == Dt::Array as i32 {
        m.insert("elementType".into(), json!(type_name(f.element_type)));
    }
    if let Some(d) = &f.default_value {
        m.insert("defaultValue".into(), default_json(d));
    }
    Json::Object(m)
}

fn metric_of(params: &[KeyValuePair]) -> String {
    params
        .iter()
        .find(|kv| kv.key == "metric_type")
        .map_or(DEFAULT_METRIC.to_string(), |kv| kv.value.clone())
}

pub async fn describe(call: Call, b: Body) -> RestResult {
    let name = b.str("collectionName")?;
    let d = describe_schema(&call, &name).await?;
    let schema = d.schema.clone().unwrap_or_default();
    let load = rpc!(
        call,
        get_load_state,
        GetLoadStateRequest {
            collection_name: name.clone(),
            ..Default::default()
        }
    )
    .map(|r| LoadState::try_from(r.state).map_or("", |s| s.as_str_name()))
    .unwrap_or("");
    let indexes: Vec<Json> = rpc!(
        call,
        describe_index,
        DescribeIndexRequest {
            collection_name: name.clone(),
            ..Default::default()
        }
    )
    .map(|r| {
        r.index_descriptions
            .iter()
            .map(|i| {
                json!({"indexName": i.index_name, "fieldName": i.field_name,
                       "metricType": metric_of(&i.params)})
            })
            .collect()
    })
    .unwrap_or_default();
    let functions: Vec<Json> = schema
        .functions
        .iter()
        .map(|f| {
            json!({
                "name": f.name, "id": f.id, "description": f.description,
                "type": pb::FunctionType::try_from(f.r#type).map_or("Unknown", |t| t.as_str_name()),
                "inputFieldNames": f.input_field_names, "outputFieldNames": f.output_field_names,
                "params": kv_json(&f.params),
            })
        })
        .collect();
    ok(json!({
        "collectionName": d.collection_name,
        "collectionID": d.collection_id,
        "description": schema.description,
        "autoId": schema.fields.iter().any(|f| f.is_primary_key && f.auto_id),
        "fields": schema.fields.iter().map(field_json).collect::<Vec<_>>(),
        "functions": functions,
        "aliases": d.aliases,
        "indexes": indexes,
        "load": load,
        "shardsNum": d.shards_num,
        "partitionsNum": d.num_partitions,
        "consistencyLevel": ConsistencyLevel::try_from(d.consistency_level)
            .map_or("Bounded", |c| c.as_str_name()),
        "enableDynamicField": schema.enable_dynamic_field,
        "properties": kv_json(&d.properties),
    }))
}

/// `{"rowCount": n}` from a statistics kv list.
pub(super) fn row_count(stats: &[KeyValuePair]) -> RestResult {
    let n = stats
        .iter()
        .find(|kv| kv.key == "row_count")
        .and_then(|kv| kv.value.parse::<i64>().ok())
        .unwrap_or(0);
    ok(json!({"rowCount": n}))
}

pub async fn get_stats(call: Call, b: Body) -> RestResult {
    let req = GetCollectionStatisticsRequest {
        collection_name: b.str("collectionName")?,
        ..Default::default()
    };
    row_count(&rpc!(call, get_collection_statistics, req)?.stats)
}

pub async fn get_load_state(call: Call, b: Body) -> RestResult {
    let name = b.str("collectionName")?;
    let partitions = b.strings("partitionNames")?;
    let req = GetLoadStateRequest {
        collection_name: name.clone(),
        partition_names: partitions.clone(),
        ..Default::default()
    };
    let state = rpc!(call, get_load_state, req)?.state;
    if state == LoadState::NotExist as i32 {
        return Err(quiver_core::Error::CollectionNotFound(name).into());
    }
    if state == LoadState::NotLoad as i32 {
        return ok(json!({"loadState": LoadState::NotLoad.as_str_name()}));
    }
    let req = GetLoadingProgressRequest {
        collection_name: name,
        partition_names: partitions,
        ..Default::default()
    };
    let progress = rpc!(call, get_loading_progress, req).map_or(-1, |r| r.progress);
    let state = if progress >= 100 {
        LoadState::Loaded
    } else {
        LoadState::Loading
    };
    ok(json!({"loadState": state.as_str_name(), "loadProgress": progress}))
}

/// A data type name (`Int64`, `FloatVector`, ...; case-insensitive, as Milvus's enum names).
fn parse_type(name: &str, what: &str) -> Result<Dt, RestError> {
    let t = Dt::from_str_name(name).or_else(|| {
        (0..=200)
            .filter_map(|n| Dt::try_from(n).ok())
            .find(|t| t.as_str_name().eq_ignore_ascii_case(name))
    });
    match t {
        Some(t) if t != Dt::None => Ok(t),
        _ => Err(RestError::invalid(format!(
            "invalid parameter, {what} {name} is invalid"
        ))),
    }
}

fn kv(key: &str, value: impl Into<String>) -> KeyValuePair {
    KeyValuePair {
        key: key.into(),
        value: value.into(),
    }
}

/// A JSON default value as the field type's `ValueField`.
fn default_value(t: Dt, v: &Json, field: &str) -> Result<pb::ValueField, RestError> {
    let bad = || {
        RestError::invalid(format!(
            "defaultValue of field {field} does not fit its type"
        ))
    };
    let data = match t {
        Dt::Bool => Vf::BoolData(v.as_bool().ok_or_else(bad)?),
        Dt::Int8 | Dt::Int16 | Dt::Int32 => {
            Vf::IntData(i32::try_from(v.as_i64().ok_or_else(bad)?).map_err(|_| bad())?)
        }
        Dt::Int64 => Vf::LongData(v.as_i64().ok_or_else(bad)?),
        Dt::Float => Vf::FloatData(v.as_f64().ok_or_else(bad)? as f32),
        Dt::Double => Vf::DoubleData(v.as_f64().ok_or_else(bad)?),
        Dt::VarChar | Dt::String => Vf::StringData(v.as_str().ok_or_else(bad)?.to_string()),
        _ => Vf::BytesData(serde_json::to_vec(v).unwrap_or_default()),
    };
    Ok(pb::ValueField { data: Some(data) })
}

/// The schema of a custom create (`schema.fields[...]`).
fn custom_schema(name: &str, s: &Body) -> Result<(pb::CollectionSchema, Vec<String>), RestError> {
    let auto_id = s
        .opt_bool(s.first_of(&["autoID", "autoId"]))?
        .unwrap_or(false);
    let mut fields = Vec::new();
    let mut names = Vec::new();
    for (i, f) in s.objects("fields")?.iter().enumerate() {
        let fname = f.str("fieldName")?;
        let t = parse_type(&f.str("dataType")?, "data type")?;
        let is_primary = f.opt_bool("isPrimary")?.unwrap_or(false);
        let element_type = if t == Dt::Array {
            parse_type(&f.str("elementDataType")?, "element data type")? as i32
        } else {
            0
        };
        let mut type_params: Vec<KeyValuePair> = f
            .object("elementTypeParams")?
            .iter()
            .map(|(k, v)| kv(k, param_string(v)))
            .collect();
        type_params.sort_by(|a, b| a.key.cmp(&b.key));
        let default_value = match f.get("defaultValue") {
            Some(v) => Some(default_value(t, v, &fname)?),
            None => None,
        };
        names.push(fname.clone());
        fields.push(pb::FieldSchema {
            field_id: 100 + i as i64,
            name: fname,
            is_primary_key: is_primary,
            description: f.opt_str("description")?,
            data_type: t as i32,
            type_params,
            auto_id: is_primary && (auto_id || f.opt_bool("autoID")?.unwrap_or(false)),
            element_type,
            default_value,
            is_partition_key: f.opt_bool("isPartitionKey")?.unwrap_or(false),
            is_clustering_key: f.opt_bool("isClusteringKey")?.unwrap_or(false),
            nullable: f.opt_bool("nullable")?.unwrap_or(false),
            ..Default::default()
        });
    }
    // Functions (BM25, TextEmbedding): `{name, type, inputFieldNames, outputFieldNames, params}`.
    let mut functions = Vec::new();
    if s.get("functions").is_some() {
        for f in s.objects("functions")? {
            let tname = f.str("type")?;
            let t = pb::FunctionType::from_str_name(&tname)
                .or_else(|| match tname.to_ascii_lowercase().as_str() {
                    "bm25" => Some(pb::FunctionType::Bm25),
                    "textembedding" => Some(pb::FunctionType::TextEmbedding),
                    _ => None,
                })
                .ok_or_else(|| RestError::invalid(format!("unknown function type {tname}")))?;
            let mut params: Vec<KeyValuePair> = f
                .object("params")?
                .iter()
                .map(|(k, v)| kv(k, param_string(v)))
                .collect();
            params.sort_by(|a, b| a.key.cmp(&b.key));
            functions.push(pb::FunctionSchema {
                name: f.str("name")?,
                description: f.opt_str("description")?,
                r#type: t as i32,
                input_field_names: f.strings("inputFieldNames")?,
                output_field_names: f.strings("outputFieldNames")?,
                params,
                ..Default::default()
            });
        }
    }
    #[allow(deprecated)]
    let schema = pb::CollectionSchema {
        name: name.to_string(),
        description: s.opt_str("description")?,
        auto_id,
        fields,
        enable_dynamic_field: s.opt_bool("enableDynamicField")?.unwrap_or(false),
        functions,
        ..Default::default()
    };
    Ok((schema, names))
}

/// The schema of a quick create (`dimension`, `idType`, ...).
fn quick_schema(name: &str, b: &Body, params: &Body) -> Result<pb::CollectionSchema, RestError> {
    let dim = b.opt_i64("dimension")?.unwrap_or(0);
    if dim <= 0 {
        return Err(RestError::invalid(format!(
            "dimension is required for quickly create collection(default metric type: \
             {DEFAULT_METRIC}), got {dim}"
        )));
    }
    let (id_type, id_params) = match b.opt_str("idType")?.as_str() {
        "" | "Int64" | "int64" => (Dt::Int64, vec![]),
        "VarChar" | "Varchar" | "varchar" => {
            let max = params
                .get("max_length")
                .map_or_else(|| "65535".to_string(), param_string);
            (Dt::VarChar, vec![kv("max_length", max)])
        }
        other => {
            return Err(RestError::invalid(format!(
                "idType can only be [Int64, VarChar], default: Int64, got {other}"
            )))
        }
    };
    let pk = Some(b.opt_str("primaryFieldName")?)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "id".into());
    let vector = Some(b.opt_str("vectorFieldName")?)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "vector".into());
    let dynamic = params.opt_bool("enableDynamicField")?.unwrap_or(true);
    Ok(pb::CollectionSchema {
        name: name.to_string(),
        fields: vec![
            pb::FieldSchema {
                field_id: 100,
                name: pk,
                is_primary_key: true,
                data_type: id_type as i32,
                type_params: id_params,
                auto_id: b
                    .opt_bool(b.first_of(&["autoID", "autoId"]))?
                    .unwrap_or(false),
                ..Default::default()
            },
            pb::FieldSchema {
                field_id: 101,
                name: vector,
                data_type: Dt::FloatVector as i32,
                type_params: vec![kv("dim", dim.to_string())],
                ..Default::default()
            },
        ],
        enable_dynamic_field: dynamic,
        ..Default::default()
    })
}

/// One `indexParams` entry as a CreateIndexRequest.
pub(super) fn index_request(coll: &str, p: &Body) -> Result<CreateIndexRequest, RestError> {
    let mut extra = Vec::new();
    let metric = p.opt_str("metricType")?;
    if !metric.is_empty() {
        extra.push(kv("metric_type", metric));
    }
    let index_type = p.opt_str("indexType")?;
    if !index_type.is_empty() {
        extra.push(kv("index_type", index_type));
    }
    for (k, v) in p.object("params")? {
        extra.push(kv(&k, param_string(&v)));
    }
    Ok(CreateIndexRequest {
        collection_name: coll.to_string(),
        field_name: p.str("fieldName")?,
        index_name: p.opt_str("indexName")?,
        extra_params: extra,
        ..Default::default()
    })
}

pub async fn create(call: Call, b: Body) -> RestResult {
    let name = b.str("collectionName")?;
    let params = b.nested("params")?;
    let schema_body = b.nested("schema")?;
    let custom = schema_body.get("fields").is_some();
    let index_params = b.objects("indexParams")?;
    let (schema, names) = if custom {
        custom_schema(&name, &schema_body)?
    } else {
        (quick_schema(&name, &b, &params)?, vec![])
    };
    for p in &index_params {
        let field = p.str("fieldName")?;
        if custom && !names.contains(&field) {
            return Err(RestError::new(
                super::rest_code::MISSING_REQUIRED_PARAMETERS,
                format!("missing required parameters, error: `{field}` hasn't defined in schema"),
            ));
        }
    }
    let level = match params.opt_str("consistencyLevel")?.as_str() {
        "" => ConsistencyLevel::Bounded,
        l => ConsistencyLevel::from_str_name(l).ok_or_else(|| {
            RestError::invalid(format!(
                "consistencyLevel can only be [Strong, Session, Bounded, Eventually, \
                 Customized], default: Bounded, got {l}"
            ))
        })?,
    };
    let mut properties = Vec::new();
    if let Some(ttl) = params.get("ttlSeconds") {
        properties.push(kv("collection.ttl.seconds", param_string(ttl)));
    }
    let partition_key = schema.fields.iter().any(|f| f.is_partition_key);
    let req = CreateCollectionRequest {
        collection_name: name.clone(),
        schema: schema.encode_to_vec(),
        shards_num: params.opt_i64("shardsNum")?.unwrap_or(1) as i32,
        consistency_level: level as i32,
        properties,
        num_partitions: if partition_key {
            params.opt_i64("partitionsNum")?.unwrap_or(64)
        } else {
            0
        },
        ..Default::default()
    };
    rpc!(call, create_collection, req)?;
    if custom {
        if index_params.is_empty() {
            return ok(json!({}));
        }
        for p in &index_params {
            rpc!(call, create_index, index_request(&name, p)?)?;
        }
    } else {
        let vector = schema.fields[1].name.clone();
        let metric = Some(b.opt_str("metricType")?)
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| DEFAULT_METRIC.into());
        let req = CreateIndexRequest {
            collection_name: name.clone(),
            field_name: vector.clone(),
            index_name: vector,
            extra_params: vec![kv("metric_type", metric)],
            ..Default::default()
        };
        rpc!(call, create_index, req)?;
    }
    let req = LoadCollectionRequest {
        collection_name: name,
        ..Default::default()
    };
    rpc!(call, load_collection, req)?;
    ok(json!({}))
}

pub async fn drop(call: Call, b: Body) -> RestResult {
    let req = DropCollectionRequest {
        collection_name: b.str("collectionName")?,
        ..Default::default()
    };
    rpc!(call, drop_collection, req)?;
    ok(json!({}))
}

pub async fn rename(call: Call, b: Body) -> RestResult {
    let new_db = Some(b.opt_str("newDbName")?)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| call.db.clone());
    let req = RenameCollectionRequest {
        old_name: b.str("collectionName")?,
        new_name: b.str("newCollectionName")?,
        new_db_name: new_db,
        ..Default::default()
    };
    rpc!(call, rename_collection, req)?;
    ok(json!({}))
}

pub async fn load(call: Call, b: Body) -> RestResult {
    let req = LoadCollectionRequest {
        collection_name: b.str("collectionName")?,
        ..Default::default()
    };
    rpc!(call, load_collection, req)?;
    ok(json!({}))
}

pub async fn release(call: Call, b: Body) -> RestResult {
    let req = ReleaseCollectionRequest {
        collection_name: b.str("collectionName")?,
        ..Default::default()
    };
    rpc!(call, release_collection, req)?;
    ok(json!({}))
}

pub async fn alter_properties(call: Call, b: Body) -> RestResult {
    let props = b.object("properties")?;
    if props.is_empty() {
        return Err(RestError::missing("properties"));
    }
    let req = AlterCollectionRequest {
        collection_name: b.str("collectionName")?,
        properties: props.iter().map(|(k, v)| kv(k, param_string(v))).collect(),
        ..Default::default()
    };
    rpc!(call, alter_collection, req)?;
    ok(json!({}))
}

pub async fn drop_properties(call: Call, b: Body) -> RestResult {
    let keys = b.strings("propertyKeys")?;
    if keys.is_empty() {
        return Err(RestError::missing("propertyKeys"));
    }
    let req = AlterCollectionRequest {
        collection_name: b.str("collectionName")?,
        delete_keys: keys,
        ..Default::default()
    };
    rpc!(call, alter_collection, req)?;
    ok(json!({}))
}
