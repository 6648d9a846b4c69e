//! The tonic `MilvusService` implementation: request plumbing shared by every RPC.
//!
//! Each RPC is a plain synchronous handler `fn(&Ctx, Request) -> Result<Response>` (in
//! `admin`, `collections` and `data`). [`MilvusApi::call`] resolves the database (the request's
//! `db_name`, else the `dbname` metadata header, else `default`), runs the handler on a blocking
//! thread (engine calls fsync), and turns an engine error or a panic into the response's
//! `status` via [`crate::status`]. So every application error is answered with gRPC OK and a
//! failed Milvus status; only RPCs missing from our .proto are answered UNIMPLEMENTED (by the
//! generated router), and, with `--auth`, requests without valid credentials UNAUTHENTICATED
//! (checked before anything else, Connect included: see [`crate::auth`]).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use quiver_core::Result;
use quiver_engine::{Engine, DEFAULT_DB};
use tonic::{Request, Response};

use crate::auth::Auth;
use crate::proto::common::Status;
use crate::proto::milvus::milvus_service_server::{MilvusService, MilvusServiceServer};
use crate::proto::milvus::*;
use crate::{admin, collections, data, functions, search, status, users};

/// Server-wide state shared by the handlers.
#[derive(Debug)]
pub struct Shared {
    pub engine: Arc<Engine>,
    next_identifier: AtomicI64,
    /// Credential checks (`--auth`); `None` lets every request in.
    pub auth: Option<Arc<Auth>>,
    /// Search iterator v2 cursors.
    pub cursors: crate::iterator::Cursors,
    /// Compaction ids handed out by ManualCompaction.
    pub compactions: admin::Compactions,
    /// The model registry: vector fields bound to model versions (space checks).
    pub registry: Option<Arc<quiver_registry::Registry>>,
    /// Encoders of registry versions (TextEmbedding functions, `/v1/.../embed`).
    pub embedders: Option<Arc<crate::functions::Embedders>>,
    /// Online experiments on serving aliases (searches on an alias with one running go
    /// through it).
    pub experiments: Option<Arc<crate::experiments::Experiments>>,
    /// Recent query vectors per field (autotuning on live traffic).
    pub query_log: Arc<crate::tuning::QueryLog>,
}

impl Shared {
    /// A fresh, non-zero client identifier for `Connect`.
    pub fn next_identifier(&self) -> i64 {
        self.next_identifier.fetch_add(1, Ordering::Relaxed)
    }
}

/// What a handler gets: the engine and the database the request addresses.
#[derive(Clone)]
pub struct Ctx {
    pub shared: Arc<Shared>,
    pub db: String,
    /// The vector space the client declares (`quiver-space-id` metadata; REST `spaceId`).
    pub space_id: Option<String>,
    /// The authenticated user (`anonymous` without `--auth`): the registry's audit actor.
    pub user: String,
    /// The client's `client-request-id` (or `client_request_id`) header, when non-empty.
    pub client_request_id: Option<String>,
    /// That id, or one generated for this request (returned as `quiver-request-id`).
    pub request_id: String,
    /// The request's other metadata, names lowercased (experiment assignment headers).
    pub headers: Arc<Vec<(String, String)>>,
}

impl Ctx {
    pub fn engine(&self) -> &Engine {
        &self.shared.engine
    }

    /// The value of metadata header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }

    /// This context without a declared vector space (a challenger arm of another space, which
    /// answers text queries embedded with its own model).
    pub fn without_space(&self) -> Ctx {
        Ctx {
            space_id: None,
            ..self.clone()
        }
    }

