//! The one storage interface for immutable files: segments, delete bitmaps, manifests, catalog.
//!
//! Keys are relative, `/`-separated paths (`collections/7/segments/12.seg`). The contract every
//! backend keeps (an object-store backend later implements the same trait):
//! - `put` is atomic and durable: once it returns Ok, a reader sees the whole new content, even
//!   after a crash or power loss; before, it sees the old content or nothing — never a mix.
//! - `put_if_absent` additionally fails (returns `Ok(false)`) when the key exists; it is how
//!   manifest versions are committed without overwriting (the conditional put of object stores).
//! - `delete` of a missing key is not an error.
//!
//! The local backend writes a temporary file in the target directory, fsyncs it, renames (or
//! hard-links, for `put_if_absent`) it into place and fsyncs the directory. [`MemoryStorage`]
//! keeps the same contract in memory (tests; nothing survives the process). `list` returns the
//! immediate children of the prefix (files and "directories"), sorted, in both. The WAL is the
//! one thing that does not go through this interface: it appends to local files (see
//! quiver-wal).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// Atomic, durable storage of immutable named files.
pub trait Storage: Send + Sync + std::fmt::Debug {
    fn put(&self, key: &str, data: &[u8]) -> Result<()>;
    fn put_if_absent(&self, key: &str, data: &[u8]) -> Result<bool>;
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Keys under `prefix` (a directory-like prefix ending in `/`), sorted.
    fn list(&self, prefix: &str) -> Result<Vec<String>>;
    fn delete(&self, key: &str) -> Result<()>;
    /// Delete every key under `prefix`.
    fn delete_prefix(&self, prefix: &str) -> Result<()>;
    /// The local file behind a key, where there is one (for memory mapping and inspection).
    fn local_path(&self, key: &str) -> Option<PathBuf>;
}

/// A directory on the local file system.
#[derive(Debug)]
pub struct LocalStorage {
    root: PathBuf,
    tmp_seq: AtomicU64,
}

/// fsync a directory so that renames and creations in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    let f = File::open(dir).map_err(|e| Error::io("open directory", dir, e))?;
    f.sync_all()
        .map_err(|e| Error::io("fsync directory", dir, e))
}

impl LocalStorage {
    pub fn new(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(|e| Error::io("create directory", &root, e))?;
        Ok(LocalStorage {
            root,
            tmp_seq: AtomicU64::new(0),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        check_key(key)?;
        Ok(self.root.join(key))
    }

    /// Write `data` to a fresh temporary file next to `path` and fsync it.
    fn write_tmp(&self, path: &Path, data: &[u8]) -> Result<PathBuf> {
        let dir = path.parent().unwrap_or(&self.root);
        fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
        let seq = self.tmp_seq.fetch_add(1, Ordering::Relaxed);
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
        let tmp = dir.join(format!(".{name}.{}.{seq}.tmp", std::process::id()));
        let res = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)
                .map_err(|e| Error::io("create", &tmp, e))?;
            f.write_all(data).map_err(|e| Error::io("write", &tmp, e))?;
            f.sync_all().map_err(|e| Error::io("fsync", &tmp, e))
        })();
        if let Err(e) = res {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(tmp)
    }

    /// Remove leftover temporary files (from a crash mid-write) under the root.
    pub fn remove_temp_files(&self) -> Result<usize> {
        fn walk(dir: &Path, n: &mut usize) -> std::io::Result<()> {
            for entry in fs::read_dir(dir)? {
                let entry = entry?;
                let p = entry.path();
                if entry.file_type()?.is_dir() {
                    walk(&p, n)?;
                } else if p
                    .file_name()
                    .and_then(|s| s.to_str())
                    .is_some_and(|s| s.starts_with('.') && s.ends_with(".tmp"))
                {
                    fs::remove_file(&p)?;
                    *n += 1;
                }
            }
            Ok(())
        }
        let mut n = 0;
        walk(&self.root, &mut n).map_err(|e| Error::io("clean temporary files", &self.root, e))?;
        Ok(n)
    }
}

