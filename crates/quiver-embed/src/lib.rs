//! quiver-embed: sentence embeddings on the CPU, in process.
//!
//! Loads a sentence-transformers BERT-family model directory (`config.json`,
//! `model.safetensors`, `tokenizer.json`, `sentence_bert_config.json`, `1_Pooling/config.json`,
//! `modules.json`) and embeds texts exactly as sentence-transformers does: tokenise with the
//! model's WordPiece tokenizer truncated at `max_seq_length` (no padding: each text is encoded
//! on its own, so padding never costs compute), run the BERT encoder, pool (mean over tokens,
//! CLS or max, per `1_Pooling`), L2-normalise when `modules.json` has a Normalize module (or when
//! asked to).
//!
//! Why our own forward pass (see docs/ARCHITECTURE.md): the only heavy operation is dense
//! matrix products, which `matrixmultiply` does with AVX-512 / AVX2 / NEON kernels chosen at run
//! time in pure Rust; candle's default GEMM skips AVX-512 and adds ~80 crates, and tract / ONNX
//! Runtime need an ONNX export the model package does not ship. Texts of a batch run in parallel
//! on the current rayon pool, in chunks of consecutive texts (at most 32 texts and 1,024
//! tokens); each chunk is one forward pass with its tokens packed into the linear layers'
//! products, which are single-threaded. On x86-64 with AVX2 + FMA the linear layers use our own
//! packed-weight kernel (`gemm.rs`); attention products, and everything on other CPUs, use
//! matrixmultiply.
//!
//! Invariants: weights are checked for name, shape and dtype (F32) at load, so `embed` never
//! panics on a loaded model; the output has `dim` values per text, in input order.

mod bert;
mod gemm;
mod safetensors;

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde_json::Value as Json;

pub use bert::BertConfig;

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("{path}: {reason}")]
    Model { path: PathBuf, reason: String },
    #[error("tokenizing: {0}")]
    Tokenize(String),
}

impl EmbedError {
    fn model(path: &Path, reason: impl ToString) -> Self {
        EmbedError::Model {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }
}

pub type Result<T, E = EmbedError> = std::result::Result<T, E>;

/// Texts per packed forward pass at most: large enough for efficient matrix products, small
/// enough that a batch still splits over the threads.
const CHUNK: usize = 32;

/// Tokens per packed forward pass at most (unless a single text is longer). A chunk's
/// activations take about 17 KB per token for MiniLM, so 1,024 tokens stay within the shared L3
/// cache, and a batch of long texts becomes enough chunks to keep every thread busy.
const CHUNK_TOKENS: usize = 1024;

/// How token vectors become one text vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    Mean,
    Cls,
    Max,
}

/// A loaded encoder.
pub struct Encoder {
    tokenizer: tokenizers::Tokenizer,
    model: bert::Bert,
    pooling: Pooling,
    normalize: bool,
    max_seq_length: usize,
}

fn read_json(path: &Path) -> Result<Json> {
    let text = std::fs::read_to_string(path).map_err(|e| EmbedError::model(path, e))?;
    serde_json::from_str(&text).map_err(|e| EmbedError::model(path, e))
}

