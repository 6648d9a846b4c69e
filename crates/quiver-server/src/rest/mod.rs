//! Milvus REST v2 (`POST /v2/vectordb/{category}/{action}`) on the gRPC port.
//!
//! Transport: [`routes`] returns one router holding the tonic service (gRPC paths
//! `/milvus.proto.milvus.MilvusService/*`) and the REST endpoints; `crate::serve` runs it on a
//! tonic server that also accepts HTTP/1.1 (`accept_http1`), so one listener speaks h2 gRPC and
//! HTTP/1.1 (or h2c) JSON. gRPC requests take exactly the route they took before (the same tonic
//! server and service); an unknown path answers gRPC UNIMPLEMENTED when its content-type is
//! `application/grpc*` and a JSON 404 otherwise.
//!
//! One path, not two: every endpoint translates its JSON body into the gRPC request message(s)
//! Milvus's own REST layer builds, calls the [`MilvusApi`] trait methods (so the same `call`
//! plumbing, database resolution, auth metadata and handlers run as for gRPC), and translates
//! the response messages into JSON. The forwarded requests carry [`metrics::Internal`] so a REST
//! request is counted once, under its endpoint.
//!
//! Wire conventions, as Milvus: every answer is HTTP 200 with `{"code":0,"data":...}` or
//! `{"code":<Milvus code>,"message":"..."}`; the database comes from the body's `dbName`, else
//! the `DB-Name` header, else `default`; int64 values (primary keys, Int64 fields, insert ids)
//! are JSON strings unless the request has `Accept-Type-Allow-Int64: true`; body errors are
//! 1801 (not JSON, or a key of the wrong type) and 1802 (a required key missing).
//! `Authorization: Bearer <user:password or token>` is forwarded to the handlers as the
//! base64 `authorization` metadata pymilvus sends; an `Unauthenticated` answer is HTTP 401 with
//! code 1800, `PermissionDenied` HTTP 403.
//!
//! Modules: [`body`] (request accessors), [`rows`] (JSON rows <-> `FieldData` columns),
//! [`collections`], [`entities`], [`manage`] (partitions, indexes, aliases, databases).

mod body;
mod collections;
mod entities;
mod manage;
mod rows;
pub mod v1;

use std::time::Instant;

use axum::body::Body as HttpBody;
use axum::http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode, Uri};
use axum::routing::post;
use serde_json::{json, Value as Json};

use crate::metrics::{self, Internal};
use crate::proto::common::Status;
use crate::service::MilvusApi;
use crate::status::code;
pub use body::Body;

/// Largest accepted request body (as gRPC: 256 MiB).
const MAX_BODY: usize = 256 << 20;
/// Bodies larger than this are parsed on a blocking thread, not on an async worker (a 50 MB
/// insert takes long enough to delay every other request on that worker).
const OFFLOAD_BYTES: usize = 1 << 20;

/// Run CPU-heavy JSON work (parsing, row <-> column conversion) on a blocking thread.
pub async fn offload<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RestError> + Send + 'static,
) -> Result<T, RestError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RestError::new(code::UNEXPECTED, format!("REST conversion failed: {e}")))?
}

/// Milvus `merr` codes of the REST layer.
pub mod rest_code {
    pub const NEED_AUTHENTICATE: i32 = 1800;
    pub const INCORRECT_PARAMETER_FORMAT: i32 = 1801;
    pub const MISSING_REQUIRED_PARAMETERS: i32 = 1802;
    pub const INVALID_INSERT_DATA: i32 = 1804;
    pub const CHECK_PRIMARY_KEY: i32 = 1806;
}

