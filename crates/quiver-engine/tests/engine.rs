//! End-to-end behaviour of the embeddable engine: DDL, writes, queries, search, persistence.

mod common;

use std::collections::HashMap;

use common::*;
use quiver_core::{Cell, Error};
use quiver_engine::{Engine, Pk, QueryRequest, SearchRequest};

fn q(filter: &str, fields: &[&str]) -> QueryRequest {
    QueryRequest {
        filter: filter.into(),
        output_fields: fields.iter().map(|s| s.to_string()).collect(),
        limit: Some(1000),
        ..Default::default()
    }
}

fn ids_of(e: &Engine, coll: &str, filter: &str) -> Vec<i64> {
    ints(
        &e.query("default", coll, &q(filter, &["id"]))
            .unwrap()
            .fields,
        "id",
    )
}

#[test]
fn crud_filters_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path(), small_opts()).unwrap();
    create(&e, "c", 4);
    let ids: Vec<i64> = (0..100).collect();
    let r = e
        .insert("default", "c", None, batch(&ids, 4, |i| rvec(i, 4)))
        .unwrap();
    assert_eq!(r.count, 100);
    assert!(r.ts > 0);
    assert_eq!(e.row_count("default", "c", &[]).unwrap(), 100);

    assert_eq!(ids_of(&e, "c", "id in [3, 5, 500]"), vec![3, 5]);
    assert_eq!(ids_of(&e, "c", "n == 3 and id < 40"), vec![3, 13, 23, 33]);
    assert_eq!(ids_of(&e, "c", "color == 'red' and id < 6"), vec![0, 2, 4]);
    assert_eq!(
        ids_of(&e, "c", "tag is null and id < 30"),
        vec![0, 7, 14, 21, 28]
    );
    assert_eq!(
        ids_of(&e, "c", "array_contains(arr, 3) and id < 12"),
        vec![3, 7, 11]
    );
    assert_eq!(ids_of(&e, "c", "rank >= 98"), vec![98, 99]);

    // count(*)
    let c = e
        .query(
            "default",
            "c",
            &QueryRequest {
                filter: "n < 5".into(),
                output_fields: vec!["count(*)".into()],
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(c.count, Some(50));

    // offset/limit, ordered by key
    let page = e
        .query(
            "default",
            "c",
            &QueryRequest {
                filter: "id >= 10".into(),
                output_fields: vec!["n".into()],
                limit: Some(3),
                offset: 2,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(ints(&page.fields, "id"), vec![12, 13, 14]);

    // delete by keys and by filter
    let d = e
        .delete(
            "default",
            "c",
            None,
            "id in [1, 2, 3, 1000]",
            &HashMap::new(),
        )
        .unwrap();
    assert_eq!(d.count, 3);
    let d = e
        .delete("default", "c", None, "n == 9", &HashMap::new())
        .unwrap();
    assert_eq!(d.count, 10);
    assert_eq!(e.row_count("default", "c", &[]).unwrap(), 87);
    assert!(ids_of(&e, "c", "id in [1, 2, 3, 9, 19]").is_empty());

    // upsert replaces, insert of an existing key replaces too (never two rows per key)
    e.upsert("default", "c", None, batch(&[5], 4, |_| vec![9.0; 4]))
        .unwrap();
    e.insert("default", "c", None, batch(&[6], 4, |_| vec![8.0; 4]))
        .unwrap();
    assert_eq!(e.row_count("default", "c", &[]).unwrap(), 87);
    let got = e
        .query("default", "c", &q("id in [5, 6]", &["vec"]))
        .unwrap();
    let vec_col = got.fields.iter().find(|c| c.name == "vec").unwrap();
    assert_eq!(vec_col.column.cell(0), Cell::Vector(vec![9.0; 4]));
    assert_eq!(vec_col.column.cell(1), Cell::Vector(vec![8.0; 4]));

    // get by primary keys: missing keys skipped, ordered by key
    let got = e
        .get(
            "default",
            "c",
            &[Pk::Int(12), Pk::Int(1), Pk::Int(11), Pk::Int(12)],
            &["n".into()],
            &[],
        )
        .unwrap();
    assert_eq!(ints(&got.fields, "id"), vec![11, 12]);
    assert_eq!(ints(&got.fields, "n"), vec![1, 2]);

    // an empty result still has one (empty) column per requested field
    let empty = e
        .query("default", "c", &q("id < 0", &["n", "tag"]))
        .unwrap();
    assert_eq!(empty.fields.len(), 3);
    assert!(empty.fields.iter().all(|c| c.column.is_empty()));

    // dynamic output keys come back inside $meta, reduced to what was asked
    let dynq = e.query("default", "c", &q("id == 10", &["color"])).unwrap();
    let meta = dynq.fields.iter().find(|c| c.name == "$meta").unwrap();
    assert_eq!(
        meta.column.cell(0),
        Cell::Json(serde_json::json!({"color": "red"}))
    );
}

#[test]
fn validation_errors_name_field_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path(), small_opts()).unwrap();
    create(&e, "c", 4);
    let err = e
        .insert("default", "c", None, batch(&[1], 4, |_| vec![1.0; 3]))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::DimMismatch {
                expected: 4,
                got: 3,
                ..
            }
        ),
        "{err}"
    );
    let err = e
        .insert("default", "c", None, batch(&[1, 1], 4, |i| rvec(i, 4)))
        .unwrap_err();
    assert!(err.to_string().contains("duplicate primary key 1"), "{err}");
    let mut b = batch(&[1], 4, |i| rvec(i, 4));
    b.columns[3].1 =
        quiver_core::Column::new(quiver_core::ColumnData::VarChar(vec!["x".repeat(17)]));
    let err = e.insert("default", "c", None, b).unwrap_err();
    assert!(
        err.to_string().contains("tag") && err.to_string().contains("max_length (16)"),
        "{err}"
    );
    let mut b = batch(&[1], 4, |i| rvec(i, 4));
    b.columns.push((
        "nope".into(),
        quiver_core::Column::new(quiver_core::ColumnData::Int64(vec![1])),
    ));
    assert!(
        matches!(e.insert("default", "c", None, b).unwrap_err(), Error::FieldNotFound(f) if f == "nope")
    );
    let mut b = batch(&[1], 4, |i| rvec(i, 4));
    b.columns[1].1 = quiver_core::Column::new(quiver_core::ColumnData::Vector(
        quiver_core::VectorColumn::f32(4, vec![f32::NAN, 0.0, 0.0, 0.0]),
    ));
    assert!(e
        .insert("default", "c", None, b)
        .unwrap_err()
        .to_string()
        .contains("NaN"));
    let err = e.query("default", "c", &q("id in [1, ", &[])).unwrap_err();
    assert!(matches!(err, Error::InvalidExpr { .. }), "{err}");
    let err = e.query("default", "c", &q("tag > 1", &[])).unwrap_err();
    assert!(matches!(err, Error::InvalidExpr { .. }), "{err}");
    assert!(matches!(
        e.query("default", "missing", &q("", &[])).unwrap_err(),
        Error::CollectionNotFound(_)
    ));
    assert!(matches!(
        e.insert(
            "default",
            "c",
            Some("nopart"),
            batch(&[1], 4, |i| rvec(i, 4))
        )
        .unwrap_err(),
        Error::PartitionNotFound(_)
    ));
    let s = SearchRequest {
        vectors: vec![vec![0.0; 5]],
        limit: 3,
        ..Default::default()
    };
    assert!(matches!(
        e.search("default", "c", &s).unwrap_err(),
        Error::DimMismatch {
            expected: 4,
            got: 5,
            ..
        }
    ));
    let s = SearchRequest {
        vectors: vec![vec![0.0; 4]],
        limit: 20000,
        ..Default::default()
    };
    assert!(e
        .search("default", "c", &s)
        .unwrap_err()
        .to_string()
        .contains("16384"));
    // Nothing was written by the failed calls.
    assert_eq!(e.row_count("default", "c", &[]).unwrap(), 0);
}

