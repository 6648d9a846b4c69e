//! `partitions/*`, `indexes/*`, `aliases/*` and `databases/*`: thin translations to the
//! matching RPCs, answering in Milvus's REST shapes (lists of names as `data: [...]`, `has` as
//! `{"has": bool}`, statistics as `{"rowCount": n}`, index descriptions with `indexType`,
//! `metricType`, row counts and `indexState`).

use serde_json::{json, Value as Json};

use super::body::{param_string, Body};
use super::collections::{index_request, row_count};
use super::{ok, rpc, Call, RestError, RestResult};
use crate::proto::common::{IndexState, KeyValuePair};
use crate::proto::milvus::*;
use crate::status::code;

// ---------------------------------------------------------------- partitions

pub async fn list_partitions(call: Call, b: Body) -> RestResult {
    let req = ShowPartitionsRequest {
        collection_name: b.str("collectionName")?,
        ..Default::default()
    };
    ok(json!(rpc!(call, show_partitions, req)?.partition_names))
}

pub async fn has_partition(call: Call, b: Body) -> RestResult {
    let req = HasPartitionRequest {
        collection_name: b.str("collectionName")?,
        partition_name: b.str("partitionName")?,
        ..Default::default()
    };
    ok(json!({"has": rpc!(call, has_partition, req)?.value}))
}

pub async fn partition_stats(call: Call, b: Body) -> RestResult {
    let req = GetPartitionStatisticsRequest {
        collection_name: b.str("collectionName")?,
        partition_name: b.str("partitionName")?,
        ..Default::default()
    };
    row_count(&rpc!(call, get_partition_statistics, req)?.stats)
}

pub async fn create_partition(call: Call, b: Body) -> RestResult {
    let req = CreatePartitionRequest {
        collection_name: b.str("collectionName")?,
        partition_name: b.str("partitionName")?,
        ..Default::default()
    };
    rpc!(call, create_partition, req)?;
    ok(json!({}))
}

pub async fn drop_partition(call: Call, b: Body) -> RestResult {
    let req = DropPartitionRequest {
        collection_name: b.str("collectionName")?,
        partition_name: b.str("partitionName")?,
        ..Default::default()
    };
    rpc!(call, drop_partition, req)?;
    ok(json!({}))
}

fn partition_names(b: &Body) -> Result<Vec<String>, RestError> {
    let names = b.strings("partitionNames")?;
    if names.is_empty() {
        return Err(RestError::missing("partitionNames"));
    }
    Ok(names)
}

pub async fn load_partitions(call: Call, b: Body) -> RestResult {
    let req = LoadPartitionsRequest {
        collection_name: b.str("collectionName")?,
        partition_names: partition_names(&b)?,
        ..Default::default()
    };
    rpc!(call, load_partitions, req)?;
    ok(json!({}))
}

pub async fn release_partitions(call: Call, b: Body) -> RestResult {
    let req = ReleasePartitionsRequest {
        collection_name: b.str("collectionName")?,
        partition_names: partition_names(&b)?,
        ..Default::default()
    };
    rpc!(call, release_partitions, req)?;
    ok(json!({}))
}

// ---------------------------------------------------------------- indexes

pub async fn list_indexes(call: Call, b: Body) -> RestResult {
    let req = DescribeIndexRequest {
        collection_name: b.str("collectionName")?,
        field_name: b.opt_str("fieldName")?,
        ..Default::default()
    };
    match rpc!(call, describe_index, req) {
        Ok(r) => ok(json!(r
            .index_descriptions
            .iter()
            .map(|i| i.index_name.clone())
            .collect::<Vec<_>>())),
        // No index is an empty list here, as in Milvus.
        Err(e) if e.code == code::INDEX_NOT_FOUND => ok(json!([])),
        Err(e) => Err(e),
    }
}

fn param<'a>(params: &'a [KeyValuePair], key: &str) -> &'a str {
    params
        .iter()
        .find(|kv| kv.key == key)
        .map_or("", |kv| kv.value.as_str())
}

