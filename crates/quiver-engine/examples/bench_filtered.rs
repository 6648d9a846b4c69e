//! Filtered ANN search through the engine's planner on wn-gloss: one collection with an HNSW
//! (or any) index built by the background builder, searched unfiltered and with filters of 50%,
//! 10% and 1% selectivity. Recall@10 is measured against exact search over the rows that pass
//! the filter (quiver-simd, computed here); QPS with one search thread (queries one at a time
//! on a 1-thread pool) and with all threads (queries in parallel, one per call, as concurrent
//! clients send them). Prints a Markdown table and one JSON line per row.
//!
//! cargo run --release -p quiver-engine --example bench_filtered -- ../shared/datasets/wn-gloss
//!     [--queries N] [--index-type HNSW] [--params '{"M":"16","efConstruction":"200"}'] [--ef 64,128]
//!
//! The filter is on a scalar `bucket = id % 100` (`bucket < 50`, `< 10`, `< 1`), independent of
//! the vectors, so selectivity is exact and the planner sees what a user's filter would give it.

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::time::Instant;

use quiver_core::{CollectionSchema, Column, ColumnData, DataType, FieldSchema, VectorColumn};
use quiver_engine::{
    CreateCollection, Engine, EngineOptions, IndexBuildState, Pk, SearchRequest, WriteBatch,
};
use rayon::prelude::*;

fn main() {
    let args = common::Args::parse();
    let data = args.data_dir();
    let flag = |name: &str| args.flag(name);
    let nq: usize = flag("--queries").map_or(1000, |s| s.parse().unwrap());
    let index_type = flag("--index-type").unwrap_or_else(|| "HNSW".into());
    let extra: BTreeMap<String, String> = flag("--params")
        .map(|s| serde_json::from_str(&s).expect("--params: a JSON object of strings"))
        .unwrap_or_default();
    let efs: Vec<usize> = flag("--ef").map_or(vec![0], |s| {
        s.split(',').map(|x| x.parse().unwrap()).collect()
    });
    let dim = 384;
    let k = 10;
    let base = common::read_f16(&data.join("base.f16"));
    let queries = common::read_f16(&data.join("query.f16"));
    let nb = base.len() / dim;
    let nq = (queries.len() / dim).min(nq);
    let tmp = std::env::temp_dir().join(format!("quiver-bench-filtered-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let engine = Engine::open(&tmp, EngineOptions::default()).unwrap();
    let schema = CollectionSchema {
        name: "wn".into(),
        description: String::new(),
        fields: vec![
            FieldSchema::new("id", DataType::Int64).primary(false),
            FieldSchema::new("vec", DataType::FloatVector).with_param("dim", dim),
            FieldSchema::new("bucket", DataType::Int64),
        ],
        enable_dynamic_field: false,
        functions: vec![],
    };
    engine
        .create_collection("default", CreateCollection::new(schema))
        .unwrap();
    for start in (0..nb).step_by(10_000) {
        let end = (start + 10_000).min(nb);
        let ids: Vec<i64> = (start as i64..end as i64).collect();
        let b = WriteBatch {
            columns: vec![
                ("id".into(), Column::new(ColumnData::Int64(ids.clone()))),
                (
                    "vec".into(),
                    Column::new(ColumnData::Vector(VectorColumn::f32(
                        dim,
                        base[start * dim..end * dim].to_vec(),
                    ))),
                ),
                (
                    "bucket".into(),
                    Column::new(ColumnData::Int64(ids.iter().map(|i| i % 100).collect())),
                ),
            ],
            num_rows: end - start,
        };
        engine.insert("default", "wn", None, b).unwrap();
    }
    engine.flush("default", "wn").unwrap();
    let mut params = extra.clone();
    params.insert("metric_type".into(), "IP".into());
    params.insert("index_type".into(), index_type.clone());
    let t = Instant::now();
    engine
        .create_index("default", "wn", "vec", "", params)
        .unwrap();
    loop {
        let (_, p) = engine.index_progress("default", "wn", "", "").unwrap();
        match p.state {
            IndexBuildState::Finished => break,
            IndexBuildState::Failed => panic!("index build failed: {}", p.fail_reason),
            IndexBuildState::InProgress => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    }
    let build_s = t.elapsed().as_secs_f64();
    eprintln!("{index_type} built over {nb} rows in {build_s:.1} s");

    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    println!(
        "| filter | selectivity | ef | recall@10 | QPS 1 thread | QPS {} threads |",
        rayon::current_num_threads()
    );
    println!("|---|---|---|---|---|---|");
    for (filter, cut) in [
        ("", 100i64),
        ("bucket < 50", 50),
        ("bucket < 10", 10),
        ("bucket < 1", 1),
    ] {
        // Exact truth over the rows passing the filter.
        let allowed: Vec<usize> = (0..nb).filter(|i| (*i as i64 % 100) < cut).collect();
        let mut words = vec![0u64; nb.div_ceil(64)];
        for &i in &allowed {
            words[i / 64] |= 1 << (i % 64);
        }
        let truth: Vec<Vec<i64>> = (0..nq)
            .into_par_iter()
            .map(|qi| {
                quiver_simd::search_one(
                    quiver_simd::Metric::Ip,
                    &queries[qi * dim..(qi + 1) * dim],
                    &base,
                    dim,
                    quiver_simd::Filter::Bitmap(&words),
                    k,
                )
                .into_iter()
                .map(|(_, r)| r as i64)
                .collect()
            })
            .collect();
        for &ef in &efs {
            let mut p = serde_json::Map::new();
            if ef > 0 {
                p.insert("ef".into(), ef.into());
            }
            let req = |qi: usize| SearchRequest {
                vectors: vec![queries[qi * dim..(qi + 1) * dim].to_vec()],
                limit: k,
                filter: filter.into(),
                params: p.clone(),
                ..Default::default()
            };
            let run = |qi: usize| -> Vec<i64> {
                engine
                    .search("default", "wn", &req(qi))
                    .unwrap()
                    .pks
                    .iter()
                    .map(|pk| match pk {
                        Pk::Int(i) => *i,
                        _ => unreachable!(),
                    })
                    .collect()
            };
            let t = Instant::now();
            let got: Vec<Vec<i64>> = one.install(|| (0..nq).map(run).collect());
            let qps1 = nq as f64 / t.elapsed().as_secs_f64();
            let t = Instant::now();
            let _: Vec<Vec<i64>> = (0..nq).into_par_iter().map(run).collect();
            let qps_all = nq as f64 / t.elapsed().as_secs_f64();
            let hits: usize = got
                .iter()
                .zip(&truth)
                .map(|(g, t)| t.iter().filter(|x| g.contains(x)).count())
                .sum();
            let recall = hits as f64 / truth.iter().map(|t| t.len()).sum::<usize>() as f64;
            let sel = allowed.len() as f64 / nb as f64;
            let ef_s = if ef == 0 {
                "default".to_string()
            } else {
                ef.to_string()
            };
            println!(
                "| `{}` | {:.0}% | {ef_s} | {recall:.4} | {qps1:.0} | {qps_all:.0} |",
                if filter.is_empty() { "none" } else { filter },
                sel * 100.0
            );
            eprintln!(
                "{{\"filter\":\"{filter}\",\"selectivity\":{sel:.4},\"ef\":{ef},\"recall\":{recall:.4},\"qps_1\":{qps1:.1},\"qps_all\":{qps_all:.1},\"build_s\":{build_s:.1}}}"
            );
        }
    }
    drop(engine);
    let _ = std::fs::remove_dir_all(&tmp);
}