    /// Refuse a request that declares a vector space other than the one `field` of
    /// collection `m` is bound to. Requests that declare nothing, and unbound fields, pass.
    pub fn check_space(&self, m: &quiver_engine::CollectionMeta, field: &str) -> Result<()> {
        let (Some(declared), Some(reg)) = (&self.space_id, &self.shared.registry) else {
            return Ok(());
        };
        match reg.binding(m.id, field) {
            Some(b) if &b.space_id != declared => Err(quiver_core::Error::InvalidArgument(format!(
                "vector space mismatch: field {field} of collection {} is bound to {}@{} (space {}), the request declares space {declared}",
                m.name, b.model, b.version, b.space_id
            ))),
            _ => Ok(()),
        }
    }
}

/// Responses that carry a `common.Status`.
pub trait Reply: Default {
    fn with_status(s: Status) -> Self;
}

impl Reply for Status {
    fn with_status(s: Status) -> Self {
        s
    }
}

impl Reply for TruncateCollectionResponse {
    fn with_status(s: Status) -> Self {
        Self { status: Some(s) }
    }
}

macro_rules! replies {
    ($($t:ty),* $(,)?) => {$(
        impl Reply for $t {
            fn with_status(s: Status) -> Self {
                Self { status: Some(s), ..Default::default() }
            }
        }
    )*};
}

replies!(
    RunAnalyzerResponse,
    BoolResponse,
    ConnectResponse,
    GetVersionResponse,
    CheckHealthResponse,
    AllocTimestampResponse,
    ListDatabasesResponse,
    DescribeDatabaseResponse,
    DescribeCollectionResponse,
    ShowCollectionsResponse,
    GetCollectionStatisticsResponse,
    GetLoadingProgressResponse,
    GetLoadStateResponse,
    ShowPartitionsResponse,
    GetPartitionStatisticsResponse,
    DescribeAliasResponse,
    ListAliasesResponse,
    DescribeIndexResponse,
    MutationResult,
    FlushResponse,
    GetFlushStateResponse,
    SearchResults,
    QueryResults,
    GetIndexStateResponse,
    GetIndexBuildProgressResponse,
    ManualCompactionResponse,
    GetCompactionStateResponse,
    GetCompactionPlansResponse,
    ListCredUsersResponse,
);

/// Requests that may name a database.
pub trait DbName {
    fn db_name(&self) -> &str {
        ""
    }
}

macro_rules! with_db {
    ($($t:ty),* $(,)?) => {$(
        impl DbName for $t {
            fn db_name(&self) -> &str {
                &self.db_name
            }
        }
    )*};
}

macro_rules! without_db {
    ($($t:ty),* $(,)?) => {$( impl DbName for $t {} )*};
}

with_db!(
    CreateDatabaseRequest,
    DropDatabaseRequest,
    DescribeDatabaseRequest,
    CreateCollectionRequest,
    DropCollectionRequest,
    TruncateCollectionRequest,
    AddCollectionFieldRequest,
    RunAnalyzerRequest,
    HasCollectionRequest,
    DescribeCollectionRequest,
    ShowCollectionsRequest,
    GetCollectionStatisticsRequest,
    RenameCollectionRequest,
    AlterCollectionRequest,
    LoadCollectionRequest,
    ReleaseCollectionRequest,
    GetLoadingProgressRequest,
    GetLoadStateRequest,
    CreatePartitionRequest,
    DropPartitionRequest,
    HasPartitionRequest,
    ShowPartitionsRequest,
    GetPartitionStatisticsRequest,
    LoadPartitionsRequest,
    ReleasePartitionsRequest,
    CreateAliasRequest,
    DropAliasRequest,
    AlterAliasRequest,
    DescribeAliasRequest,
    ListAliasesRequest,
    CreateIndexRequest,
    DescribeIndexRequest,
    DropIndexRequest,
    InsertRequest,
    UpsertRequest,
    DeleteRequest,
    FlushRequest,
    GetFlushStateRequest,
    SearchRequest,
    QueryRequest,
    AlterDatabaseRequest,
    GetIndexStateRequest,
    GetIndexBuildProgressRequest,
    HybridSearchRequest,
    ManualCompactionRequest,
);

