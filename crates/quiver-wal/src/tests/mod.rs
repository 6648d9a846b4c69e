//! Unit tests that need crate internals or failure injection.

mod failure;
mod prop;

use std::path::Path;

use crate::{Wal, WalOptions};

fn open(dir: &Path, opts: WalOptions) -> Wal {
    Wal::open(dir, opts).expect("open").0
}

fn payloads(wal: &Wal) -> Vec<Vec<u8>> {
    wal.read_all(0)
        .expect("replay")
        .into_iter()
        .map(|(_, p)| p)
        .collect()
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}
