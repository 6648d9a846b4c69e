//! Property test: after any sequence of inserts, upserts, deletes and flushes, search and query
//! equal a brute-force reference over a model of the live rows (ties broken by primary key).

mod common;

use std::collections::{BTreeMap, HashMap};

use common::*;
use proptest::prelude::*;
use quiver_engine::{Engine, EngineOptions, Pk, QueryRequest, SearchRequest};
use quiver_simd::Metric;

#[derive(Debug, Clone)]
enum Step {
    Upsert(Vec<(i64, Vec<i8>)>),
    DeleteRange(i64, i64),
    Flush,
}

const DIM: usize = 3;

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => prop::collection::btree_map(0i64..120, prop::collection::vec(-3i8..=3, DIM), 1..40)
            .prop_map(|m| Step::Upsert(m.into_iter().collect())),
        1 => (0i64..120, 0i64..30).prop_map(|(a, n)| Step::DeleteRange(a, a + n)),
        1 => Just(Step::Flush),
    ]
}

fn to_f32(v: &[i8]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn search_and_query_match_a_model(steps in prop::collection::vec(step(), 1..12),
                                      queries in prop::collection::vec(prop::collection::vec(-3i8..=3, DIM), 1..4),
                                      k in 1usize..15, offset in 0usize..5, metric in 0usize..3, modulus in 2i64..5) {
        let dir = tempfile::tempdir().unwrap();
        let e = Engine::open(dir.path(), EngineOptions { seal_rows: 50, background_flush: false, ..Default::default() }).unwrap();
        create(&e, "c", DIM);
        let mut model: BTreeMap<i64, Vec<f32>> = BTreeMap::new();
        for s in &steps {
            match s {
                Step::Upsert(rows) => {
                    let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
                    let vecs: HashMap<i64, Vec<f32>> = rows.iter().map(|(i, v)| (*i, to_f32(v))).collect();
                    e.upsert("default", "c", None, batch(&ids, DIM, |i| vecs[&i].clone())).unwrap();
                    model.extend(vecs);
                }
                Step::DeleteRange(a, b) => {
                    e.delete("default", "c", None, &format!("id >= {a} and id < {b}"), &HashMap::new()).unwrap();
                    model.retain(|k, _| *k < *a || *k >= *b);
                }
                Step::Flush => e.flush("default", "c").unwrap(),
            }
        }
        let m = [Metric::L2, Metric::Ip, Metric::Cosine][metric];
        let qv: Vec<Vec<f32>> = queries.iter().map(|q| to_f32(q)).collect();
        let filter = format!("n % {modulus} != 0");
        let req = SearchRequest { vectors: qv.clone(), metric: Some(m.as_str().into()), limit: k, offset, filter: filter.clone(), ..Default::default() };
        let res = e.search("default", "c", &req).unwrap();
        let mut pos = 0;
        for (qi, q) in qv.iter().enumerate() {
            let mut want: Vec<(f32, i64)> = model.iter().filter(|(id, _)| (*id % 10) % modulus != 0).map(|(id, v)| (m.distance(q, v), *id)).collect();
            want.sort_by(|a, b| {
                let o = if m.higher_is_better() { b.0.partial_cmp(&a.0).unwrap() } else { a.0.partial_cmp(&b.0).unwrap() };
                o.then(a.1.cmp(&b.1))
            });
            let want: Vec<(f32, i64)> = want.into_iter().skip(offset).take(k).collect();
            prop_assert_eq!(res.topks[qi], want.len(), "query {}", qi);
            for (j, (score, id)) in want.iter().enumerate() {
                prop_assert_eq!(&res.pks[pos + j], &Pk::Int(*id), "query {} rank {}", qi, j);
                prop_assert!((res.scores[pos + j] - score).abs() <= 1e-4, "score {} vs {}", res.scores[pos + j], score);
            }
            pos += want.len();
        }
        // Query agrees with the model too (ordered by key).
        let all = e.query("default", "c", &QueryRequest { filter: filter.clone(), output_fields: vec![], limit: Some(1000), ..Default::default() }).unwrap();
        let want: Vec<i64> = model.keys().copied().filter(|id| (id % 10) % modulus != 0).collect();
        prop_assert_eq!(ints(&all.fields, "id"), want);
        prop_assert_eq!(e.row_count("default", "c", &[]).unwrap(), model.len() as u64);
    }
}
