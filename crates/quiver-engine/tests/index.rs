//! Vector indexes through the engine: background builds on sealed segments, the planner's
//! recall with and without filters, deletes, persistence, corruption, compaction, parameters.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use common::*;
use quiver_core::Error;
use quiver_engine::{Engine, EngineOptions, IndexBuildState, IndexProgress, SearchRequest};

const DIM: usize = 32;
const N: i64 = 6000;
const K: usize = 10;

fn opts() -> EngineOptions {
    EngineOptions {
        seal_rows: 100_000,
        background_flush: false,
        min_index_rows: 1024,
        ..Default::default()
    }
}

/// Points around 40 fixed centres (a deterministic, clustered data set).
fn point(i: i64) -> Vec<f32> {
    let centre = rvec(1_000_000 + i % 40, DIM);
    let noise = rvec(i, DIM);
    centre
        .iter()
        .zip(&noise)
        .map(|(c, n)| c + 0.25 * n)
        .collect()
}

fn query(j: i64) -> Vec<f32> {
    point(10_000_000 + j)
}

fn l2(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Brute-force top-k ids over the rows `live` that pass `keep`, L2.
fn truth(live: &[i64], q: &[f32], keep: impl Fn(i64) -> bool) -> Vec<i64> {
    let mut d: Vec<(f32, i64)> = live
        .iter()
        .filter(|&&i| keep(i))
        .map(|&i| (l2(q, &point(i)), i))
        .collect();
    d.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap().then(a.1.cmp(&b.1)));
    d.into_iter().take(K).map(|x| x.1).collect()
}

fn insert_range(e: &Engine, coll: &str, ids: std::ops::Range<i64>) {
    let ids: Vec<i64> = ids.collect();
    for chunk in ids.chunks(1000) {
        e.insert("default", coll, None, batch(chunk, DIM, point))
            .unwrap();
    }
}

