//! Handlers for the connection handshake, health, timestamps, databases, aliases, the load
//! lifecycle and compaction.
//!
//! Loading is a no-op in Quiver (every collection is always searchable), so Load/Release only
//! record the state that GetLoadState reports, and GetLoadingProgress is always 100: client
//! polling loops end at once. They still check that the collection (and partitions) exist.
//!
//! ManualCompaction runs the engine's flush, which seals growing segments and compacts sealed
//! ones, before it answers; so GetCompactionState reports every compaction id it handed out as
//! Completed (and an unknown id as UndefiedState), and GetCompactionStateWithPlans lists no
//! pending plans.

use quiver_core::{Error, Result};

use crate::proto::common::{CompactionState, LoadState, ServerInfo, Status};
use crate::proto::milvus::*;
use crate::schema::kv_list;
use crate::service::Ctx;
use crate::status::ok;

/// The Milvus version Quiver answers GetVersion with: the protocol level it speaks.
pub const MILVUS_VERSION: &str = "v2.5.0";

/// Physical milliseconds of a hybrid timestamp.
pub fn utc_ms(ts: u64) -> u64 {
    ts >> 18
}

pub fn connect(ctx: &Ctx, req: ConnectRequest) -> Result<ConnectResponse> {
    if let Some(info) = &req.client_info {
        tracing::debug!(
            sdk = info.sdk_type,
            version = info.sdk_version,
            host = info.host,
            "client connected"
        );
    }
    let mut reserved = std::collections::HashMap::new();
    reserved.insert("server".to_string(), "quiver".to_string());
    Ok(ConnectResponse {
        status: Some(ok()),
        server_info: Some(ServerInfo {
            build_tags: format!("quiver-{}", env!("CARGO_PKG_VERSION")),
            build_time: String::new(),
            git_commit: String::new(),
            go_version: "rust".into(),
            deploy_mode: "STANDALONE".into(),
            reserved,
        }),
        identifier: ctx.shared.next_identifier(),
    })
}

pub fn get_version(_: &Ctx, _: GetVersionRequest) -> Result<GetVersionResponse> {
    Ok(GetVersionResponse {
        status: Some(ok()),
        version: MILVUS_VERSION.into(),
    })
}

pub fn check_health(_: &Ctx, _: CheckHealthRequest) -> Result<CheckHealthResponse> {
    Ok(CheckHealthResponse {
        status: Some(ok()),
        is_healthy: true,
        reasons: vec![],
    })
}

pub fn alloc_timestamp(ctx: &Ctx, _: AllocTimestampRequest) -> Result<AllocTimestampResponse> {
    Ok(AllocTimestampResponse {
        status: Some(ok()),
        timestamp: ctx.engine().now_ts(),
    })
}

// ---------------------------------------------------------------- databases

fn target_db(name: &str) -> Result<&str> {
    let name = name.trim();
    if name.is_empty() {
        return Err(Error::InvalidArgument("db_name must not be empty".into()));
    }
    Ok(name)
}

pub fn create_database(ctx: &Ctx, req: CreateDatabaseRequest) -> Result<Status> {
    let props = crate::schema::kv_map(&req.properties);
    ctx.engine()
        .create_database(target_db(&req.db_name)?, props)?;
    Ok(ok())
}

pub fn drop_database(ctx: &Ctx, req: DropDatabaseRequest) -> Result<Status> {
    ctx.engine().drop_database(target_db(&req.db_name)?)?;
    Ok(ok())
}

pub fn list_databases(ctx: &Ctx, _: ListDatabasesRequest) -> Result<ListDatabasesResponse> {
    let dbs = ctx.engine().list_databases();
    Ok(ListDatabasesResponse {
        status: Some(ok()),
        db_names: dbs.iter().map(|d| d.name.clone()).collect(),
        created_timestamp: dbs.iter().map(|d| d.created_ts).collect(),
        db_ids: dbs.iter().map(|d| d.id as i64).collect(),
    })
}

pub fn alter_database(ctx: &Ctx, req: AlterDatabaseRequest) -> Result<Status> {
    ctx.engine().alter_database(
        &ctx.db,
        crate::schema::kv_map(&req.properties),
        &req.delete_keys,
    )?;
    Ok(ok())
}

pub fn describe_database(
    ctx: &Ctx,
    _: DescribeDatabaseRequest,
) -> Result<DescribeDatabaseResponse> {
    let d = ctx.engine().describe_database(&ctx.db)?;
    Ok(DescribeDatabaseResponse {
        status: Some(ok()),
        db_name: d.name.clone(),
        db_id: d.id as i64,
        created_timestamp: d.created_ts,
        properties: kv_list(&d.properties),
    })
}

// ---------------------------------------------------------------- aliases

pub fn create_alias(ctx: &Ctx, req: CreateAliasRequest) -> Result<Status> {
    ctx.engine()
        .create_alias(&ctx.db, &req.alias, &req.collection_name)?;
    Ok(ok())
}

pub fn drop_alias(ctx: &Ctx, req: DropAliasRequest) -> Result<Status> {
    ctx.engine().drop_alias(&ctx.db, &req.alias)?;
    Ok(ok())
}

pub fn alter_alias(ctx: &Ctx, req: AlterAliasRequest) -> Result<Status> {
    ctx.engine()
        .alter_alias(&ctx.db, &req.alias, &req.collection_name)?;
    Ok(ok())
}

