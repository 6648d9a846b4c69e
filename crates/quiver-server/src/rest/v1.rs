//! The model registry's REST API under `/v1` (JSON), on the same port as gRPC and REST v2.
//!
//! | method and path | what |
//! |---|---|
//! | `POST /v1/models` `{name, description}` | register a model |
//! | `GET /v1/models`, `GET /v1/models/{name}` | list, describe (versions, aliases) |
//! | `POST /v1/models/{name}/versions` | a version: multipart (`file` parts named by their path, one `metadata` JSON part) or JSON `{source_path, files: [{path, content_base64}], space, lineage, tags}` -> `{version, sha256, space_id, status, ...}` |
//! | `GET /v1/models/{name}/versions/{v}` | the version |
//! | `GET /v1/models/{name}/versions/{v}/files/{path}` | an artifact, verified (500 `artifact_corrupt` if it changed on disk) |
//! | `DELETE /v1/models/{name}/versions/{v}` | refused with 409 while an alias points at it |
//! | `PUT /v1/models/{name}/aliases/{alias}` `{version, expected_version?, reason?}` | move (compare-and-swap when `expected_version` is given; `null` = must not exist) |
//! | `GET`, `DELETE /v1/models/{name}/aliases/{alias}`; `GET .../history` | alias, delete, every move |
//! | `PUT /v1/collections/{c}/fields/{f}/model` `{model, version, db?, reason?}`; `GET`, `DELETE` | bind a vector field to a model version (dim and vector type must match the version's space; 409 when the field holds data of another space); searches and writes that declare another space (`quiver-space-id` metadata, REST v2 `spaceId`) are then refused |
//! | `POST /v1/serving-aliases` `{name, bundle, reason?}`; `GET /v1/serving-aliases[/{name}]` | a serving alias: a bundle (`db`, `collection`, `field`, `model`, `version`, `index`, `search_params`) behind a name that is also a Milvus alias, so pymilvus searches on the name follow it |
//! | `POST /v1/serving-aliases/{name}/promote` `{bundle, expected_revision, reason, evidence}` | compare-and-swap to a new bundle (409 when the revision moved) |
//! | `POST /v1/serving-aliases/{name}/rollback` `{to: "previous" \| revision, reason, expected_revision?, evidence?}`; `GET .../history` | serve an earlier revision's bundle again, as a new revision; every revision |
//! | `POST /v1/models/{name}/versions/{v}/embed`, `POST /v1/models/{name}/aliases/{alias}/embed` `{inputs: [...], role: "query" \| "document"}` | `{vectors, space_id, model, version}`: the version's encoder, run in process (quiver-embed), with the space's query / document prefix |
//! | `POST /v1/collections/{c}/migrations` `{to_model, target_field, source_text_field, batch_size?, max_rows_per_s?, db?}` | start a re-embedding migration (see `crate::migrations`): adds the target field bound to the model, dual-writes, backfills |
//! | `GET /v1/collections/{c}/migrations[/{id}]`, `GET /v1/migrations` | `{id, state, paused, done, total, remaining, rows_per_s, eta_s, errors, ...}` |
//! | `POST /v1/collections/{c}/migrations/{id}/pause`, `.../resume`, `.../abort` | control it (resume also retries a FAILED one) |
//! | `POST /v1/eval-sets` `{name, source_path}` or `{name, corpus, queries, qrels}`; `GET /v1/eval-sets[/{name}?version=V]` | register a judged query set (BEIR layout), versioned by content hash (see `quiver_registry::evalsets`) |
//! | `POST /v1/evaluations` `{eval_set, candidates, metrics, paired_test, corpus}`; `GET /v1/evaluations[/{id}]` | run an offline evaluation (see `crate::evaluate`); the report is stored and audited |
//! | `POST /v1/collections/{c}/fields/{f}/autotune` `{target_recall, k, budget_s, sample, sample_rows, levels: ["search", "build"], objective: "qps" \| "memory", queries: "auto" \| "traffic" \| "data", index_types?, wait?, db?}`; `GET .../autotune/{job}` | a tuning job (see `crate::tuning`): `search` sweeps the index's `ef` / `nprobe` against exact search, `build` builds candidate indexes on a sample; each report has recall@k, QPS, p50/p99 (and index memory, build time) per point, the Pareto frontier and a recommendation. Search-only jobs answer when done; with `build` the answer is the running job (`wait: true` blocks) |
//! | `POST /v1/collections/{c}/fields/{f}/autotune/apply` `{job, point?}` or `{params, search_params}`, `target_recall?, k?, sample?, wait?` | an apply job: build the index version beside the serving one, verify recall@k against exact search, switch only if the target holds (`applied`), else drop it (`rejected`) |
//! | `POST /v1/serving-aliases/{name}/experiments` `{mode: shadow \| ab, challenger: bundle, traffic, shadow_sample?, assignment?, guardrails?, decision?, on_success?, k?, cpu_budget?, reason?}`; `GET .../experiments[/{id}]` | an online experiment against the alias's current bundle (see `crate::experiments`): config, status, outcome, live per-arm metrics, the sequential test, the worst disagreements |
//! | `POST /v1/serving-aliases/{name}/experiments/{id}/pause`, `.../resume`, `.../stop`, `.../promote` `{reason?, evidence?}` | control it; promote goes through the promote path with the experiment (and `evidence`) as evidence |
//! | `POST /v1/feedback` `{request_id, doc_id, event: click \| dwell \| thumb, value?}` | feedback on a search of a running experiment -> `{request_id, experiment, arm, rank}` |
//! | `GET /v1/audit?since=SEQ` | events after SEQ; `GET /v1/audit/verify` -> `{ok, events, head_hash, first_bad}`; `GET /v1/audit/export` -> JSON lines |
//! | `GET /v1/openapi.json` | the OpenAPI 3.0 description of all of this |
//!
//! Errors: 400 bad input, 404 unknown, 409 conflict (CAS, in use, duplicate), 500 corrupt or
//! I/O, each with `{"code": "...", "message": "..."}`. With `--auth`, every request needs
//! `Authorization: Bearer user:password` (401 otherwise) and the user is the audit actor;
//! without, the actor is `anonymous`. Registry calls (which fsync) run on blocking threads.

use std::sync::Arc;

use axum::body::{Body as HttpBody, Bytes};
use axum::extract::{FromRequest, Multipart, Path, Request};
use axum::http::{header, HeaderMap, Response, StatusCode, Uri};
use axum::routing::get;
use axum::Router;
use quiver_registry::{ArtifactSource, NewVersion, Registry, RegistryError};
use serde_json::{json, Value as Json};

use crate::auth::Auth;

/// State shared by the `/v1` handlers.
pub struct V1 {
    pub registry: Arc<Registry>,
    pub auth: Option<Arc<Auth>>,
    /// For field bindings: the collection, its schema and whether it holds data.
    pub engine: Arc<quiver_engine::Engine>,
    /// Loaded encoders (shared with the gRPC service's TextEmbedding functions).
    pub embedders: Arc<crate::functions::Embedders>,
    /// Re-embedding migrations and their workers.
    pub migrations: Arc<crate::migrations::Migrations>,
    /// Online experiments (shared with the gRPC service's search path).
    pub experiments: Arc<crate::experiments::Experiments>,
    /// Index autotuning and apply jobs.
    pub tuning: Arc<crate::tuning::Tuning>,
}

type Reply = Response<HttpBody>;
/// An error answer, boxed (a response is large).
type Fail = Box<Reply>;

fn reply(status: StatusCode, body: &Json) -> Reply {
    let mut r = Response::new(HttpBody::from(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

fn error(status: u16, code: &str, message: impl Into<String>) -> Reply {
    reply(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &json!({"code": code, "message": message.into()}),
    )
}

fn fail(status: u16, code: &str, message: impl Into<String>) -> Fail {
    Box::new(error(status, code, message))
}

fn registry_error(e: RegistryError) -> Reply {
    error(e.http_status(), e.code(), e.to_string())
}

fn ok(body: &impl serde::Serialize) -> Reply {
    reply(
        StatusCode::OK,
        &serde_json::to_value(body).unwrap_or(Json::Null),
    )
}

/// The audit actor: the authenticated user, or `anonymous` when auth is off.
async fn actor(v1: &V1, headers: &HeaderMap) -> Result<String, Fail> {
    let Some(auth) = &v1.auth else {
        return Ok("anonymous".into());
    };
    let raw = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or_default();
    let token = raw
        .strip_prefix("Bearer ")
        .or_else(|| raw.strip_prefix("bearer "))
        .unwrap_or(raw)
        .trim()
        .to_string();
    if token.is_empty() {
        return Err(fail(
            401,
            "unauthenticated",
            "missing Authorization: Bearer user:password",
        ));
    }
    use base64::Engine as _;
    let value = base64::engine::general_purpose::STANDARD.encode(token);
    let auth = Arc::clone(auth);
    match tokio::task::spawn_blocking(move || auth.verify(&value)).await {
        Ok(Ok(user)) => Ok(user),
        Ok(Err(e)) => Err(Box::new(error(401, "unauthenticated", e.message()))),
        Err(e) => Err(Box::new(error(500, "internal", e.to_string()))),
    }
}

/// Run a registry call on a blocking thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RegistryError> + Send + 'static,
) -> Result<T, Fail> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Box::new(registry_error(e))),
        Err(e) => Err(Box::new(error(500, "internal", e.to_string()))),
    }
}

fn parse_json(body: &[u8]) -> Result<Json, Fail> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body)
        .map_err(|e| fail(400, "bad_request", format!("the body is not JSON: {e}")))
}

fn str_field(body: &Json, key: &str, required: bool) -> Result<String, Fail> {
    match body.get(key) {
        Some(Json::String(s)) => Ok(s.clone()),
        None | Some(Json::Null) if !required => Ok(String::new()),
        None | Some(Json::Null) => Err(fail(400, "bad_request", format!("{key} is required"))),
        Some(other) => Err(fail(
            400,
            "bad_request",
            format!("{key} must be a string, got {other}"),
        )),
    }
}

