//! IVF_FLAT / IVF_SQ8 / IVF_PQ: recall vs brute force, filters, persistence.

mod common;

use common::*;
use quiver_index::{
    AnnIndex, IndexError, IndexSpec, IvfIndex, IvfParams, IvfStorage, Metric, SearchParams,
};

const N: usize = 5000;
const NQ: usize = 100;
const DIM: usize = 32;
const K: usize = 10;

fn build(metric: Metric, data: &[f32], nlist: usize, storage: IvfStorage) -> IvfIndex {
    IvfIndex::build(
        metric,
        DIM,
        data,
        &IvfParams::new(nlist, storage),
        &|_, _| true,
    )
    .unwrap()
}

fn mean_recall(
    idx: &IvfIndex,
    metric: Metric,
    data: &[f32],
    qs: &[f32],
    nprobe: usize,
    refine: f32,
    allow: Option<&[u64]>,
) -> f64 {
    let mut sum = 0.0;
    for q in qs.chunks_exact(DIM) {
        let got = idx.search_refine(data, q, K, nprobe, refine, allow);
        let truth = brute(metric, data, DIM, q, K, allow);
        check_sorted_exact(metric, data, DIM, q, &got);
        if let Some(w) = allow {
            assert!(got.iter().all(|g| is_set(w, g.1)));
        }
        sum += recall(&got, &truth);
    }
    sum / (qs.len() / DIM) as f64
}

#[test]
fn ivf_flat_recall() {
    let (data, qs) = dataset(N, NQ, DIM, 21);
    for metric in [Metric::L2, Metric::Ip, Metric::Cosine] {
        let idx = build(metric, &data, 64, IvfStorage::Flat);
        let r = mean_recall(&idx, metric, &data, &qs, 16, 1.0, None);
        eprintln!("IVF_FLAT {metric}: {r:.4}");
        assert!(r >= 0.95, "IVF_FLAT {metric}: {r}");
        // Probing every list is exact.
        let r = mean_recall(&idx, metric, &data, &qs, 64, 1.0, None);
        assert!(r >= 0.999, "IVF_FLAT {metric} all lists: {r}");
    }
}

#[test]
fn ivf_sq8_recall() {
    let (data, qs) = dataset(N, NQ, DIM, 22);
    for metric in [Metric::L2, Metric::Ip, Metric::Cosine] {
        let idx = build(metric, &data, 64, IvfStorage::Sq8);
        let r = mean_recall(&idx, metric, &data, &qs, 16, 1.0, None);
        eprintln!("IVF_SQ8 {metric}: {r:.4}");
        assert!(r >= 0.9, "IVF_SQ8 {metric}: {r}");
    }
}

#[test]
fn ivf_pq_recall_with_refine() {
    let (data, qs) = dataset(N, NQ, DIM, 23);
    for metric in [Metric::L2, Metric::Ip, Metric::Cosine] {
        let idx = build(metric, &data, 32, IvfStorage::Pq { m: 8, nbits: 8 });
        let plain = mean_recall(&idx, metric, &data, &qs, 8, 1.0, None);
        let r = mean_recall(&idx, metric, &data, &qs, 8, 5.0, None);
        eprintln!("IVF_PQ {metric}: {plain:.4} -> refine 5: {r:.4}");
        assert!(r >= 0.9, "IVF_PQ {metric}: {r}");
        assert!(r >= plain);
    }
    // nbits > 8 (two-byte codes) and a small nbits.
    let idx = build(Metric::L2, &data, 8, IvfStorage::Pq { m: 4, nbits: 10 });
    assert!(mean_recall(&idx, Metric::L2, &data, &qs[..10 * DIM], 4, 10.0, None) >= 0.8);
    let idx = build(Metric::L2, &data, 8, IvfStorage::Pq { m: 16, nbits: 4 });
    assert!(mean_recall(&idx, Metric::L2, &data, &qs[..10 * DIM], 4, 10.0, None) >= 0.8);
}

#[test]
fn filtered_and_deleted_rows() {
    let (data, qs) = dataset(N, 30, DIM, 24);
    for storage in [
        IvfStorage::Flat,
        IvfStorage::Sq8,
        IvfStorage::Pq { m: 8, nbits: 8 },
    ] {
        let idx = build(Metric::L2, &data, 32, storage);
        for sel in [0.01, 0.1, 0.5] {
            let allow = bitmap(N, sel, 99);
            let r = mean_recall(&idx, Metric::L2, &data, &qs, 32, 10.0, Some(&allow));
            assert!(r >= 0.9, "{storage:?} sel {sel}: {r}");
        }
        assert!(idx.search(&data, &qs[..DIM], K, 32, Some(&[])).is_empty());
    }
}