impl Storage for LocalStorage {
    fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        let path = self.path(key)?;
        let tmp = self.write_tmp(&path, data)?;
        if let Err(e) = fs::rename(&tmp, &path) {
            let _ = fs::remove_file(&tmp);
            return Err(Error::io("rename", &path, e));
        }
        sync_dir(path.parent().unwrap_or(&self.root))
    }

    fn put_if_absent(&self, key: &str, data: &[u8]) -> Result<bool> {
        let path = self.path(key)?;
        if path.exists() {
            return Ok(false);
        }
        let tmp = self.write_tmp(&path, data)?;
        // link(2) fails with EEXIST if the target exists: an atomic create-if-absent.
        let res = fs::hard_link(&tmp, &path);
        let _ = fs::remove_file(&tmp);
        match res {
            Ok(()) => {
                sync_dir(path.parent().unwrap_or(&self.root))?;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(Error::io("link", &path, e)),
        }
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let path = self.path(key)?;
        match fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read", &path, e)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let dir = self.root.join(prefix.trim_end_matches('/'));
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(Error::io("list", &dir, e)),
        };
        let mut out = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| Error::io("list", &dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let p = prefix.trim_end_matches('/');
            out.push(if p.is_empty() {
                name
            } else {
                format!("{p}/{name}")
            });
        }
        out.sort();
        Ok(out)
    }

    fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("delete", &path, e)),
        }
    }

    fn delete_prefix(&self, prefix: &str) -> Result<()> {
        let dir = self.root.join(prefix.trim_end_matches('/'));
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("delete directory", &dir, e)),
        }
    }

    fn local_path(&self, key: &str) -> Option<PathBuf> {
        self.path(key).ok()
    }
}

/// Keys as `LocalStorage` accepts them: non-empty `/`-separated components, no `.` or `..`.
pub fn check_key(key: &str) -> Result<()> {
    if key
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(Error::Internal(format!("invalid storage key {key:?}")));
    }
    Ok(())
}

/// Storage in memory, with the local backend's semantics (tests and the in-memory mode).
#[derive(Debug, Default)]
pub struct MemoryStorage {
    files: parking_lot::RwLock<std::collections::BTreeMap<String, std::sync::Arc<Vec<u8>>>>,
}

impl MemoryStorage {
    pub fn new() -> MemoryStorage {
        MemoryStorage::default()
    }
}

impl Storage for MemoryStorage {
    fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        check_key(key)?;
        self.files
            .write()
            .insert(key.to_string(), std::sync::Arc::new(data.to_vec()));
        Ok(())
    }

    fn put_if_absent(&self, key: &str, data: &[u8]) -> Result<bool> {
        check_key(key)?;
        let mut f = self.files.write();
        if f.contains_key(key) {
            return Ok(false);
        }
        f.insert(key.to_string(), std::sync::Arc::new(data.to_vec()));
        Ok(true)
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        check_key(key)?;
        Ok(self.files.read().get(key).map(|b| b.as_ref().clone()))
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let p = prefix.trim_end_matches('/');
        let start = if p.is_empty() {
            String::new()
        } else {
            format!("{p}/")
        };
        let mut out: Vec<String> = Vec::new();
        for k in self.files.read().range(start.clone()..) {
            let Some(rest) = k.0.strip_prefix(&start) else {
                break;
            };
            let child = rest.split('/').next().unwrap_or(rest);
            let name = format!("{start}{child}");
            if out.last() != Some(&name) {
                out.push(name);
            }
        }
        Ok(out)
    }

    fn delete(&self, key: &str) -> Result<()> {
        check_key(key)?;
        self.files.write().remove(key);
        Ok(())
    }

    fn delete_prefix(&self, prefix: &str) -> Result<()> {
        let p = format!("{}/", prefix.trim_end_matches('/'));
        self.files
            .write()
            .retain(|k, _| !k.starts_with(&p) && k != p.trim_end_matches('/'));
        Ok(())
    }

    fn local_path(&self, _key: &str) -> Option<PathBuf> {
        None
    }
}

/// A checksummed file envelope used by manifests and the catalog:
/// `magic[8] | version u32 | body_len u64 | crc32c(body) u32 | body`.
pub fn seal_envelope(magic: &[u8; 8], version: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + body.len());
    out.extend_from_slice(magic);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(body).to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// Check and strip an envelope made by [`seal_envelope`]; returns (version, body).
