//! Sparse vectors and BM25 through the engine: writes validated, inner-product search equal to a
//! brute-force reference, BM25 scores equal to a reference computed here from the live rows
//! (sealed and growing, after deletes, after reopening), and the refusals.

use std::collections::{BTreeMap, HashMap};

use quiver_core::schema::FunctionSchema;
use quiver_core::{
    Cell, CollectionSchema, Column, ColumnData, DataType, Error, FieldSchema, SparseColumn,
};
use quiver_engine::text::{term_id, Analyzer};
use quiver_engine::{CreateCollection, Engine, EngineOptions, Pk, SearchRequest, WriteBatch};

const WORDS: &[&str] = &[
    "river", "stone", "bank", "money", "water", "loan", "bridge", "tree", "rate", "fish", "boat",
    "credit", "flow", "rock", "green",
];

fn schema() -> CollectionSchema {
    let text = FieldSchema::new("text", DataType::VarChar)
        .with_param("max_length", 1000)
        .with_param("enable_analyzer", "true");
    CollectionSchema {
        name: "docs".into(),
        description: String::new(),
        fields: vec![
            FieldSchema::new("id", DataType::Int64).primary(false),
            text,
            FieldSchema::new("bm", DataType::SparseFloatVector),
            FieldSchema::new("sp", DataType::SparseFloatVector),
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
    }
}

/// A deterministic text of 3..12 words for row `i`.
fn text_of(i: i64) -> String {
    let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let n = 3 + (x % 10) as usize;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Skewed: low word ids are common.
            let r = (x % 1000) as f64 / 1000.0;
            WORDS[((r * r) * WORDS.len() as f64) as usize]
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A sparse row for `i`: 1..6 indices below 50.
fn sparse_of(i: i64) -> (Vec<u32>, Vec<f32>) {
    let mut m = BTreeMap::new();
    let mut x = (i as u64).wrapping_mul(0xD1B5_4A32_D192_ED03) | 1;
    for _ in 0..1 + (i % 6) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        m.insert((x % 50) as u32, ((x >> 20) % 100) as f32 / 10.0 + 0.1);
    }
    m.into_iter().unzip()
}

fn batch(ids: &[i64]) -> WriteBatch {
    let mut sc = SparseColumn::default();
    for &i in ids {
        let (ix, vs) = sparse_of(i);
        sc.push_row(&ix, &vs);
    }
    WriteBatch {
        columns: vec![
            ("id".into(), Column::new(ColumnData::Int64(ids.to_vec()))),
            (
                "text".into(),
                Column::new(ColumnData::VarChar(
                    ids.iter().map(|&i| text_of(i)).collect(),
                )),
            ),
            ("sp".into(), Column::new(ColumnData::Sparse(sc))),
        ],
        num_rows: ids.len(),
    }
}

fn search(e: &Engine, req: SearchRequest) -> Vec<(i64, f32)> {
    let r = e.search("default", "docs", &req).unwrap();
    r.pks
        .iter()
        .zip(&r.scores)
        .map(|(p, s)| match p {
            Pk::Int(i) => (*i, *s),
            _ => panic!(),
        })
        .collect()
}

/// Reference BM25 (k1 = 1.2, b = 0.75) over `live`, computed from the texts directly.
fn bm25_ref(live: &[i64], query: &str, k: usize) -> Vec<(i64, f32)> {
    let a = Analyzer::standard();
    let docs: Vec<(i64, Vec<String>)> = live.iter().map(|&i| (i, a.tokens(&text_of(i)))).collect();
    let n = docs.len() as f64;
    let avgdl = docs.iter().map(|d| d.1.len()).sum::<usize>() as f64 / n;
    let mut q: HashMap<String, f64> = HashMap::new();
    for t in a.tokens(query) {
        *q.entry(t).or_default() += 1.0;
    }
    let mut out: Vec<(i64, f32)> = Vec::new();
    for (id, toks) in &docs {
        let mut s = 0f64;
        let mut hit = false;
        for (t, qtf) in &q {
            let f = toks.iter().filter(|x| *x == t).count() as f64;
            if f == 0.0 {
                continue;
            }
            hit = true;
            let df = docs.iter().filter(|d| d.1.contains(t)).count() as f64;
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            let dl = toks.len() as f64;
            s += qtf * idf * f * 2.2 / (f + 1.2 * (0.25 + 0.75 * dl / avgdl));
        }
        if hit {
            out.push((*id, s as f32));
        }
    }
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    out.truncate(k);
    out
}

fn ip_ref(live: &[i64], q: &(Vec<u32>, Vec<f32>), k: usize) -> Vec<(i64, f32)> {
    let qm: HashMap<u32, f32> = q.0.iter().copied().zip(q.1.iter().copied()).collect();
    let mut out: Vec<(i64, f32)> = live
        .iter()
        .filter_map(|&i| {
            let (ix, vs) = sparse_of(i);
            let mut s = 0f32;
            let mut hit = false;
            for (t, v) in ix.iter().zip(&vs) {
                if let Some(w) = qm.get(t) {
                    s += w * v;
                    hit = true;
                }
            }
            hit.then_some((i, s))
        })
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    out.truncate(k);
    out
}

fn assert_close(got: &[(i64, f32)], want: &[(i64, f32)], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: {got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g.1 - w.1).abs() <= 1e-4 * w.1.abs().max(1.0),
            "{what}: score {g:?} vs {w:?}"
        );
    }
    // Equal scores may order differently only by key: compare as sets of (id, rounded score).
    let key = |v: &[(i64, f32)]| {
        let mut k: Vec<(i64, i64)> = v
            .iter()
            .map(|x| (x.0, (x.1 * 1e3).round() as i64))
            .collect();
        k.sort();
        k
    };
    assert_eq!(key(got), key(want), "{what}");
}