#[test]
fn round_trip_and_corruption() {
    let (data, qs) = dataset(1500, 10, DIM, 25);
    for (metric, storage) in [
        (Metric::L2, IvfStorage::Flat),
        (Metric::Cosine, IvfStorage::Sq8),
        (Metric::L2, IvfStorage::Sq8),
        (Metric::Ip, IvfStorage::Pq { m: 8, nbits: 8 }),
        (Metric::L2, IvfStorage::Pq { m: 4, nbits: 9 }),
    ] {
        let idx = build(metric, &data, 16, storage);
        let bytes = idx.to_bytes();
        let back = IvfIndex::from_bytes(&bytes).unwrap();
        assert_eq!(back.to_bytes(), bytes);
        for q in qs.chunks_exact(DIM) {
            assert_eq!(
                idx.search_refine(&data, q, K, 4, 3.0, None),
                back.search_refine(&data, q, K, 4, 3.0, None)
            );
        }
        for cut in (0..bytes.len()).step_by(bytes.len() / 61 + 1) {
            assert!(IvfIndex::from_bytes(&bytes[..cut]).is_err(), "cut {cut}");
        }
        for pos in (0..bytes.len()).step_by(bytes.len() / 53 + 1) {
            let mut b = bytes.clone();
            b[pos] = b[pos].wrapping_add(1);
            assert!(IvfIndex::from_bytes(&b).is_err(), "flip at {pos}");
        }
        // An HNSW loader refuses an IVF file and vice versa.
        assert!(matches!(
            quiver_index::HnswIndex::from_bytes(&bytes),
            Err(IndexError::Corrupt(_))
        ));
        assert!(matches!(AnnIndex::from_bytes(&bytes), Ok(AnnIndex::Ivf(_))));
    }
}

#[test]
fn edge_cases_and_validation() {
    let e = build(Metric::L2, &[], 4, IvfStorage::Sq8);
    assert!(e.search(&[], &[0.0; DIM], 3, 2, None).is_empty());
    IvfIndex::from_bytes(&e.to_bytes()).unwrap();
    // Fewer rows than lists.
    let (data, _) = dataset(5, 1, DIM, 26);
    let idx = build(Metric::Ip, &data, 16, IvfStorage::Flat);
    let got = idx.search(&data, &data[..DIM], 10, 16, None);
    assert_eq!(got.len(), 5);
    assert_eq!(
        idx.search_refine(&data, &data[..DIM], usize::MAX, usize::MAX, 100.0, None)
            .len(),
        5
    );
    assert_eq!(got, brute(Metric::Ip, &data, DIM, &data[..DIM], 10, None));
    // Bad parameters.
    let bad = |p: IvfParams| IvfIndex::build(Metric::L2, DIM, &data, &p, &|_, _| true).unwrap_err();
    let e = bad(IvfParams::new(0, IvfStorage::Flat));
    assert!(
        matches!(e, IndexError::InvalidParam { ref name, .. } if name == "nlist"),
        "{e}"
    );
    let e = bad(IvfParams::new(4, IvfStorage::Pq { m: 5, nbits: 8 }));
    assert!(e.to_string().contains("divisor of dim 32"), "{e}");
    let e = bad(IvfParams::new(4, IvfStorage::Pq { m: 4, nbits: 17 }));
    assert!(matches!(e, IndexError::InvalidParam { ref name, .. } if name == "nbits"));
}

#[test]
fn ann_index_dispatch() {
    let (data, qs) = dataset(1000, 5, DIM, 27);
    let mut bp = std::collections::BTreeMap::new();
    bp.insert("nlist".to_string(), "16".to_string());
    let spec = quiver_index::parse_build_params("IVF_SQ8", &bp).unwrap();
    let idx = AnnIndex::build(&spec, Metric::L2, DIM, &data, &|_, _| true)
        .unwrap()
        .unwrap();
    let sp = serde_json::json!({"nprobe": 16, "refine_k": 2});
    let sp = quiver_index::parse_search_params(&spec, sp.as_object().unwrap()).unwrap();
    assert_eq!(
        sp,
        SearchParams::Ivf {
            nprobe: 16,
            refine_k: 2.0
        }
    );
    let got = idx.search(&data, &qs[..DIM], K, &sp, None);
    assert!(recall(&got, &brute(Metric::L2, &data, DIM, &qs[..DIM], K, None)) >= 0.8);
    let back = AnnIndex::from_bytes(&idx.to_bytes()).unwrap();
    assert_eq!(back.search(&data, &qs[..DIM], K, &sp, None), got);
    assert!(
        AnnIndex::build(&IndexSpec::Flat, Metric::L2, DIM, &data, &|_, _| true)
            .unwrap()
            .is_none()
    );
    let hspec = quiver_index::parse_build_params("AUTOINDEX", &Default::default()).unwrap();
    let h = AnnIndex::build(&hspec, Metric::Cosine, DIM, &data, &|_, _| true)
        .unwrap()
        .unwrap();
    let got = h.search(&data, &qs[..DIM], K, &SearchParams::Hnsw { ef: 64 }, None);
    assert!(
        recall(
            &got,
            &brute(Metric::Cosine, &data, DIM, &qs[..DIM], K, None)
        ) >= 0.9
    );
}