/// Every endpoint, `category/action` (the metrics label).
const ENDPOINTS: &[&str] = &[
    "collections/list",
    "collections/has",
    "collections/describe",
    "collections/get_stats",
    "collections/get_load_state",
    "collections/create",
    "collections/drop",
    "collections/rename",
    "collections/load",
    "collections/refresh_load",
    "collections/release",
    "collections/alter_properties",
    "collections/drop_properties",
    "entities/insert",
    "entities/upsert",
    "entities/delete",
    "entities/get",
    "entities/query",
    "entities/search",
    "entities/hybrid_search",
    "entities/advanced_search",
    "partitions/list",
    "partitions/has",
    "partitions/get_stats",
    "partitions/create",
    "partitions/drop",
    "partitions/load",
    "partitions/release",
    "indexes/list",
    "indexes/describe",
    "indexes/create",
    "indexes/drop",
    "aliases/list",
    "aliases/describe",
    "aliases/create",
    "aliases/drop",
    "aliases/alter",
    "databases/create",
    "databases/drop",
    "databases/list",
    "databases/describe",
];

/// A failed REST call: the HTTP status (200 for every Milvus error) and the JSON code/message.
#[derive(Debug, Clone)]
pub struct RestError {
    pub http: StatusCode,
    pub code: i32,
    pub message: String,
}

impl RestError {
    pub fn new(code: i32, message: impl Into<String>) -> RestError {
        RestError {
            http: StatusCode::OK,
            code,
            message: message.into(),
        }
    }

    /// 1801, Milvus's "can only accept json format request".
    pub fn format(detail: impl std::fmt::Display) -> RestError {
        RestError::new(
            rest_code::INCORRECT_PARAMETER_FORMAT,
            format!("can only accept json format request, error: {detail}"),
        )
    }

    /// 1802, Milvus's "missing required parameters".
    pub fn missing(key: &str) -> RestError {
        RestError::new(
            rest_code::MISSING_REQUIRED_PARAMETERS,
            format!("missing required parameters, error: {key} is required"),
        )
    }

    /// 1100, an invalid parameter value.
    pub fn invalid(message: impl Into<String>) -> RestError {
        RestError::new(code::PARAMETER_INVALID, message)
    }
}

impl From<quiver_core::Error> for RestError {
    fn from(e: quiver_core::Error) -> RestError {
        RestError::from(crate::status::from_error(&e))
    }
}

impl From<Status> for RestError {
    fn from(s: Status) -> RestError {
        // Quiver fills `code` in every failed status; a bare deprecated `error_code` is
        // "unexpected".
        let code = if s.code != 0 {
            s.code
        } else {
            code::UNEXPECTED
        };
        RestError::new(code, s.reason)
    }
}

impl From<tonic::Status> for RestError {
    fn from(s: tonic::Status) -> RestError {
        let (http, code) = match s.code() {
            tonic::Code::Unauthenticated => {
                (StatusCode::UNAUTHORIZED, rest_code::NEED_AUTHENTICATE)
            }
            tonic::Code::PermissionDenied => (StatusCode::FORBIDDEN, 2),
            tonic::Code::Unimplemented => (StatusCode::OK, code::UNEXPECTED),
            _ => (StatusCode::OK, code::UNEXPECTED),
        };
        RestError {
            http,
            code,
            message: s.message().to_string(),
        }
    }
}

pub type RestResult = Result<Json, RestError>;

/// `{"code":0,"data":data}`.
pub fn ok(data: Json) -> RestResult {
    Ok(json!({"code": 0, "data": data}))
}

/// Responses whose `status` decides success.
pub trait HasStatus {
    fn status(&self) -> Option<&Status>;
}

impl HasStatus for Status {
    fn status(&self) -> Option<&Status> {
        Some(self)
    }
}

macro_rules! has_status {
    ($($t:ty),* $(,)?) => {$(
        impl HasStatus for $t {
            fn status(&self) -> Option<&Status> {
                self.status.as_ref()
            }
        }
    )*};
}