pub fn open_envelope<'a>(
    magic: &[u8; 8],
    max_version: u32,
    path: &Path,
    bytes: &'a [u8],
) -> Result<(u32, &'a [u8])> {
    if bytes.len() < 24 || &bytes[..8] != magic {
        return Err(Error::corrupt(
            path,
            0,
            format!("bad magic (expected {:?})", String::from_utf8_lossy(magic)),
        ));
    }
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if version == 0 || version > max_version {
        return Err(Error::corrupt(
            path,
            8,
            format!("format version {version} is not supported by this build (max {max_version})"),
        ));
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&bytes[12..20]);
    let len = u64::from_le_bytes(len) as usize;
    let crc = u32::from_le_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]);
    let body = &bytes[24..];
    if body.len() != len {
        return Err(Error::corrupt(
            path,
            12,
            format!("body is {} bytes, header says {len}", body.len()),
        ));
    }
    if crc32c::crc32c(body) != crc {
        return Err(Error::corrupt(path, 24, "checksum mismatch"));
    }
    Ok((version, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The contract every backend keeps (run on each).
    fn conformance(s: &dyn Storage) {
        s.put("c/x/1.y", b"one").unwrap();
        s.put("c/x/1.y", b"uno").unwrap();
        s.put("c/x/deeper/2.y", b"two").unwrap();
        s.put("c/z.y", b"z").unwrap();
        assert_eq!(s.get("c/x/1.y").unwrap().unwrap(), b"uno");
        assert_eq!(s.get("c/x/none").unwrap(), None);
        // Immediate children, files and directories, sorted.
        assert_eq!(s.list("c/x/").unwrap(), vec!["c/x/1.y", "c/x/deeper"]);
        assert_eq!(s.list("c").unwrap(), vec!["c/x", "c/z.y"]);
        assert!(s.list("nothing/").unwrap().is_empty());
        assert!(s.put_if_absent("c/x/3.y", b"three").unwrap());
        assert!(!s.put_if_absent("c/x/3.y", b"drei").unwrap());
        assert_eq!(s.get("c/x/3.y").unwrap().unwrap(), b"three");
        for bad in ["", "a//b", "../x", "a/./b", "/abs"] {
            assert!(s.put(bad, b"x").is_err(), "{bad:?}");
            assert!(s.get(bad).is_err(), "{bad:?}");
        }
        s.delete("c/x/1.y").unwrap();
        s.delete("c/x/1.y").unwrap();
        assert_eq!(s.get("c/x/1.y").unwrap(), None);
        s.delete_prefix("c/x").unwrap();
        assert!(s.list("c/x/").unwrap().is_empty());
        assert_eq!(s.get("c/z.y").unwrap().unwrap(), b"z");
        // 16 committers race for each of 300 versions: exactly one wins each, and what is
        // stored is the winner's content.
        let winners: Vec<std::sync::Mutex<Vec<usize>>> = (0..300)
            .map(|_| std::sync::Mutex::new(Vec::new()))
            .collect();
        std::thread::scope(|sc| {
            for t in 0..16 {
                let winners = &winners;
                sc.spawn(move || {
                    for (v, w) in winners.iter().enumerate() {
                        let key = format!("race/manifest/{v:08}");
                        if s.put_if_absent(&key, format!("writer {t}").as_bytes())
                            .unwrap()
                        {
                            w.lock().unwrap().push(t);
                        }
                    }
                });
            }
        });
        for (v, w) in winners.iter().enumerate() {
            let w = w.lock().unwrap();
            assert_eq!(w.len(), 1, "version {v}: winners {w:?}");
            let stored = s.get(&format!("race/manifest/{v:08}")).unwrap().unwrap();
            assert_eq!(stored, format!("writer {}", w[0]).into_bytes());
        }
        assert_eq!(s.list("race/manifest/").unwrap().len(), 300);
    }

    #[test]
    fn local_backend_keeps_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        conformance(&LocalStorage::new(dir.path()).unwrap());
    }

    #[test]
    fn memory_backend_keeps_the_contract() {
        conformance(&MemoryStorage::new());
    }

    #[test]
    fn put_get_list_delete() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStorage::new(dir.path()).unwrap();
        s.put("a/b/1.x", b"one").unwrap();
        s.put("a/b/1.x", b"uno").unwrap();
        assert_eq!(s.get("a/b/1.x").unwrap().unwrap(), b"uno");
        assert!(s.put_if_absent("a/b/2.x", b"two").unwrap());
        assert!(!s.put_if_absent("a/b/2.x", b"deux").unwrap());
        assert_eq!(s.get("a/b/2.x").unwrap().unwrap(), b"two");
        assert_eq!(s.list("a/b/").unwrap(), vec!["a/b/1.x", "a/b/2.x"]);
        s.delete("a/b/1.x").unwrap();
        s.delete("a/b/1.x").unwrap();
        assert_eq!(s.get("a/b/1.x").unwrap(), None);
        assert!(s.get("../etc").is_err());
        s.delete_prefix("a").unwrap();
        assert!(s.list("a/b/").unwrap().is_empty());
    }

    #[test]
    fn envelope_detects_damage() {
        let e = seal_envelope(b"QVTEST\0\x01", 1, b"hello");
        let p = Path::new("x");
        assert_eq!(
            open_envelope(b"QVTEST\0\x01", 1, p, &e).unwrap().1,
            b"hello"
        );
        let mut bad = e.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(open_envelope(b"QVTEST\0\x01", 1, p, &bad)
            .unwrap_err()
            .to_string()
            .contains("checksum"));
        let newer = seal_envelope(b"QVTEST\0\x01", 2, b"hello");
        assert!(open_envelope(b"QVTEST\0\x01", 1, p, &newer)
            .unwrap_err()
            .to_string()
            .contains("version 2"));
        assert!(open_envelope(b"QVTEST\0\x01", 1, p, &e[..10]).is_err());
    }
}

