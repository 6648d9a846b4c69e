//! Milvus parameter parsing and validation.

use std::collections::BTreeMap;

use quiver_index::*;
use serde_json::json;

fn m(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn invalid(r: Result<IndexSpec, IndexError>, name: &str, range: &str) {
    match r {
        Err(IndexError::InvalidParam {
            name: n, allowed, ..
        }) => {
            assert_eq!(n, name);
            assert!(allowed.contains(range), "{allowed}");
        }
        other => panic!("expected invalid {name}, got {other:?}"),
    }
}

#[test]
fn build_params() {
    assert_eq!(
        parse_build_params("FLAT", &m(&[])).unwrap(),
        IndexSpec::Flat
    );
    let IndexSpec::Hnsw(h) = parse_build_params(
        "hnsw",
        &m(&[
            ("M", "30"),
            ("efConstruction", "360"),
            ("metric_type", "L2"),
        ]),
    )
    .unwrap() else {
        panic!()
    };
    assert_eq!(
        (h.m, h.ef_construction, h.traversal),
        (30, 360, Traversal::Sq4)
    );
    let IndexSpec::Hnsw(h) = parse_build_params("HNSW", &m(&[])).unwrap() else {
        panic!()
    };
    assert_eq!(
        (h.m, h.ef_construction),
        (DEFAULT_M, DEFAULT_EF_CONSTRUCTION)
    );
    let IndexSpec::Hnsw(h) = parse_build_params("AUTOINDEX", &m(&[("M", "4")])).unwrap() else {
        panic!()
    };
    assert_eq!(
        (h.m, h.ef_construction),
        (AUTOINDEX_M, AUTOINDEX_EF_CONSTRUCTION)
    );
    let IndexSpec::Hnsw(h) = parse_build_params("HNSW", &m(&[("traversal", "f32")])).unwrap()
    else {
        panic!()
    };
    assert_eq!(h.traversal, Traversal::F32);

    invalid(
        parse_build_params("HNSW", &m(&[("M", "1")])),
        "M",
        "[2, 2048]",
    );
    invalid(
        parse_build_params("HNSW", &m(&[("M", "2049")])),
        "M",
        "[2, 2048]",
    );
    invalid(
        parse_build_params("HNSW", &m(&[("M", "abc")])),
        "M",
        "[2, 2048]",
    );
    invalid(
        parse_build_params("HNSW", &m(&[("M", "-3")])),
        "M",
        "[2, 2048]",
    );
    invalid(
        parse_build_params("HNSW", &m(&[("efConstruction", "0")])),
        "efConstruction",
        "[1, 2147483647]",
    );
    invalid(
        parse_build_params("HNSW", &m(&[("efConstruction", "2147483648")])),
        "efConstruction",
        "[1, 2147483647]",
    );
    invalid(
        parse_build_params("HNSW", &m(&[("traversal", "pq")])),
        "traversal",
        "sq8",
    );

    let spec = parse_build_params("IVF_FLAT", &m(&[("nlist", "1024")])).unwrap();
    assert_eq!(spec, IndexSpec::Ivf(IvfParams::new(1024, IvfStorage::Flat)));
    assert_eq!(spec.index_type(), "IVF_FLAT");
    let spec = parse_build_params("IVF_SQ8", &m(&[])).unwrap();
    assert_eq!(
        spec,
        IndexSpec::Ivf(IvfParams::new(DEFAULT_NLIST, IvfStorage::Sq8))
    );
    invalid(
        parse_build_params("IVF_FLAT", &m(&[("nlist", "0")])),
        "nlist",
        "[1, 65536]",
    );
    invalid(
        parse_build_params("IVF_SQ8", &m(&[("nlist", "65537")])),
        "nlist",
        "[1, 65536]",
    );
    let spec = parse_build_params("IVF_PQ", &m(&[("nlist", "64"), ("m", "8")])).unwrap();
    assert_eq!(
        spec,
        IndexSpec::Ivf(IvfParams::new(64, IvfStorage::Pq { m: 8, nbits: 8 }))
    );
    assert!(spec.check_dim(32).is_ok());
    let e = spec.check_dim(30).unwrap_err();
    assert!(matches!(e, IndexError::InvalidParam { ref name, .. } if name == "m"));
    assert!(e.to_string().contains("divisor of dim 30"), "{e}");
    invalid(
        parse_build_params("IVF_PQ", &m(&[("m", "8"), ("nbits", "0")])),
        "nbits",
        "[1, 16]",
    );
    invalid(
        parse_build_params("IVF_PQ", &m(&[("m", "8"), ("nbits", "17")])),
        "nbits",
        "[1, 16]",
    );
    assert!(
        matches!(parse_build_params("IVF_PQ", &m(&[])), Err(IndexError::MissingParam { ref name, .. }) if name == "m")
    );
    assert!(matches!(
        parse_build_params("DISKANN", &m(&[])),
        Err(IndexError::UnsupportedIndexType(_))
    ));
}

#[test]
fn search_params() {
    let h = parse_build_params("HNSW", &m(&[])).unwrap();
    let p = |v: serde_json::Value| parse_search_params(&h, v.as_object().unwrap());
    assert_eq!(p(json!({})).unwrap(), SearchParams::Hnsw { ef: DEFAULT_EF });
    assert_eq!(
        p(json!({"ef": 200})).unwrap(),
        SearchParams::Hnsw { ef: 200 }
    );
    assert_eq!(
        p(json!({"ef": "300"})).unwrap(),
        SearchParams::Hnsw { ef: 300 }
    );
    assert_eq!(
        p(json!({"level": 2})).unwrap(),
        SearchParams::Hnsw { ef: 2 * DEFAULT_EF }
    );
    for bad in [
        json!({"ef": 0}),
        json!({"ef": 2147483648u64}),
        json!({"ef": 1.5}),
        json!({"ef": [1]}),
        json!({"ef": -1}),
    ] {
        let e = p(bad).unwrap_err();
        assert!(
            matches!(e, IndexError::InvalidParam { ref name, .. } if name == "ef"),
            "{e}"
        );
    }
    let ivf = parse_build_params("IVF_FLAT", &m(&[("nlist", "100")])).unwrap();
    let p = |v: serde_json::Value| parse_search_params(&ivf, v.as_object().unwrap());
    assert_eq!(
        p(json!({})).unwrap(),
        SearchParams::Ivf {
            nprobe: DEFAULT_NPROBE,
            refine_k: 1.0
        }
    );
    assert_eq!(
        p(json!({"nprobe": 100})).unwrap(),
        SearchParams::Ivf {
            nprobe: 100,
            refine_k: 1.0
        }
    );
    let e = p(json!({"nprobe": 101})).unwrap_err();
    assert!(
        e.to_string().contains("nprobe") && e.to_string().contains("[1, 100]"),
        "{e}"
    );
    assert!(p(json!({"nprobe": 0})).is_err());
    assert!(p(json!({"refine_k": 0.5})).is_err());
    assert_eq!(
        parse_search_params(&IndexSpec::Flat, &Default::default()).unwrap(),
        SearchParams::Flat
    );
}

#[test]
fn brute_force_heuristic() {
    assert!(should_brute_force(0, 0, 10));
    assert!(should_brute_force(100, 100_000, 10));
    assert!(should_brute_force(1000, 1_000_000, 10));
    assert!(should_brute_force(5_000, 100_000, 10)); // 5% of 100k
    assert!(!should_brute_force(10_000, 100_000, 10)); // 10% of 100k: the graph wins
    assert!(should_brute_force(10_000, 100_000, 1000)); // ... unless k is large
    assert!(!should_brute_force(50_000, 100_000, 10)); // 50%
    assert!(!should_brute_force(100_000, 100_000, 10));
    assert!(should_brute_force(1500, 5000, 1000)); // k large relative to the rows
}