fn version_number(raw: &str) -> Result<u32, Fail> {
    raw.parse().map_err(|_| {
        fail(
            400,
            "bad_request",
            format!("version must be a positive integer, got {raw:?}"),
        )
    })
}

macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return *r,
        }
    };
}

/// Run `f` with the registry on a blocking thread; its value is the JSON answer.
async fn answer<T: serde::Serialize + Send + 'static>(
    s: &V1,
    f: impl FnOnce(&Registry) -> Result<T, RegistryError> + Send + 'static,
) -> Reply {
    let r = s.registry.clone();
    ok(&tri!(blocking(move || f(&r)).await))
}

/// An eval set from a request: `{source_path}` (a BEIR directory on the server) or
/// `{corpus, queries, qrels}` uploaded (JSON lines / TSV text, or lists of objects and a
/// `{query: {doc: grade}}` map).
fn eval_set_body(b: &Json) -> Result<(quiver_registry::EvalData, String), RegistryError> {
    if let Some(p) = b.get("source_path").and_then(Json::as_str) {
        let data = quiver_registry::EvalData::from_dir(std::path::Path::new(p))?;
        return Ok((data, p.to_string()));
    }
    let lines = |k: &str| -> Result<String, RegistryError> {
        match b.get(k) {
            Some(Json::String(s)) => Ok(s.clone()),
            Some(Json::Array(items)) => Ok(items
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join("\n")),
            _ => Err(RegistryError::BadRequest(format!(
                "{k} is required (JSON lines, or a list of objects), or give source_path"
            ))),
        }
    };
    let (corpus, queries) = (lines("corpus")?, lines("queries")?);
    let qrels = match b.get("qrels") {
        Some(Json::String(s)) => s.clone(),
        Some(Json::Object(m)) => {
            let mut out = String::new();
            for (q, docs) in m {
                for (d, g) in docs.as_object().into_iter().flatten() {
                    out.push_str(&format!("{q}\t{d}\t{}\n", g.as_i64().unwrap_or(0)));
                }
            }
            out
        }
        _ => {
            return Err(RegistryError::BadRequest(
                "qrels is required (TSV text, or {query: {doc: grade}})".into(),
            ))
        }
    };
    let data = quiver_registry::EvalData::from_beir(&corpus, &queries, &[&qrels])?;
    Ok((data, "upload".into()))
}