fn index_params(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn wait_built(e: &Engine, coll: &str) -> IndexProgress {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let (_, p) = e.index_progress("default", coll, "", "").unwrap();
        if p.state != IndexBuildState::InProgress {
            return p;
        }
        assert!(
            Instant::now() < deadline,
            "index build did not finish: {p:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn search(
    e: &Engine,
    coll: &str,
    q: &[f32],
    filter: &str,
    params: serde_json::Value,
) -> Result<Vec<(i64, f32)>, Error> {
    let r = e.search(
        "default",
        coll,
        &SearchRequest {
            vectors: vec![q.to_vec()],
            limit: K,
            filter: filter.into(),
            metric: Some("L2".into()),
            params: params.as_object().cloned().unwrap_or_default(),
            ..Default::default()
        },
    )?;
    Ok(r.pks
        .iter()
        .zip(&r.scores)
        .map(|(pk, s)| match pk {
            quiver_engine::Pk::Int(i) => (*i, *s),
            other => panic!("unexpected key {other:?}"),
        })
        .collect())
}

/// Mean recall@10 over 40 queries with `filter` (and its Rust twin `keep`); checks every hit
/// passes the filter, is live, and carries its exact L2 score.
fn mean_recall(
    e: &Engine,
    coll: &str,
    live: &[i64],
    filter: &str,
    keep: impl Fn(i64) -> bool + Copy,
    params: serde_json::Value,
) -> f64 {
    let live_set: HashSet<i64> = live.iter().copied().collect();
    let mut sum = 0.0;
    for j in 0..40 {
        let q = query(j);
        let got = search(e, coll, &q, filter, params.clone()).unwrap();
        let want = truth(live, &q, keep);
        assert_eq!(got.len(), want.len(), "filter {filter}");
        for (id, score) in &got {
            assert!(
                live_set.contains(id),
                "deleted or unknown row {id} returned"
            );
            assert!(keep(*id), "row {id} does not pass {filter}");
            let exact = l2(&q, &point(*id));
            assert!(
                (score - exact).abs() <= 1e-3 * exact.max(1.0),
                "score of {id}: {score} vs {exact}"
            );
        }
        let hit = want
            .iter()
            .filter(|w| got.iter().any(|g| g.0 == **w))
            .count();
        if hit < want.len() && std::env::var("DEBUG_RECALL").is_ok() {
            let wd: Vec<(i64, f32)> = want.iter().map(|&w| (w, l2(&q, &point(w)))).collect();
            eprintln!("q{j} {filter}: got {got:?}\n want {wd:?}");
        }
        sum += hit as f64 / want.len().max(1) as f64;
    }
    sum / 40.0
}

fn idx_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for c in std::fs::read_dir(dir.join("collections")).unwrap() {
        let segs = c.unwrap().path().join("segments");
        if let Ok(rd) = std::fs::read_dir(segs) {
            for f in rd {
                let p = f.unwrap().path();
                if p.extension().is_some_and(|x| x == "idx") {
                    out.push(p);
                }
            }
        }
    }
    out.sort();
    out
}

#[test]
fn hnsw_builds_in_background_keeps_recall_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut live: Vec<i64>;
    let before: Vec<Vec<(i64, f32)>>;
    {
        let e = Engine::open(dir.path(), opts()).unwrap();
        create(&e, "c", DIM);
        insert_range(&e, "c", 0..N);
        e.flush("default", "c").unwrap();
        e.create_index(
            "default",
            "c",
            "vec",
            "",
            index_params(&[
                ("index_type", "HNSW"),
                ("metric_type", "L2"),
                ("M", "16"),
                ("efConstruction", "100"),
            ]),
        )
        .unwrap();
        let p = wait_built(&e, "c");
        assert_eq!(p.state, IndexBuildState::Finished, "{p:?}");
        assert_eq!(
            (p.indexed_rows, p.total_rows, p.pending_rows),
            (N as u64, N as u64, 0)
        );
        let segs = e.segments("default", "c").unwrap();
        assert_eq!(segs.len(), 1);
        assert_eq!(segs[0].index_ids.len(), 1);
        assert_eq!(idx_files(dir.path()).len(), 1);

        // Growing rows are searched exactly and merged; deletes are never returned.
        insert_range(&e, "c", N..N + 150);
        let deleted: Vec<i64> = (0..N + 150).filter(|i| i % 13 == 0).collect();
        let list = deleted
            .iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",");
        e.delete(
            "default",
            "c",
            None,
            &format!("id in [{list}]"),
            &Default::default(),
        )
        .unwrap();
        live = (0..N + 150).filter(|i| i % 13 != 0).collect();
        let (_, p) = e.index_progress("default", "c", "vec", "").unwrap();
        assert_eq!(
            (p.indexed_rows, p.total_rows),
            (live.len() as u64, live.len() as u64)
        );
        assert_eq!(
            p.state,
            IndexBuildState::Finished,
            "growing rows are not pending"
        );

        let r = mean_recall(&e, "c", &live, "", |_| true, serde_json::json!({}));
        eprintln!("unfiltered recall@10 = {r:.3}");
        assert!(r >= 0.95, "unfiltered recall {r}");
        // Selectivity 1%, 10%, 50% at default parameters.
        for (filter, keep, name) in [
            ("rank < 60", (|i: i64| i < 60) as fn(i64) -> bool, "1%"),
            ("n == 3", |i: i64| i % 10 == 3, "10%"),
            ("n < 5", |i: i64| i % 10 < 5, "50%"),
        ] {
            let r = mean_recall(&e, "c", &live, filter, keep, serde_json::json!({}));
            eprintln!("filter {name}: recall@10 = {r:.3}");
            assert!(r >= 0.95, "{name} recall {r}");
        }
        // A wider beam is at least as good.
        let r = mean_recall(&e, "c", &live, "", |_| true, serde_json::json!({"ef": 256}));
        assert!(r >= 0.98, "ef 256 recall {r}");

        // Search parameters are validated against the index.
        for bad in [
            serde_json::json!({"ef": 0}),
            serde_json::json!({"ef": "many"}),
            serde_json::json!({"ef": -3}),
            serde_json::json!({"level": 9}),
        ] {
            let err = search(&e, "c", &query(0), "", bad.clone()).unwrap_err();
            assert!(matches!(err, Error::InvalidArgument(_)), "{bad}: {err:?}");
        }
        before = (0..10)
            .map(|j| search(&e, "c", &query(j), "", serde_json::json!({})).unwrap())
            .collect();
        e.flush("default", "c").unwrap();
        // The flush compacted the deletes away into a new segment: its index is built again.
        let p = wait_built(&e, "c");
        assert_eq!(p.state, IndexBuildState::Finished);
        let segs = e.segments("default", "c").unwrap();
        assert!(segs.iter().all(|s| s.index_ids.len() == 1), "{segs:?}");
        // The old segment's index file goes with the manifest commit that follows the attach
        // (the state shows the new index a moment before): wait for it.
        let deadline = Instant::now() + Duration::from_secs(30);
        while idx_files(dir.path()).len() != segs.len() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(
            idx_files(dir.path()).len(),
            segs.len(),
            "stale index files collected"
        );
    }
    live.sort();
    // Reopen without the builder: the index is loaded from its file, not rebuilt.
    {
        let e = Engine::open(
            dir.path(),
            EngineOptions {
                build_indexes: false,
                ..opts()
            },
        )
        .unwrap();
        let segs = e.segments("default", "c").unwrap();
        assert!(segs.iter().all(|s| s.index_ids.len() == 1), "{segs:?}");
        let (_, p) = e.index_progress("default", "c", "", "").unwrap();
        assert_eq!(p.state, IndexBuildState::Finished);
        let after: Vec<Vec<(i64, f32)>> = (0..10)
            .map(|j| search(&e, "c", &query(j), "", serde_json::json!({})).unwrap())
            .collect();
        // Same index, same rows: same answers (the segment was re-sorted, ties aside).
        for (b, a) in before.iter().zip(&after) {
            let bi: HashSet<i64> = b.iter().map(|x| x.0).collect();
            let ai: HashSet<i64> = a.iter().map(|x| x.0).collect();
            assert!(bi.intersection(&ai).count() >= K - 1, "{b:?} vs {a:?}");
        }
    }
    // A corrupt index file is not fatal: searches are exact until the builder rebuilds it.
    let files = idx_files(dir.path());
    assert_eq!(files.len(), 1);
    let mut bytes = std::fs::read(&files[0]).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x5a;
    std::fs::write(&files[0], &bytes).unwrap();
    {
        let e = Engine::open(
            dir.path(),
            EngineOptions {
                build_indexes: false,
                ..opts()
            },
        )
        .unwrap();
        assert!(e.segments("default", "c").unwrap()[0].index_ids.is_empty());
        let (_, p) = e.index_progress("default", "c", "", "").unwrap();
        assert_eq!(p.state, IndexBuildState::InProgress);
        let r = mean_recall(&e, "c", &live, "", |_| true, serde_json::json!({}));
        assert_eq!(r, 1.0, "exact search while the index is missing");
    }
    {
        let e = Engine::open(dir.path(), opts()).unwrap();
        let p = wait_built(&e, "c");
        assert_eq!(p.state, IndexBuildState::Finished);
        assert_eq!(e.segments("default", "c").unwrap()[0].index_ids.len(), 1);
        assert!(std::fs::read(&files[0]).unwrap() != bytes, "file rewritten");
        // Dropping the index detaches it; search is exact again. Its file stays while the
        // previous manifest names it, and goes with the next commit.
        e.drop_index("default", "c", "vec", "").unwrap();
        assert!(e.segments("default", "c").unwrap()[0].index_ids.is_empty());
        e.insert("default", "c", None, batch(&[N + 1000], DIM, point))
            .unwrap();
        e.flush("default", "c").unwrap();
        assert!(idx_files(dir.path()).is_empty());
        live.push(N + 1000);
        let r = mean_recall(&e, "c", &live, "", |_| true, serde_json::json!({}));
        assert_eq!(r, 1.0);
    }
}