fn brute(
    e: &Engine,
    ids: &[i64],
    dim: usize,
    qv: &[f32],
    k: usize,
    metric: quiver_simd::Metric,
    keep: impl Fn(i64) -> bool,
) -> Vec<(i64, f32)> {
    let _ = e;
    let mut all: Vec<(i64, f32)> = ids
        .iter()
        .filter(|&&i| keep(i))
        .map(|&i| (i, metric.distance(qv, &rvec(i, dim))))
        .collect();
    all.sort_by(|a, b| {
        let o = if metric.higher_is_better() {
            b.1.partial_cmp(&a.1).unwrap()
        } else {
            a.1.partial_cmp(&b.1).unwrap()
        };
        o.then(a.0.cmp(&b.0))
    });
    all.truncate(k);
    all
}

#[test]
fn search_equals_brute_force_across_growing_and_sealed_segments() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path(), small_opts()).unwrap();
    let dim = 8;
    create(&e, "c", dim);
    let ids: Vec<i64> = (0..1500).collect();
    // Two sealed segments and one growing one.
    e.insert(
        "default",
        "c",
        None,
        batch(&ids[..700], dim, |i| rvec(i, dim)),
    )
    .unwrap();
    e.flush("default", "c").unwrap();
    e.insert(
        "default",
        "c",
        None,
        batch(&ids[700..1200], dim, |i| rvec(i, dim)),
    )
    .unwrap();
    e.flush("default", "c").unwrap();
    e.insert(
        "default",
        "c",
        None,
        batch(&ids[1200..], dim, |i| rvec(i, dim)),
    )
    .unwrap();
    for metric in ["L2", "IP", "COSINE"] {
        let m = quiver_simd::Metric::parse(metric).unwrap();
        let queries: Vec<Vec<f32>> = (0..5).map(|s| rvec(10_000 + s, dim)).collect();
        let req = SearchRequest {
            vectors: queries.clone(),
            metric: Some(metric.into()),
            limit: 10,
            filter: "n != 3".into(),
            output_fields: vec!["n".into()],
            ..Default::default()
        };
        let res = e.search("default", "c", &req).unwrap();
        assert_eq!(res.topks, vec![10; 5]);
        for (qi, qv) in queries.iter().enumerate() {
            let want = brute(&e, &ids, dim, qv, 10, m, |i| i % 10 != 3);
            let got: Vec<(i64, f32)> = (0..10)
                .map(|j| {
                    let Pk::Int(id) = res.pks[qi * 10 + j] else {
                        panic!()
                    };
                    (id, res.scores[qi * 10 + j])
                })
                .collect();
            assert_eq!(
                got.iter().map(|x| x.0).collect::<Vec<_>>(),
                want.iter().map(|x| x.0).collect::<Vec<_>>(),
                "{metric} query {qi}"
            );
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (g.1 - w.1).abs() <= 1e-4 * w.1.abs().max(1.0),
                    "{metric}: {g:?} vs {w:?}"
                );
            }
        }
        let n = ints(&res.fields, "n");
        assert!(n.iter().all(|&v| v != 3) && n.len() == 50);
    }
}

