//! Embedding throughput of quiver-embed: texts/s for a sentence-transformers model on the first
//! N lines of a text file, in batches, on the rayon pool (`RAYON_NUM_THREADS`).
//!
//! `bench_embed MODEL_DIR TEXTS_FILE [--texts N] [--batch B] [--rounds R] [--out VECTORS.f32]`
//! prints one JSON line: texts, batch, threads, best and mean seconds, texts_per_s (best round).
//! `--out` writes the vectors (f32, row-major) so the caller can compare them with another
//! implementation's.

use std::time::Instant;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: bench_embed MODEL_DIR TEXTS_FILE [--texts N] [--batch B] [--rounds R] [--out F]");
        std::process::exit(2);
    }
    let num = |name: &str, default: usize| {
        arg(&args, name).map_or(default, |v| v.parse().expect("a number"))
    };
    let (n, batch, rounds) = (num("--texts", 2000), num("--batch", 64), num("--rounds", 3));
    let enc = quiver_embed::Encoder::load(std::path::Path::new(&args[1])).expect("model");
    let text = std::fs::read_to_string(&args[2]).expect("texts file");
    let texts: Vec<&str> = text.lines().take(n).collect();
    // Warm up (page in the weights, start the pool).
    enc.embed(&texts[..batch.min(texts.len())]).expect("embed");
    let mut times = Vec::new();
    let mut out = Vec::new();
    for _ in 0..rounds.max(1) {
        out.clear();
        let t = Instant::now();
        for b in texts.chunks(batch) {
            out.extend(enc.embed(b).expect("embed"));
        }
        times.push(t.elapsed().as_secs_f64());
    }
    if let Some(path) = arg(&args, "--out") {
        let bytes: Vec<u8> = out.iter().flatten().flat_map(|x| x.to_le_bytes()).collect();
        std::fs::write(path, bytes).expect("write vectors");
    }
    let best = times.iter().cloned().fold(f64::INFINITY, f64::min);
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    println!(
        "{{\"texts\": {}, \"batch\": {batch}, \"threads\": {}, \"best_s\": {best:.4}, \"mean_s\": {mean:.4}, \"texts_per_s\": {:.1}}}",
        texts.len(),
        rayon::current_num_threads(),
        texts.len() as f64 / best
    );
}