#[test]
fn ivf_indexes_meet_recall_and_validate_nprobe() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path(), opts()).unwrap();
    let live: Vec<i64> = (0..N).collect();
    for (name, kind, extra, search_params, min_recall) in [
        (
            "flat",
            "IVF_FLAT",
            vec![],
            serde_json::json!({"nprobe": 16}),
            0.95,
        ),
        (
            "sq8",
            "IVF_SQ8",
            vec![],
            serde_json::json!({"nprobe": 16, "refine_k": 2}),
            0.95,
        ),
        (
            "pq",
            "IVF_PQ",
            vec![("m", "8"), ("nbits", "8")],
            serde_json::json!({"nprobe": 16, "refine_k": 4}),
            0.90,
        ),
    ] {
        create(&e, name, DIM);
        insert_range(&e, name, 0..N);
        e.flush("default", name).unwrap();
        let mut p = vec![("index_type", kind), ("metric_type", "L2"), ("nlist", "32")];
        p.extend(extra);
        e.create_index("default", name, "vec", "", index_params(&p))
            .unwrap();
        let prog = wait_built(&e, name);
        assert_eq!(prog.state, IndexBuildState::Finished, "{kind}: {prog:?}");
        assert_eq!(e.segments("default", name).unwrap()[0].index_ids.len(), 1);
        let r = mean_recall(&e, name, &live, "", |_| true, search_params);
        eprintln!("{kind}: recall@10 = {r:.3}");
        assert!(r >= min_recall, "{kind}: recall {r}");
        let r = mean_recall(
            &e,
            name,
            &live,
            "n < 5",
            |i| i % 10 < 5,
            serde_json::json!({"nprobe": 16, "refine_k": 4}),
        );
        assert!(r >= min_recall, "{kind} filtered: recall {r}");
        for bad in [
            serde_json::json!({"nprobe": 0}),
            serde_json::json!({"nprobe": 33}),
            serde_json::json!({"refine_k": 0.5}),
        ] {
            let err = search(&e, name, &query(0), "", bad.clone()).unwrap_err();
            assert!(
                matches!(err, Error::InvalidArgument(_)),
                "{kind} {bad}: {err:?}"
            );
        }
    }
}

