//! Authentication and credential RPCs in process: requests go through the generated trait as
//! tonic would dispatch them, against a real engine in a temp directory.

use std::sync::Arc;

use base64::Engine as _;
use quiver_engine::{Engine, EngineOptions};
use quiver_server::auth::{ensure_root, Auth};
use quiver_server::proto::milvus::milvus_service_server::MilvusService;
use quiver_server::proto::milvus::*;
use quiver_server::MilvusApi;
use tonic::{Code, Request};

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn engine(dir: &std::path::Path) -> Arc<Engine> {
    let opts = EngineOptions {
        sync: false,
        ..EngineOptions::default()
    };
    Arc::new(Engine::open(dir, opts).unwrap())
}

fn with_auth<T>(msg: T, authorization: Option<&str>) -> Request<T> {
    let mut req = Request::new(msg);
    if let Some(a) = authorization {
        req.metadata_mut()
            .insert("authorization", a.parse().unwrap());
    }
    req
}

#[tokio::test]
async fn every_rpc_needs_credentials_when_auth_is_on() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    assert!(ensure_root(&engine, "Milvus").unwrap());
    let api = MilvusApi::with_auth(Arc::clone(&engine), Some(Arc::new(Auth::new(engine))));
    let e = api
        .connect(with_auth(ConnectRequest::default(), None))
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (Code::Unauthenticated, "missing authorization in header")
    );
    let e = api
        .list_databases(with_auth(
            ListDatabasesRequest::default(),
            Some(&b64("root:wrong")),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (
            Code::Unauthenticated,
            "auth check failure, please check username and password are correct"
        )
    );
    let ok = api
        .list_databases(with_auth(
            ListDatabasesRequest::default(),
            Some(&b64("root:Milvus")),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.db_names, vec!["default".to_string()]);
}

#[tokio::test]
async fn credentials_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let api = MilvusApi::new(engine(dir.path()));
    let s = api
        .create_credential(Request::new(CreateCredentialRequest {
            username: "alice".into(),
            password: b64("secret-1"),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.code, 0, "{}", s.reason);
    let s = api
        .update_credential(Request::new(UpdateCredentialRequest {
            username: "alice".into(),
            old_password: b64("wrong-1"),
            new_password: b64("secret-2"),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (s.code, s.reason.as_str()),
        (
            1400,
            "old password not correct for alice: not authenticated"
        )
    );
    let users = api
        .list_cred_users(Request::new(ListCredUsersRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(users.usernames, vec!["alice".to_string()]);
    let s = api
        .delete_credential(Request::new(DeleteCredentialRequest {
            username: "root".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.code, 1401);
    let s = api
        .delete_credential(Request::new(DeleteCredentialRequest {
            username: "alice".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.code, 0);
    let users = api
        .list_cred_users(Request::new(ListCredUsersRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(users.usernames.is_empty());
}