/// The `/v1` routes.
pub fn router(v1: Arc<V1>) -> Router {
    let s = v1;
    Router::new()
        .route(
            "/v1/models",
            get({
                let s = s.clone();
                move |h: HeaderMap| async move {
                    tri!(actor(&s, &h).await);
                    answer(&s, move |r| Ok(json!({"models": r.list_models()}))).await
                }
            })
            .post({
                let s = s.clone();
                move |h: HeaderMap, body: Bytes| async move {
                    let who = tri!(actor(&s, &h).await);
                    let b = tri!(parse_json(&body));
                    let name = tri!(str_field(&b, "name", true));
                    let desc = tri!(str_field(&b, "description", false));
                    answer(&s, move |r| r.create_model(&name, &desc, &who)).await
                }
            }),
        )
        .route(
            "/v1/models/{name}",
            get({
                let s = s.clone();
                move |h: HeaderMap, Path(name): Path<String>| async move {
                    tri!(actor(&s, &h).await);
                    answer(&s, move |r| r.model(&name)).await
                }
            }),
        )
        .route(
            "/v1/models/{name}/versions",
            axum::routing::post({
                let s = s.clone();
                move |h: HeaderMap, Path(name): Path<String>, req: Request| async move {
                    let who = tri!(actor(&s, &h).await);
                    let (source, new) = tri!(version_request(&h, req).await);
                    answer(&s, move |r| r.register_version(&name, source, new, &who)).await
                }
            }),
        )
        .route(
            "/v1/models/{name}/versions/{v}",
            get({
                let s = s.clone();
                move |h: HeaderMap, Path((name, v)): Path<(String, String)>| async move {
                    tri!(actor(&s, &h).await);
                    let v = tri!(version_number(&v));
                    answer(&s, move |r| r.version(&name, v)).await
                }
            })
            .delete({
                let s = s.clone();
                move |h: HeaderMap, Path((name, v)): Path<(String, String)>| async move {
                    let who = tri!(actor(&s, &h).await);
                    let v = tri!(version_number(&v));
                    answer(&s, move |r| {
                        r.delete_version(&name, v, &who, &|_, _| None)?;
                        Ok(json!({"deleted": true}))
                    })
                    .await
                }
            }),
        )
        .route(
            "/v1/models/{name}/versions/{v}/files/{*path}",
            get({
                let s = s.clone();
                move |h: HeaderMap, Path((name, v, path)): Path<(String, String, String)>| async move {
                    tri!(actor(&s, &h).await);
                    let v = tri!(version_number(&v));
                    let r = s.registry.clone();
                    let bytes = tri!(blocking(move || r.read_file(&name, v, &path)).await);
                    let mut resp = Response::new(HttpBody::from(bytes));
                    resp.headers_mut().insert(
                        header::CONTENT_TYPE,
                        header::HeaderValue::from_static("application/octet-stream"),
                    );
                    resp
                }
            }),
        )
        .route(
            "/v1/models/{name}/aliases/{alias}",
            get({
                let s = s.clone();
                move |h: HeaderMap, Path((name, alias)): Path<(String, String)>| async move {
                    tri!(actor(&s, &h).await);
                    answer(&s, move |r| r.alias(&name, &alias)).await
                }
            })
            .put({
                let s = s.clone();
                move |h: HeaderMap, Path((name, alias)): Path<(String, String)>, body: Bytes| async move {
                    let who = tri!(actor(&s, &h).await);
                    let b = tri!(parse_json(&body));
                    let version = match b.get("version").and_then(Json::as_u64) {
                        Some(v) if v >= 1 && v <= u32::MAX as u64 => v as u32,
                        _ => return error(400, "bad_request", "version (a positive integer) is required"),
                    };
                    let expected = match b.get("expected_version") {
                        None => None,
                        Some(Json::Null) => Some(None),
                        Some(v) => match v.as_u64() {
                            Some(x) if x <= u32::MAX as u64 => Some(Some(x as u32)),
                            _ => return error(400, "bad_request", "expected_version must be a version number or null"),
                        },
                    };
                    let reason = tri!(str_field(&b, "reason", false));
                    answer(&s, move |r| r.set_alias(&name, &alias, version, expected, &reason, &who)).await
                }
            })
            .delete({
                let s = s.clone();
                move |h: HeaderMap, Path((name, alias)): Path<(String, String)>| async move {
                    let who = tri!(actor(&s, &h).await);
                    answer(&s, move |r| {
                        r.delete_alias(&name, &alias, &who)?;
                        Ok(json!({"deleted": true}))
                    })
                    .await
                }
            }),
        )
        .route(
            "/v1/models/{name}/aliases/{alias}/history",
            get({
                let s = s.clone();
                move |h: HeaderMap, Path((name, alias)): Path<(String, String)>| async move {
                    tri!(actor(&s, &h).await);
                    answer(&s, move |r| Ok(json!({"history": r.alias_history(&name, &alias)?}))).await
                }
            }),
        )
        .route(
            "/v1/collections/{collection}/fields/{field}/model",
            get({
                let s = s.clone();
                move |h: HeaderMap, uri: Uri, Path((coll, field)): Path<(String, String)>| async move {
                    tri!(actor(&s, &h).await);
                    let db = query_param(&uri, "db").unwrap_or_else(|| quiver_engine::DEFAULT_DB.into());
                    let (engine, reg) = (s.engine.clone(), s.registry.clone());
                    let b = tri!(blocking(move || {
                        let (m, _) = engine.collection(&db, &coll).map_err(engine_error)?;
                        reg.binding(m.id, &field).ok_or_else(|| {
                            RegistryError::NotFound(format!("field {field} of {coll} is not bound to a model"))
                        })
                    })
                    .await);
                    ok(&b)
                }
            })
            .put({
                let s = s.clone();
                move |h: HeaderMap, Path((coll, field)): Path<(String, String)>, body: Bytes| async move {
                    let who = tri!(actor(&s, &h).await);
                    let b = tri!(parse_json(&body));
                    let model = tri!(str_field(&b, "model", true));
                    let version = match b.get("version").and_then(Json::as_u64) {
                        Some(v) if v >= 1 && v <= u32::MAX as u64 => v as u32,
                        _ => return error(400, "bad_request", "version (a positive integer) is required"),
                    };
                    let db = match tri!(str_field(&b, "db", false)) {
                        d if d.is_empty() => quiver_engine::DEFAULT_DB.to_string(),
                        d => d,
                    };
                    let reason = tri!(str_field(&b, "reason", false));
                    let (engine, reg) = (s.engine.clone(), s.registry.clone());
                    ok(&tri!(blocking(move || bind(&engine, &reg, &db, &coll, &field, &model, version, &reason, &who)).await))
                }
            })
            .delete({
                let s = s.clone();
                move |h: HeaderMap, uri: Uri, Path((coll, field)): Path<(String, String)>| async move {
                    let who = tri!(actor(&s, &h).await);
                    let db = query_param(&uri, "db").unwrap_or_else(|| quiver_engine::DEFAULT_DB.into());
                    let (engine, reg) = (s.engine.clone(), s.registry.clone());
                    tri!(blocking(move || {
                        let (m, _) = engine.collection(&db, &coll).map_err(engine_error)?;
                        reg.unbind_field(m.id, &field, &who)
                    })
                    .await);
                    ok(&json!({"deleted": true}))
                }
            }),
        )
        .route(
            "/v1/serving-aliases",
            get({
                let s = s.clone();
                move |h: HeaderMap| async move {
                    tri!(actor(&s, &h).await);
                    answer(&s, move |r| Ok(json!({"serving_aliases": r.list_serving()}))).await
                }
            })
            .post({
                let s = s.clone();
                move |h: HeaderMap, body: Bytes| async move {
                    let who = tri!(actor(&s, &h).await);
                    let b = tri!(parse_json(&body));
                    let name = tri!(str_field(&b, "name", true));
                    let bundle = tri!(bundle_of(&b));
                    let reason = tri!(str_field(&b, "reason", false));
                    let (engine, reg) = (s.engine.clone(), s.registry.clone());
                    ok(&tri!(blocking(move || {
                        check_bundle(&engine, &reg, &bundle)?;
                        if engine.describe_alias(&bundle.db, &name).is_ok() {
                            return Err(RegistryError::Conflict(format!(
                                "{name} is already a Milvus alias in database {}",
                                bundle.db
                            )));
                        }
                        let sa = reg.create_serving(&name, bundle, &reason, &who)?;
                        point_alias(&engine, &sa)?;
                        Ok(sa)
                    })
                    .await))
                }
            }),
        )
        .route(
            "/v1/serving-aliases/{name}",
            get({
                let s = s.clone();
                move |h: HeaderMap, Path(name): Path<String>| async move {
                    tri!(actor(&s, &h).await);
                    answer(&s, move |r| r.serving(&name)).await
                }
            }),
        )
        .route(
            "/v1/serving-aliases/{name}/history",
            get({
                let s = s.clone();
                move |h: HeaderMap, Path(name): Path<String>| async move {
                    tri!(actor(&s, &h).await);
                    answer(&s, move |r| Ok(json!({"history": r.serving_history(&name)?}))).await
                }
            }),
        )
        .route(
            "/v1/serving-aliases/{name}/experiments",
            get({
                let s = s.clone();
                move |h: HeaderMap, Path(name): Path<String>| async move {
                    tri!(actor(&s, &h).await);
                    let x = s.experiments.clone();
                    ok(&tri!(blocking(move || Ok(x.list(&name))).await))
                }
            })
            .post({
                let s = s.clone();
                move |h: HeaderMap, Path(name): Path<String>, body: Bytes| async move {
                    let who = tri!(actor(&s, &h).await);
                    let b = tri!(parse_json(&body));
                    let (engine, reg, x) = (s.engine.clone(), s.registry.clone(), s.experiments.clone());
                    ok(&tri!(blocking(move || {
                        let rec = experiment_of(&engine, &reg, &name, &b)?;
                        x.start(rec, &who)
                    })
                    .await))
                }
            }),
        )
        .route(
            "/v1/serving-aliases/{name}/experiments/{id}",
            get({
                let s = s.clone();
                move |h: HeaderMap, Path((name, id)): Path<(String, String)>| async move {
                    tri!(actor(&s, &h).await);
                    let x = s.experiments.clone();
                    ok(&tri!(blocking(move || x.get(&name, &id)).await))
                }
            }),
        )
        .route(
            "/v1/serving-aliases/{name}/experiments/{id}/{action}",
            axum::routing::post({
                let s = s.clone();
                move |h: HeaderMap, Path((name, id, action)): Path<(String, String, String)>, body: Bytes| async move {
                    let who = tri!(actor(&s, &h).await);
                    let b = tri!(parse_json(&body));
                    let reason = tri!(str_field(&b, "reason", false));
                    let evidence = tri!(evidence_of(&b));
                    let x = s.experiments.clone();
                    ok(&tri!(blocking(move || x.control(&name, &id, &action, &reason, evidence, &who)).await))
                }
            }),
        )
        .route(
            "/v1/feedback",
            axum::routing::post({
                let s = s.clone();
                move |h: HeaderMap, body: Bytes| async move {
                    tri!(actor(&s, &h).await);
                    let b = tri!(parse_json(&body));
                    let request_id = tri!(str_field(&b, "request_id", true));
                    let event = tri!(str_field(&b, "event", true));
                    let doc = b.get("doc_id").cloned().unwrap_or(Json::Null);
                    let value = match b.get("value") {
                        None | Some(Json::Null) => None,
                        Some(v) => match v.as_f64() {
                            Some(f) => Some(f),
                            None => return error(400, "bad_request", "value must be a number"),
                        },
                    };
                    let x = s.experiments.clone();
                    ok(&tri!(blocking(move || x.feedback(&request_id, &doc, &event, value)).await))
                }
            }),
        )
        .route(
            "/v1/serving-aliases/{name}/promote",
            axum::routing::post({
                let s = s.clone();
                move |h: HeaderMap, Path(name): Path<String>, body: Bytes| async move {
                    let who = tri!(actor(&s, &h).await);
                    let b = tri!(parse_json(&body));
                    let bundle = tri!(bundle_of(&b));
                    let expected = match b.get("expected_revision").and_then(Json::as_u64) {
                        Some(v) if v <= u32::MAX as u64 => v as u32,
                        _ => return error(400, "bad_request", "expected_revision (the revision being replaced) is required"),
                    };
                    let reason = tri!(str_field(&b, "reason", false));
                    let evidence = tri!(evidence_of(&b));
                    let (engine, reg, x) = (s.engine.clone(), s.registry.clone(), s.experiments.clone());
                    ok(&tri!(blocking(move || {
                        let sa = promote_serving(&engine, &reg, &name, bundle, expected, &reason, evidence, &who)?;
                        x.alias_moved(&sa.bundle.db, &name, &who);
                        Ok(sa)
                    })
                    .await))
                }
            }),
        )
        .route(
            "/v1/serving-aliases/{name}/rollback",
            axum::routing::post({
                let s = s.clone();
                move |h: HeaderMap, Path(name): Path<String>, body: Bytes| async move {
                    let who = tri!(actor(&s, &h).await);
                    let b = tri!(parse_json(&body));
                    let to = match b.get("to") {
                        None | Some(Json::Null) => None,
                        Some(Json::String(x)) if x == "previous" => None,
                        Some(v) => match v.as_u64() {
                            Some(r) if r >= 1 && r <= u32::MAX as u64 => Some(r as u32),
                            _ => return error(400, "bad_request", "to must be \"previous\" or a revision number"),
                        },
                    };
                    let reason = tri!(str_field(&b, "reason", false));
                    let expected = match b.get("expected_revision") {
                        None | Some(Json::Null) => None,
                        Some(v) => match v.as_u64() {
                            Some(r) if r <= u32::MAX as u64 => Some(r as u32),
                            _ => {
                                return error(
                                    400,
                                    "bad_request",
                                    "expected_revision must be a revision number",
                                )
                            }
                        },
                    };
                    let evidence = tri!(evidence_of(&b));
                    let (engine, reg, x) = (s.engine.clone(), s.registry.clone(), s.experiments.clone());
                    ok(&tri!(blocking(move || {
                        let target = match to {
                            Some(r) => reg
                                .serving_history(&name)?
                                .into_iter()
                                .find(|x| x.revision == r)
                                .map(|x| x.bundle),
                            None => None,
                        };
                        if let Some(bundle) = &target {
                            check_bundle(&engine, &reg, bundle)?;
                        }
                        let sa = reg.rollback_serving(&name, to, expected, &reason, evidence, &who)?;
                        point_alias(&engine, &sa)?;
                        x.alias_moved(&sa.bundle.db, &name, &who);
                        Ok(sa)
                    })
                    .await))
                }
            }),
        )
        .route(
            "/v1/models/{name}/versions/{v}/embed",
            axum::routing::post({
                let s = s.clone();
                move |h: HeaderMap, Path((name, v)): Path<(String, String)>, body: Bytes| async move {
                    tri!(actor(&s, &h).await);
                    let v = tri!(version_number(&v));
                    let (inputs, role) = tri!(embed_request(&body));
                    let s2 = s.clone();
                    ok(&tri!(blocking(move || embed(&s2, &name, v, &inputs, &role)).await))
                }
            }),
        )
        .route(
            "/v1/models/{name}/aliases/{alias}/embed",
            axum::routing::post({
                let s = s.clone();
                move |h: HeaderMap, Path((name, alias)): Path<(String, String)>, body: Bytes| async move {
                    tri!(actor(&s, &h).await);
                    let (inputs, role) = tri!(embed_request(&body));
                    let s2 = s.clone();
                    ok(&tri!(blocking(move || {
                        let v = s2.registry.alias(&name, &alias)?.version;
                        embed(&s2, &name, v, &inputs, &role)
                    })
                    .await))
                }
            }),
        )
        .route(
            "/v1/migrations",
            get({
                let s = s.clone();
                move |h: HeaderMap| async move {
                    tri!(actor(&s, &h).await);
                    let mg = s.migrations.clone();
                    ok(&tri!(blocking(move || mg.list("", None)).await))
                }
            }),
        )
        .route(
            "/v1/collections/{collection}/migrations",
            get({
                let s = s.clone();
                move |h: HeaderMap, uri: Uri, Path(coll): Path<String>| async move {
                    tri!(actor(&s, &h).await);
                    let db = query_param(&uri, "db").unwrap_or_else(|| quiver_engine::DEFAULT_DB.into());
                    let mg = s.migrations.clone();
                    ok(&tri!(blocking(move || mg.list(&db, Some(&coll))).await))
                }
            })
            .post({
                let s = s.clone();
                move |h: HeaderMap, Path(coll): Path<String>, body: Bytes| async move {
                    let who = tri!(actor(&s, &h).await);
                    let b = tri!(parse_json(&body));
                    let req: crate::migrations::StartRequest = match serde_json::from_value(b) {
                        Ok(r) => r,
                        Err(e) => return error(400, "bad_request", format!("migration request: {e}")),
                    };
                    let mg = s.migrations.clone();
                    ok(&tri!(blocking(move || mg.start(&coll, req, &who)).await))
                }
            }),
        )
        .route(
            "/v1/collections/{collection}/migrations/{id}",
            get({
                let s = s.clone();
                move |h: HeaderMap, uri: Uri, Path((coll, id)): Path<(String, String)>| async move {
                    tri!(actor(&s, &h).await);
                    let db = query_param(&uri, "db").unwrap_or_else(|| quiver_engine::DEFAULT_DB.into());
                    let mg = s.migrations.clone();
                    ok(&tri!(blocking(move || {
                        mg.check_owner(&db, &coll, &id)?;
                        mg.status(&id)
                    })
                    .await))
                }
            }),
        )
        .route(
            "/v1/collections/{collection}/migrations/{id}/{action}",
            axum::routing::post({
                let s = s.clone();
                move |h: HeaderMap, uri: Uri, Path((coll, id, action)): Path<(String, String, String)>| async move {
                    let who = tri!(actor(&s, &h).await);
                    let db = query_param(&uri, "db").unwrap_or_else(|| quiver_engine::DEFAULT_DB.into());
                    if !matches!(action.as_str(), "pause" | "resume" | "abort") {
                        return error(404, "not_found", format!("no migration action {action:?} (pause, resume, abort)"));
                    }
                    let mg = s.migrations.clone();
                    ok(&tri!(blocking(move || {
                        mg.check_owner(&db, &coll, &id)?;
                        match action.as_str() {
                            "pause" => mg.pause(&id, &who),
                            "resume" => mg.resume(&id, &who),
                            _ => mg.abort(&id, &who),
                        }
                    })
                    .await))
                }
            }),
        )
        .route(
            "/v1/collections/{collection}/fields/{field}/autotune",
            axum::routing::post({
                let s = s.clone();
                move |h: HeaderMap, Path((coll, field)): Path<(String, String)>, body: Bytes| async move {
                    tri!(actor(&s, &h).await);
                    let b = tri!(parse_json(&body));
                    let (engine, t) = (s.engine.clone(), s.tuning.clone());
                    ok(&tri!(blocking(move || {
                        let spec = crate::tuning::tune_spec(&b)?;
                        t.tune(&engine, &coll, &field, spec)
                    })
                    .await))
                }
            }),
        )
        .route(
            "/v1/collections/{collection}/fields/{field}/autotune/apply",
            axum::routing::post({
                let s = s.clone();
                move |h: HeaderMap, Path((coll, field)): Path<(String, String)>, body: Bytes| async move {
                    tri!(actor(&s, &h).await);
                    let b = tri!(parse_json(&body));
                    let (engine, t) = (s.engine.clone(), s.tuning.clone());
                    ok(&tri!(blocking(move || t.apply(&engine, &coll, &field, &b)).await))
                }
            }),
        )
        .route(
            "/v1/collections/{collection}/fields/{field}/autotune/{job}",
            get({
                let s = s.clone();
                move |h: HeaderMap, Path((coll, field, job)): Path<(String, String, String)>| async move {
                    tri!(actor(&s, &h).await);
                    let t = s.tuning.clone();
                    ok(&tri!(blocking(move || t.get(&coll, &field, &job)).await))
                }
            }),
        )
        .route(
            "/v1/eval-sets",
            get({
                let s = s.clone();
                move |h: HeaderMap| async move {
                    tri!(actor(&s, &h).await);
                    answer(&s, move |r| Ok(json!({"eval_sets": r.eval_sets()}))).await
                }
            })
            .post({
                let s = s.clone();
                move |h: HeaderMap, body: Bytes| async move {
                    let who = tri!(actor(&s, &h).await);
                    let b = tri!(parse_json(&body));
                    let name = tri!(str_field(&b, "name", true));
                    answer(&s, move |r| {
                        let (data, source) = eval_set_body(&b)?;
                        r.create_eval_set(&name, &data, &source, &who)
                    })
                    .await
                }
            }),
        )
        .route(
            "/v1/eval-sets/{name}",
            get({
                let s = s.clone();
                move |h: HeaderMap, uri: Uri, Path(name): Path<String>| async move {
                    tri!(actor(&s, &h).await);
                    let v = match query_param(&uri, "version") {
                        Some(v) => Some(tri!(version_number(&v))),
                        None => None,
                    };
                    answer(&s, move |r| r.eval_set(&name, v)).await
                }
            }),
        )
        .route(
            "/v1/evaluations",
            get({
                let s = s.clone();
                move |h: HeaderMap| async move {
                    tri!(actor(&s, &h).await);
                    answer(&s, move |r| Ok(json!({"evaluations": r.evaluations()}))).await
                }
            })
            .post({
                let s = s.clone();
                move |h: HeaderMap, body: Bytes| async move {
                    let who = tri!(actor(&s, &h).await);
                    let b = tri!(parse_json(&body));
                    let (emb, engine) = (s.embedders.clone(), s.engine.clone());
                    answer(&s, move |r| {
                        let report = crate::evaluate::evaluate(&engine, &emb, r, &b)?;
                        let summary = json!({
                            "eval_set": report["eval_set"], "candidates": report["candidates"],
                            "metrics": report["metrics"],
                        });
                        let id = r.record_evaluation(summary, &report, &who)?;
                        // Answer with the stored report, read back as GET reads it.
                        let mut stored = r.evaluation(&id)?;
                        stored["id"] = json!(id);
                        Ok(stored)
                    })
                    .await
                }
            }),
        )
        .route(
            "/v1/evaluations/{id}",
            get({
                let s = s.clone();
                move |h: HeaderMap, Path(id): Path<String>| async move {
                    tri!(actor(&s, &h).await);
                    answer(&s, move |r| {
                        let mut report = r.evaluation(&id)?;
                        report["id"] = json!(id);
                        Ok(report)
                    })
                    .await
                }
            }),
        )
        .route(
            "/v1/audit",
            get({
                let s = s.clone();
                move |h: HeaderMap, uri: Uri| async move {
                    tri!(actor(&s, &h).await);
                    let since = match query_param(&uri, "since") {
                        None => 0,
                        Some(v) => match v.parse::<u64>() {
                            Ok(n) => n,
                            Err(_) => return error(400, "bad_request", format!("since must be a sequence number, got {v:?}")),
                        },
                    };
                    answer(&s, move |r| Ok(json!({"events": r.audit(since)?}))).await
                }
            }),
        )
        .route(
            "/v1/audit/verify",
            get({
                let s = s.clone();
                move |h: HeaderMap| async move {
                    tri!(actor(&s, &h).await);
                    answer(&s, move |r| r.verify_audit()).await
                }
            }),
        )
        .route(
            "/v1/audit/export",
            get({
                let s = s.clone();
                move |h: HeaderMap| async move {
                    tri!(actor(&s, &h).await);
                    let r = s.registry.clone();
                    let events = tri!(blocking(move || r.audit(0)).await);
                    let mut out = String::new();
                    for e in events {
                        out.push_str(&serde_json::to_string(&e).unwrap_or_default());
                        out.push('\n');
                    }
                    let mut resp = Response::new(HttpBody::from(out));
                    resp.headers_mut().insert(
                        header::CONTENT_TYPE,
                        header::HeaderValue::from_static("application/x-ndjson"),
                    );
                    resp
                }
            }),
        )
        .route(
            "/v1/openapi.json",
            get(|| async { reply(StatusCode::OK, &openapi()) }),
        )
}