#[test]
fn bad_index_definitions_are_refused_and_not_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path(), opts()).unwrap();
    create(&e, "c", DIM);
    for (kv, what) in [
        (vec![("index_type", "HNSW"), ("M", "1")], "M below 2"),
        (
            vec![("index_type", "HNSW"), ("efConstruction", "0")],
            "efConstruction 0",
        ),
        (
            vec![("index_type", "HNSW"), ("M", "sixteen")],
            "M not a number",
        ),
        (vec![("index_type", "IVF_FLAT"), ("nlist", "0")], "nlist 0"),
        (
            vec![("index_type", "IVF_PQ"), ("m", "7")],
            "m does not divide 32",
        ),
        (vec![("index_type", "IVF_PQ")], "m missing"),
        (
            vec![("index_type", "IVF_PQ"), ("m", "8"), ("nbits", "17")],
            "nbits 17",
        ),
        (vec![("index_type", "DISKANN")], "unsupported type"),
        (
            vec![("index_type", "HNSW"), ("metric_type", "HAMMING")],
            "metric",
        ),
    ] {
        let err = e
            .create_index("default", "c", "vec", "", index_params(&kv))
            .unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{what}: {err:?}");
    }
    assert!(e.list_indexes("default", "c").unwrap().is_empty());
    // A FLAT index builds nothing and is finished at once.
    insert_range(&e, "c", 0..2000);
    e.flush("default", "c").unwrap();
    e.create_index(
        "default",
        "c",
        "vec",
        "",
        index_params(&[("index_type", "FLAT"), ("metric_type", "L2")]),
    )
    .unwrap();
    let (_, p) = e.index_progress("default", "c", "", "").unwrap();
    assert_eq!(p.state, IndexBuildState::Finished);
    assert_eq!(p.indexed_rows, 2000);
    assert!(e.segments("default", "c").unwrap()[0].index_ids.is_empty());
}