use crate::proto::milvus as m;
has_status!(
    m::BoolResponse,
    m::ListDatabasesResponse,
    m::DescribeDatabaseResponse,
    m::DescribeCollectionResponse,
    m::ShowCollectionsResponse,
    m::GetCollectionStatisticsResponse,
    m::GetLoadingProgressResponse,
    m::GetLoadStateResponse,
    m::ShowPartitionsResponse,
    m::GetPartitionStatisticsResponse,
    m::DescribeAliasResponse,
    m::ListAliasesResponse,
    m::DescribeIndexResponse,
    m::MutationResult,
    m::SearchResults,
    m::QueryResults,
);

/// One REST request's context: the service, the database, and the header-derived options.
#[derive(Clone)]
pub struct Call {
    pub api: MilvusApi,
    pub db: String,
    /// `Accept-Type-Allow-Int64: true`: int64 values as JSON numbers.
    pub int64: bool,
    /// The `authorization` metadata to forward (base64 of the Bearer token).
    auth: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
    /// The vector space the request declares (body `spaceId`, or the `Quiver-Space-Id` header).
    space_id: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
    /// `Client-Request-Id` (given or generated) and the other non-HTTP headers, forwarded as
    /// metadata (experiment assignment and feedback).
    forward: Vec<(
        tonic::metadata::MetadataKey<tonic::metadata::Ascii>,
        tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
    )>,
}

impl Call {
    /// Wrap a gRPC request message for the service: internal marker, database, credentials.
    pub fn request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        r.extensions_mut().insert(Internal);
        if let Ok(v) = self.db.parse() {
            r.metadata_mut().insert("dbname", v);
        }
        if let Some(a) = &self.auth {
            r.metadata_mut().insert("authorization", a.clone());
        }
        if let Some(s) = &self.space_id {
            r.metadata_mut().insert("quiver-space-id", s.clone());
        }
        for (k, v) in &self.forward {
            r.metadata_mut().insert(k.clone(), v.clone());
        }
        r
    }
}

/// The answer of a service method, or its failed status as a [`RestError`].
pub fn finish<T: HasStatus>(r: Result<tonic::Response<T>, tonic::Status>) -> Result<T, RestError> {
    let resp = r?.into_inner();
    #[allow(deprecated)]
    match resp.status() {
        Some(s) if s.code != 0 || s.error_code != 0 => Err(RestError::from(s.clone())),
        _ => Ok(resp),
    }
}

/// Call one service method with a request message: `rpc!(call, describe_collection, req)`.
macro_rules! rpc {
    ($call:expr, $method:ident, $msg:expr) => {{
        use $crate::proto::milvus::milvus_service_server::MilvusService as _;
        let call: &$crate::rest::Call = &$call;
        $crate::rest::finish(call.api.$method(call.request($msg)).await)
    }};
}
pub(crate) use rpc;

/// Go's `strconv.ParseBool` (what Milvus uses for its boolean headers).
fn header_bool(headers: &HeaderMap, name: &str) -> bool {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| matches!(v.trim(), "1" | "t" | "T" | "true" | "TRUE" | "True"))
}

fn forwarded_auth(
    headers: &HeaderMap,
) -> Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>> {
    let raw = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let token = raw
        .strip_prefix("Bearer ")
        .or_else(|| raw.strip_prefix("bearer "))
        .unwrap_or(raw)
        .trim();
    if token.is_empty() {
        return None;
    }
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .encode(token)
        .parse()
        .ok()
}