#[test]
fn ties_are_broken_by_primary_key_and_offset_pages() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path(), small_opts()).unwrap();
    create(&e, "c", 2);
    // Inserted in descending key order, all at the same distance.
    let ids: Vec<i64> = (0..50).rev().collect();
    e.insert(
        "default",
        "c",
        None,
        batch(&ids[..25], 2, |_| vec![1.0, 0.0]),
    )
    .unwrap();
    e.flush("default", "c").unwrap();
    e.insert(
        "default",
        "c",
        None,
        batch(&ids[25..], 2, |_| vec![1.0, 0.0]),
    )
    .unwrap();
    let req = SearchRequest {
        vectors: vec![vec![1.0, 0.0]],
        metric: Some("L2".into()),
        limit: 5,
        offset: 3,
        ..Default::default()
    };
    let res = e.search("default", "c", &req).unwrap();
    assert_eq!(res.pks, (3..8).map(Pk::Int).collect::<Vec<_>>());
}

#[test]
fn range_search_and_group_by() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path(), small_opts()).unwrap();
    create(&e, "c", 1);
    let ids: Vec<i64> = (0..40).collect();
    e.insert("default", "c", None, batch(&ids, 1, |i| vec![i as f32]))
        .unwrap();
    // L2 from 0: distance = i^2. Keep 4 <= d < 50 -> i in 2..=7
    let mut req = SearchRequest {
        vectors: vec![vec![0.0]],
        metric: Some("L2".into()),
        limit: 100,
        radius: Some(50.0),
        range_filter: Some(4.0),
        ..Default::default()
    };
    let res = e.search("default", "c", &req).unwrap();
    assert_eq!(res.pks, (2..=7).map(Pk::Int).collect::<Vec<_>>());
    req.range_filter = Some(60.0);
    assert!(e.search("default", "c", &req).is_err());
    // group by n (= id % 10): 3 groups of 2, best groups first.
    let req = SearchRequest {
        vectors: vec![vec![0.0]],
        metric: Some("L2".into()),
        limit: 3,
        group_by: Some("n".into()),
        group_size: Some(2),
        ..Default::default()
    };
    let res = e.search("default", "c", &req).unwrap();
    assert_eq!(res.pks, [0, 10, 1, 11, 2, 12].map(Pk::Int).to_vec());
    assert_eq!(
        ints(&[res.group_values.unwrap()], "n"),
        vec![0, 0, 1, 1, 2, 2]
    );
}