/// Most texts one embed call takes.
const MAX_EMBED_INPUTS: usize = 4096;

fn embed_request(body: &[u8]) -> Result<(Vec<String>, String), Fail> {
    let b = parse_json(body)?;
    let inputs: Vec<String> = match b.get("inputs") {
        Some(Json::Array(items)) if !items.is_empty() && items.iter().all(Json::is_string) => items
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        _ => {
            return Err(fail(
                400,
                "bad_request",
                "inputs must be a non-empty list of strings",
            ))
        }
    };
    if inputs.len() > MAX_EMBED_INPUTS {
        return Err(fail(
            400,
            "bad_request",
            format!(
                "at most {MAX_EMBED_INPUTS} inputs a call, got {}",
                inputs.len()
            ),
        ));
    }
    let role = match str_field(&b, "role", false)?.as_str() {
        "" | "document" => "document".to_string(),
        "query" => "query".to_string(),
        other => {
            return Err(fail(
                400,
                "bad_request",
                format!("role must be query or document, got {other:?}"),
            ))
        }
    };
    Ok((inputs, role))
}

/// Embed with a registered version (see [`crate::functions::Embedders::embed`]).
fn embed(s: &V1, name: &str, v: u32, inputs: &[String], role: &str) -> Result<Json, RegistryError> {
    let role = if role == "query" {
        crate::functions::Role::Query
    } else {
        crate::functions::Role::Document
    };
    let (vectors, ver) = s.embedders.embed(name, v, inputs, role)?;
    Ok(json!({"vectors": vectors, "space_id": ver.space_id, "model": name, "version": v}))
}

fn evidence_of(b: &Json) -> Result<Vec<String>, Fail> {
    match b.get("evidence") {
        None | Some(Json::Null) => Ok(Vec::new()),
        Some(Json::String(x)) => Ok(vec![x.clone()]),
        Some(Json::Array(items)) if items.iter().all(Json::is_string) => Ok(items
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect()),
        Some(_) => Err(fail(400, "bad_request", "evidence must be a list of ids")),
    }
}

fn bundle_of(b: &Json) -> Result<quiver_registry::Bundle, Fail> {
    let raw = b
        .get("bundle")
        .ok_or_else(|| fail(400, "bad_request", "bundle is required"))?;
    let mut bundle: quiver_registry::Bundle = serde_json::from_value(raw.clone())
        .map_err(|e| fail(400, "bad_request", format!("bundle: {e}")))?;
    if bundle.db.trim().is_empty() {
        bundle.db = quiver_engine::DEFAULT_DB.into();
    }
    if bundle.search_params.is_null() {
        bundle.search_params = json!({});
    }
    if !bundle.search_params.is_object() {
        return Err(fail(
            400,
            "bad_request",
            "bundle.search_params must be an object",
        ));
    }
    Ok(bundle)
}