#[test]
fn float16_and_binary_fields_index_persist_and_search() {
    use quiver_core::{
        CollectionSchema, Column, ColumnData, DataType, FieldSchema, VectorColumn, VectorData,
    };
    let dir = tempfile::tempdir().unwrap();
    let schema = CollectionSchema {
        name: "t".into(),
        description: String::new(),
        fields: vec![
            FieldSchema::new("id", DataType::Int64).primary(false),
            FieldSchema::new("h", DataType::Float16Vector).with_param("dim", DIM),
            FieldSchema::new("b", DataType::BinaryVector).with_param("dim", 64),
        ],
        enable_dynamic_field: false,
        functions: vec![],
    };
    let n = 3000i64;
    let half_row = |i: i64| -> Vec<u16> {
        point(i)
            .iter()
            .map(|&x| quiver_core::value::f32_to_f16(x))
            .collect()
    };
    // Binary rows: 8 bytes around 20 centres, a few bits flipped.
    let bin_row = |i: i64| -> Vec<u8> {
        let c = rvec(500 + i % 20, 8);
        let noise = rvec(i, 8);
        c.iter()
            .zip(&noise)
            .map(|(a, b)| {
                let byte = ((a + 1.0) * 127.0) as u8;
                if *b > 0.8 {
                    byte ^ (1 << ((i % 8) as u8))
                } else {
                    byte
                }
            })
            .collect()
    };
    let search_both = |e: &Engine| -> (Vec<i64>, Vec<i64>) {
        let pks = |r: quiver_engine::SearchResult| -> Vec<i64> {
            r.pks
                .iter()
                .map(|p| match p {
                    quiver_engine::Pk::Int(i) => *i,
                    _ => unreachable!(),
                })
                .collect()
        };
        let q: Vec<f32> = half_row(77)
            .iter()
            .map(|&b| quiver_core::value::f16_to_f32(b))
            .collect();
        let h = e
            .search(
                "default",
                "t",
                &SearchRequest {
                    anns_field: Some("h".into()),
                    vectors: vec![q],
                    limit: K,
                    metric: Some("L2".into()),
                    ..Default::default()
                },
            )
            .unwrap();
        let b = e
            .search(
                "default",
                "t",
                &SearchRequest {
                    anns_field: Some("b".into()),
                    binary_vectors: vec![bin_row(77)],
                    limit: K,
                    metric: Some("HAMMING".into()),
                    ..Default::default()
                },
            )
            .unwrap();
        (pks(h), pks(b))
    };
    let before;
    {
        let e = Engine::open(dir.path(), opts()).unwrap();
        e.create_collection("default", quiver_engine::CreateCollection::new(schema))
            .unwrap();
        let ids: Vec<i64> = (0..n).collect();
        let batch = quiver_engine::WriteBatch {
            columns: vec![
                ("id".into(), Column::new(ColumnData::Int64(ids.clone()))),
                (
                    "h".into(),
                    Column::new(ColumnData::Vector(VectorColumn {
                        dim: DIM,
                        data: VectorData::F16(ids.iter().flat_map(|&i| half_row(i)).collect()),
                    })),
                ),
                (
                    "b".into(),
                    Column::new(ColumnData::Vector(VectorColumn {
                        dim: 64,
                        data: VectorData::Binary(ids.iter().flat_map(|&i| bin_row(i)).collect()),
                    })),
                ),
            ],
            num_rows: n as usize,
        };
        e.insert("default", "t", None, batch).unwrap();
        // Growing data: exact. Row 77 itself (or a binary twin of it) is the best hit.
        let (h, b) = search_both(&e);
        assert_eq!(h[0], 77);
        assert_eq!(bin_row(b[0]), bin_row(77));
        e.flush("default", "t").unwrap();
        let exact = search_both(&e);
        for (field, metric) in [("h", "L2"), ("b", "HAMMING")] {
            e.create_index(
                "default",
                "t",
                field,
                field,
                index_params(&[("index_type", "HNSW"), ("metric_type", metric)]),
            )
            .unwrap();
            let (_, p) = loop {
                let p = e.index_progress("default", "t", field, "").unwrap();
                if p.1.state != IndexBuildState::InProgress {
                    break p;
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            assert_eq!(p.state, IndexBuildState::Finished, "{field}: {p:?}");
        }
        assert_eq!(e.segments("default", "t").unwrap()[0].index_ids.len(), 2);
        before = search_both(&e);
        // Approximate now: compare with the exact answers (a graph built on two threads may,
        // rarely, miss even the query's own row; the bound is what recall promises).
        let overlap = |a: &[i64], b: &[i64]| a.iter().filter(|x| b.contains(x)).count();
        assert!(overlap(&before.0, &exact.0) >= 8, "{before:?} vs {exact:?}");
        let bin_dist = |i: i64| -> u32 {
            bin_row(i)
                .iter()
                .zip(bin_row(77))
                .map(|(a, b)| (a ^ b).count_ones())
                .sum()
        };
        let got: Vec<u32> = before.1.iter().map(|&i| bin_dist(i)).collect();
        let want: Vec<u32> = exact.1.iter().map(|&i| bin_dist(i)).collect();
        assert!(
            got[0] <= want[1],
            "binary HNSW top hit {got:?} vs exact {want:?}"
        );
        // The stored float16 bits come back as written.
        let got = e
            .get(
                "default",
                "t",
                &[quiver_engine::Pk::Int(5)],
                &["h".to_string(), "b".to_string()],
                &[],
            )
            .unwrap();
        let h = got.fields.iter().find(|c| c.name == "h").unwrap();
        match &h.column.data {
            ColumnData::Vector(VectorColumn {
                data: VectorData::F16(v),
                ..
            }) => assert_eq!(v, &half_row(5)),
            other => panic!("{other:?}"),
        }
    }
    let e = Engine::open(
        dir.path(),
        EngineOptions {
            build_indexes: false,
            ..opts()
        },
    )
    .unwrap();
    assert_eq!(e.segments("default", "t").unwrap()[0].index_ids.len(), 2);
    assert_eq!(search_both(&e), before);
}

#[test]
fn autotune_sweeps_ef_against_exact_search() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path(), opts()).unwrap();
    create(&e, "t", DIM);
    insert_range(&e, "t", 0..N);
    e.flush("default", "t").unwrap();
    // Nothing to tune without an index.
    assert!(matches!(
        e.autotune_search(
            "default",
            "t",
            "vec",
            &quiver_engine::TuneRequest {
                k: K,
                target_recall: 0.9,
                sample: 50,
                budget: Duration::from_secs(30),
                queries: vec![],
            }
        ),
        Err(Error::FailedPrecondition(_))
    ));
    // A small graph, so ef matters.
    e.create_index(
        "default",
        "t",
        "vec",
        "",
        index_params(&[
            ("index_type", "HNSW"),
            ("metric_type", "L2"),
            ("M", "8"),
            ("efConstruction", "40"),
        ]),
    )
    .unwrap();
    wait_built(&e, "t");
    // The exact reference equals brute force.
    let live: Vec<i64> = (0..N).collect();
    let q = query(3);
    let r = e
        .search(
            "default",
            "t",
            &SearchRequest {
                vectors: vec![q.clone()],
                metric: Some("L2".into()),
                limit: K,
                exact: true,
                ..Default::default()
            },
        )
        .unwrap();
    let got: Vec<i64> = r
        .pks
        .iter()
        .map(|p| match p {
            quiver_engine::Pk::Int(i) => *i,
            _ => -1,
        })
        .collect();
    assert_eq!(got, truth(&live, &q, |_| true));

    let rep = e
        .autotune_search(
            "default",
            "t",
            "vec",
            &quiver_engine::TuneRequest {
                k: K,
                target_recall: 0.95,
                sample: 100,
                budget: Duration::from_secs(120),
                queries: vec![],
            },
        )
        .unwrap();
    assert_eq!((rep.index_type.as_str(), rep.queries), ("HNSW", 100));
    assert!(rep.points.len() >= 3, "{rep:?}");
    let first = &rep.points[0];
    let last = rep.points.last().unwrap();
    assert!(
        last.recall >= first.recall && last.recall >= 0.95,
        "{rep:?}"
    );
    let best = &rep.points[rep.recommendation.unwrap()];
    assert!(
        rep.target_reached && best.recall >= 0.95 && best.pareto,
        "{rep:?}"
    );
    // The recommendation is the fastest point that reaches the target.
    assert!(rep
        .points
        .iter()
        .all(|p| p.recall < 0.95 || p.qps <= best.qps));
    assert!(matches!(
        e.autotune_search(
            "default",
            "t",
            "vec",
            &quiver_engine::TuneRequest {
                k: K,
                target_recall: 1.5,
                sample: 10,
                budget: Duration::from_secs(1),
                queries: vec![],
            }
        ),
        Err(Error::InvalidArgument(_))
    ));
    // Queries from live traffic instead of the rows; of the wrong dimension they are refused.
    let traffic = |qs: Vec<Vec<f32>>| quiver_engine::TuneRequest {
        k: K,
        target_recall: 0.95,
        sample: 100,
        budget: Duration::from_secs(60),
        queries: qs,
    };
    let rep = e
        .autotune_search(
            "default",
            "t",
            "vec",
            &traffic((0..30).map(query).collect()),
        )
        .unwrap();
    assert_eq!(rep.queries, 30);
    assert!(rep.points.iter().any(|p| p.recall >= 0.95), "{rep:?}");
    assert!(matches!(
        e.autotune_search("default", "t", "vec", &traffic(vec![vec![0.0; 3]])),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn build_level_autotune_and_staged_index_versions() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path(), opts()).unwrap();
    create(&e, "t", DIM);
    insert_range(&e, "t", 0..N);
    e.flush("default", "t").unwrap();
    e.create_index(
        "default",
        "t",
        "vec",
        "",
        index_params(&[
            ("index_type", "IVF_FLAT"),
            ("metric_type", "L2"),
            ("nlist", "16"),
        ]),
    )
    .unwrap();
    wait_built(&e, "t");
    let calls = std::sync::Mutex::new(Vec::new());
    let rep = e
        .autotune_build(
            "default",
            "t",
            "vec",
            &quiver_engine::BuildTuneRequest {
                k: K,
                target_recall: 0.95,
                objective: quiver_engine::Objective::Qps,
                sample_rows: 3000,
                queries: 100,
                budget: Duration::from_secs(120),
                index_types: vec![],
                metric: None,
                query_vectors: vec![],
            },
            &|done, total, what| {
                calls.lock().unwrap().push((done, total, what.to_string()));
                true
            },
        )
        .unwrap();
    // The metric is the current index's; every index type was built on the sample.
    assert_eq!(rep.metric, "L2");
    assert_eq!((rep.sample_rows, rep.queries), (3000, 100));
    assert_eq!(rep.candidates_built, rep.candidates);
    let types: HashSet<&str> = rep.points.iter().map(|p| p.index_type.as_str()).collect();
    assert_eq!(
        types,
        HashSet::from(["HNSW", "IVF_FLAT", "IVF_SQ8", "IVF_PQ"])
    );
    let calls = calls.into_inner().unwrap();
    assert_eq!(calls.first().map(|c| c.0), Some(0));
    assert_eq!(
        calls.last().map(|c| (c.0, c.1)),
        Some((rep.candidates, rep.candidates))
    );
    // Recall grows with ef / nprobe within a candidate; memory is scaled to the live rows.
    for w in rep.points.windows(2) {
        if w[0].build_params == w[1].build_params {
            assert!(w[1].recall + 1e-9 >= w[0].recall - 0.02, "{w:?}");
        }
    }
    for p in &rep.points {
        assert!(p.index_bytes > 0 && p.build_s > 0.0 && p.qps > 0.0);
        let scale = N as f64 / 3000.0;
        assert!((p.est_index_bytes as f64 - p.index_bytes as f64 * scale).abs() < scale + 1.0);
    }
    let best = &rep.points[rep.recommendation.unwrap()];
    assert!(rep.target_reached && best.recall >= 0.95);
    assert!(rep
        .points
        .iter()
        .filter(|p| p.recall >= 0.95)
        .all(|p| p.qps <= best.qps));
    // The Pareto frontier holds the recommendation, and no frontier point is dominated.
    assert!(best.pareto);
    // IVF_FLAT's lists hold row ids only, IVF_SQ8's a code byte per dimension as well.
    let bytes = |t: &str| {
        rep.points
            .iter()
            .filter(|p| p.index_type == t)
            .map(|p| p.index_bytes)
            .min()
            .unwrap()
    };
    assert!(bytes("IVF_SQ8") > bytes("IVF_FLAT"));
    // Memory objective: the smallest index that reaches the target.
    let mem = e
        .autotune_build(
            "default",
            "t",
            "vec",
            &quiver_engine::BuildTuneRequest {
                k: K,
                target_recall: 0.9,
                objective: quiver_engine::Objective::Memory,
                sample_rows: 2000,
                queries: 50,
                budget: Duration::from_secs(120),
                index_types: vec!["IVF_FLAT".into(), "IVF_SQ8".into()],
                metric: None,
                // Queries from "traffic": vectors that are not rows of the collection.
                query_vectors: (0..40).map(query).collect(),
            },
            &|_, _, _| true,
        )
        .unwrap();
    let m = &mem.points[mem.recommendation.unwrap()];
    assert!(mem
        .points
        .iter()
        .filter(|p| p.recall >= 0.9)
        .all(|p| p.index_bytes >= m.index_bytes));
    assert!(mem.points.iter().all(|p| p.index_type.starts_with("IVF_")));
    assert_eq!(mem.queries, 40);

    // A staged HNSW builds beside the IVF_FLAT index, which keeps serving.
    let (cur, _) = e.index_progress("default", "t", "vec", "").unwrap();
    let hnsw = index_params(&[
        ("index_type", "HNSW"),
        ("metric_type", "L2"),
        ("M", "16"),
        ("efConstruction", "100"),
    ]);
    let staged = e.stage_index("default", "t", "vec", hnsw.clone()).unwrap();
    assert_ne!(staged, cur.id);
    let deadline = Instant::now() + Duration::from_secs(300);
    while e.index_progress_of("default", "t", staged).unwrap().state != IndexBuildState::Finished {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    let (still, _) = e.index_progress("default", "t", "vec", "").unwrap();
    assert_eq!(
        still.id, cur.id,
        "the catalog still names the current index"
    );
    // Each version takes its own search parameter: ef for the staged HNSW, nprobe for the
    // current IVF_FLAT.
    let ef = serde_json::json!({"ef": 64}).as_object().unwrap().clone();
    let recall = e
        .verify_index("default", "t", "vec", staged, &ef, K, 50, &[])
        .unwrap();
    assert!(recall >= 0.95, "{recall}");
    // On given (traffic) queries as well; of the wrong dimension they are refused.
    let traffic: Vec<Vec<f32>> = (0..30).map(query).collect();
    let on_traffic = e
        .verify_index("default", "t", "vec", staged, &ef, K, 50, &traffic)
        .unwrap();
    assert!(on_traffic >= 0.9, "{on_traffic}");
    assert!(e
        .verify_index("default", "t", "vec", staged, &ef, K, 50, &[vec![1.0; 2]])
        .is_err());
    let np = serde_json::json!({"nprobe": 16})
        .as_object()
        .unwrap()
        .clone();
    assert!(
        e.verify_index("default", "t", "vec", cur.id, &np, K, 50, &[])
            .unwrap()
            > 0.99
    );
    assert!(matches!(
        e.verify_index("default", "t", "vec", 999_999, &ef, K, 10, &[]),
        Err(Error::InvalidArgument(_))
    ));
    // Both versions' files exist while staged.
    let files = idx_files(dir.path());
    assert!(files
        .iter()
        .any(|f| f.to_string_lossy().ends_with(&format!(".{staged}.idx"))));
    assert!(files
        .iter()
        .any(|f| f.to_string_lossy().ends_with(&format!(".{}.idx", cur.id))));

    // Promote: the catalog names the staged id, the old files go, searches use HNSW.
    // Only over the index it was staged to replace.
    assert!(matches!(
        e.promote_staged_index("default", "t", staged, Some(cur.id + 1000), hnsw.clone()),
        Err(Error::FailedPrecondition(_))
    ));
    e.promote_staged_index("default", "t", staged, Some(cur.id), hnsw.clone())
        .unwrap();
    let (now, p) = e.index_progress("default", "t", "vec", "").unwrap();
    assert_eq!(
        (now.id, now.params.get("index_type").map(String::as_str)),
        (staged, Some("HNSW"))
    );
    assert_eq!(
        p.state,
        IndexBuildState::Finished,
        "no rebuild after the switch"
    );
    let r = e
        .search(
            "default",
            "t",
            &SearchRequest {
                vectors: vec![query(1)],
                metric: Some("L2".into()),
                limit: K,
                params: ef.clone(),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(r.pks.len(), K);

    // A staged version that is discarded leaves the current one alone.
    let flat = index_params(&[
        ("index_type", "IVF_FLAT"),
        ("metric_type", "L2"),
        ("nlist", "8"),
    ]);
    let other = e.stage_index("default", "t", "vec", flat).unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    while e.index_progress_of("default", "t", other).unwrap().state != IndexBuildState::Finished {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    e.discard_staged_index("default", "t", other).unwrap();
    assert!(e.index_progress_of("default", "t", other).is_err());
    // GC keeps what the previous manifest names: one more commit and the files of the
    // replaced and the discarded versions are gone, the promoted one's stay.
    insert_range(&e, "t", N..N + 10);
    e.flush("default", "t").unwrap();
    let files = idx_files(dir.path());
    let named = |id: u64| {
        files
            .iter()
            .filter(|f| f.to_string_lossy().ends_with(&format!(".{id}.idx")))
            .count()
    };
    assert_eq!((named(cur.id), named(other)), (0, 0), "{files:?}");
    assert!(named(staged) > 0);
    assert_eq!(
        e.index_progress("default", "t", "vec", "").unwrap().0.id,
        staged
    );
    // Bad staged definitions are refused before anything is built.
    assert!(e
        .stage_index(
            "default",
            "t",
            "vec",
            index_params(&[("index_type", "HNSW"), ("M", "1")])
        )
        .is_err());
    assert!(e
        .stage_index("default", "t", "id", BTreeMap::new())
        .is_err());

    // After a restart the promoted version is the field's index.
    drop(e);
    let e = Engine::open(dir.path(), opts()).unwrap();
    let (after, _) = e.index_progress("default", "t", "vec", "").unwrap();
    assert_eq!(after.id, staged);
    assert_eq!(wait_built(&e, "t").state, IndexBuildState::Finished);
}