#[test]
fn partitions_aliases_databases() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path(), small_opts()).unwrap();
    create(&e, "c", 2);
    e.create_partition("default", "c", "p1").unwrap();
    assert!(matches!(
        e.create_partition("default", "c", "p1").unwrap_err(),
        Error::AlreadyExists { .. }
    ));
    e.insert(
        "default",
        "c",
        Some("p1"),
        batch(&[1, 2], 2, |i| vec![i as f32, 0.0]),
    )
    .unwrap();
    e.insert(
        "default",
        "c",
        None,
        batch(&[3], 2, |i| vec![i as f32, 0.0]),
    )
    .unwrap();
    let mut qp = q("", &[]);
    qp.partitions = vec!["p1".into()];
    assert_eq!(
        ints(&e.query("default", "c", &qp).unwrap().fields, "id"),
        vec![1, 2]
    );
    assert_eq!(
        e.row_count("default", "c", &["_default".into()]).unwrap(),
        1
    );
    e.drop_partition("default", "c", "p1").unwrap();
    assert_eq!(ids_of(&e, "c", ""), vec![3]);
    assert!(e.drop_partition("default", "c", "_default").is_err());

    e.create_alias("default", "live", "c").unwrap();
    assert_eq!(ids_of(&e, "live", "id > 0"), vec![3]);
    create(&e, "c2", 2);
    e.alter_alias("default", "live", "c2").unwrap();
    assert!(ids_of(&e, "live", "id > 0").is_empty());
    assert_eq!(e.describe_alias("default", "live").unwrap(), "c2");
    assert_eq!(
        e.list_aliases("default", None).unwrap(),
        vec!["live".to_string()]
    );
    e.drop_alias("default", "live").unwrap();
    assert!(matches!(
        e.query("default", "live", &q("", &[])).unwrap_err(),
        Error::CollectionNotFound(_)
    ));

    e.create_database("analytics", Default::default()).unwrap();
    e.create_collection(
        "analytics",
        quiver_engine::CreateCollection::new(schema("c", 2)),
    )
    .unwrap();
    assert!(e.drop_database("analytics").is_err());
    e.rename_collection("default", "c", "default", "renamed")
        .unwrap();
    assert_eq!(ids_of(&e, "renamed", "id > 0"), vec![3]);
    e.rename_database("analytics", "reports").unwrap();
    assert!(e.has_collection("reports", "c").unwrap());
    assert!(matches!(
        e.list_collections("analytics").unwrap_err(),
        Error::DatabaseNotFound(_)
    ));
    e.drop_collection("reports", "c").unwrap();
    e.drop_database("reports").unwrap();
    assert!(e.drop_database("default").is_err());
}

