//! HNSW on wn-gloss (107,033 x 384, IP, unit vectors): build time, memory,
//! and recall@10 / QPS (one thread) over an `ef` sweep.
//!
//! `cargo run --release -p quiver-index --example bench_ann -- [options]`
//!
//! Options: `--data DIR` (default /work/shared/datasets/wn-gloss), `--m 16`,
//! `--efc 200`, `--threads 2` (build), `--efs 10,16,...`, `--nq 5000`,
//! `--traversal sq8|f32`, `--reps 1` (search passes per ef; the best is
//! kept), `--filter SEL` (instead of the sweep: filtered search over a
//! random `SEL` fraction of rows vs brute force), `--index PATH` (load the index from PATH if it exists, else build
//! it and save it there: for iterating on search), `--mt-efs 32,96` (after the sweep: wall-clock QPS with
//! all `--threads` searching, queries spread over them, at these ef). Prints one JSON object per line
//! (`"kind": "build"`, `"kind": "search"` per ef, `"kind": "search_mt"` per --mt-efs ef), which
//! `scripts/bench_ann.py` reads.

use std::time::Instant;

use quiver_index::{HnswIndex, HnswParams, Metric, Traversal};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn num(name: &str, default: usize) -> usize {
    arg(name).map_or(default, |v| v.parse().expect("numeric option"))
}

/// CPU time of the calling thread (ns), from /proc/thread-self/schedstat:
/// robust to the machine being shared (time descheduled is not counted).
fn thread_cpu_s() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or(0.0, |ns| ns as f64 * 1e-9)
}

/// CPU time (user + system) of the whole process, from /proc/self/stat.
fn process_cpu_s() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = s.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// Filtered search at selectivity `sel` (random rows): graph recall / QPS
/// per ef against brute force over the allowed rows, and the brute-force
/// QPS (what `should_brute_force` weighs).
fn filtered(
    idx: &HnswIndex,
    base: &[f32],
    queries: &[f32],
    dim: usize,
    k: usize,
    sel: f64,
    efs: &[usize],
) {
    let n = base.len() / dim;
    let mut state = 0x1234_5678_9abc_def0u64;
    let mut allow = vec![0u64; n.div_ceil(64)];
    for i in 0..n {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        if ((state >> 11) as f64 / (1u64 << 53) as f64) < sel {
            allow[i / 64] |= 1 << (i % 64);
        }
    }
    let n_allowed: usize = allow.iter().map(|w| w.count_ones() as usize).sum();
    let nq = (queries.len() / dim).min(1000);
    let t = thread_cpu_s();
    let truth: Vec<Vec<(f32, u32)>> = queries
        .chunks_exact(dim)
        .take(nq)
        .map(|q| {
            quiver_simd::search_one(
                Metric::Ip,
                q,
                base,
                dim,
                quiver_simd::Filter::Bitmap(&allow),
                k,
            )
        })
        .collect();
    let brute_qps = nq as f64 / (thread_cpu_s() - t);
    println!(
        "{{\"kind\":\"filter\",\"selectivity\":{sel},\"allowed\":{n_allowed},\"brute_qps_cpu\":{brute_qps:.1},\
         \"should_brute_force\":{}}}",
        quiver_index::should_brute_force(n_allowed, n, k)
    );
    for &ef in efs {
        let t = thread_cpu_s();
        let mut hits = 0;
        for (q, tr) in queries.chunks_exact(dim).zip(&truth) {
            let res = idx.search(base, q, k, ef, Some(&allow));
            hits += res.iter().filter(|r| tr.iter().any(|x| x.1 == r.1)).count();
        }
        let qps = nq as f64 / (thread_cpu_s() - t);
        let total: usize = truth.iter().map(|t| t.len()).sum();
        println!(
            "{{\"kind\":\"filtered_search\",\"selectivity\":{sel},\"ef\":{ef},\"recall\":{:.4},\"qps_cpu\":{qps:.1}}}",
            hits as f64 / total as f64
        );
    }
}

fn read_f16(path: &str, dim: usize) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(bytes.len() % (2 * dim), 0);
    bytes
        .chunks_exact(2)
        .map(|b| half::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32())
        .collect()
}