impl Encoder {
    /// Load a sentence-transformers model directory.
    pub fn load(dir: &Path) -> Result<Encoder> {
        let config: BertConfig = serde_json::from_value(read_json(&dir.join("config.json"))?)
            .map_err(|e| EmbedError::model(&dir.join("config.json"), e))?;
        let weights = safetensors::read(&dir.join("model.safetensors"))?;
        let model = bert::Bert::new(config, weights, &dir.join("model.safetensors"))?;
        let st = dir.join("sentence_bert_config.json");
        let max_seq_length = if st.exists() {
            read_json(&st)?
                .get("max_seq_length")
                .and_then(Json::as_u64)
                .unwrap_or(512) as usize
        } else {
            512
        }
        .min(model.config.max_position_embeddings);
        let pool_path = dir.join("1_Pooling/config.json");
        let pooling = if pool_path.exists() {
            let p = read_json(&pool_path)?;
            let on = |k: &str| p.get(k).and_then(Json::as_bool).unwrap_or(false);
            if on("pooling_mode_mean_tokens") {
                Pooling::Mean
            } else if on("pooling_mode_cls_token") {
                Pooling::Cls
            } else if on("pooling_mode_max_tokens") {
                Pooling::Max
            } else {
                return Err(EmbedError::model(&pool_path, "unsupported pooling mode"));
            }
        } else {
            Pooling::Mean
        };
        let modules = dir.join("modules.json");
        let normalize = modules.exists()
            && read_json(&modules)?.as_array().is_some_and(|m| {
                m.iter().any(|x| {
                    x.get("type")
                        .and_then(Json::as_str)
                        .is_some_and(|t| t.ends_with("Normalize"))
                })
            });
        let tok_path = dir.join("tokenizer.json");
        let mut tokenizer = tokenizers::Tokenizer::from_file(&tok_path)
            .map_err(|e| EmbedError::model(&tok_path, e))?;
        // sentence-transformers overrides the file's padding and truncation.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(tokenizers::TruncationParams {
                max_length: max_seq_length,
                ..Default::default()
            }))
            .map_err(|e| EmbedError::model(&tok_path, e))?;
        Ok(Encoder {
            tokenizer,
            model,
            pooling,
            normalize,
            max_seq_length,
        })
    }

    pub fn dim(&self) -> usize {
        self.model.config.hidden_size
    }

    pub fn pooling(&self) -> Pooling {
        self.pooling
    }

    pub fn normalizes(&self) -> bool {
        self.normalize
    }

    pub fn max_seq_length(&self) -> usize {
        self.max_seq_length
    }

    /// Embed `texts` (in parallel on the current rayon pool); one `dim` vector per text.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| EmbedError::Tokenize(e.to_string()))?;
        // Chunks of consecutive texts run in parallel; each chunk is one packed forward pass
        // of at most `chunk` texts and `CHUNK_TOKENS` tokens.
        let threads = rayon::current_num_threads().max(1);
        let chunk = encodings.len().div_ceil(threads).clamp(1, CHUNK);
        let mut chunks = Vec::new();
        let (mut start, mut tokens) = (0, 0);
        for (i, e) in encodings.iter().enumerate() {
            let n = e.get_ids().len();
            if i > start && (i - start == chunk || tokens + n > CHUNK_TOKENS) {
                chunks.push(&encodings[start..i]);
                (start, tokens) = (i, 0);
            }
            tokens += n;
        }
        if start < encodings.len() {
            chunks.push(&encodings[start..]);
        }
        let per_chunk: Vec<Vec<Vec<f32>>> = chunks
            .par_iter()
            .map(|encs| {
                let ids: Vec<&[u32]> = encs.iter().map(|e| e.get_ids()).collect();
                self.model
                    .forward_batch(&ids)
                    .into_iter()
                    .map(|hidden| {
                        let mut v = pool(&hidden, self.dim(), self.pooling);
                        if self.normalize {
                            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                            v.iter_mut().for_each(|x| *x /= n);
                        }
                        v
                    })
                    .collect()
            })
            .collect();
        Ok(per_chunk.into_iter().flatten().collect())
    }
}

/// Pool `L x dim` token states into one vector (every token is real: no padding).
fn pool(hidden: &[f32], dim: usize, pooling: Pooling) -> Vec<f32> {
    let rows = hidden.chunks_exact(dim);
    match pooling {
        Pooling::Cls => hidden[..dim].to_vec(),
        Pooling::Mean => {
            let n = rows.len().max(1) as f32;
            let mut out = vec![0.0f32; dim];
            for r in rows {
                out.iter_mut().zip(r).for_each(|(o, x)| *o += x);
            }
            out.iter_mut().for_each(|o| *o /= n);
            out
        }
        Pooling::Max => {
            let mut out = vec![f32::NEG_INFINITY; dim];
            for r in rows {
                out.iter_mut().zip(r).for_each(|(o, x)| *o = o.max(*x));
            }
            out
        }
    }
}