fn json_response(http: StatusCode, body: &Json) -> Response<HttpBody> {
    let mut r = Response::new(HttpBody::from(body.to_string()));
    *r.status_mut() = http;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

async fn dispatch(endpoint: &'static str, call: Call, b: Body) -> RestResult {
    use {collections as c, entities as e, manage as x};
    match endpoint {
        "collections/list" => c::list(call, b).await,
        "collections/has" => c::has(call, b).await,
        "collections/describe" => c::describe(call, b).await,
        "collections/get_stats" => c::get_stats(call, b).await,
        "collections/get_load_state" => c::get_load_state(call, b).await,
        "collections/create" => c::create(call, b).await,
        "collections/drop" => c::drop(call, b).await,
        "collections/rename" => c::rename(call, b).await,
        "collections/load" | "collections/refresh_load" => c::load(call, b).await,
        "collections/release" => c::release(call, b).await,
        "collections/alter_properties" => c::alter_properties(call, b).await,
        "collections/drop_properties" => c::drop_properties(call, b).await,
        "entities/insert" => e::insert(call, b, false).await,
        "entities/upsert" => e::insert(call, b, true).await,
        "entities/delete" => e::delete(call, b).await,
        "entities/get" => e::get(call, b).await,
        "entities/query" => e::query(call, b).await,
        "entities/search" => e::search(call, b).await,
        "entities/hybrid_search" | "entities/advanced_search" => e::hybrid_search(call, b).await,
        "partitions/list" => x::list_partitions(call, b).await,
        "partitions/has" => x::has_partition(call, b).await,
        "partitions/get_stats" => x::partition_stats(call, b).await,
        "partitions/create" => x::create_partition(call, b).await,
        "partitions/drop" => x::drop_partition(call, b).await,
        "partitions/load" => x::load_partitions(call, b).await,
        "partitions/release" => x::release_partitions(call, b).await,
        "indexes/list" => x::list_indexes(call, b).await,
        "indexes/describe" => x::describe_index(call, b).await,
        "indexes/create" => x::create_index(call, b).await,
        "indexes/drop" => x::drop_index(call, b).await,
        "aliases/list" => x::list_aliases(call, b).await,
        "aliases/describe" => x::describe_alias(call, b).await,
        "aliases/create" => x::create_alias(call, b, false).await,
        "aliases/alter" => x::create_alias(call, b, true).await,
        "aliases/drop" => x::drop_alias(call, b).await,
        "databases/create" => x::create_database(call, b).await,
        "databases/drop" => x::drop_database(call, b).await,
        "databases/list" => x::list_databases(call, b).await,
        "databases/describe" => x::describe_database(call, b).await,
        other => Err(RestError::new(
            code::UNEXPECTED,
            format!("endpoint {other} has no handler"),
        )),
    }
}

/// Serve one `POST /v2/vectordb/...` request.
async fn handle(
    api: MilvusApi,
    uri: Uri,
    headers: HeaderMap,
    body: HttpBody,
) -> Response<HttpBody> {
    let started = Instant::now();
    let path = uri
        .path()
        .strip_prefix("/v2/vectordb/")
        .unwrap_or_default()
        .trim_end_matches('/');
    let Some(endpoint) = ENDPOINTS.iter().copied().find(|e| *e == path) else {
        metrics::record_request("rest", "unknown", 404, started.elapsed());
        return not_found(uri.path());
    };
    let request_id = ["client-request-id", "client_request_id", "request-id"]
        .iter()
        .find_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(crate::experiments::new_request_id);
    let rid = request_id.clone();
    let result = async {
        let request_id = rid;
        let bytes = axum::body::to_bytes(body, MAX_BODY)
            .await
            .map_err(|e| RestError::format(format!("reading the body: {e}")))?;
        let b = if bytes.len() > OFFLOAD_BYTES {
            offload(move || Body::parse(&bytes)).await?
        } else {
            Body::parse(&bytes)?
        };
        let db = match b.opt_str("dbName")? {
            s if !s.is_empty() => s,
            _ => headers
                .get("DB-Name")
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .unwrap_or(quiver_engine::DEFAULT_DB)
                .to_string(),
        };
        let declared = match b.opt_str("spaceId")? {
            s if !s.is_empty() => s,
            _ => b.opt_str("space_id")?,
        };
        let space = match declared {
            s if !s.is_empty() => Some(s),
            _ => headers
                .get("Quiver-Space-Id")
                .and_then(|v| v.to_str().ok())
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()),
        };
        // Every header but HTTP's own and those handled above: an experiment may assign by any.
        const OWN: [&str; 17] = [
            "authorization",
            "content-type",
            "content-length",
            "host",
            "accept",
            "accept-encoding",
            "connection",
            "user-agent",
            "te",
            "transfer-encoding",
            "db-name",
            "quiver-space-id",
            "client-request-id",
            "accept-type-allow-int64",
            "dbname",
            "identifier",
            "grpc-timeout",
        ];
        let mut forward: Vec<_> = headers
            .iter()
            .filter(|(k, _)| !OWN.contains(&k.as_str()))
            .filter_map(|(k, v)| Some((k.as_str().parse().ok()?, v.to_str().ok()?.parse().ok()?)))
            .collect();
        if let Ok(v) = request_id.parse() {
            forward.push((
                tonic::metadata::MetadataKey::from_static("client-request-id"),
                v,
            ));
        }
        let call = Call {
            api,
            db,
            int64: header_bool(&headers, "Accept-Type-Allow-Int64"),
            auth: forwarded_auth(&headers),
            space_id: space.and_then(|s| s.parse().ok()),
            forward,
        };
        dispatch(endpoint, call, b).await
    }
    .await;
    let (http, json, code) = match result {
        Ok(j) => (StatusCode::OK, j, 0),
        Err(e) => {
            tracing::debug!(
                endpoint,
                code = e.code,
                "REST request refused: {}",
                e.message
            );
            let j = json!({"code": e.code, "message": e.message});
            (e.http, j, e.code)
        }
    };
    metrics::record_request("rest", endpoint, code, started.elapsed());
    let mut r = json_response(http, &json);
    if endpoint.contains("search") {
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            r.headers_mut().insert("quiver-request-id", v);
        }
    }
    r
}

