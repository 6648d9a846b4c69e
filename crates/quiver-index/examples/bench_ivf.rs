//! IVF_FLAT / IVF_SQ8 / IVF_PQ on wn-gloss: build time, memory, recall@10
//! and QPS (one thread) over an `nprobe` sweep.
//!
//! `cargo run --release -p quiver-index --example bench_ivf -- [--type IVF_SQ8]
//! [--nlist 1024] [--m 48] [--nbits 8] [--refine 4] [--nq 1000] [--threads 2]
//! [--nprobes 8,16,32,64]`

use std::time::Instant;

use quiver_index::{IvfIndex, IvfParams, IvfStorage, Metric};

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

fn read_f16(path: &str) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    bytes
        .chunks_exact(2)
        .map(|b| half::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32())
        .collect()
}

fn main() {
    let dir = arg("--data").unwrap_or_else(|| "/work/shared/datasets/wn-gloss".into());
    let dim = 384;
    let base = read_f16(&format!("{dir}/base.f16"));
    let queries = read_f16(&format!("{dir}/query.f16"));
    let gt: Vec<i32> = std::fs::read(format!("{dir}/gt.i32"))
        .expect("gt.i32")
        .chunks_exact(4)
        .map(|b| i32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let nq_all = queries.len() / dim;
    let gt_k = gt.len() / nq_all;
    let nq = num("--nq", 1000).min(nq_all);
    let storage = match arg("--type").as_deref().unwrap_or("IVF_SQ8") {
        "IVF_FLAT" => IvfStorage::Flat,
        "IVF_PQ" => IvfStorage::Pq {
            m: num("--m", 48),
            nbits: num("--nbits", 8) as u32,
        },
        _ => IvfStorage::Sq8,
    };
    let refine = arg("--refine").map_or(1.0, |v| v.parse().expect("--refine"));
    let params = IvfParams::new(num("--nlist", 1024), storage);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(num("--threads", 2))
        .build()
        .unwrap();
    let t = Instant::now();
    let idx =
        pool.install(|| IvfIndex::build(Metric::Ip, dim, &base, &params, &|_, _| true).unwrap());
    println!(
        "{} nlist {}: build {:.1} s, memory {:.1} MiB",
        idx.index_type(),
        idx.nlist(),
        t.elapsed().as_secs_f64(),
        idx.memory_bytes() as f64 / 1048576.0
    );
    let nprobes: Vec<usize> = arg("--nprobes")
        .unwrap_or_else(|| "8,16,32,64".into())
        .split(',')
        .map(|s| s.parse().expect("nprobe list"))
        .collect();
    for np in nprobes {
        let t = Instant::now();
        let mut hits = 0;
        for (qi, q) in queries.chunks_exact(dim).take(nq).enumerate() {
            let res = idx.search_refine(&base, q, 10, np, refine, None);
            let truth = &gt[qi * gt_k..qi * gt_k + 10];
            hits += res.iter().filter(|r| truth.contains(&(r.1 as i32))).count();
        }
        let s = t.elapsed().as_secs_f64();
        println!(
            "  nprobe {np:>4}: recall@10 {:.4}  QPS {:.0}",
            hits as f64 / (nq * 10) as f64,
            nq as f64 / s
        );
    }
}
