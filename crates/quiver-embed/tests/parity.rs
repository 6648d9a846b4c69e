//! Parity with sentence-transformers: the wn-gloss base vectors are all-MiniLM-L6-v2 embeddings
//! (made with sentence-transformers, stored as float16) of the lines of texts_base.txt. Embedding
//! every 100th line here must give cosine >= 0.999 with the stored vector.
//!
//! Needs the model directory (`QUIVER_MINILM_DIR`, set by scripts/test.sh after
//! scripts/fetch_model.sh) and the data set (`QUIVER_DATASETS`, default ../shared/datasets next
//! to the repository, or /work/shared/datasets). Without the model the test says so and passes
//! only when `QUIVER_REQUIRE_MODEL` is unset (scripts/test.sh fetches it and sets that).

use std::path::PathBuf;

use quiver_embed::{Encoder, Pooling};

fn datasets() -> Option<PathBuf> {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    [
        std::env::var("QUIVER_DATASETS").ok().map(PathBuf::from),
        Some(here.join("../../../shared/datasets")),
        Some(PathBuf::from("/work/shared/datasets")),
    ]
    .into_iter()
    .flatten()
    .find(|p| p.join("wn-gloss/texts_base.txt").exists())
}

#[test]
fn minilm_matches_sentence_transformers_on_wn_gloss() {
    let model = std::env::var("QUIVER_MINILM_DIR")
        .ok()
        .map(PathBuf::from)
        .filter(|m| m.join("model.safetensors").exists());
    let Some(model) = model else {
        assert!(
            std::env::var("QUIVER_REQUIRE_MODEL").is_err(),
            "QUIVER_REQUIRE_MODEL is set but QUIVER_MINILM_DIR names no model (scripts/fetch_model.sh)"
        );
        eprintln!("skipped: set QUIVER_MINILM_DIR (scripts/fetch_model.sh) to run the parity test");
        return;
    };
    let Some(data) = datasets() else {
        // The data set lives outside the repository (../shared/datasets); without it there is
        // nothing to compare with.
        eprintln!("skipped: no wn-gloss data set (set QUIVER_DATASETS)");
        return;
    };
    let enc = Encoder::load(&model).unwrap();
    assert_eq!(
        (
            enc.dim(),
            enc.pooling(),
            enc.normalizes(),
            enc.max_seq_length()
        ),
        (384, Pooling::Mean, true, 256)
    );
    let texts = std::fs::read_to_string(data.join("wn-gloss/texts_base.txt")).unwrap();
    let lines: Vec<&str> = texts.lines().collect();
    let base = std::fs::read(data.join("wn-gloss/base.f16")).unwrap();
    let dim = 384;
    let picked: Vec<usize> = (0..lines.len()).step_by(100).collect();
    let inputs: Vec<&str> = picked.iter().map(|&i| lines[i]).collect();
    let t = std::time::Instant::now();
    let got = enc.embed(&inputs).unwrap();
    eprintln!(
        "embedded {} texts in {:.2} s",
        inputs.len(),
        t.elapsed().as_secs_f64()
    );
    let mut worst = (1.0f32, 0usize);
    let mut sum = 0.0f64;
    for (&row, v) in picked.iter().zip(&got) {
        let stored: Vec<f32> = base[row * dim * 2..(row + 1) * dim * 2]
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect();
        let dot: f32 = stored.iter().zip(v).map(|(a, b)| a * b).sum();
        let na = stored.iter().map(|a| a * a).sum::<f32>().sqrt();
        let nb = v.iter().map(|b| b * b).sum::<f32>().sqrt();
        let cos = dot / (na * nb);
        sum += cos as f64;
        if cos < worst.0 {
            worst = (cos, row);
        }
    }
    let mean = sum / picked.len() as f64;
    eprintln!(
        "cosine: mean {mean:.6}, min {:.6} (line {})",
        worst.0, worst.1
    );
    assert!(
        worst.0 >= 0.999,
        "line {} ({:?}): cosine {}",
        worst.1,
        lines[worst.1],
        worst.0
    );
}

/// Needs only the model: the tokenizer gives BERT's ids, every output is unit length, and the
/// order of inputs is kept (related texts are closer than unrelated ones).
#[test]
fn tokenizer_pooling_and_order() {
    let Some(model) = std::env::var("QUIVER_MINILM_DIR")
        .ok()
        .map(PathBuf::from)
        .filter(|m| m.join("model.safetensors").exists())
    else {
        assert!(
            std::env::var("QUIVER_REQUIRE_MODEL").is_err(),
            "QUIVER_REQUIRE_MODEL is set but no model"
        );
        return;
    };
    let enc = Encoder::load(&model).unwrap();
    let v = enc
        .embed(&[
            "a small dog barks",
            "the puppy is barking",
            "interest rates rose again",
            "",
        ])
        .unwrap();
    assert_eq!(v.len(), 4);
    for x in &v {
        assert_eq!(x.len(), 384);
        let n: f32 = x.iter().map(|a| a * a).sum::<f32>().sqrt();
        assert!((n - 1.0).abs() < 1e-4, "norm {n}");
    }
    let cos = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    assert!(cos(&v[0], &v[1]) > cos(&v[0], &v[2]) + 0.2);
    // A text longer than max_seq_length is truncated, not refused.
    let long = "word ".repeat(2000);
    assert_eq!(enc.embed(&[long.as_str()]).unwrap()[0].len(), 384);
}