/// What [`CachedStorage`] holds: key -> (bytes, last use tick), the tick, and the byte total.
#[derive(Debug, Default)]
struct CacheIndex {
    files: std::collections::HashMap<String, (u64, u64)>,
    tick: u64,
    bytes: u64,
}

/// A local-disk cache in front of another store, for readers of a shared database: `get` of
/// an immutable key (segment, delete and index files, whose names are never reused) is served
/// from `dir` when cached, and cached after a miss; everything else passes through. The cache
/// holds at most `max_bytes`, evicting the least recently read files first; it is rebuilt from
/// `dir` at start (a reader restarts warm). Its files are written like [`LocalStorage`]'s
/// (temp file, rename), so a crash leaves whole files or none.
#[derive(Debug)]
pub struct CachedStorage {
    inner: std::sync::Arc<dyn Storage>,
    cache: LocalStorage,
    max_bytes: u64,
    index: parking_lot::Mutex<CacheIndex>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl CachedStorage {
    pub fn new(
        inner: std::sync::Arc<dyn Storage>,
        dir: impl Into<PathBuf>,
        max_bytes: u64,
    ) -> Result<CachedStorage> {
        let cache = LocalStorage::new(dir)?;
        cache.remove_temp_files()?;
        let mut index = std::collections::HashMap::new();
        fn walk(
            root: &Path,
            dir: &Path,
            out: &mut std::collections::HashMap<String, (u64, u64)>,
        ) -> std::io::Result<()> {
            for e in fs::read_dir(dir)? {
                let e = e?;
                if e.file_type()?.is_dir() {
                    walk(root, &e.path(), out)?;
                } else if let Ok(rel) = e.path().strip_prefix(root) {
                    out.insert(rel.to_string_lossy().into_owned(), (e.metadata()?.len(), 0));
                }
            }
            Ok(())
        }
        walk(cache.root(), cache.root(), &mut index)
            .map_err(|e| Error::io("scan the cache", cache.root(), e))?;
        Ok(CachedStorage {
            inner,
            cache,
            max_bytes,
            index: parking_lot::Mutex::new(CacheIndex {
                bytes: index.values().map(|v| v.0).sum(),
                files: index,
                tick: 1,
            }),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        })
    }

    /// Keys whose content never changes once written.
    fn cacheable(key: &str) -> bool {
        key.contains("/segments/")
    }

    /// (hits, misses, cached bytes)
    pub fn stats(&self) -> (u64, u64, u64) {
        let bytes = self.index.lock().bytes;
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
            bytes,
        )
    }

