//! BM25 full-text benchmark on wn-gloss's texts (texts_base.txt as documents, texts_query.txt as
//! queries): durable ingest through the BM25 function (english analyzer), seal, then top-10
//! searches, batched and one at a time. Writes the analysed tokens of documents and queries and
//! Quiver's top-10 (id, score) pairs (`--out DIR`: tokens_docs.jsonl, tokens_queries.jsonl, quiver_top10.json)
//! so scripts/bench_bm25.py can index the same tokens with bm25s and compare. Prints one JSON
//! object.
//!
//! cargo run --release -p quiver-engine --example bench_bm25 -- ../shared/datasets/wn-gloss --out DIR [--queries N]
//! Threads: RAYON_NUM_THREADS (default: all cores).

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use quiver_core::schema::FunctionSchema;
use quiver_core::{CollectionSchema, Column, ColumnData, DataType, FieldSchema};
use quiver_engine::text::Analyzer;
use quiver_engine::{CreateCollection, Engine, EngineOptions, Pk, SearchRequest, WriteBatch};

const ANALYZER: &str = r#"{"type": "english"}"#;

fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(str::to_string)
        .collect()
}

fn write_tokens(path: &std::path::Path, a: &Analyzer, texts: &[String]) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for t in texts {
        writeln!(f, "{}", serde_json::to_string(&a.tokens(t)).unwrap()).unwrap();
    }
}

fn main() {
    let args = common::Args::parse();
    let data = args.data_dir();
    let nq_max: usize = args.flag("--queries").map_or(5000, |s| s.parse().unwrap());
    let out = PathBuf::from(args.flag("--out").expect("--out DIR"));
    std::fs::create_dir_all(&out).unwrap();
    let docs = lines(&data.join("texts_base.txt"));
    let mut queries = lines(&data.join("texts_query.txt"));
    queries.truncate(nq_max);
    let (nb, nq) = (docs.len(), queries.len());

    let analyzer = Analyzer::from_params(&serde_json::from_str(ANALYZER).unwrap()).unwrap();
    write_tokens(&out.join("tokens_docs.jsonl"), &analyzer, &docs);
    write_tokens(&out.join("tokens_queries.jsonl"), &analyzer, &queries);

    let tmp = std::env::temp_dir().join(format!("quiver-bench-bm25-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let engine = Engine::open(&tmp, EngineOptions::default()).unwrap();
    let schema = CollectionSchema {
        name: "wn".into(),
        description: String::new(),
        fields: vec![
            FieldSchema::new("id", DataType::Int64).primary(false),
            FieldSchema::new("text", DataType::VarChar)
                .with_param("max_length", 65535)
                .with_param("enable_analyzer", "true")
                .with_param("analyzer_params", ANALYZER),
            FieldSchema::new("bm", DataType::SparseFloatVector),
        ],
        enable_dynamic_field: false,
        functions: vec![FunctionSchema {
            name: "bm25".into(),
            description: String::new(),
            function_type: 1,
            input_field_names: vec!["text".into()],
            output_field_names: vec!["bm".into()],
            params: BTreeMap::new(),
        }],
    };
    engine
        .create_collection("default", CreateCollection::new(schema))
        .unwrap();

    // Durable ingest: batches of 1,000 texts, each analysed and acknowledged after fsync.
    let t = Instant::now();
    for start in (0..nb).step_by(1000) {
        let end = (start + 1000).min(nb);
        let b = WriteBatch {
            columns: vec![
                (
                    "id".into(),
                    Column::new(ColumnData::Int64((start as i64..end as i64).collect())),
                ),
                (
                    "text".into(),
                    Column::new(ColumnData::VarChar(docs[start..end].to_vec())),
                ),
            ],
            num_rows: end - start,
        };
        engine.insert("default", "wn", None, b).unwrap();
    }
    let ingest_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    engine.flush("default", "wn").unwrap();
    let flush_s = t.elapsed().as_secs_f64();

    let req = |texts: Vec<String>| SearchRequest {
        anns_field: Some("bm".into()),
        texts,
        limit: 10,
        ..Default::default()
    };
    // The first search builds the sealed segment's inverted index.
    let t = Instant::now();
    engine
        .search("default", "wn", &req(vec![queries[0].clone()]))
        .unwrap();
    let first_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let res = engine
        .search("default", "wn", &req(queries.clone()))
        .unwrap();
    let batch_s = t.elapsed().as_secs_f64();
    let mut top: Vec<Vec<(i64, f32)>> = Vec::with_capacity(nq);
    let mut at = 0;
    for &k in &res.topks {
        top.push(
            res.pks[at..at + k]
                .iter()
                .zip(&res.scores[at..at + k])
                .map(|(p, s)| match p {
                    Pk::Int(i) => (*i, *s),
                    _ => (-1, *s),
                })
                .collect(),
        );
        at += k;
    }
    std::fs::write(
        out.join("quiver_top10.json"),
        serde_json::to_string(&top).unwrap(),
    )
    .unwrap();
    let single_n = nq.min(1000);
    let t = Instant::now();
    for q in queries.iter().take(single_n) {
        engine
            .search("default", "wn", &req(vec![q.clone()]))
            .unwrap();
    }
    let single_s = t.elapsed().as_secs_f64();
    println!(
        "{{\"engine\":\"quiver\",\"threads\":{},\"nb\":{nb},\"nq\":{nq},\"ingest_rows_per_s\":{:.0},\"flush_s\":{:.3},\"first_search_s\":{:.3},\"batch_qps\":{:.1},\"single_qps\":{:.1}}}",
        rayon::current_num_threads(),
        nb as f64 / ingest_s,
        flush_s,
        first_s,
        nq as f64 / batch_s,
        single_n as f64 / single_s,
    );
    drop(engine);
    let _ = std::fs::remove_dir_all(&tmp);
}
