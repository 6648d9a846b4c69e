//! What the engine's benchmark examples share: the command line and wn-gloss's float16 files.
#![allow(dead_code)] // each example uses part of it

use std::path::PathBuf;

/// The data set directory (first argument, default ../shared/datasets/wn-gloss) and a lookup
/// of `--flag value` options.
pub struct Args(Vec<String>);

impl Args {
    pub fn parse() -> Args {
        Args(std::env::args().collect())
    }

    pub fn data_dir(&self) -> PathBuf {
        PathBuf::from(
            self.0
                .get(1)
                .cloned()
                .unwrap_or_else(|| "../shared/datasets/wn-gloss".into()),
        )
    }

    pub fn flag(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .position(|a| a == name)
            .and_then(|i| self.0.get(i + 1))
            .cloned()
    }
}

/// A little-endian float16 file decoded to f32.
pub fn read_f16(path: &std::path::Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes
        .chunks_exact(2)
        .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
        .collect()
}