/// `POST /v1/serving-aliases/{name}/experiments`, checked into a record (see
/// `crate::experiments` for what each part means).
fn experiment_of(
    engine: &quiver_engine::Engine,
    reg: &Registry,
    alias: &str,
    b: &Json,
) -> Result<quiver_registry::Experiment, RegistryError> {
    let bad = |m: String| RegistryError::BadRequest(m);
    let sa = reg.serving(alias)?;
    let mode = b.get("mode").and_then(Json::as_str).unwrap_or_default();
    if mode != "shadow" && mode != "ab" {
        return Err(bad(format!(
            "mode must be \"shadow\" or \"ab\", got {}",
            b.get("mode").unwrap_or(&Json::Null)
        )));
    }
    let raw = b
        .get("challenger")
        .ok_or_else(|| bad("challenger (a bundle) is required".into()))?;
    let challenger = bundle_of(&json!({"bundle": raw}))
        .map_err(|_| bad(format!("challenger is not a bundle: {raw}")))?;
    check_bundle(engine, reg, &challenger)?;
    if challenger.db != sa.bundle.db {
        return Err(bad(format!(
            "serving alias {alias} lives in database {}; the challenger is in {}",
            sa.bundle.db, challenger.db
        )));
    }
    if challenger.collection == sa.bundle.collection
        && challenger.field == sa.bundle.field
        && challenger.search_params == sa.bundle.search_params
    {
        return Err(bad("the challenger is the champion's bundle".into()));
    }
    let share = |key: &str, default: f64| -> Result<f64, RegistryError> {
        match b.get(key) {
            None | Some(Json::Null) => Ok(default),
            Some(v) => match v.as_f64() {
                Some(f) if (0.0..=1.0).contains(&f) => Ok(f),
                _ => Err(bad(format!("{key} must be a number in [0, 1], got {v}"))),
            },
        }
    };
    let traffic = share("traffic", 0.1)?;
    let shadow_sample = share("shadow_sample", 0.0)?;
    let assignment = match b.get("assignment") {
        None | Some(Json::Null) => json!({"header": "client-request-id"}),
        Some(Json::String(h)) => json!({"header": h}),
        Some(Json::Object(o))
            if o.len() == 1
                && ["header", "field"]
                    .iter()
                    .any(|k| o.get(*k).and_then(Json::as_str).is_some_and(|v| !v.is_empty())) =>
        {
            let mut o = o.clone();
            if let Some(Json::String(h)) = o.get_mut("header") {
                *h = h.to_ascii_lowercase();
            }
            Json::Object(o)
        }
        Some(other) => {
            return Err(bad(format!(
                "assignment must be {{\"header\": name}} or {{\"field\": template parameter}}, got {other}"
            )))
        }
    };
    const GUARD: [&str; 7] = [
        "error_rate",
        "p50_ms",
        "p99_ms",
        "overlap",
        "rbo",
        "feedback_rate",
        "mean_feedback",
    ];
    const DECIDE: [&str; 4] = ["feedback_rate", "mean_feedback", "latency_ms", "error_rate"];
    let guardrails: Vec<quiver_registry::Guardrail> = match b.get("guardrails") {
        None | Some(Json::Null) => Vec::new(),
        Some(v) => {
            serde_json::from_value(v.clone()).map_err(|e| bad(format!("guardrails: {e}")))?
        }
    };
    for g in &guardrails {
        if !GUARD.contains(&g.metric.as_str()) {
            return Err(bad(format!(
                "guardrail metric {} is not one of {}",
                g.metric,
                GUARD.join(", ")
            )));
        }
        if g.min.is_none() && g.max.is_none() {
            return Err(bad(format!("guardrail on {} needs min or max", g.metric)));
        }
        if g.action != "pause" && g.action != "rollback" {
            return Err(bad(format!(
                "guardrail action must be pause or rollback, got {}",
                g.action
            )));
        }
        if mode == "shadow" && g.metric.contains("feedback") {
            return Err(bad(format!("guardrail {}: in shadow mode the challenger's answers reach no user, so there is no feedback on them", g.metric)));
        }
    }
    let decision: Option<quiver_registry::Decision> = match b.get("decision") {
        None | Some(Json::Null) => None,
        Some(v) => {
            Some(serde_json::from_value(v.clone()).map_err(|e| bad(format!("decision: {e}")))?)
        }
    };
    if let Some(d) = &decision {
        if !DECIDE.contains(&d.metric.as_str()) {
            return Err(bad(format!(
                "decision metric {} is not one of {}",
                d.metric,
                DECIDE.join(", ")
            )));
        }
        if d.test != "msprt" {
            return Err(bad(format!(
                "decision test {} is not supported (msprt)",
                d.test
            )));
        }
        if !(d.alpha > 0.0 && d.alpha < 1.0) {
            return Err(bad(format!(
                "decision alpha must be in (0, 1), got {}",
                d.alpha
            )));
        }
        if d.tau.is_some_and(|t| !(t > 0.0 && t.is_finite())) {
            return Err(bad("decision tau must be a positive number".into()));
        }
        if mode == "shadow" && d.metric.contains("feedback") {
            return Err(bad(format!(
                "decision on {}: in shadow mode only latency_ms and error_rate compare the arms",
                d.metric
            )));
        }
    }
    let on_success = match b.get("on_success").and_then(Json::as_str) {
        None => "notify".to_string(),
        Some(x @ ("promote" | "notify")) => x.to_string(),
        Some(other) => {
            return Err(bad(format!(
                "on_success must be promote or notify, got {other}"
            )))
        }
    };
    let k = match b.get("k") {
        None | Some(Json::Null) => 10,
        Some(v) => match v.as_u64() {
            Some(k) if (1..=1000).contains(&k) => k as u32,
            _ => return Err(bad(format!("k must be an integer in [1, 1000], got {v}"))),
        },
    };
    let cpu_budget = match b.get("cpu_budget") {
        None | Some(Json::Null) => 0.25,
        Some(v) => match v.as_f64() {
            Some(f) if f > 0.0 && f <= 64.0 => f,
            _ => {
                return Err(bad(format!(
                    "cpu_budget (cores) must be in (0, 64], got {v}"
                )))
            }
        },
    };
    let reason = match b.get("reason") {
        Some(Json::String(r)) => r.clone(),
        _ => String::new(),
    };
    Ok(quiver_registry::Experiment {
        id: String::new(),
        alias: alias.to_string(),
        mode: mode.to_string(),
        champion_revision: sa.revision,
        champion: sa.bundle,
        challenger,
        traffic,
        shadow_sample,
        assignment,
        guardrails,
        decision,
        on_success,
        k,
        cpu_budget,
        status: String::new(),
        outcome: None,
        snapshot: None,
        reason,
        created_ms: 0,
        updated_ms: 0,
        created_by: String::new(),
    })
}

/// A bundle must name an existing collection and vector field; its model version must exist
/// and, when the field is bound, be the bound one; its index, when named, must exist.
fn check_bundle(
    engine: &quiver_engine::Engine,
    reg: &Registry,
    b: &quiver_registry::Bundle,
) -> Result<(), RegistryError> {
    let (m, _) = engine
        .collection(&b.db, &b.collection)
        .map_err(engine_error)?;
    let f = m.schema.field(&b.field).ok_or_else(|| {
        RegistryError::BadRequest(format!(
            "collection {} has no field {}",
            b.collection, b.field
        ))
    })?;
    if !f.data_type.is_vector() {
        return Err(RegistryError::BadRequest(format!(
            "field {} is not a vector field",
            b.field
        )));
    }
    match (&b.model, b.version) {
        (Some(model), Some(v)) => {
            reg.version(model, v)
                .map_err(|e| RegistryError::BadRequest(format!("bundle model: {e}")))?;
            if let Some(bound) = reg.binding(m.id, &b.field) {
                if &bound.model != model || bound.version != v {
                    return Err(RegistryError::BadRequest(format!(
                        "field {} of {} is bound to {}@{}, the bundle says {model}@{v}",
                        b.field, b.collection, bound.model, bound.version
                    )));
                }
            }
        }
        (None, None) => {}
        _ => {
            return Err(RegistryError::BadRequest(
                "bundle: give both model and version, or neither".into(),
            ))
        }
    }
    // A field a migration is still filling in is not served yet.
    if let Some(mig) = reg.active_migration_into(m.id, &b.field) {
        return Err(RegistryError::Conflict(format!(
            "field {} is being filled by migration {} ({}): promote it when the migration is READY",
            b.field, mig.id, mig.state
        )));
    }
    if let Some(ix) = &b.index {
        if !m
            .indexes
            .iter()
            .any(|i| &i.name == ix && i.field == b.field)
        {
            return Err(RegistryError::BadRequest(format!(
                "field {} of {} has no index named {ix}",
                b.field, b.collection
            )));
        }
    }
    Ok(())
}

/// Move serving alias `name` to `bundle` if it is still at `expected` (compare-and-swap), and
/// its Milvus alias with it: the one promote path, for users and for experiments.
#[allow(clippy::too_many_arguments)]
pub fn promote_serving(
    engine: &quiver_engine::Engine,
    reg: &Registry,
    name: &str,
    bundle: quiver_registry::Bundle,
    expected: u32,
    reason: &str,
    evidence: Vec<String>,
    who: &str,
) -> Result<quiver_registry::ServingAlias, RegistryError> {
    check_bundle(engine, reg, &bundle)?;
    let cur = reg.serving(name)?;
    if cur.bundle.db != bundle.db {
        return Err(RegistryError::BadRequest(format!(
            "serving alias {name} lives in database {}; a bundle cannot move it to {}",
            cur.bundle.db, bundle.db
        )));
    }
    let sa = reg.promote_serving(name, bundle, expected, reason, evidence, who)?;
    point_alias(engine, &sa)?;
    Ok(sa)
}

/// Make the Milvus alias `name` point at the serving alias's current collection.
pub fn point_alias(
    engine: &quiver_engine::Engine,
    sa: &quiver_registry::ServingAlias,
) -> Result<(), RegistryError> {
    let (db, coll) = (&sa.bundle.db, &sa.bundle.collection);
    let r = match engine.describe_alias(db, &sa.name) {
        Ok(current) if &current == coll => Ok(()),
        Ok(_) => engine.alter_alias(db, &sa.name, coll),
        Err(_) => engine.create_alias(db, &sa.name, coll),
    };
    r.map_err(|e| {
        RegistryError::Internal(format!(
            "serving alias {} moved to revision {}, but its Milvus alias could not follow (it is retried at the next start): {e}",
            sa.name, sa.revision
        ))
    })
}

/// At start: every serving alias's Milvus alias points at its current revision's collection
/// (a crash between the registry's event and the catalog change is repaired here).
pub fn reconcile(engine: &quiver_engine::Engine, reg: &Registry) {
    for sa in reg.list_serving() {
        if let Err(e) = point_alias(engine, &sa) {
            tracing::error!("{e}");
        }
    }
}

