//! Small file-system helpers (all errors mapped to `WalError::Io`).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;

use crate::error::{IoOp, WalError};
use crate::failpoint::FailPoints;
use crate::format::encode_header;

/// `fsync` of a directory, making entries created/removed in it durable.
pub(crate) fn sync_dir(dir: &Path, fail: &FailPoints) -> Result<(), WalError> {
    let err = |e| WalError::io(dir, IoOp::SyncDir, e);
    fail.check(IoOp::SyncDir).map_err(err)?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(err)
}

/// Takes an exclusive `flock` on `<dir>/LOCK`; held until the file is closed.
pub(crate) fn lock_dir(dir: &Path) -> Result<File, WalError> {
    let path = dir.join("LOCK");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| WalError::io(&path, IoOp::Lock, e))?;
    // SAFETY: `flock` only reads the integer fd, which stays open for the
    // duration of the call because `file` is borrowed.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(WalError::Locked {
                dir: dir.to_path_buf(),
            });
        }
        return Err(WalError::io(&path, IoOp::Lock, e));
    }
    Ok(file)
}

/// Creates (or overwrites a leftover of) a segment file: create, write the
/// header, then with `sync` fsync the file and the directory. On failure
/// before the syncs, the file is removed again (best effort).
pub(crate) fn create_segment(
    dir: &Path,
    path: &Path,
    first_lsn: u64,
    sync: bool,
    fail: &FailPoints,
) -> Result<File, WalError> {
    let file = fail
        .check(IoOp::Create)
        .and_then(|()| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(path)
        })
        .map_err(|e| WalError::io(path, IoOp::Create, e))?;
    let header = encode_header(first_lsn);
    if let Err(e) = fail
        .check(IoOp::Write)
        .and_then(|()| file.write_all_at(&header, 0))
    {
        drop(file);
        let _ = std::fs::remove_file(path);
        return Err(WalError::io(path, IoOp::Write, e));
    }
    if sync {
        if let Err(e) = fail.check(IoOp::Sync).and_then(|()| file.sync_all()) {
            drop(file);
            let _ = std::fs::remove_file(path);
            return Err(WalError::io(path, IoOp::Sync, e));
        }
        sync_dir(dir, fail)?;
    }
    Ok(file)
}
