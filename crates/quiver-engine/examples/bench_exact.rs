//! Durable ingest and exact-search benchmark on a real embedding data set (wn-gloss layout:
//! base.f16, query.f16, gt.i32). Prints one JSON object; scripts/bench_exact.py runs it next to
//! faiss-cpu on the same data and thread count.
//!
//! cargo run --release -p quiver-engine --example bench_exact -- ../shared/datasets/wn-gloss [--queries N] [--data-dir DIR]
//! Threads: RAYON_NUM_THREADS (default: all cores).

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use quiver_core::{CollectionSchema, Column, ColumnData, DataType, FieldSchema, VectorColumn};
use quiver_engine::{CreateCollection, Engine, EngineOptions, Pk, SearchRequest, WriteBatch};

fn main() {
    let args = common::Args::parse();
    let data = args.data_dir();
    let flag = |name: &str| args.flag(name);
    let nq_max: usize = flag("--queries").map_or(5000, |s| s.parse().unwrap());
    let dim = 384;
    let base = common::read_f16(&data.join("base.f16"));
    let queries = common::read_f16(&data.join("query.f16"));
    let gt: Vec<i32> = std::fs::read(data.join("gt.i32"))
        .unwrap()
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let nb = base.len() / dim;
    let nq = (queries.len() / dim).min(nq_max);
    let tmp = flag("--data-dir").map(PathBuf::from).unwrap_or_else(|| {
        std::env::temp_dir().join(format!("quiver-bench-{}", std::process::id()))
    });
    let _ = std::fs::remove_dir_all(&tmp);
    let engine = Engine::open(&tmp, EngineOptions::default()).unwrap();
    let schema = CollectionSchema {
        name: "wn".into(),
        description: String::new(),
        fields: vec![
            FieldSchema::new("id", DataType::Int64).primary(false),
            FieldSchema::new("vec", DataType::FloatVector).with_param("dim", dim),
        ],
        enable_dynamic_field: false,
        functions: vec![],
    };
    engine
        .create_collection("default", CreateCollection::new(schema))
        .unwrap();
    let mut params = BTreeMap::new();
    params.insert("metric_type".to_string(), "IP".to_string());
    params.insert("index_type".to_string(), "FLAT".to_string());
    engine
        .create_index("default", "wn", "vec", "", params)
        .unwrap();

    // Durable ingest: batches of 1,000 rows, each acknowledged after fsync.
    let t = Instant::now();
    let mut batch_ms = Vec::new();
    for start in (0..nb).step_by(1000) {
        let end = (start + 1000).min(nb);
        let b = WriteBatch {
            columns: vec![
                (
                    "id".into(),
                    Column::new(ColumnData::Int64((start as i64..end as i64).collect())),
                ),
                (
                    "vec".into(),
                    Column::new(ColumnData::Vector(VectorColumn::f32(
                        dim,
                        base[start * dim..end * dim].to_vec(),
                    ))),
                ),
            ],
            num_rows: end - start,
        };
        let tb = Instant::now();
        engine.insert("default", "wn", None, b).unwrap();
        batch_ms.push(tb.elapsed().as_secs_f64() * 1e3);
    }
    let ingest_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    engine.flush("default", "wn").unwrap();
    let flush_s = t.elapsed().as_secs_f64();
    batch_ms.sort_by(|a, b| a.partial_cmp(b).unwrap());

    // Exact search: all queries in one request (batched), then one query per request.
    let qv: Vec<Vec<f32>> = (0..nq)
        .map(|i| queries[i * dim..(i + 1) * dim].to_vec())
        .collect();
    let req = |v: Vec<Vec<f32>>| SearchRequest {
        vectors: v,
        limit: 10,
        metric: Some("IP".into()),
        ..Default::default()
    };
    let _warm = engine
        .search("default", "wn", &req(qv[..10].to_vec()))
        .unwrap();
    let t = Instant::now();
    let res = engine.search("default", "wn", &req(qv.clone())).unwrap();
    let batch_s = t.elapsed().as_secs_f64();
    let mut hits = 0usize;
    for qi in 0..nq {
        let got: Vec<i64> = res.pks[qi * 10..(qi + 1) * 10]
            .iter()
            .map(|p| match p {
                Pk::Int(i) => *i,
                _ => -1,
            })
            .collect();
        let want = &gt[qi * 100..qi * 100 + 10];
        hits += got.iter().filter(|g| want.contains(&(**g as i32))).count();
    }
    let single_n = nq.min(500);
    let t = Instant::now();
    for q in qv.iter().take(single_n) {
        engine
            .search("default", "wn", &req(vec![q.clone()]))
            .unwrap();
    }
    let single_s = t.elapsed().as_secs_f64();
    let threads = rayon::current_num_threads();
    println!(
        "{{\"engine\":\"quiver\",\"simd\":\"{}\",\"threads\":{threads},\"nb\":{nb},\"nq\":{nq},\"ingest_rows_per_s\":{:.0},\"ingest_batch_p50_ms\":{:.2},\"ingest_batch_p99_ms\":{:.2},\"flush_s\":{:.3},\"batch_qps\":{:.1},\"single_qps\":{:.1},\"recall_at_10\":{:.4}}}",
        quiver_simd::active_level(),
        nb as f64 / ingest_s,
        batch_ms[batch_ms.len() / 2],
        batch_ms[batch_ms.len() * 99 / 100],
        flush_s,
        nq as f64 / batch_s,
        single_n as f64 / single_s,
        hits as f64 / (nq * 10) as f64
    );
    drop(engine);
    let _ = std::fs::remove_dir_all(&tmp);
}