without_db!(
    ConnectRequest,
    GetVersionRequest,
    CheckHealthRequest,
    AllocTimestampRequest,
    ListDatabasesRequest,
    GetCompactionStateRequest,
    GetCompactionPlansRequest,
    CreateCredentialRequest,
    UpdateCredentialRequest,
    DeleteCredentialRequest,
    ListCredUsersRequest,
);

/// The Milvus gRPC service over one engine.
#[derive(Debug, Clone)]
pub struct MilvusApi {
    shared: Arc<Shared>,
}

impl MilvusApi {
    pub fn new(engine: Arc<Engine>) -> MilvusApi {
        MilvusApi::with_auth(engine, None)
    }

    /// The service, checking credentials with `auth` when it is given (`--auth`).
    pub fn with_auth(engine: Arc<Engine>, auth: Option<Arc<Auth>>) -> MilvusApi {
        MilvusApi::with_registry(engine, auth, None)
    }

    /// The service with credential checks and the model registry (field space checks).
    pub fn with_registry(
        engine: Arc<Engine>,
        auth: Option<Arc<Auth>>,
        registry: Option<Arc<quiver_registry::Registry>>,
    ) -> MilvusApi {
        // Identifiers only need to be non-zero and distinct while the server runs; starting from
        // the clock keeps them distinct across restarts too.
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_millis() as i64)
            .max(1);
        let experiments = registry
            .clone()
            .map(|r| crate::experiments::Experiments::new(r, Arc::clone(&engine)));
        MilvusApi {
            shared: Arc::new(Shared {
                engine,
                next_identifier: AtomicI64::new(start),
                auth,
                cursors: Default::default(),
                compactions: Default::default(),
                embedders: registry
                    .clone()
                    .map(|r| Arc::new(crate::functions::Embedders::new(r))),
                experiments,
                query_log: Default::default(),
                registry,
            }),
        }
    }

    /// The recent query vectors of each field (shared with `/v1`'s autotuning).
    pub fn query_log(&self) -> Arc<crate::tuning::QueryLog> {
        Arc::clone(&self.shared.query_log)
    }

    /// The online experiments this service runs (shared with `/v1`).
    pub fn experiments(&self) -> Option<Arc<crate::experiments::Experiments>> {
        self.shared.experiments.clone()
    }

    /// The encoders this service runs (shared with `/v1`).
    pub fn embedders(&self) -> Option<Arc<crate::functions::Embedders>> {
        self.shared.embedders.clone()
    }

    /// The tonic service, ready for `tonic::transport::Server::add_service`.
    pub fn into_service(self) -> MilvusServiceServer<MilvusApi> {
        MilvusServiceServer::new(self)
            .max_decoding_message_size(256 << 20)
            .max_encoding_message_size(256 << 20)
    }

    async fn call<Req, Resp>(
        &self,
        rpc: &'static str,
        request: Request<Req>,
        handler: fn(&Ctx, Req) -> Result<Resp>,
    ) -> std::result::Result<Response<Resp>, tonic::Status>
    where
        Req: DbName + Send + 'static,
        Resp: Reply + Send + 'static,
    {
        let started = std::time::Instant::now();
        let internal = request
            .extensions()
            .get::<crate::metrics::Internal>()
            .is_some();
        let mut user = "anonymous".to_string();
        if let Some(auth) = &self.shared.auth {
            match auth.authenticate(request.metadata()).await {
                Ok(u) => user = u,
                Err(e) => {
                    tracing::debug!(rpc, "unauthenticated: {}", e.message());
                    crate::metrics::after_rpc(rpc, internal, 1800, started.elapsed(), &());
                    return Err(e);
                }
            }
        }
        let header = request
            .metadata()
            .get("dbname")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .trim()
            .to_string();
        let space_id = request
            .metadata()
            .get("quiver-space-id")
            .and_then(|v| v.to_str().ok())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        let client_request_id = ["client-request-id", "client_request_id"]
            .iter()
            .find_map(|h| request.metadata().get(*h).and_then(|v| v.to_str().ok()))
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        let request_id = client_request_id
            .clone()
            .unwrap_or_else(crate::experiments::new_request_id);
        let headers: Vec<(String, String)> = request
            .metadata()
            .iter()
            .filter_map(|kv| match kv {
                tonic::metadata::KeyAndValueRef::Ascii(k, v) => {
                    Some((k.as_str().to_string(), v.to_str().ok()?.to_string()))
                }
                tonic::metadata::KeyAndValueRef::Binary(..) => None,
            })
            .filter(|(k, _)| k != "authorization")
            .collect();
        let req = request.into_inner();
        let db = [req.db_name().trim(), header.as_str()]
            .into_iter()
            .find(|s| !s.is_empty())
            .unwrap_or(DEFAULT_DB)
            .to_string();
        tracing::debug!(rpc, db, "request");
        let ctx = Ctx {
            shared: Arc::clone(&self.shared),
            db,
            space_id,
            user,
            client_request_id,
            request_id: request_id.clone(),
            headers: Arc::new(headers),
        };
        let (resp, code) = match tokio::task::spawn_blocking(move || handler(&ctx, req)).await {
            Ok(Ok(r)) => (r, status::code::SUCCESS),
            Ok(Err(e)) => {
                if e.is_input_error() || status::codes(&e).0 < status::code::UNEXPECTED {
                    tracing::debug!(rpc, "refused: {e}");
                } else {
                    tracing::warn!(rpc, "failed: {e}");
                }
                let s = status::from_error(&e);
                let code = s.code;
                (Resp::with_status(s), code)
            }
            Err(join) => {
                tracing::error!(rpc, "handler panicked: {join}");
                let s = status::unexpected(format!("internal error in {rpc}"));
                (Resp::with_status(s), status::code::UNEXPECTED)
            }
        };
        crate::metrics::after_rpc(rpc, internal, code, started.elapsed(), &resp);
        let mut response = Response::new(resp);
        if rpc == "search" || rpc == "hybrid_search" {
            if let Ok(v) = request_id.parse() {
                response.metadata_mut().insert("quiver-request-id", v);
            }
        }
        Ok(response)
    }
}

