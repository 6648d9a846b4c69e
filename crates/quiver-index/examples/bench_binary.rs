//! Binary HNSW on synthetic clustered bit vectors: build time, memory, and
//! recall@10 / QPS (one thread) over an `ef` sweep, against exact search.
//!
//! `cargo run --release -p quiver-index --example bench_binary -- [options]`
//!
//! Options: `--n 100000`, `--nq 1000`, `--bits 256` (a multiple of 8),
//! `--metric hamming|jaccard`, `--clusters 1000`, `--flip 0.15` (per-bit
//! flip probability around each centre), `--m 16`, `--efc 200`,
//! `--threads 2` (build), `--efs 16,32,64,128`. Recall is tie-aware: a
//! returned row counts when its score is no worse than the exact 10th
//! (Hamming scores tie a lot). Prints one JSON object per line. Set
//! `QUIVER_SIMD=avx2` to compare the `popcnt` kernels with AVX-512
//! `VPOPCNTDQ`.

use std::time::Instant;

use quiver_index::{BinaryHnswIndex, BinaryMetric, HnswParams};
use quiver_simd::{binary_search_one, Filter};

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

/// CPU time of the calling thread, from /proc/thread-self/schedstat.
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

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn main() {
    let n = num("--n", 100_000);
    let nq = num("--nq", 1000);
    let bits = num("--bits", 256);
    let bytes = bits / 8;
    let clusters = num("--clusters", 1000);
    let flip: f64 = arg("--flip").map_or(0.15, |v| v.parse().expect("--flip"));
    let metric = BinaryMetric::parse(&arg("--metric").unwrap_or_else(|| "hamming".into()))
        .expect("--metric hamming|jaccard");
    let efs: Vec<usize> = arg("--efs")
        .unwrap_or_else(|| "16,32,64,128".into())
        .split(',')
        .map(|s| s.parse().expect("ef list"))
        .collect();
    let params = HnswParams {
        m: num("--m", 16),
        ef_construction: num("--efc", 200),
        ..HnswParams::default()
    };

    let mut r = Rng(7);
    let centres: Vec<u8> = (0..clusters * bytes).map(|_| r.next() as u8).collect();
    let threshold = (flip * (1u64 << 32) as f64) as u64;
    let all: Vec<u8> = (0..n + nq)
        .flat_map(|_| {
            let c = (r.next() % clusters as u64) as usize;
            centres[c * bytes..(c + 1) * bytes]
                .iter()
                .map(|&b| {
                    let mut b = b;
                    for j in 0..8 {
                        if (r.next() >> 32) < threshold {
                            b ^= 1 << j;
                        }
                    }
                    b
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let (data, queries) = all.split_at(n * bytes);

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(num("--threads", 2))
        .build()
        .unwrap();
    let t = Instant::now();
    let idx = pool
        .install(|| BinaryHnswIndex::build(metric, bits, data, &params, &|_, _| true))
        .unwrap();
    println!(
        "{{\"kind\":\"build\",\"n\":{n},\"bits\":{bits},\"metric\":\"{metric}\",\"simd\":\"{}\",\"build_s\":{:.3},\"index_bytes\":{},\"vector_bytes\":{}}}",
        quiver_simd::active_level(),
        t.elapsed().as_secs_f64(),
        idx.memory_bytes(),
        data.len()
    );
    let k = 10;
    let t = thread_cpu_s();
    let truth: Vec<Vec<(f32, u32)>> = queries
        .chunks_exact(bytes)
        .map(|q| binary_search_one(metric, q, data, bytes, Filter::All, k))
        .collect();
    println!(
        "{{\"kind\":\"brute\",\"qps_cpu\":{:.1}}}",
        nq as f64 / (thread_cpu_s() - t)
    );
    for &ef in &efs {
        let t = thread_cpu_s();
        let mut hits = 0usize;
        for (q, tr) in queries.chunks_exact(bytes).zip(&truth) {
            let res = idx.search(data, q, k, ef, None);
            let kth = tr.last().map_or(f32::INFINITY, |x| x.0);
            hits += res.iter().filter(|x| x.0 <= kth).count().min(tr.len());
        }
        let qps = nq as f64 / (thread_cpu_s() - t);
        let total: usize = truth.iter().map(|t| t.len()).sum();
        println!(
            "{{\"kind\":\"search\",\"ef\":{ef},\"recall\":{:.4},\"qps_cpu\":{qps:.1}}}",
            hits as f64 / total as f64
        );
    }
}
