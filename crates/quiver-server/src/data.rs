//! Handlers for writes (Insert, Upsert, Delete, Flush) and Query (Search and HybridSearch are in
//! `search`).
//!
//! Writes return the engine's hybrid timestamp as `MutationResult.timestamp` (clients cache it
//! for Session consistency); reads return a fresh `session_ts`. Every read is strong
//! (read-your-writes), which satisfies every Milvus consistency level.
//!
//! Result shape rules (what pymilvus needs): Query always returns one column per output field,
//! even with no rows; `count(*)` is a one-row Int64 column named `count(*)`; `output_fields`
//! lists the returned schema fields plus `$meta` when the whole dynamic object was asked for
//! (`*` or `$meta`), or the requested dynamic keys otherwise, so the client can unpack them.

use quiver_core::{CollectionSchema, DataType, Result};
use quiver_engine::{OutColumn, QueryRequest as EngineQuery, WriteBatch};

use crate::columns::{column_to_proto, columns_from_proto, count_column, ids, row_count, META};
use crate::params::{template_values, Params};
use crate::proto::milvus::*;
use crate::proto::schema::{FieldData, LongArray};
use crate::service::Ctx;
use crate::status::ok;

pub fn pk_is_varchar(schema: &CollectionSchema) -> bool {
    schema.pk_field().data_type == DataType::VarChar
}

fn partition(name: &str) -> Option<&str> {
    Some(name.trim()).filter(|s| !s.is_empty())
}

fn batch(schema: &CollectionSchema, fields: &[FieldData], num_rows: u32) -> Result<WriteBatch> {
    let rows = row_count(fields, num_rows);
    let columns = columns_from_proto(fields, rows, |id| {
        schema
            .fields
            .iter()
            .find(|f| f.field_id == id)
            .map(|f| f.name.clone())
    })?;
    Ok(WriteBatch {
        columns,
        num_rows: rows,
    })
}

pub fn insert(ctx: &Ctx, req: InsertRequest) -> Result<MutationResult> {
    let mut r = write(
        ctx,
        &req.collection_name,
        &req.partition_name,
        &req.fields_data,
        req.num_rows,
        false,
    )?;
    r.insert_cnt = r.succ_index.len() as i64;
    Ok(r)
}

pub fn upsert(ctx: &Ctx, req: UpsertRequest) -> Result<MutationResult> {
    let mut r = write(
        ctx,
        &req.collection_name,
        &req.partition_name,
        &req.fields_data,
        req.num_rows,
        true,
    )?;
    r.upsert_cnt = r.succ_index.len() as i64;
    Ok(r)
}

/// Insert or upsert columnar rows; the caller sets the count field its RPC reports.
fn write(
    ctx: &Ctx,
    coll: &str,
    partition_name: &str,
    fields: &[FieldData],
    num_rows: u32,
    upsert: bool,
) -> Result<MutationResult> {
    let m = ctx.engine().describe_collection(&ctx.db, coll)?;
    for f in fields {
        if m.schema
            .field(&f.field_name)
            .is_some_and(|s| s.data_type.is_vector())
        {
            ctx.check_space(&m, &f.field_name)?;
        }
    }
    let computed;
    let fields = if m.schema.functions.is_empty() {
        fields
    } else {
        let mut all = fields.to_vec();
        crate::functions::embed_write(ctx.shared.embedders.as_deref(), &m, &mut all)?;
        computed = all;
        &computed[..]
    };
    let b = batch(&m.schema, fields, num_rows)?;
    let part = partition(partition_name);
    let r = if upsert {
        ctx.engine().upsert(&ctx.db, coll, part, b)?
    } else {
        ctx.engine().insert(&ctx.db, coll, part, b)?
    };
    Ok(MutationResult {
        status: Some(ok()),
        i_ds: Some(ids(&r.pks, pk_is_varchar(&m.schema))),
        succ_index: (0..r.pks.len() as u32).collect(),
        timestamp: r.ts,
        ..Default::default()
    })
}