/// Engine errors as registry errors (their HTTP status).
pub(crate) fn engine_error(e: quiver_core::Error) -> RegistryError {
    use quiver_core::Error as E;
    match e {
        E::CollectionNotFound(_) | E::DatabaseNotFound(_) | E::FieldNotFound(_) => {
            RegistryError::NotFound(e.to_string())
        }
        E::AlreadyExists { .. } | E::FailedPrecondition(_) => {
            RegistryError::Conflict(e.to_string())
        }
        E::InvalidArgument(_) | E::InvalidSchema(_) | E::InvalidField { .. } => {
            RegistryError::BadRequest(e.to_string())
        }
        other => RegistryError::Internal(other.to_string()),
    }
}

/// Check a field against a version's space, then bind it.
#[allow(clippy::too_many_arguments)]
pub(crate) fn bind(
    engine: &quiver_engine::Engine,
    reg: &Registry,
    db: &str,
    coll: &str,
    field: &str,
    model: &str,
    version: u32,
    reason: &str,
    actor: &str,
) -> Result<quiver_registry::Binding, RegistryError> {
    use quiver_core::DataType as T;
    let (m, _) = engine.collection(db, coll).map_err(engine_error)?;
    let f = m.schema.field(field).ok_or_else(|| {
        RegistryError::NotFound(format!("collection {coll} has no field {field}"))
    })?;
    if !f.data_type.is_vector() {
        return Err(RegistryError::BadRequest(format!(
            "field {field} is not a vector field"
        )));
    }
    let v = reg.version(model, version)?;
    if f.dim() != v.space.dim as usize {
        return Err(RegistryError::BadRequest(format!(
            "field {field} has dim {}, {model}@{version} produces dim {}",
            f.dim(),
            v.space.dim
        )));
    }
    let want = match v.space.dtype.as_str() {
        "float16" => T::Float16Vector,
        "bfloat16" => T::BFloat16Vector,
        "int8" => T::Int8Vector,
        "binary" => T::BinaryVector,
        _ => T::FloatVector,
    };
    if f.data_type != want {
        return Err(RegistryError::BadRequest(format!(
            "field {field} holds {} vectors, {model}@{version} produces {} ({})",
            f.data_type.name(),
            want.name(),
            v.space.dtype
        )));
    }
    if let Some(ix) = m.index_on(field) {
        if let Some(metric) = ix.metric() {
            if !metric.eq_ignore_ascii_case(&v.space.metric) {
                return Err(RegistryError::BadRequest(format!(
                    "field {field} is indexed for {metric}, {model}@{version}'s space uses {}",
                    v.space.metric
                )));
            }
        }
    }
    let has_data = engine.row_count(db, coll, &[]).map_err(engine_error)? > 0;
    reg.bind_field(
        quiver_registry::BindField {
            db: db.to_string(),
            collection: m.name.clone(),
            collection_id: m.id,
            field: field.to_string(),
            model: model.to_string(),
            version,
        },
        has_data,
        reason,
        actor,
    )
}

fn query_param(uri: &Uri, key: &str) -> Option<String> {
    uri.query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == key).then(|| v.to_string())
    })
}

/// A version upload: multipart parts, or a JSON body.
async fn version_request(
    headers: &HeaderMap,
    req: Request,
) -> Result<(ArtifactSource, NewVersion), Fail> {
    let multipart = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let bad = |m: String| Box::new(error(400, "bad_request", m));
    let new_version = |meta: &Json| -> Result<NewVersion, Fail> {
        serde_json::from_value::<NewVersion>(meta.clone())
            .map_err(|e| bad(format!("space / lineage / tags: {e}")))
    };
    if multipart {
        let mut mp = Multipart::from_request(req, &())
            .await
            .map_err(|e| bad(format!("multipart body: {e}")))?;
        let mut files = Vec::new();
        let mut meta = None;
        while let Some(field) = mp
            .next_field()
            .await
            .map_err(|e| bad(format!("multipart body: {e}")))?
        {
            let name = field.name().unwrap_or_default().to_string();
            let file_name = field.file_name().map(str::to_string);
            let data = field
                .bytes()
                .await
                .map_err(|e| bad(format!("multipart part {name}: {e}")))?;
            if name == "metadata" {
                meta = Some(
                    serde_json::from_slice::<Json>(&data)
                        .map_err(|e| bad(format!("metadata part is not JSON: {e}")))?,
                );
            } else {
                let path = file_name.unwrap_or(name);
                files.push((path, data.to_vec()));
            }
        }
        let meta = meta.ok_or_else(|| {
            bad("a metadata part (JSON with space, lineage, tags) is required".into())
        })?;
        return Ok((ArtifactSource::Bytes(files), new_version(&meta)?));
    }
    let body = axum::body::to_bytes(req.into_body(), 1 << 30)
        .await
        .map_err(|e| bad(format!("body: {e}")))?;
    let b = parse_json(&body)?;
    let nv = new_version(&b)?;
    let source = match (b.get("source_path"), b.get("files")) {
        (Some(Json::String(p)), None) => ArtifactSource::Path(p.into()),
        (None, Some(Json::Array(items))) => {
            use base64::Engine as _;
            let mut files = Vec::new();
            for it in items {
                let path = it
                    .get("path")
                    .and_then(Json::as_str)
                    .ok_or_else(|| bad("files[].path is required".into()))?;
                let content = it
                    .get("content_base64")
                    .and_then(Json::as_str)
                    .ok_or_else(|| bad("files[].content_base64 is required".into()))?;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(content)
                    .map_err(|e| bad(format!("files[].content_base64 of {path}: {e}")))?;
                files.push((path.to_string(), bytes));
            }
            ArtifactSource::Bytes(files)
        }
        _ => {
            return Err(bad(
                "give exactly one of source_path (a file or directory on the server) or files"
                    .into(),
            ))
        }
    };
    Ok((source, nv))
}

