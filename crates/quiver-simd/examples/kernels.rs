//! Micro-benchmarks: `cargo run --release -p quiver-simd --example kernels`
//!
//! Options: `--nb N --nq N --dim D --k K --threads T --ip-only --skip-kernels
//! --skip-one --skip-mm`.
//! Prints ns per call of the distance kernels at every level this CPU runs,
//! then QPS of `search_batch` vs `search_one` (one query per rayon task) on
//! random data, and the `matrixmultiply` sgemm + top-k alternative.

use std::hint::black_box;
use std::time::Instant;

use quiver_simd::{search_batch, search_one, Filter, Kernels, Level, Metric, TopK};
use rayon::prelude::*;

struct Rng(u64);
impl Rng {
    fn f32(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.f32()).collect()
    }
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect("numeric option"))
}

fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

/// Best-of-`reps` nanoseconds per call of `f` over `iters` calls.
fn ns_per_call(reps: usize, iters: usize, mut f: impl FnMut() -> f32) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..reps {
        let t = Instant::now();
        let mut acc = 0.0f32;
        for _ in 0..iters {
            acc += f();
        }
        black_box(acc);
        best = best.min(t.elapsed().as_nanos() as f64 / iters as f64);
    }
    best
}

fn kernels_table() {
    let dim = 384;
    let mut rng = Rng(42);
    // 8 pairs (24 KiB), cycled: the data stays in L1 and calls are independent.
    let a: Vec<Vec<f32>> = (0..8).map(|_| rng.vec(dim)).collect();
    let b: Vec<Vec<f32>> = (0..8).map(|_| rng.vec(dim)).collect();
    println!(
        "== kernels, dim {dim} (ns per call, data in L1; active level: {})",
        quiver_simd::active_level()
    );
    println!(
        "{:>8} {:>8} {:>8} {:>8} {:>8}",
        "level", "dot", "l2_sq", "cosine", "norm_sq"
    );
    for level in Level::ALL {
        let Some(k) = Kernels::for_level(level) else {
            continue;
        };
        let mut i = 0usize;
        let mut pick = || {
            i = (i + 1) & 7;
            (black_box(&a[i][..]), black_box(&b[i][..]))
        };
        let dot = ns_per_call(40, 20_000, || {
            let (x, y) = pick();
            k.dot(x, y)
        });
        let l2 = ns_per_call(40, 20_000, || {
            let (x, y) = pick();
            k.l2_sq(x, y)
        });
        let cos = ns_per_call(40, 20_000, || {
            let (x, y) = pick();
            k.cosine(x, y)
        });
        let nrm = ns_per_call(40, 20_000, || {
            let (x, _) = pick();
            k.norm_sq(x)
        });
        println!(
            "{:>8} {dot:>8.1} {l2:>8.1} {cos:>8.1} {nrm:>8.1}",
            level.name()
        );
    }
    let mut i = 0usize;
    let naive = ns_per_call(40, 20_000, || {
        i = (i + 1) & 7;
        let (x, y) = (black_box(&a[i]), black_box(&b[i]));
        x.iter().zip(y.iter()).map(|(p, q)| p * q).sum::<f32>()
    });
    println!(
        "{:>8} {naive:>8.1}   (naive zip/map/sum dot, inline)",
        "naive"
    );
}

fn time<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let t = Instant::now();
    let r = f();
    (r, t.elapsed().as_secs_f64())
}

/// CPU seconds (user + system, all threads) used by this process so far,
/// from /proc (Linux; 0 elsewhere). On a shared machine `cpu / threads` is
/// the run time without time-slicing by other processes.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime, stime are 14, 15.
    let rest = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// Runs `f` `reps` times; returns the last result, the best wall time, and
/// the smallest CPU time of a run.
fn bench<T>(reps: usize, mut f: impl FnMut() -> T) -> (T, f64, f64) {
    let (mut wall, mut cpu) = (f64::MAX, f64::MAX);
    let mut last = None;
    for _ in 0..reps {
        let c0 = cpu_seconds();
        let (r, s) = time(&mut f);
        cpu = cpu.min(cpu_seconds() - c0);
        wall = wall.min(s);
        last = Some(r);
    }
    (last.unwrap(), wall, cpu)
}