fn text_search(query: &str, k: usize) -> SearchRequest {
    SearchRequest {
        anns_field: Some("bm".into()),
        texts: vec![query.into()],
        limit: k,
        ..Default::default()
    }
}

#[test]
fn bm25_and_sparse_ip_match_references() {
    let dir = tempfile::tempdir().unwrap();
    let opts = EngineOptions {
        seal_rows: 300,
        background_flush: false,
        ..Default::default()
    };
    let mut live: Vec<i64> = (0..700).collect();
    let queries = [
        "river bank",
        "money loan rate rate",
        "green boat",
        "unknownword",
    ];
    {
        let e = Engine::open(dir.path(), opts.clone()).unwrap();
        e.create_collection("default", CreateCollection::new(schema()))
            .unwrap();
        e.insert("default", "docs", None, batch(&live[..500]))
            .unwrap();
        e.flush("default", "docs").unwrap();
        e.insert("default", "docs", None, batch(&live[500..]))
            .unwrap();

        // The BM25 output holds the text's term counts.
        let g = e
            .get("default", "docs", &[Pk::Int(3)], &["bm".into()], &[])
            .unwrap();
        let bm = g.fields.iter().find(|c| c.name == "bm").unwrap();
        let Cell::Sparse(ix, vs) = bm.column.cell(0) else {
            panic!("not sparse: {:?}", bm.column.cell(0))
        };
        let toks = Analyzer::standard().tokens(&text_of(3));
        assert_eq!(vs.iter().sum::<f32>() as usize, toks.len());
        assert!(ix.contains(&term_id(&toks[0])));

        for q in queries {
            assert_close(&search(&e, text_search(q, 10)), &bm25_ref(&live, q, 10), q);
        }
        for qi in [1i64, 17, 123] {
            let q = sparse_of(qi * 31);
            let got = search(
                &e,
                SearchRequest {
                    anns_field: Some("sp".into()),
                    sparse_vectors: vec![q.clone()],
                    limit: 7,
                    ..Default::default()
                },
            );
            assert_close(&got, &ip_ref(&live, &q, 7), "ip");
        }

        // Deletes leave the statistics at once (sealed and growing rows).
        e.delete(
            "default",
            "docs",
            None,
            "id in [0, 1, 2, 3, 4, 600, 601]",
            &HashMap::new(),
        )
        .unwrap();
        live.retain(|i| ![0, 1, 2, 3, 4, 600, 601].contains(i));
        for q in queries {
            assert_close(&search(&e, text_search(q, 5)), &bm25_ref(&live, q, 5), q);
        }
        // Rows appended to the growing segment after it was searched are found and counted.
        let more: Vec<i64> = (700..760).collect();
        e.insert("default", "docs", None, batch(&more)).unwrap();
        live.extend(&more);
        for q in queries {
            assert_close(&search(&e, text_search(q, 8)), &bm25_ref(&live, q, 8), q);
        }
        // A filter narrows the hits but not the statistics.
        let mut req = text_search("river bank", 5);
        req.filter = "id >= 300".into();
        let want: Vec<(i64, f32)> = bm25_ref(&live, "river bank", 1000)
            .into_iter()
            .filter(|x| x.0 >= 300)
            .take(5)
            .collect();
        assert_close(&search(&e, req), &want, "filtered");

        // Refusals.
        let mut b = batch(&[9000]);
        let mut one = SparseColumn::default();
        one.push_row(&[1], &[1.0]);
        b.columns
            .push(("bm".into(), Column::new(ColumnData::Sparse(one))));
        let err = e.insert("default", "docs", None, b).unwrap_err();
        assert!(err.to_string().contains("output of BM25 function"), "{err}");
        let mut bad = batch(&[9001]);
        bad.columns[2].1 = Column::new(ColumnData::Sparse(SparseColumn {
            offsets: vec![0, 2],
            indices: vec![5, 5],
            values: vec![1.0, 1.0],
        }));
        assert!(e.insert("default", "docs", None, bad).is_err());
        let mut ip_on_bm25 = text_search("river", 3);
        ip_on_bm25.metric = Some("IP".into());
        assert!(e.search("default", "docs", &ip_on_bm25).is_err());
        let text_on_sp = SearchRequest {
            anns_field: Some("sp".into()),
            texts: vec!["river".into()],
            limit: 3,
            ..Default::default()
        };
        assert!(e.search("default", "docs", &text_on_sp).is_err());
        let bm25_on_sp = SearchRequest {
            anns_field: Some("sp".into()),
            sparse_vectors: vec![sparse_of(1)],
            metric: Some("BM25".into()),
            limit: 3,
            ..Default::default()
        };
        assert!(e.search("default", "docs", &bm25_on_sp).is_err());
        let idx = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(e
            .create_index(
                "default",
                "docs",
                "bm",
                "",
                idx(&[("index_type", "HNSW"), ("metric_type", "BM25")])
            )
            .is_err());
        assert!(e
            .create_index(
                "default",
                "docs",
                "bm",
                "",
                idx(&[
                    ("index_type", "SPARSE_INVERTED_INDEX"),
                    ("metric_type", "IP")
                ])
            )
            .is_err());
        assert!(e
            .create_index(
                "default",
                "docs",
                "bm",
                "",
                idx(&[
                    ("index_type", "SPARSE_INVERTED_INDEX"),
                    ("metric_type", "BM25"),
                    ("bm25_k1", "9")
                ])
            )
            .is_err());
        // k1 = 2.0, b = 0 changes the scores: the index's parameters are the ones used.
        e.create_index(
            "default",
            "docs",
            "bm",
            "",
            idx(&[
                ("index_type", "SPARSE_INVERTED_INDEX"),
                ("metric_type", "BM25"),
                ("bm25_k1", "2.0"),
                ("bm25_b", "0"),
            ]),
        )
        .unwrap();
        let tuned = search(&e, text_search("river bank", 3));
        let plain = bm25_ref(&live, "river bank", 3);
        assert!(
            (tuned[0].1 - plain[0].1).abs() > 1e-3,
            "{tuned:?} {plain:?}"
        );
        e.drop_index("default", "docs", "bm", "").unwrap();
    }
    // After reopening (sealed file + WAL replay), the same answers.
    let e = Engine::open(dir.path(), opts).unwrap();
    for q in queries {
        assert_close(&search(&e, text_search(q, 10)), &bm25_ref(&live, q, 10), q);
    }
    e.flush("default", "docs").unwrap();
    for q in queries {
        assert_close(&search(&e, text_search(q, 10)), &bm25_ref(&live, q, 10), q);
    }
}