#[test]
fn everything_survives_reopen_with_and_without_flush() {
    let dir = tempfile::tempdir().unwrap();
    {
        let e = Engine::open(dir.path(), small_opts()).unwrap();
        create(&e, "c", 4);
        e.create_partition("default", "c", "p").unwrap();
        e.create_alias("default", "a", "c").unwrap();
        let ids: Vec<i64> = (0..2500).collect();
        e.insert("default", "c", None, batch(&ids[..1200], 4, |i| rvec(i, 4)))
            .unwrap();
        e.flush("default", "c").unwrap();
        e.delete("default", "c", None, "id < 100", &HashMap::new())
            .unwrap();
        e.insert(
            "default",
            "c",
            Some("p"),
            batch(&ids[1200..], 4, |i| rvec(i, 4)),
        )
        .unwrap();
        e.upsert("default", "c", None, batch(&[150], 4, |_| vec![1.0; 4]))
            .unwrap();
        e.delete("default", "c", None, "id >= 2400", &HashMap::new())
            .unwrap();
        // No flush: the tail lives only in the WAL.
    }
    let e = Engine::open(dir.path(), small_opts()).unwrap();
    assert_eq!(e.row_count("default", "c", &[]).unwrap(), 2300);
    assert_eq!(e.row_count("default", "c", &["p".into()]).unwrap(), 1200);
    assert!(ids_of(&e, "a", "id < 100 or id >= 2400").is_empty());
    let got = e.query("default", "c", &q("id == 150", &["vec"])).unwrap();
    assert_eq!(
        got.fields
            .iter()
            .find(|c| c.name == "vec")
            .unwrap()
            .column
            .cell(0),
        Cell::Vector(vec![1.0; 4])
    );
    // Flush, compaction (100 deletes of 1200 rows + merge) and reopen again.
    e.flush("default", "c").unwrap();
    e.delete("default", "c", None, "id < 600", &HashMap::new())
        .unwrap();
    e.flush("default", "c").unwrap();
    drop(e);
    let e = Engine::open(dir.path(), small_opts()).unwrap();
    assert_eq!(e.row_count("default", "c", &[]).unwrap(), 1800);
    assert_eq!(ids_of(&e, "c", "id >= 598 and id < 602"), vec![600, 601]);
    let res = e
        .search(
            "default",
            "c",
            &SearchRequest {
                vectors: vec![rvec(700, 4)],
                metric: Some("L2".into()),
                limit: 1,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(res.pks, vec![Pk::Int(700)]);
}

#[test]
fn data_directory_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let _e = Engine::open(dir.path(), small_opts()).unwrap();
    let err = Engine::open(dir.path(), small_opts()).unwrap_err();
    assert!(err.to_string().contains("in use"), "{err}");
}

#[test]
fn corrupt_manifest_isolates_one_collection() {
    let dir = tempfile::tempdir().unwrap();
    {
        let e = Engine::open(dir.path(), small_opts()).unwrap();
        create(&e, "good", 2);
        create(&e, "bad", 2);
        for c in ["good", "bad"] {
            e.insert(
                "default",
                c,
                None,
                batch(&[1, 2], 2, |i| vec![i as f32, 1.0]),
            )
            .unwrap();
            e.flush("default", c).unwrap();
        }
    }
    let cat = Engine::open(dir.path(), small_opts())
        .unwrap()
        .describe_collection("default", "bad")
        .unwrap();
    let mdir = dir.path().join(format!("collections/{}/manifest", cat.id));
    let m = std::fs::read_dir(&mdir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&m).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0xff;
    std::fs::write(&m, bytes).unwrap();
    let e = Engine::open(dir.path(), small_opts()).unwrap();
    assert_eq!(ids_of(&e, "good", "id > 0"), vec![1, 2]);
    let err = e.query("default", "bad", &q("id > 0", &[])).unwrap_err();
    assert!(err.to_string().contains("checksum"), "{err}");
}

#[test]
fn background_compaction_rewrites_segments_with_many_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let opts = quiver_engine::EngineOptions {
        seal_rows: 1000,
        background_flush: true,
        ..Default::default()
    };
    let e = Engine::open(dir.path(), opts).unwrap();
    create(&e, "c", 2);
    let ids: Vec<i64> = (0..1000).collect();
    e.insert(
        "default",
        "c",
        None,
        batch(&ids, 2, |i| vec![i as f32, 1.0]),
    )
    .unwrap();
    // The insert reached seal_rows: a background flush seals it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !e
        .segments("default", "c")
        .unwrap()
        .iter()
        .all(|s| s.sealed && s.persisted)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "never sealed in the background"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    e.delete("default", "c", None, "id < 300", &HashMap::new())
        .unwrap();
    // 30% deleted > 20%: a background compaction rewrites the segment without them.
    loop {
        let segs = e.segments("default", "c").unwrap();
        if segs.len() == 1 && segs[0].rows == 700 && segs[0].deleted == 0 && segs[0].persisted {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never compacted: {segs:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(ids_of(&e, "c", "id >= 298 and id < 302"), vec![300, 301]);
    drop(e);
    let e = Engine::open(dir.path(), small_opts()).unwrap();
    assert_eq!(e.row_count("default", "c", &[]).unwrap(), 700);
}

#[test]
fn corrupt_wal_record_is_reported_with_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let e = Engine::open(dir.path(), small_opts()).unwrap();
        create(&e, "c", 2);
        for b in 0..3 {
            e.insert(
                "default",
                "c",
                None,
                batch(&[b], 2, |i| vec![i as f32, 0.0]),
            )
            .unwrap();
        }
        e.describe_collection("default", "c").unwrap().id
    };
    let wal_dir = dir.path().join(format!("collections/{id}/wal"));
    let seg = std::fs::read_dir(&wal_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "wal"))
        .unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[24 + 20] ^= 0xff; // inside the first record's payload
    std::fs::write(&seg, &bytes).unwrap();
    let e = Engine::open(dir.path(), small_opts()).unwrap();
    let err = e
        .query("default", "c", &q("id >= 0", &[]))
        .unwrap_err()
        .to_string();
    assert!(err.contains(".wal") && err.contains("offset 24"), "{err}");
    // The corrupt log was not "repaired" by truncation: the bytes are unchanged.
    assert_eq!(std::fs::read(&seg).unwrap(), bytes);
}