fn main() {
    let dir = arg("--data").unwrap_or_else(|| "/work/shared/datasets/wn-gloss".into());
    let dim = 384;
    let m = num("--m", 16);
    let efc = num("--efc", 200);
    let threads = num("--threads", 2);
    let reps = num("--reps", 1);
    let traversal = match arg("--traversal").as_deref() {
        Some("f32") => Traversal::F32,
        Some("sq4") => Traversal::Sq4,
        Some("sq8") => Traversal::Sq8,
        _ => Traversal::Sq4,
    };
    let efs: Vec<usize> = arg("--efs")
        .unwrap_or_else(|| "10,16,24,32,48,64,96,128,192,256".into())
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().expect("ef list"))
        .collect();
    let base = read_f16(&format!("{dir}/base.f16"), dim);
    let mut queries = read_f16(&format!("{dir}/query.f16"), dim);
    let gt_raw = std::fs::read(format!("{dir}/gt.i32")).expect("gt.i32");
    let gt: Vec<i32> = gt_raw
        .chunks_exact(4)
        .map(|b| i32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let n = base.len() / dim;
    let nq_all = queries.len() / dim;
    let nq = num("--nq", nq_all).min(nq_all);
    queries.truncate(nq * dim);
    let gt_k = gt.len() / nq_all;

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let params = HnswParams {
        m,
        ef_construction: efc,
        traversal,
        ..HnswParams::default()
    };
    let (t, c) = (Instant::now(), process_cpu_s());
    let cached = arg("--index").and_then(|p| std::fs::read(p).ok());
    let idx = match &cached {
        Some(b) => HnswIndex::from_bytes(b).expect("--index file"),
        None => pool
            .install(|| HnswIndex::build(Metric::Ip, dim, &base, &params, &|_, _| true).unwrap()),
    };
    let build_s = t.elapsed().as_secs_f64();
    let build_cpu_s = process_cpu_s() - c;
    let t = Instant::now();
    let bytes = idx.to_bytes();
    let save_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let loaded = HnswIndex::from_bytes(&bytes).unwrap();
    let load_s = t.elapsed().as_secs_f64();
    drop(loaded);
    if let (Some(p), None) = (arg("--index"), &cached) {
        std::fs::write(p, &bytes).expect("write --index");
    }
    println!(
        "{{\"kind\":\"build\",\"lib\":\"quiver\",\"n\":{n},\"dim\":{dim},\"m\":{m},\"efc\":{efc},\"threads\":{threads},\
         \"traversal\":\"{traversal:?}\",\"build_s\":{build_s:.3},\"build_cpu_s\":{build_cpu_s:.3},\"index_bytes\":{},\"vector_bytes\":{},\
         \"file_bytes\":{},\"save_s\":{save_s:.3},\"load_s\":{load_s:.3},\"max_level\":{}}}",
        idx.memory_bytes(),
        base.len() * 4,
        bytes.len(),
        idx.max_level()
    );
    let k = 10;
    if let Some(sel) = arg("--filter").map(|v| v.parse::<f64>().expect("--filter selectivity")) {
        filtered(&idx, &base, &queries, dim, k, sel, &efs);
        return;
    }
    for &ef in &efs {
        let (mut best, mut best_cpu) = (f64::INFINITY, f64::INFINITY);
        let mut hits = 0usize;
        for _ in 0..reps {
            hits = 0;
            let (t, c) = (Instant::now(), thread_cpu_s());
            for (qi, q) in queries.chunks_exact(dim).enumerate() {
                let res = idx.search(&base, q, k, ef, None);
                let truth = &gt[qi * gt_k..qi * gt_k + k];
                hits += res.iter().filter(|r| truth.contains(&(r.1 as i32))).count();
            }
            best = best.min(t.elapsed().as_secs_f64());
            best_cpu = best_cpu.min(thread_cpu_s() - c);
        }
        let recall = hits as f64 / (nq * k) as f64;
        println!(
            "{{\"kind\":\"search\",\"lib\":\"quiver\",\"ef\":{ef},\"recall\":{recall:.4},\"qps\":{:.1},\"qps_cpu\":{:.1}}}",
            nq as f64 / best,
            nq as f64 / best_cpu
        );
    }
    let mt_efs: Vec<usize> = arg("--mt-efs")
        .map(|s| s.split(',').map(|x| x.parse().expect("--mt-efs")).collect())
        .unwrap_or_default();
    for ef in mt_efs {
        use rayon::prelude::*;
        let mut best = f64::INFINITY;
        let mut hits = 0usize;
        for _ in 0..reps {
            let t = Instant::now();
            hits = pool.install(|| {
                queries
                    .par_chunks_exact(dim)
                    .enumerate()
                    .map(|(qi, q)| {
                        let res = idx.search(&base, q, k, ef, None);
                        let truth = &gt[qi * gt_k..qi * gt_k + k];
                        res.iter().filter(|r| truth.contains(&(r.1 as i32))).count()
                    })
                    .sum()
            });
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!(
            "{{\"kind\":\"search_mt\",\"lib\":\"quiver\",\"threads\":{threads},\"ef\":{ef},\"recall\":{:.4},\"qps\":{:.1}}}",
            hits as f64 / (nq * k) as f64,
            nq as f64 / best
        );
    }
}