type Rpc<T> = std::result::Result<Response<T>, tonic::Status>;

macro_rules! rpcs {
    ($($method:ident($req:ty) -> $resp:ty = $handler:path;)*) => {
        #[tonic::async_trait]
        impl MilvusService for MilvusApi {
            $(
                async fn $method(&self, request: Request<$req>) -> Rpc<$resp> {
                    self.call(stringify!($method), request, $handler).await
                }
            )*
        }
    };
}

rpcs! {
    connect(ConnectRequest) -> ConnectResponse = admin::connect;
    get_version(GetVersionRequest) -> GetVersionResponse = admin::get_version;
    check_health(CheckHealthRequest) -> CheckHealthResponse = admin::check_health;
    alloc_timestamp(AllocTimestampRequest) -> AllocTimestampResponse = admin::alloc_timestamp;
    create_database(CreateDatabaseRequest) -> Status = admin::create_database;
    drop_database(DropDatabaseRequest) -> Status = admin::drop_database;
    list_databases(ListDatabasesRequest) -> ListDatabasesResponse = admin::list_databases;
    describe_database(DescribeDatabaseRequest) -> DescribeDatabaseResponse = admin::describe_database;
    alter_database(AlterDatabaseRequest) -> Status = admin::alter_database;
    create_alias(CreateAliasRequest) -> Status = admin::create_alias;
    drop_alias(DropAliasRequest) -> Status = admin::drop_alias;
    alter_alias(AlterAliasRequest) -> Status = admin::alter_alias;
    describe_alias(DescribeAliasRequest) -> DescribeAliasResponse = admin::describe_alias;
    list_aliases(ListAliasesRequest) -> ListAliasesResponse = admin::list_aliases;
    load_collection(LoadCollectionRequest) -> Status = admin::load_collection;
    release_collection(ReleaseCollectionRequest) -> Status = admin::release_collection;
    get_loading_progress(GetLoadingProgressRequest) -> GetLoadingProgressResponse = admin::get_loading_progress;
    get_load_state(GetLoadStateRequest) -> GetLoadStateResponse = admin::get_load_state;
    load_partitions(LoadPartitionsRequest) -> Status = admin::load_partitions;
    release_partitions(ReleasePartitionsRequest) -> Status = admin::release_partitions;
    create_collection(CreateCollectionRequest) -> Status = collections::create_collection;
    drop_collection(DropCollectionRequest) -> Status = collections::drop_collection;
    truncate_collection(TruncateCollectionRequest) -> TruncateCollectionResponse = collections::truncate_collection;
    add_collection_field(AddCollectionFieldRequest) -> Status = collections::add_collection_field;
    run_analyzer(RunAnalyzerRequest) -> RunAnalyzerResponse = functions::run_analyzer;
    has_collection(HasCollectionRequest) -> BoolResponse = collections::has_collection;
    describe_collection(DescribeCollectionRequest) -> DescribeCollectionResponse = collections::describe_collection;
    show_collections(ShowCollectionsRequest) -> ShowCollectionsResponse = collections::show_collections;
    get_collection_statistics(GetCollectionStatisticsRequest) -> GetCollectionStatisticsResponse = collections::get_collection_statistics;
    rename_collection(RenameCollectionRequest) -> Status = collections::rename_collection;
    alter_collection(AlterCollectionRequest) -> Status = collections::alter_collection;
    create_partition(CreatePartitionRequest) -> Status = collections::create_partition;
    drop_partition(DropPartitionRequest) -> Status = collections::drop_partition;
    has_partition(HasPartitionRequest) -> BoolResponse = collections::has_partition;
    show_partitions(ShowPartitionsRequest) -> ShowPartitionsResponse = collections::show_partitions;
    get_partition_statistics(GetPartitionStatisticsRequest) -> GetPartitionStatisticsResponse = collections::get_partition_statistics;
    create_index(CreateIndexRequest) -> Status = collections::create_index;
    describe_index(DescribeIndexRequest) -> DescribeIndexResponse = collections::describe_index;
    drop_index(DropIndexRequest) -> Status = collections::drop_index;
    get_index_state(GetIndexStateRequest) -> GetIndexStateResponse = collections::get_index_state;
    get_index_build_progress(GetIndexBuildProgressRequest) -> GetIndexBuildProgressResponse = collections::get_index_build_progress;
    insert(InsertRequest) -> MutationResult = data::insert;
    upsert(UpsertRequest) -> MutationResult = data::upsert;
    delete(DeleteRequest) -> MutationResult = data::delete;
    flush(FlushRequest) -> FlushResponse = data::flush;
    get_flush_state(GetFlushStateRequest) -> GetFlushStateResponse = data::get_flush_state;
    search(SearchRequest) -> SearchResults = search::search;
    hybrid_search(HybridSearchRequest) -> SearchResults = search::hybrid_search;
    query(QueryRequest) -> QueryResults = data::query;
    manual_compaction(ManualCompactionRequest) -> ManualCompactionResponse = admin::manual_compaction;
    get_compaction_state(GetCompactionStateRequest) -> GetCompactionStateResponse = admin::get_compaction_state;
    get_compaction_state_with_plans(GetCompactionPlansRequest) -> GetCompactionPlansResponse = admin::get_compaction_plans;
    create_credential(CreateCredentialRequest) -> Status = users::create_credential;
    update_credential(UpdateCredentialRequest) -> Status = users::update_credential;
    delete_credential(DeleteCredentialRequest) -> Status = users::delete_credential;
    list_cred_users(ListCredUsersRequest) -> ListCredUsersResponse = users::list_cred_users;
}