    fn remember(&self, key: &str, len: u64) {
        let evict: Vec<String> = {
            let mut c = self.index.lock();
            c.tick += 1;
            let tick = c.tick;
            if let Some((old, _)) = c.files.insert(key.to_string(), (len, tick)) {
                c.bytes -= old;
            }
            c.bytes += len;
            if c.bytes <= self.max_bytes {
                return;
            }
            let mut by_age: Vec<(u64, String, u64)> =
                c.files.iter().map(|(k, v)| (v.1, k.clone(), v.0)).collect();
            by_age.sort_unstable();
            let mut out = Vec::new();
            for (_, k, n) in by_age {
                if c.bytes <= self.max_bytes {
                    break;
                }
                c.bytes -= n;
                c.files.remove(&k);
                out.push(k);
            }
            out
        };
        for k in evict {
            let _ = self.cache.delete(&k);
        }
    }
}

impl Storage for CachedStorage {
    fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        self.inner.put(key, data)
    }
    fn put_if_absent(&self, key: &str, data: &[u8]) -> Result<bool> {
        self.inner.put_if_absent(key, data)
    }
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        if !Self::cacheable(key) {
            return self.inner.get(key);
        }
        if let Some(b) = self.cache.get(key)? {
            self.hits.fetch_add(1, Ordering::Relaxed);
            self.remember(key, b.len() as u64);
            return Ok(Some(b));
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let got = self.inner.get(key)?;
        if let Some(b) = &got {
            if (b.len() as u64) <= self.max_bytes && self.cache.put(key, b).is_ok() {
                self.remember(key, b.len() as u64);
            }
        }
        Ok(got)
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.inner.list(prefix)
    }
    fn delete(&self, key: &str) -> Result<()> {
        let _ = self.cache.delete(key);
        let mut c = self.index.lock();
        if let Some((n, _)) = c.files.remove(key) {
            c.bytes -= n;
        }
        drop(c);
        self.inner.delete(key)
    }
    fn delete_prefix(&self, prefix: &str) -> Result<()> {
        self.inner.delete_prefix(prefix)
    }
    fn local_path(&self, key: &str) -> Option<PathBuf> {
        Self::cacheable(key)
            .then(|| self.cache.local_path(key))
            .flatten()
            .filter(|p| p.exists())
    }
}

#[cfg(test)]
mod cache_tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn cache_serves_repeats_locally_evicts_the_oldest_and_restarts_warm() {
        let remote = Arc::new(MemoryStorage::new());
        let dir = tempfile::tempdir().unwrap();
        for i in 0..4 {
            remote
                .put(&format!("collections/1/segments/{i}.seg"), &[i as u8; 100])
                .unwrap();
        }
        remote.put("collections/1/manifest/1.man", b"m1").unwrap();
        let c = CachedStorage::new(remote.clone(), dir.path(), 250).unwrap();
        for _ in 0..2 {
            assert_eq!(
                c.get("collections/1/segments/0.seg").unwrap(),
                Some(vec![0; 100])
            );
        }
        assert_eq!(c.stats(), (1, 1, 100));
        // Manifests are not cached: a new version must be seen.
        c.get("collections/1/manifest/1.man").unwrap();
        remote.put("collections/1/manifest/1.man", b"m2").unwrap();
        assert_eq!(
            c.get("collections/1/manifest/1.man").unwrap().as_deref(),
            Some(&b"m2"[..])
        );
        c.get("collections/1/segments/1.seg").unwrap();
        c.get("collections/1/segments/0.seg").unwrap(); // 0 is now the most recent
        c.get("collections/1/segments/2.seg").unwrap(); // 300 bytes > 250: evicts 1
        assert_eq!(c.stats().2, 200);
        assert!(c.local_path("collections/1/segments/1.seg").is_none());
        assert!(c.local_path("collections/1/segments/0.seg").is_some());
        // A restart finds what is on disk.
        drop(c);
        let c = CachedStorage::new(remote.clone(), dir.path(), 250).unwrap();
        assert_eq!(c.stats().2, 200);
        remote.delete("collections/1/segments/2.seg").unwrap();
        assert_eq!(
            c.get("collections/1/segments/2.seg").unwrap(),
            Some(vec![2; 100])
        );
        assert_eq!(c.get("collections/1/segments/9.seg").unwrap(), None);
    }
}
