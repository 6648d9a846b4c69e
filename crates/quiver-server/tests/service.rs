//! The Milvus service end to end in process (no network): requests go through the generated
//! trait exactly as tonic would dispatch them, against a real engine in a temp directory.

use std::sync::Arc;

use prost::Message;
use quiver_engine::{Engine, EngineOptions};
use quiver_server::proto::common::{
    KeyValuePair, PlaceholderGroup, PlaceholderType, PlaceholderValue,
};
use quiver_server::proto::milvus::milvus_service_server::MilvusService;
use quiver_server::proto::milvus::*;
use quiver_server::proto::schema::{self as pb, field_data::Field, scalar_field::Data as Sd};
use quiver_server::MilvusApi;
use tonic::Request;

fn kv(k: &str, v: &str) -> KeyValuePair {
    KeyValuePair {
        key: k.into(),
        value: v.into(),
    }
}

fn api(dir: &std::path::Path) -> MilvusApi {
    let opts = EngineOptions {
        sync: false,
        ..EngineOptions::default()
    };
    MilvusApi::new(Arc::new(Engine::open(dir, opts).unwrap()))
}

fn schema_bytes(name: &str) -> Vec<u8> {
    pb::CollectionSchema {
        name: name.into(),
        enable_dynamic_field: true,
        fields: vec![
            pb::FieldSchema {
                name: "id".into(),
                data_type: 5,
                is_primary_key: true,
                ..Default::default()
            },
            pb::FieldSchema {
                name: "v".into(),
                data_type: 101,
                type_params: vec![kv("dim", "2")],
                ..Default::default()
            },
        ],
        ..Default::default()
    }
    .encode_to_vec()
}

fn insert_request(name: &str) -> InsertRequest {
    let ids = pb::FieldData {
        r#type: 5,
        field_name: "id".into(),
        field: Some(Field::Scalars(pb::ScalarField {
            data: Some(Sd::LongData(pb::LongArray {
                data: vec![1, 2, 3],
            })),
        })),
        ..Default::default()
    };
    let v = pb::FieldData {
        r#type: 101,
        field_name: "v".into(),
        field: Some(Field::Vectors(pb::VectorField {
            dim: 2,
            data: Some(pb::vector_field::Data::FloatVector(pb::FloatArray {
                data: vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0],
            })),
        })),
        ..Default::default()
    };
    let meta = pb::FieldData {
        r#type: 23,
        field_name: "$meta".into(),
        is_dynamic: true,
        field: Some(Field::Scalars(pb::ScalarField {
            data: Some(Sd::JsonData(pb::JsonArray {
                data: vec![
                    br#"{"c":"x"}"#.to_vec(),
                    br#"{"c":"y"}"#.to_vec(),
                    br#"{}"#.to_vec(),
                ],
            })),
        })),
        ..Default::default()
    };
    InsertRequest {
        collection_name: name.into(),
        fields_data: vec![ids, v, meta],
        num_rows: 3,
        ..Default::default()
    }
}