pub fn describe_alias(ctx: &Ctx, req: DescribeAliasRequest) -> Result<DescribeAliasResponse> {
    let collection = ctx.engine().describe_alias(&ctx.db, &req.alias)?;
    Ok(DescribeAliasResponse {
        status: Some(ok()),
        db_name: ctx.db.clone(),
        alias: req.alias,
        collection,
    })
}

pub fn list_aliases(ctx: &Ctx, req: ListAliasesRequest) -> Result<ListAliasesResponse> {
    let aliases = ctx
        .engine()
        .list_aliases(&ctx.db, Some(&req.collection_name))?;
    Ok(ListAliasesResponse {
        status: Some(ok()),
        db_name: ctx.db.clone(),
        collection_name: req.collection_name,
        aliases,
    })
}

// ---------------------------------------------------------------- load lifecycle

fn check_partitions(ctx: &Ctx, coll: &str, names: &[String]) -> Result<()> {
    let meta = ctx.engine().describe_collection(&ctx.db, coll)?;
    for p in names {
        if meta.partition(p).is_none() {
            return Err(Error::PartitionNotFound(p.clone()));
        }
    }
    Ok(())
}

pub fn load_collection(ctx: &Ctx, req: LoadCollectionRequest) -> Result<Status> {
    ctx.engine()
        .set_loaded(&ctx.db, &req.collection_name, true)?;
    Ok(ok())
}

pub fn release_collection(ctx: &Ctx, req: ReleaseCollectionRequest) -> Result<Status> {
    ctx.engine()
        .set_loaded(&ctx.db, &req.collection_name, false)?;
    Ok(ok())
}

pub fn load_partitions(ctx: &Ctx, req: LoadPartitionsRequest) -> Result<Status> {
    check_partitions(ctx, &req.collection_name, &req.partition_names)?;
    ctx.engine()
        .set_loaded(&ctx.db, &req.collection_name, true)?;
    Ok(ok())
}

pub fn release_partitions(ctx: &Ctx, req: ReleasePartitionsRequest) -> Result<Status> {
    check_partitions(ctx, &req.collection_name, &req.partition_names)?;
    Ok(ok())
}

pub fn get_loading_progress(
    ctx: &Ctx,
    req: GetLoadingProgressRequest,
) -> Result<GetLoadingProgressResponse> {
    check_partitions(ctx, &req.collection_name, &req.partition_names)?;
    Ok(GetLoadingProgressResponse {
        status: Some(ok()),
        progress: 100,
        refresh_progress: 100,
    })
}

pub fn get_load_state(ctx: &Ctx, req: GetLoadStateRequest) -> Result<GetLoadStateResponse> {
    check_partitions(ctx, &req.collection_name, &req.partition_names)?;
    let meta = ctx
        .engine()
        .describe_collection(&ctx.db, &req.collection_name)?;
    let state = if meta.loaded {
        LoadState::Loaded
    } else {
        LoadState::NotLoad
    };
    Ok(GetLoadStateResponse {
        status: Some(ok()),
        state: state as i32,
    })
}

// ---------------------------------------------------------------- compaction

/// The compaction ids handed out (the most recent [`Compactions::KEEP`]).
#[derive(Debug, Default)]
pub struct Compactions {
    ids: std::sync::Mutex<std::collections::VecDeque<i64>>,
}

impl Compactions {
    pub const KEEP: usize = 4096;

    fn record(&self, id: i64) {
        let mut ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        if ids.len() >= Self::KEEP {
            ids.pop_front();
        }
        ids.push_back(id);
    }

    fn state(&self, id: i64) -> CompactionState {
        let ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        if ids.contains(&id) {
            CompactionState::Completed
        } else {
            CompactionState::UndefiedState
        }
    }
}

pub fn manual_compaction(
    ctx: &Ctx,
    req: ManualCompactionRequest,
) -> Result<ManualCompactionResponse> {
    let name = if req.collection_name.trim().is_empty() && req.collection_id != 0 {
        ctx.engine()
            .collection_meta_by_id(req.collection_id as u64)
            .ok_or_else(|| Error::CollectionNotFound(format!("id {}", req.collection_id)))?
            .name
    } else {
        req.collection_name.clone()
    };
    let m = ctx.engine().describe_collection(&ctx.db, &name)?;
    ctx.engine().flush(&m.db, &m.name)?;
    let id = ctx.engine().now_ts() as i64;
    ctx.shared.compactions.record(id);
    Ok(ManualCompactionResponse {
        status: Some(ok()),
        compaction_id: id,
        compaction_plan_count: 0,
    })
}

pub fn get_compaction_state(
    ctx: &Ctx,
    req: GetCompactionStateRequest,
) -> Result<GetCompactionStateResponse> {
    Ok(GetCompactionStateResponse {
        status: Some(ok()),
        state: ctx.shared.compactions.state(req.compaction_id) as i32,
        ..Default::default()
    })
}

pub fn get_compaction_plans(
    ctx: &Ctx,
    req: GetCompactionPlansRequest,
) -> Result<GetCompactionPlansResponse> {
    Ok(GetCompactionPlansResponse {
        status: Some(ok()),
        state: ctx.shared.compactions.state(req.compaction_id) as i32,
        merge_infos: vec![],
    })
}