/// The alternative to the fused kernel: `matrixmultiply::sgemm` of a query
/// block against a base block into a scratch matrix, then a top-k scan
/// (what faiss does with BLAS). IP only.
fn sgemm_topk(
    queries: &[f32],
    base: &[f32],
    nb: usize,
    dim: usize,
    k: usize,
) -> Vec<Vec<(f32, u32)>> {
    const QB: usize = 256;
    const BB: usize = 4096;
    queries
        .par_chunks(QB * dim)
        .flat_map_iter(|qs| {
            let m = qs.len() / dim;
            let mut tops: Vec<TopK<u32>> =
                (0..m).map(|_| TopK::with_capacity(k, true, k)).collect();
            let mut c = vec![0.0f32; m * BB];
            for b0 in (0..nb).step_by(BB) {
                let n = BB.min(nb - b0);
                // SAFETY: a = qs (m x dim, row-major), b = base block transposed
                // via strides (dim x n), c = m x n row-major; all in bounds.
                unsafe {
                    matrixmultiply::sgemm(
                        m,
                        dim,
                        n,
                        1.0,
                        qs.as_ptr(),
                        dim as isize,
                        1,
                        base[b0 * dim..].as_ptr(),
                        1,
                        dim as isize,
                        0.0,
                        c.as_mut_ptr(),
                        n as isize,
                        1,
                    );
                }
                for (qi, t) in tops.iter_mut().enumerate() {
                    for (j, &s) in c[qi * n..(qi + 1) * n].iter().enumerate() {
                        if t.worst().is_none_or(|w| s > w.0) {
                            t.push(s, (b0 + j) as u32);
                        }
                    }
                }
            }
            tops.into_iter().map(|t| t.into_sorted_vec())
        })
        .collect()
}

fn main() {
    let nb = arg("--nb", 100_000);
    let nq = arg("--nq", 1000);
    let dim = arg("--dim", 384);
    let k = arg("--k", 10);
    let threads = arg("--threads", 0);
    if threads > 0 {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()
            .unwrap();
    }
    if !flag("--skip-kernels") {
        kernels_table();
    }

    let mut rng = Rng(7);
    let base = rng.vec(nb * dim);
    let queries = rng.vec(nq * dim);
    let (norms, tn) = time(|| quiver_simd::row_norms_sq(&base, dim));
    let t = rayon::current_num_threads();
    println!(
        "\n== search, base {nb} x {dim}, {nq} queries, top-{k}, {t} threads, level {} (norms: {:.1} ms)",
        quiver_simd::active_level(),
        tn * 1e3
    );
    let flops = 2.0 * nq as f64 * nb as f64 * dim as f64;
    let metrics: &[Metric] = if flag("--ip-only") {
        &[Metric::Ip]
    } else {
        &[Metric::Ip, Metric::L2, Metric::Cosine]
    };
    for &metric in metrics {
        let (res, best, cpu) = bench(3, || {
            search_batch(
                metric,
                &queries,
                nq,
                &base,
                nb,
                dim,
                Some(&norms),
                k,
                Filter::All,
            )
        });
        println!(
            "search_batch {:<6} {:>9.0} QPS  ({:.3} s, {:.0} GFLOP/s; cpu {:.2} s -> {:.0} QPS unshared)",
            metric.as_str(),
            nq as f64 / best,
            best,
            flops / best / 1e9,
            cpu,
            nq as f64 * t as f64 / cpu
        );
        if !flag("--skip-one") {
            let n1 = nq.min(200);
            let (r1, s) = time(|| {
                queries[..n1 * dim]
                    .par_chunks(dim)
                    .map(|q| search_one(metric, q, &base, dim, Filter::All, k))
                    .collect::<Vec<_>>()
            });
            assert_eq!(r1[..], res[..n1], "search_one and search_batch disagree");
            println!(
                "search_one   {:<6} {:>9.0} QPS  ({n1} queries, one per rayon task)",
                metric.as_str(),
                n1 as f64 / s
            );
        }
    }
    if !flag("--skip-mm") {
        let (r, s, cpu) = bench(1, || sgemm_topk(&queries, &base, nb, dim, k));
        let exact = search_batch(
            Metric::Ip,
            &queries,
            nq,
            &base,
            nb,
            dim,
            Some(&norms),
            k,
            Filter::All,
        );
        let same = r
            .iter()
            .zip(&exact)
            .filter(|(a, b)| a.iter().map(|e| e.1).eq(b.iter().map(|e| e.1)))
            .count();
        println!(
            "matrixmultiply sgemm + top-k IP {:>9.0} QPS  ({s:.3} s, {:.0} GFLOP/s; cpu {cpu:.2} s -> {:.0} QPS unshared; same ids as search_batch for {same}/{nq} queries)",
            nq as f64 / s,
            flops / s / 1e9,
            nq as f64 * t as f64 / cpu
        );
    }
    // Every other row allowed (every micro-panel still has work), and a
    // sparse 2% filter (most micro-panels skipped).
    let half: Vec<u64> = vec![0x5555_5555_5555_5555; nb.div_ceil(64)];
    let sparse: Vec<u64> = (0..nb.div_ceil(64))
        .map(|i| if i % 3 == 0 { 0b1001_0001 } else { 0 })
        .collect();
    for (name, bits) in [("50% filter", &half), ("2% filter", &sparse)] {
        let (_, s, _) = bench(3, || {
            search_batch(
                Metric::Ip,
                &queries,
                nq,
                &base,
                nb,
                dim,
                Some(&norms),
                k,
                Filter::Bitmap(bits),
            )
        });
        println!("search_batch IP, {name:<10} {:>9.0} QPS", nq as f64 / s);
    }
    println!("exact rescans so far: {}", quiver_simd::exact_rescans());
}