#[tokio::test]
async fn crud_through_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let api = api(dir.path());

    let c = api
        .connect(Request::new(ConnectRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(c.status.unwrap().code, 0);
    assert_ne!(c.identifier, 0);

    let s = api
        .create_collection(Request::new(CreateCollectionRequest {
            collection_name: "c".into(),
            schema: schema_bytes("c"),
            consistency_level: 0,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.code, 0, "{}", s.reason);

    let d = api
        .describe_collection(Request::new(DescribeCollectionRequest {
            collection_name: "c".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let schema = d.schema.unwrap();
    assert_eq!(
        schema.fields.iter().map(|f| f.field_id).collect::<Vec<_>>(),
        vec![100, 101]
    );
    assert_eq!(schema.fields[1].type_params, vec![kv("dim", "2")]);
    assert!(schema.enable_dynamic_field);
    assert!(d.created_timestamp > 0);

    let m = api
        .insert(Request::new(insert_request("c")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(m.status.unwrap().code, 0);
    assert_eq!(m.insert_cnt, 3);
    assert!(
        m.timestamp >> 18 > 1_600_000_000_000,
        "a hybrid timestamp: {}",
        m.timestamp
    );
    assert_eq!(
        m.i_ds.unwrap().id_field,
        Some(pb::i_ds::IdField::IntId(pb::LongArray {
            data: vec![1, 2, 3]
        }))
    );

    let q: Vec<u8> = [1.0f32, 0.1].iter().flat_map(|f| f.to_le_bytes()).collect();
    let group = PlaceholderGroup {
        placeholders: vec![PlaceholderValue {
            tag: "$0".into(),
            r#type: PlaceholderType::FloatVector as i32,
            values: vec![q],
        }],
    };
    let r = api
        .search(Request::new(SearchRequest {
            collection_name: "c".into(),
            placeholder_group: group.encode_to_vec(),
            search_params: vec![kv("topk", "2"), kv("metric_type", "IP"), kv("params", "{}")],
            output_fields: vec!["c".into()],
            nq: 1,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.status.unwrap().code, 0);
    assert!(r.session_ts > 0);
    let res = r.results.unwrap();
    assert_eq!(res.topks, vec![2]);
    assert_eq!(
        res.ids.unwrap().id_field,
        Some(pb::i_ds::IdField::IntId(pb::LongArray { data: vec![3, 1] }))
    );
    assert!((res.scores[0] - 1.1).abs() < 1e-6 && (res.scores[1] - 1.0).abs() < 1e-6);
    assert_eq!(res.output_fields, vec!["c".to_string()]);
    assert_eq!(res.primary_field_name, "id");
    let meta = &res.fields_data[0];
    assert!(meta.is_dynamic && meta.field_name == "$meta");

    // An empty result still has one column per output field.
    let q = api
        .query(Request::new(QueryRequest {
            collection_name: "c".into(),
            expr: "id > 100".into(),
            output_fields: vec!["v".into(), "c".into()],
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(q.status.unwrap().code, 0);
    let names: Vec<&str> = q
        .fields_data
        .iter()
        .map(|f| f.field_name.as_str())
        .collect();
    assert_eq!(names, vec!["id", "v", "$meta"]);

    let count = api
        .query(Request::new(QueryRequest {
            collection_name: "c".into(),
            output_fields: vec!["count(*)".into()],
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(count.fields_data[0].field_name, "count(*)");
    assert_eq!(
        count.fields_data[0].field,
        Some(Field::Scalars(pb::ScalarField {
            data: Some(Sd::LongData(pb::LongArray { data: vec![3] }))
        }))
    );
}

#[tokio::test]
#[allow(deprecated)]
async fn errors_are_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let api = api(dir.path());
    let d = api
        .describe_collection(Request::new(DescribeCollectionRequest {
            collection_name: "nope".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let s = d.status.unwrap();
    assert_eq!((s.code, s.error_code), (100, 4));
    api.create_collection(Request::new(CreateCollectionRequest {
        collection_name: "c".into(),
        schema: schema_bytes("c"),
        ..Default::default()
    }))
    .await
    .unwrap();
    let q = api
        .query(Request::new(QueryRequest {
            collection_name: "c".into(),
            expr: "id >>> 1".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let s = q.status.unwrap();
    assert_eq!((s.code, s.error_code), (1100, 5));
    // The database can come from the `dbname` header.
    let mut req = Request::new(ShowCollectionsRequest::default());
    req.metadata_mut()
        .insert("dbname", "missing".parse().unwrap());
    let s = api
        .show_collections(req)
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    assert_eq!(s.code, 800);
}

#[tokio::test]
async fn undeclared_rpcs_are_unimplemented() {
    use tonic::codegen::Service;
    let dir = tempfile::tempdir().unwrap();
    let mut svc = api(dir.path()).into_service();
    let req = tonic::codegen::http::Request::builder()
        .uri("/milvus.proto.milvus.MilvusService/SelectRole")
        .header("content-type", "application/grpc")
        .body(tonic::body::Body::empty())
        .unwrap();
    let resp = svc.call(req).await.unwrap();
    assert_eq!(resp.headers().get("grpc-status").unwrap(), "12");
}