fn not_found(path: &str) -> Response<HttpBody> {
    json_response(
        StatusCode::NOT_FOUND,
        &json!({"code": 404, "message": format!("no REST endpoint at {path}")}),
    )
}

/// Unknown paths: gRPC UNIMPLEMENTED for gRPC requests (as tonic's own fallback), else 404.
async fn fallback(req: Request<HttpBody>) -> Response<HttpBody> {
    let grpc = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"));
    if grpc {
        let (parts, ()) = tonic::Status::unimplemented("")
            .into_http::<()>()
            .into_parts();
        return Response::from_parts(parts, HttpBody::empty());
    }
    not_found(req.uri().path())
}

/// The router for the gRPC port: the Milvus gRPC service plus the REST v2 endpoints.
pub fn routes(api: MilvusApi, registry: Option<std::sync::Arc<v1::V1>>) -> tonic::service::Routes {
    let grpc = tonic::service::Routes::new(api.clone().into_service());
    let mut router = grpc.into_axum_router().route(
        "/v2/vectordb/{*path}",
        post(move |uri: Uri, headers: HeaderMap, body: HttpBody| {
            handle(api.clone(), uri, headers, body)
        }),
    );
    if let Some(v1) = registry {
        router = router.merge(v1::router(v1));
    }
    let router = router.fallback(fallback);
    tonic::service::Routes::from(router).prepare()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_forwarded_as_pymilvus_sends_them() {
        let mut h = HeaderMap::new();
        assert!(forwarded_auth(&h).is_none());
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer root:Milvus"),
        );
        assert_eq!(forwarded_auth(&h).unwrap(), "cm9vdDpNaWx2dXM=");
        h.insert("Accept-Type-Allow-Int64", HeaderValue::from_static("true"));
        assert!(header_bool(&h, "Accept-Type-Allow-Int64"));
        assert!(!header_bool(&h, "Other"));
    }

    #[test]
    fn every_endpoint_is_dispatched() {
        let mut seen = std::collections::HashSet::new();
        for e in ENDPOINTS {
            assert!(seen.insert(*e), "duplicate {e}");
            let (cat, action) = e.split_once('/').unwrap();
            assert!(!cat.is_empty() && !action.is_empty());
        }
    }
}
