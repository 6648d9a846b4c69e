//! Content-addressed artifact store.
//!
//! `blobs/sha256/<first two hex digits>/<64 hex digits>`: the file's bytes, named by their
//! SHA-256. Writes go to `blobs/tmp/<n>` while hashing, are fsynced, then renamed to their name
//! (an existing blob of the same name already holds the same bytes and is kept); the directory is
//! fsynced. Reads recompute the hash: a blob that changed on disk is an error, never data.
//! Leftover temporary files (a crash mid-write) are removed at open.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use crate::audit::hex;
use crate::{FileEntry, RegistryError, Result};

pub struct BlobStore {
    root: PathBuf,
    tmp_seq: AtomicU64,
}

/// A relative artifact path: `/`-separated, no empty, `.` or `..` parts, not absolute.
pub fn clean_path(p: &str) -> Result<String> {
    let parts: Vec<&str> = p.split('/').collect();
    let ok = !p.is_empty()
        && !p.contains('\\')
        && !p.contains('\0')
        && parts
            .iter()
            .all(|s| !s.is_empty() && *s != "." && *s != "..");
    if ok {
        Ok(p.to_string())
    } else {
        Err(RegistryError::BadRequest(format!(
            "invalid artifact path {p:?}: use a relative path with '/' separators and no '..'"
        )))
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| RegistryError::io("fsync directory", dir, e))
}

impl BlobStore {
    pub fn open(root: PathBuf) -> Result<BlobStore> {
        let tmp = root.join("tmp");
        std::fs::create_dir_all(root.join("sha256"))
            .map_err(|e| RegistryError::io("create directory", &root, e))?;
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp)
            .map_err(|e| RegistryError::io("create directory", &tmp, e))?;
        Ok(BlobStore {
            root,
            tmp_seq: AtomicU64::new(0),
        })
    }

    fn path_of(&self, sha: &str) -> PathBuf {
        self.root
            .join("sha256")
            .join(&sha[..2.min(sha.len())])
            .join(sha)
    }

    /// Copy `reader` into the store while hashing; returns `(sha256, size)`.
    fn put_reader(&self, reader: &mut dyn Read) -> Result<(String, u64)> {
        let n = self.tmp_seq.fetch_add(1, Ordering::SeqCst);
        let tmp = self
            .root
            .join("tmp")
            .join(format!("{}-{n}", std::process::id()));
        let io = |op: &'static str, p: &Path, e: std::io::Error| RegistryError::io(op, p, e);
        let mut out = File::create(&tmp).map_err(|e| io("create", &tmp, e))?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut size = 0u64;
        loop {
            let k = reader
                .read(&mut buf)
                .map_err(|e| io("read artifact", &tmp, e))?;
            if k == 0 {
                break;
            }
            h.update(&buf[..k]);
            out.write_all(&buf[..k]).map_err(|e| io("write", &tmp, e))?;
            size += k as u64;
        }
        out.sync_all().map_err(|e| io("fsync", &tmp, e))?;
        drop(out);
        let sha = hex(&h.finalize());
        let dest = self.path_of(&sha);
        let dir = dest.parent().map(Path::to_path_buf).unwrap_or_default();
        std::fs::create_dir_all(&dir).map_err(|e| io("create directory", &dir, e))?;
        if dest.exists() {
            let _ = std::fs::remove_file(&tmp);
        } else {
            std::fs::rename(&tmp, &dest).map_err(|e| io("rename", &dest, e))?;
            sync_dir(&dir)?;
        }
        Ok((sha, size))
    }

    pub fn put_bytes(&self, bytes: &[u8]) -> Result<(String, u64)> {
        self.put_reader(&mut &bytes[..])
    }

    /// Store a file (as its file name) or every file under a directory (relative paths).
    pub fn put_tree(&self, src: &Path) -> Result<Vec<FileEntry>> {
        let meta = std::fs::metadata(src).map_err(|e| {
            RegistryError::BadRequest(format!("source_path {}: {e}", src.display()))
        })?;
        let mut files: Vec<(String, PathBuf)> = Vec::new();
        if meta.is_file() {
            let name = src
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "artifact".into());
            files.push((name, src.to_path_buf()));
        } else {
            let mut stack = vec![src.to_path_buf()];
            while let Some(dir) = stack.pop() {
                let rd = std::fs::read_dir(&dir)
                    .map_err(|e| RegistryError::io("read directory", &dir, e))?;
                for entry in rd {
                    let entry = entry.map_err(|e| RegistryError::io("read directory", &dir, e))?;
                    let p = entry.path();
                    let ft = entry
                        .file_type()
                        .map_err(|e| RegistryError::io("stat", &p, e))?;
                    if ft.is_dir() {
                        stack.push(p);
                    } else if ft.is_file() {
                        let rel = p
                            .strip_prefix(src)
                            .map_err(|e| RegistryError::Internal(e.to_string()))?
                            .components()
                            .map(|c| c.as_os_str().to_string_lossy().into_owned())
                            .collect::<Vec<_>>()
                            .join("/");
                        files.push((rel, p));
                    }
                }
            }
        }
        files.sort();
        let mut out = Vec::with_capacity(files.len());
        for (rel, p) in files {
            let rel = clean_path(&rel)?;
            let mut f = File::open(&p).map_err(|e| RegistryError::io("open", &p, e))?;
            let (sha256, size) = self.put_reader(&mut f)?;
            out.push(FileEntry {
                path: rel,
                sha256,
                size,
            });
        }
        Ok(out)
    }

    /// The blob's bytes if they still hash to `sha` (and have `size` bytes); else why not.
    pub fn get_verified(&self, sha: &str, size: u64) -> std::result::Result<Vec<u8>, String> {
        let p = self.path_of(sha);
        let bytes = std::fs::read(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
        if bytes.len() as u64 != size {
            return Err(format!("{} bytes on disk, {size} recorded", bytes.len()));
        }
        let got = hex(&Sha256::digest(&bytes));
        if got != sha {
            return Err(format!("sha256 on disk is {got}, {sha} recorded"));
        }
        Ok(bytes)
    }

    /// Delete every blob whose hash is not in `live`.
    pub fn retain(&self, live: &BTreeSet<String>) {
        let Ok(dirs) = std::fs::read_dir(self.root.join("sha256")) else {
            return;
        };
        for d in dirs.flatten() {
            let Ok(files) = std::fs::read_dir(d.path()) else {
                continue;
            };
            for f in files.flatten() {
                let name = f.file_name().to_string_lossy().into_owned();
                if !live.contains(&name) {
                    if let Err(e) = std::fs::remove_file(f.path()) {
                        tracing::warn!(blob = name, "could not delete an unused artifact: {e}");
                    }
                }
            }
        }
    }
}