pub async fn describe_index(call: Call, b: Body) -> RestResult {
    let req = DescribeIndexRequest {
        collection_name: b.str("collectionName")?,
        index_name: b.str("indexName")?,
        ..Default::default()
    };
    let r = rpc!(call, describe_index, req)?;
    let out: Vec<Json> = r
        .index_descriptions
        .iter()
        .map(|i| {
            let build = serde_json::from_str::<Json>(param(&i.params, "params"))
                .unwrap_or_else(|_| json!({}));
            json!({
                "indexName": i.index_name,
                "fieldName": i.field_name,
                "indexType": param(&i.params, "index_type"),
                "metricType": param(&i.params, "metric_type"),
                "params": build,
                "totalRows": i.total_rows,
                "pendingRows": i.pending_index_rows,
                "indexedRows": i.indexed_rows,
                "indexState": IndexState::try_from(i.state).map_or("", |s| s.as_str_name()),
                "failReason": i.index_state_fail_reason,
            })
        })
        .collect();
    ok(Json::Array(out))
}

pub async fn create_index(call: Call, b: Body) -> RestResult {
    let name = b.str("collectionName")?;
    let params = b.objects("indexParams")?;
    if params.is_empty() {
        return Err(RestError::missing("indexParams"));
    }
    for p in &params {
        rpc!(call, create_index, index_request(&name, p)?)?;
    }
    ok(json!({}))
}

pub async fn drop_index(call: Call, b: Body) -> RestResult {
    let req = DropIndexRequest {
        collection_name: b.str("collectionName")?,
        index_name: b.str("indexName")?,
        ..Default::default()
    };
    rpc!(call, drop_index, req)?;
    ok(json!({}))
}

// ---------------------------------------------------------------- aliases

pub async fn list_aliases(call: Call, b: Body) -> RestResult {
    let req = ListAliasesRequest {
        collection_name: b.opt_str("collectionName")?,
        ..Default::default()
    };
    ok(json!(rpc!(call, list_aliases, req)?.aliases))
}

pub async fn describe_alias(call: Call, b: Body) -> RestResult {
    let req = DescribeAliasRequest {
        alias: b.str("aliasName")?,
        ..Default::default()
    };
    let r = rpc!(call, describe_alias, req)?;
    ok(json!({"dbName": r.db_name, "collectionName": r.collection, "aliasName": r.alias}))
}

/// `aliases/create`, or `aliases/alter` when `alter`.
pub async fn create_alias(call: Call, b: Body, alter: bool) -> RestResult {
    let alias = b.str("aliasName")?;
    let collection_name = b.str("collectionName")?;
    if alter {
        let req = AlterAliasRequest {
            alias,
            collection_name,
            ..Default::default()
        };
        rpc!(call, alter_alias, req)?;
    } else {
        let req = CreateAliasRequest {
            alias,
            collection_name,
            ..Default::default()
        };
        rpc!(call, create_alias, req)?;
    }
    ok(json!({}))
}

pub async fn drop_alias(call: Call, b: Body) -> RestResult {
    let req = DropAliasRequest {
        alias: b.str("aliasName")?,
        ..Default::default()
    };
    rpc!(call, drop_alias, req)?;
    ok(json!({}))
}

// ---------------------------------------------------------------- databases

pub async fn create_database(call: Call, b: Body) -> RestResult {
    let req = CreateDatabaseRequest {
        db_name: b.str("dbName")?,
        properties: b
            .object("properties")?
            .iter()
            .map(|(k, v)| KeyValuePair {
                key: k.clone(),
                value: param_string(v),
            })
            .collect(),
        ..Default::default()
    };
    rpc!(call, create_database, req)?;
    ok(json!({}))
}

pub async fn drop_database(call: Call, b: Body) -> RestResult {
    let req = DropDatabaseRequest {
        db_name: b.str("dbName")?,
        ..Default::default()
    };
    rpc!(call, drop_database, req)?;
    ok(json!({}))
}

pub async fn list_databases(call: Call, _: Body) -> RestResult {
    ok(json!(
        rpc!(call, list_databases, ListDatabasesRequest::default())?.db_names
    ))
}

pub async fn describe_database(call: Call, b: Body) -> RestResult {
    let req = DescribeDatabaseRequest {
        db_name: b.str("dbName")?,
        ..Default::default()
    };
    let r = rpc!(call, describe_database, req)?;
    let props: Vec<Json> = r
        .properties
        .iter()
        .map(|kv| json!({"key": kv.key, "value": kv.value}))
        .collect();
    ok(json!({"dbName": r.db_name, "dbID": r.db_id, "properties": props}))
}