#[test]
fn bad_bm25_schemas_are_refused() {
    let e = Engine::open(
        tempfile::tempdir().unwrap().keep(),
        EngineOptions::default(),
    )
    .unwrap();
    let mut no_analyzer = schema();
    no_analyzer.fields[1].type_params.remove("enable_analyzer");
    let mut wrong_out = schema();
    wrong_out.functions[0].output_field_names = vec!["text".into()];
    let mut bad_params = schema();
    bad_params.fields[1]
        .type_params
        .insert("analyzer_params".into(), r#"{"type": "martian"}"#.into());
    let mut two_outputs = schema();
    two_outputs.functions.push(two_outputs.functions[0].clone());
    two_outputs.functions[1].name = "again".into();
    for (what, s) in [
        ("no analyzer", no_analyzer),
        ("output not sparse", wrong_out),
        ("bad analyzer", bad_params),
        ("two functions, one output", two_outputs),
    ] {
        let err = e
            .create_collection("default", CreateCollection::new(s))
            .unwrap_err();
        assert!(matches!(err, Error::InvalidSchema(_)), "{what}: {err}");
    }
    // The english analyzer stems: "running" finds "runs".
    let mut english = schema();
    english.fields[1]
        .type_params
        .insert("analyzer_params".into(), r#"{"type": "english"}"#.into());
    e.create_collection("default", CreateCollection::new(english))
        .unwrap();
    let b = WriteBatch {
        columns: vec![
            ("id".into(), Column::new(ColumnData::Int64(vec![1, 2]))),
            (
                "text".into(),
                Column::new(ColumnData::VarChar(vec![
                    "she runs every day".into(),
                    "the cat sleeps".into(),
                ])),
            ),
            (
                "sp".into(),
                Column::new(ColumnData::Sparse(SparseColumn {
                    offsets: vec![0, 0, 0],
                    indices: vec![],
                    values: vec![],
                })),
            ),
        ],
        num_rows: 2,
    };
    e.insert("default", "docs", None, b).unwrap();
    let hits = search(&e, text_search("running", 5));
    assert_eq!(hits.iter().map(|h| h.0).collect::<Vec<_>>(), vec![1]);
    // Stop words match nothing.
    assert!(search(&e, text_search("the", 5)).is_empty());
}