/// The OpenAPI 3.0 document of `/v1`.
pub fn openapi() -> Json {
    let err = json!({"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    let okj = |schema: &str| json!({"description": "ok", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}});
    let name =
        json!({"name": "name", "in": "path", "required": true, "schema": {"type": "string"}});
    let ver = json!({"name": "version", "in": "path", "required": true, "schema": {"type": "integer", "minimum": 1}});
    let alias =
        json!({"name": "alias", "in": "path", "required": true, "schema": {"type": "string"}});
    let coll =
        json!({"name": "collection", "in": "path", "required": true, "schema": {"type": "string"}});
    let mig = json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string"}});
    json!({
        "openapi": "3.0.3",
        "info": {"title": "Quiver model registry", "version": env!("CARGO_PKG_VERSION")},
        "paths": {
            "/v1/models": {
                "get": {"summary": "List models", "responses": {"200": okj("ModelList"), "401": err}},
                "post": {"summary": "Register a model", "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewModel"}}}},
                         "responses": {"200": okj("Model"), "400": err, "409": err}}
            },
            "/v1/models/{name}": {"get": {"summary": "Describe a model", "parameters": [name], "responses": {"200": okj("Model"), "404": err}}},
            "/v1/models/{name}/versions": {"post": {
                "summary": "Register a version (multipart `file` parts + `metadata`, or JSON with source_path or files)",
                "parameters": [name],
                "requestBody": {"content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/NewVersion"}},
                    "multipart/form-data": {"schema": {"type": "object", "properties": {"metadata": {"type": "string"}, "file": {"type": "array", "items": {"type": "string", "format": "binary"}}}}}
                }},
                "responses": {"200": okj("Version"), "400": err, "404": err}}},
            "/v1/models/{name}/versions/{version}": {
                "get": {"summary": "Describe a version", "parameters": [name, ver], "responses": {"200": okj("Version"), "404": err}},
                "delete": {"summary": "Delete a version no alias uses", "parameters": [name, ver], "responses": {"200": {"description": "deleted"}, "404": err, "409": err}}
            },
            "/v1/models/{name}/versions/{version}/files/{path}": {"get": {
                "summary": "Download an artifact (verified against its SHA-256)", "parameters": [name, ver, {"name": "path", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "the bytes", "content": {"application/octet-stream": {}}}, "404": err, "500": err}}},
            "/v1/models/{name}/aliases/{alias}": {
                "get": {"summary": "Read an alias", "parameters": [name, alias], "responses": {"200": okj("Alias"), "404": err}},
                "put": {"summary": "Move an alias (compare-and-swap with expected_version)", "parameters": [name, alias],
                        "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/SetAlias"}}}},
                        "responses": {"200": okj("Alias"), "400": err, "404": err, "409": err}},
                "delete": {"summary": "Delete an alias (its history stays)", "parameters": [name, alias], "responses": {"200": {"description": "deleted"}, "404": err}}
            },
            "/v1/models/{name}/aliases/{alias}/history": {"get": {"summary": "Every move of an alias", "parameters": [name, alias], "responses": {"200": okj("AliasHistory"), "404": err}}},
            "/v1/collections/{collection}/migrations": {
                "get": {"summary": "The collection's re-embedding migrations", "parameters": [coll], "responses": {"200": okj("MigrationList"), "404": err}},
                "post": {"summary": "Start a re-embedding migration", "parameters": [coll],
                         "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewMigration"}}}},
                         "responses": {"200": okj("Migration"), "400": err, "404": err, "409": err}}
            },
            "/v1/collections/{collection}/migrations/{id}": {"get": {"summary": "A migration with its progress", "parameters": [coll, mig], "responses": {"200": okj("Migration"), "404": err}}},
            "/v1/collections/{collection}/migrations/{id}/pause": {"post": {"summary": "Pause", "parameters": [coll, mig], "responses": {"200": okj("Migration"), "404": err, "409": err}}},
            "/v1/collections/{collection}/migrations/{id}/resume": {"post": {"summary": "Resume (retries a FAILED one)", "parameters": [coll, mig], "responses": {"200": okj("Migration"), "404": err, "409": err}}},
            "/v1/collections/{collection}/migrations/{id}/abort": {"post": {"summary": "Abort (dual writes stop; the field stays)", "parameters": [coll, mig], "responses": {"200": okj("Migration"), "404": err, "409": err}}},
            "/v1/migrations": {"get": {"summary": "Every migration", "responses": {"200": okj("MigrationList")}}},
            "/v1/collections/{collection}/fields/{field}/autotune": {"post": {"summary": "A tuning job: sweep the index's search parameter (search level) and/or build candidate indexes on a sample (build level); Pareto frontier and recommendation",
                "parameters": [coll, {"name": "field", "in": "path", "required": true, "schema": {"type": "string"}}],
                "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {"target_recall": {"type": "number"}, "k": {"type": "integer"}, "budget_s": {"type": "number"}, "sample": {"type": "integer", "description": "queries"}, "sample_rows": {"type": "integer", "description": "rows the build-level candidates are built on"}, "levels": {"type": "array", "items": {"type": "string", "enum": ["search", "build"]}}, "objective": {"type": "string", "enum": ["qps", "memory"]}, "index_types": {"type": "array", "items": {"type": "string", "enum": ["HNSW", "IVF_FLAT", "IVF_SQ8", "IVF_PQ"]}}, "queries": {"type": "string", "enum": ["auto", "traffic", "data"], "description": "tune on the field's recently searched vectors, or on sampled rows; auto: traffic once 50 are logged"}, "wait": {"type": "boolean"}, "db": {"type": "string"}}}}}},
                "responses": {"200": okj("TuneJob"), "400": err, "404": err, "409": err}}},
            "/v1/collections/{collection}/fields/{field}/autotune/apply": {"post": {"summary": "Build an index version beside the serving one, verify its recall against exact search, switch only if the target holds",
                "parameters": [coll, {"name": "field", "in": "path", "required": true, "schema": {"type": "string"}}],
                "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {"job": {"type": "string"}, "point": {"type": "integer"}, "params": {"type": "object", "description": "index_type and build parameters"}, "search_params": {"type": "object"}, "target_recall": {"type": "number"}, "k": {"type": "integer"}, "sample": {"type": "integer"}, "wait": {"type": "boolean"}, "db": {"type": "string"}}}}}},
                "responses": {"200": okj("TuneJob"), "400": err, "404": err}}},
            "/v1/collections/{collection}/fields/{field}/autotune/{job}": {"get": {"summary": "A tuning or apply job: state, progress, report",
                "parameters": [coll, {"name": "field", "in": "path", "required": true, "schema": {"type": "string"}}, {"name": "job", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": okj("TuneJob"), "404": err}}},
            "/v1/eval-sets": {
                "get": {"summary": "Every eval set version", "responses": {"200": okj("EvalSetList")}},
                "post": {"summary": "Register a judged query set (BEIR: corpus, queries, qrels), versioned by content hash",
                         "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewEvalSet"}}}},
                         "responses": {"200": okj("EvalSet"), "400": err}}
            },
            "/v1/eval-sets/{name}": {"get": {"summary": "An eval set (latest, or ?version=V)", "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}, {"name": "version", "in": "query", "schema": {"type": "integer"}}], "responses": {"200": okj("EvalSet"), "404": err}}},
            "/v1/evaluations": {
                "get": {"summary": "Every evaluation (id and summary)", "responses": {"200": okj("EvaluationList")}},
                "post": {"summary": "Rank an eval set with each candidate, score per query, compare with a paired test",
                         "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewEvaluation"}}}},
                         "responses": {"200": okj("Evaluation"), "400": err, "404": err}}
            },
            "/v1/evaluations/{id}": {"get": {"summary": "An evaluation's full report", "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}], "responses": {"200": okj("Evaluation"), "404": err}}},
            "/v1/serving-aliases": {
                "get": {"summary": "Every serving alias", "responses": {"200": {"description": "{serving_aliases: [...]}"}}},
                "post": {"summary": "A serving alias: a bundle behind a name that is also a Milvus alias", "requestBody": {"content": {"application/json": {"schema": {"type": "object", "required": ["name", "bundle"], "properties": {"name": {"type": "string"}, "bundle": {"$ref": "#/components/schemas/Bundle"}, "reason": {"type": "string"}}}}}}, "responses": {"200": okj("ServingAlias"), "400": err, "404": err, "409": err}}
            },
            "/v1/serving-aliases/{name}": {"get": {"summary": "A serving alias", "parameters": [name], "responses": {"200": okj("ServingAlias"), "404": err}}},
            "/v1/serving-aliases/{name}/history": {"get": {"summary": "Every revision, oldest first", "parameters": [name], "responses": {"200": {"description": "{history: [...]}"}, "404": err}}},
            "/v1/serving-aliases/{name}/promote": {"post": {"summary": "Compare-and-swap to a new bundle", "parameters": [name], "requestBody": {"content": {"application/json": {"schema": {"type": "object", "required": ["bundle", "expected_revision"], "properties": {"bundle": {"$ref": "#/components/schemas/Bundle"}, "expected_revision": {"type": "integer"}, "reason": {"type": "string"}, "evidence": {"type": "array", "items": {"type": "string"}}}}}}}, "responses": {"200": okj("ServingAlias"), "400": err, "404": err, "409": err}}},
            "/v1/serving-aliases/{name}/rollback": {"post": {"summary": "Serve an earlier revision's bundle again, as a new revision", "parameters": [name], "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {"to": {"description": "\"previous\" or a revision number"}, "expected_revision": {"type": "integer"}, "reason": {"type": "string"}, "evidence": {"type": "array", "items": {"type": "string"}}}}}}}, "responses": {"200": okj("ServingAlias"), "400": err, "404": err, "409": err}}},
            "/v1/serving-aliases/{name}/experiments": {
                "get": {"summary": "The alias's experiments, with live metrics for the active one", "parameters": [name], "responses": {"200": okj("ExperimentList"), "404": err}},
                "post": {"summary": "Start a shadow or A/B experiment against the alias's current bundle",
                         "parameters": [name],
                         "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewExperiment"}}}},
                         "responses": {"200": okj("Experiment"), "400": err, "404": err, "409": err}}
            },
            "/v1/serving-aliases/{name}/experiments/{id}": {"get": {"summary": "An experiment: config, status, outcome, per-arm metrics, the sequential test, the worst disagreements", "parameters": [name, mig], "responses": {"200": okj("Experiment"), "404": err}}},
            "/v1/serving-aliases/{name}/experiments/{id}/{action}": {"post": {"summary": "pause | resume | stop | promote (promote goes through the serving-alias promote path with the experiment as evidence)", "parameters": [name, mig, {"name": "action", "in": "path", "required": true, "schema": {"type": "string", "enum": ["pause", "resume", "stop", "promote"]}}], "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {"reason": {"type": "string"}, "evidence": {"type": "array", "items": {"type": "string"}, "description": "promote: ids added after the experiment's"}}}}}}, "responses": {"200": okj("Experiment"), "400": err, "404": err, "409": err}}},
            "/v1/feedback": {"post": {"summary": "A user's feedback on a search of a running experiment (request id: the client's client-request-id, or the returned quiver-request-id)",
                                      "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Feedback"}}}},
                                      "responses": {"200": {"description": "{request_id, experiment, arm, rank}"}, "400": err, "404": err}}},
            "/v1/audit": {"get": {"summary": "Audit events after `since`", "parameters": [{"name": "since", "in": "query", "schema": {"type": "integer", "minimum": 0}}], "responses": {"200": okj("Events")}}},
            "/v1/audit/verify": {"get": {"summary": "Recompute the hash chain", "responses": {"200": okj("Verify")}}},
            "/v1/audit/export": {"get": {"summary": "All events as JSON lines", "responses": {"200": {"description": "JSON lines", "content": {"application/x-ndjson": {}}}}}}
        },
        "components": {"schemas": {
            "Error": {"type": "object", "required": ["code", "message"], "properties": {"code": {"type": "string"}, "message": {"type": "string"}}},
            "NewModel": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}, "description": {"type": "string"}}},
            "Model": {"type": "object", "properties": {"name": {"type": "string"}, "description": {"type": "string"}, "created_ms": {"type": "integer"}, "created_by": {"type": "string"},
                      "versions": {"type": "array", "items": {"type": "integer"}}, "latest_version": {"type": "integer", "nullable": true}, "aliases": {"type": "object", "additionalProperties": {"type": "integer"}}}},
            "ModelList": {"type": "object", "properties": {"models": {"type": "array", "items": {"$ref": "#/components/schemas/Model"}}}},
            "Space": {"type": "object", "required": ["dim", "metric"], "properties": {"dim": {"type": "integer"}, "metric": {"type": "string", "enum": ["L2", "IP", "COSINE", "HAMMING", "JACCARD"]},
                      "normalize": {"type": "boolean"}, "pooling": {"type": "string", "enum": ["mean", "cls", "max", "last", "none"]}, "query_prefix": {"type": "string"}, "document_prefix": {"type": "string"},
                      "dtype": {"type": "string", "enum": ["float32", "float16", "bfloat16", "int8", "binary"]}}},
            "Lineage": {"type": "object", "properties": {"source_uri": {"type": "string"}, "run_id": {"type": "string"}, "parent_version": {"type": "integer", "nullable": true}, "created_by": {"type": "string"}}},
            "NewVersion": {"type": "object", "required": ["space"], "properties": {"space": {"$ref": "#/components/schemas/Space"}, "lineage": {"$ref": "#/components/schemas/Lineage"},
                      "tags": {"type": "object", "additionalProperties": {"type": "string"}}, "source_path": {"type": "string"},
                      "files": {"type": "array", "items": {"type": "object", "properties": {"path": {"type": "string"}, "content_base64": {"type": "string"}}}}}},
            "Version": {"type": "object", "properties": {"model": {"type": "string"}, "version": {"type": "integer"}, "sha256": {"type": "string"}, "space": {"$ref": "#/components/schemas/Space"},
                      "space_id": {"type": "string"}, "lineage": {"$ref": "#/components/schemas/Lineage"}, "tags": {"type": "object"}, "status": {"type": "string"}, "created_ms": {"type": "integer"},
                      "files": {"type": "array", "items": {"type": "object", "properties": {"path": {"type": "string"}, "sha256": {"type": "string"}, "size": {"type": "integer"}}}}}},
            "SetAlias": {"type": "object", "required": ["version"], "properties": {"version": {"type": "integer"}, "expected_version": {"type": "integer", "nullable": true}, "reason": {"type": "string"}}},
            "Alias": {"type": "object", "properties": {"model": {"type": "string"}, "alias": {"type": "string"}, "version": {"type": "integer"}, "updated_ms": {"type": "integer"}}},
            "AliasHistory": {"type": "object", "properties": {"history": {"type": "array", "items": {"type": "object", "properties": {"seq": {"type": "integer"}, "ts_ms": {"type": "integer"},
                      "actor": {"type": "string"}, "from": {"type": "integer", "nullable": true}, "to": {"type": "integer", "nullable": true}, "reason": {"type": "string"}}}}}},
            "Events": {"type": "object", "properties": {"events": {"type": "array", "items": {"type": "object"}}}},
            "NewMigration": {"type": "object", "required": ["to_model", "target_field", "source_text_field"], "properties": {"to_model": {"type": "string", "description": "name@version or name@alias"},
                      "target_field": {"type": "string"}, "source_text_field": {"type": "string"}, "batch_size": {"type": "integer", "minimum": 1, "maximum": 4096}, "max_rows_per_s": {"type": "number"}, "db": {"type": "string"}}},
            "Migration": {"type": "object", "properties": {"id": {"type": "string"}, "state": {"type": "string", "enum": ["PENDING", "BACKFILLING", "CATCHING_UP", "READY", "FAILED", "ABORTED"]},
                      "paused": {"type": "boolean"}, "done": {"type": "integer"}, "total": {"type": "integer"}, "remaining": {"type": "integer"}, "rows_per_s": {"type": "number"}, "eta_s": {"type": "number", "nullable": true},
                      "errors": {"type": "array", "items": {"type": "string"}}, "collection": {"type": "string"}, "source_field": {"type": "string"}, "target_field": {"type": "string"}, "model": {"type": "string"}, "version": {"type": "integer"}}},
            "MigrationList": {"type": "object", "properties": {"migrations": {"type": "array", "items": {"$ref": "#/components/schemas/Migration"}}}},
            "TuneJob": {"type": "object", "properties": {"id": {"type": "string"}, "kind": {"type": "string", "enum": ["tune", "apply"]}, "state": {"type": "string", "enum": ["running", "done", "failed", "applied", "rejected"]}, "progress": {"type": "object", "properties": {"done": {"type": "integer"}, "total": {"type": "integer"}, "phase": {"type": "string"}}}, "report": {"type": "object", "description": "tune: {search: TuneReport, build: BuildReport}; apply: {index_id, params, search_params, recall, target_recall, switched}"}, "error": {"type": "string"}}},
            "BuildReport": {"type": "object", "properties": {"metric": {"type": "string"}, "objective": {"type": "string"}, "live_rows": {"type": "integer"}, "sample_rows": {"type": "integer"}, "queries": {"type": "integer"}, "points": {"type": "array", "items": {"type": "object", "properties": {"index_type": {"type": "string"}, "build_params": {"type": "object"}, "search_params": {"type": "object"}, "recall": {"type": "number"}, "qps": {"type": "number"}, "index_bytes": {"type": "integer"}, "est_index_bytes": {"type": "integer"}, "build_s": {"type": "number"}, "est_build_s": {"type": "number"}, "pareto": {"type": "boolean"}}}}, "recommendation": {"type": "integer"}, "target_reached": {"type": "boolean"}, "stopped_by_budget": {"type": "boolean"}}},
            "TuneReport": {"type": "object", "properties": {"field": {"type": "string"}, "index_type": {"type": "string"}, "k": {"type": "integer"}, "target_recall": {"type": "number"}, "queries": {"type": "integer"}, "exact_qps": {"type": "number"}, "points": {"type": "array", "items": {"type": "object", "properties": {"params": {"type": "object"}, "recall": {"type": "number"}, "qps": {"type": "number"}, "p50_ms": {"type": "number"}, "p99_ms": {"type": "number"}, "pareto": {"type": "boolean"}}}}, "recommendation": {"type": "integer", "nullable": true}, "target_reached": {"type": "boolean"}, "stopped_by_budget": {"type": "boolean"}}},
            "NewEvalSet": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}, "source_path": {"type": "string", "description": "a BEIR directory on the server"}, "corpus": {"description": "JSON lines text or a list of {_id, title, text, judged?}"}, "queries": {"description": "JSON lines text or a list of {_id, text}"}, "qrels": {"description": "TSV text (query-id, corpus-id, score) or {query: {doc: grade}}"}}},
            "EvalSet": {"type": "object", "properties": {"name": {"type": "string"}, "version": {"type": "integer"}, "sha256": {"type": "string"}, "size": {"type": "integer"}, "documents": {"type": "integer"}, "queries": {"type": "integer"}, "judgments": {"type": "integer"}, "source": {"type": "string"}, "created_ms": {"type": "integer"}, "created_by": {"type": "string"}}},
            "EvalSetList": {"type": "object", "properties": {"eval_sets": {"type": "array", "items": {"$ref": "#/components/schemas/EvalSet"}}}},
            "Bundle": {"type": "object", "required": ["collection", "field"], "properties": {"db": {"type": "string"}, "collection": {"type": "string"}, "field": {"type": "string"}, "model": {"type": "string"}, "version": {"type": "integer"}, "index": {"type": "string"}, "search_params": {"type": "object"}}},
            "ServingAlias": {"type": "object", "properties": {"name": {"type": "string"}, "revision": {"type": "integer"}, "bundle": {"$ref": "#/components/schemas/Bundle"}, "updated_ms": {"type": "integer"}}},
            "NewExperiment": {"type": "object", "required": ["mode", "challenger"], "properties": {
                "mode": {"type": "string", "enum": ["shadow", "ab"]},
                "challenger": {"$ref": "#/components/schemas/Bundle"},
                "traffic": {"type": "number", "minimum": 0, "maximum": 1, "description": "share answered (ab) or shadowed (shadow); default 0.1"},
                "shadow_sample": {"type": "number", "minimum": 0, "maximum": 1, "description": "ab: share also run on the other arm, for overlap"},
                "assignment": {"type": "object", "description": "{header: name} (default client-request-id) or {field: filter template parameter}"},
                "guardrails": {"type": "array", "items": {"type": "object", "required": ["metric", "action"], "properties": {"metric": {"type": "string", "enum": ["error_rate", "p50_ms", "p99_ms", "overlap", "rbo", "feedback_rate", "mean_feedback"]}, "min": {"type": "number"}, "max": {"type": "number"}, "action": {"type": "string", "enum": ["pause", "rollback"]}, "min_samples": {"type": "integer"}}}},
                "decision": {"type": "object", "required": ["metric"], "properties": {"metric": {"type": "string", "enum": ["feedback_rate", "mean_feedback", "latency_ms", "error_rate"]}, "test": {"type": "string", "enum": ["msprt"]}, "alpha": {"type": "number"}, "tau": {"type": "number"}, "min_samples": {"type": "integer"}}},
                "on_success": {"type": "string", "enum": ["promote", "notify"]},
                "k": {"type": "integer", "minimum": 1, "maximum": 1000},
                "cpu_budget": {"type": "number", "description": "cores the shadow searches may use; default 0.25"},
                "reason": {"type": "string"}}},
            "Experiment": {"type": "object", "properties": {"id": {"type": "string"}, "alias": {"type": "string"}, "mode": {"type": "string"}, "status": {"type": "string", "enum": ["running", "paused", "stopped", "rolled_back", "promoted", "concluded"]}, "champion_revision": {"type": "integer"}, "champion": {"$ref": "#/components/schemas/Bundle"}, "challenger": {"$ref": "#/components/schemas/Bundle"}, "outcome": {"type": "object"}, "metrics": {"type": "object", "description": "arms{champion,challenger}{requests, errors, error_rate, p50_ms, p99_ms, feedback_rate, mean_feedback}, shadow{sampled, run, dropped_budget, dropped_queue, errors}, overlap, rbo, decision{ratio, threshold, p_value, difference}, disagreements"}}},
            "ExperimentList": {"type": "object", "properties": {"experiments": {"type": "array", "items": {"$ref": "#/components/schemas/Experiment"}}}},
            "Feedback": {"type": "object", "required": ["request_id", "doc_id", "event"], "properties": {"request_id": {"type": "string"}, "doc_id": {"description": "primary key (string or number)"}, "event": {"type": "string", "enum": ["click", "dwell", "thumb"]}, "value": {"type": "number", "description": "click: >= 0 (default 1); dwell: seconds; thumb: [-1, 1]"}}},
            "NewEvaluation": {"type": "object", "required": ["eval_set", "candidates"], "properties": {"eval_set": {"type": "string", "description": "name or name@version"}, "candidates": {"type": "array", "items": {"description": "\"name@version\" | \"bm25\" | {name, model} | {name, bm25: {analyzer_params, k1, b}}"}}, "metrics": {"type": "array", "items": {"type": "string", "description": "ndcg@k, recall@k, mrr@k, recall_vs_exact@k, unjudged@k"}}, "paired_test": {"type": "object", "properties": {"kind": {"type": "string", "enum": ["bootstrap", "randomization"]}, "n": {"type": "integer"}, "seed": {"type": "integer"}}}, "corpus": {"type": "string", "enum": ["all", "judged"]}, "ignore_identical_ids": {"type": "boolean"}, "ignore_identical_text": {"type": "boolean"}}},
            "Evaluation": {"type": "object", "properties": {"id": {"type": "string"}, "eval_set": {"type": "object"}, "candidates": {"type": "array", "items": {"type": "object"}}, "metrics": {"type": "object", "description": "metric -> candidate -> mean"}, "comparisons": {"type": "array", "items": {"type": "object", "description": "baseline, challenger, metrics: {metric: {difference, ci95, p_value}}, worst_regressions"}}, "per_query": {"type": "array", "items": {"type": "object"}}}},
            "EvaluationList": {"type": "object", "properties": {"evaluations": {"type": "array", "items": {"type": "object"}}}},
            "Verify": {"type": "object", "properties": {"ok": {"type": "boolean"}, "events": {"type": "integer"}, "head_hash": {"type": "string"}, "first_bad": {"type": "object", "nullable": true}}}
        }}
    })
}