fn hreq(
    requests: Vec<SearchRequest>,
    ranker: quiver_engine::Ranker,
    limit: usize,
    out: &[&str],
) -> quiver_engine::HybridRequest {
    quiver_engine::HybridRequest {
        requests,
        ranker,
        limit,
        offset: 0,
        output_fields: out.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn hybrid_search_fuses_with_rrf_and_weights() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path(), small_opts()).unwrap();
    let mut s = schema("c", 1);
    s.fields.push(
        quiver_core::FieldSchema::new("vec2", quiver_core::DataType::FloatVector)
            .with_param("dim", 1),
    );
    e.create_collection("default", quiver_engine::CreateCollection::new(s))
        .unwrap();
    let ids: Vec<i64> = (0..10).collect();
    let mut b = batch(&ids, 1, |i| vec![i as f32]);
    // vec2 ranks in the opposite order.
    b.columns.push((
        "vec2".into(),
        quiver_core::Column::new(quiver_core::ColumnData::Vector(
            quiver_core::VectorColumn::f32(1, ids.iter().map(|&i| (9 - i) as f32).collect()),
        )),
    ));
    e.insert("default", "c", None, b).unwrap();
    let r1 = SearchRequest {
        anns_field: Some("vec".into()),
        vectors: vec![vec![0.0]],
        metric: Some("L2".into()),
        limit: 3,
        ..Default::default()
    };
    let r2 = SearchRequest {
        anns_field: Some("vec2".into()),
        vectors: vec![vec![0.0]],
        metric: Some("L2".into()),
        limit: 3,
        ..Default::default()
    };
    // vec: 0,1,2 ; vec2: 9,8,7. RRF: ranks tie pairwise (0 and 9 both rank 1): keys order ties.
    let rrf = quiver_engine::Ranker::Rrf { k: 60.0 };
    let res = e
        .hybrid_search(
            "default",
            "c",
            &hreq(vec![r1.clone(), r2.clone()], rrf, 4, &["n"]),
        )
        .unwrap();
    assert_eq!(res.pks, [0, 9, 1, 8].map(Pk::Int).to_vec());
    assert!((res.scores[0] - 1.0 / 61.0).abs() < 1e-6);
    assert_eq!(ints(&res.fields, "n"), vec![0, 9, 1, 8]);
    // Weighted, normalised: smaller L2 distance -> larger score; vec2's best (9, distance 0) wins.
    let weighted = quiver_engine::Ranker::Weighted {
        weights: vec![0.1, 1.0],
        normalize: true,
    };
    let res = e
        .hybrid_search(
            "default",
            "c",
            &hreq(vec![r1.clone(), r2.clone()], weighted, 2, &[]),
        )
        .unwrap();
    assert_eq!(res.pks[0], Pk::Int(9));
    let bad = quiver_engine::Ranker::Weighted {
        weights: vec![1.0],
        normalize: true,
    };
    assert!(e
        .hybrid_search("default", "c", &hreq(vec![r1, r2], bad, 2, &[]))
        .is_err());
}

#[test]
fn users_persist_with_their_hashes() {
    let dir = tempfile::tempdir().unwrap();
    {
        let e = Engine::open(dir.path(), small_opts()).unwrap();
        e.create_user("alice", "$argon2id$v=19$fake").unwrap();
        assert!(matches!(
            e.create_user("alice", "x").unwrap_err(),
            Error::AlreadyExists { .. }
        ));
        e.create_user("bob", "h1").unwrap();
        e.update_user("bob", "h2").unwrap();
        e.delete_user("alice").unwrap();
        assert!(e.delete_user("alice").is_err());
    }
    let e = Engine::open(dir.path(), small_opts()).unwrap();
    assert_eq!(e.list_users(), vec!["bob".to_string()]);
    assert_eq!(e.user_password_hash("bob").as_deref(), Some("h2"));
}