pub fn delete(ctx: &Ctx, req: DeleteRequest) -> Result<MutationResult> {
    let params = template_values(&req.expr_template_values)?;
    let r = ctx.engine().delete(
        &ctx.db,
        &req.collection_name,
        partition(&req.partition_name),
        &req.expr,
        &params,
    )?;
    Ok(MutationResult {
        status: Some(ok()),
        delete_cnt: r.count as i64,
        timestamp: r.ts,
        ..Default::default()
    })
}

pub fn flush(ctx: &Ctx, req: FlushRequest) -> Result<FlushResponse> {
    let mut resp = FlushResponse {
        status: Some(ok()),
        db_name: ctx.db.clone(),
        ..Default::default()
    };
    let now_s = (crate::admin::utc_ms(ctx.engine().now_ts()) / 1000) as i64;
    for name in &req.collection_names {
        ctx.engine().flush(&ctx.db, name)?;
        let ts = ctx.engine().now_ts();
        // Real segment ids; an entry is left out when there are none, because prost omits a
        // default map value on the wire and the Node SDK then fails to decode the entry.
        let ids: Vec<i64> = ctx
            .engine()
            .segments(&ctx.db, name)?
            .iter()
            .filter(|s| s.sealed)
            .map(|s| s.id as i64)
            .collect();
        if !ids.is_empty() {
            resp.coll_seg_i_ds
                .insert(name.clone(), LongArray { data: ids.clone() });
            resp.flush_coll_seg_i_ds
                .insert(name.clone(), LongArray { data: ids });
        }
        resp.coll_seal_times.insert(name.clone(), now_s);
        resp.coll_flush_ts.insert(name.clone(), ts);
    }
    Ok(resp)
}

pub fn get_flush_state(ctx: &Ctx, req: GetFlushStateRequest) -> Result<GetFlushStateResponse> {
    if !req.collection_name.is_empty() {
        ctx.engine()
            .describe_collection(&ctx.db, &req.collection_name)?;
    }
    Ok(GetFlushStateResponse {
        status: Some(ok()),
        flushed: true,
    })
}

/// The names to report as `output_fields` for the returned columns.
pub fn output_names(
    schema: &CollectionSchema,
    requested: &[String],
    columns: &[OutColumn],
) -> Vec<String> {
    let mut out: Vec<String> = columns
        .iter()
        .filter(|c| !c.is_dynamic())
        .map(|c| c.name.clone())
        .collect();
    if !schema.enable_dynamic_field {
        return out;
    }
    let requested: Vec<&str> = requested
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect();
    if requested.iter().any(|r| *r == "*" || *r == META) {
        out.push(META.into());
    } else {
        for r in requested {
            if schema.field(r).is_none() && !out.iter().any(|o| o == r) {
                out.push(r.to_string());
            }
        }
    }
    out
}

pub fn query(ctx: &Ctx, req: QueryRequest) -> Result<QueryResults> {
    let p = Params::new(&req.query_params);
    let q = EngineQuery {
        filter: req.expr.clone(),
        filter_params: template_values(&req.expr_template_values)?,
        output_fields: req.output_fields.clone(),
        partitions: req.partition_names.clone(),
        limit: p.usize("limit")?,
        offset: p.usize("offset")?.unwrap_or(0),
    };
    let m = ctx
        .engine()
        .describe_collection(&ctx.db, &req.collection_name)?;
    let r = ctx.engine().query(&ctx.db, &req.collection_name, &q)?;
    let (fields_data, output_fields) = match r.count {
        Some(n) => (vec![count_column(n)], vec!["count(*)".to_string()]),
        None => (
            r.fields.iter().map(column_to_proto).collect(),
            output_names(&m.schema, &req.output_fields, &r.fields),
        ),
    };
    Ok(QueryResults {
        status: Some(ok()),
        fields_data,
        collection_name: m.name.clone(),
        output_fields,
        session_ts: ctx.engine().now_ts(),
        primary_field_name: m.schema.pk_field().name.clone(),
    })
}
