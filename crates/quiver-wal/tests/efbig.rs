//! A real EFBIG from `setrlimit(RLIMIT_FSIZE)`, in a child process (the limit
//! and the SIGXFSZ disposition are process-wide): the commit fails clearly,
//! `apply` is not called, no LSN is consumed, the file is truncated back,
//! and once the limit is lifted commits continue.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use quiver_wal::{Committer, IoOp, Wal, WalError, WalOptions};

const ENV: &str = "QUIVER_WAL_EFBIG_CHILD_DIR";

#[test]
fn efbig_from_rlimit_fsize_in_child_process() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut wal = open(dir.path(), WalOptions::default());
        for i in 0..5 {
            wal.append(&payload(i, 100)).unwrap();
        }
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "efbig_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ENV, dir.path())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("CHILD OK"),
        "child failed:\n{text}"
    );
    let (wal, report) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    assert!(
        report.torn_tail.is_none(),
        "the failed write was truncated away"
    );
    let got = read_all(&wal);
    let mut expect: Vec<(u64, Vec<u8>)> = (0..5).map(|i| (i + 1, payload(i, 100))).collect();
    expect.push((6, b"small".to_vec()));
    expect.push((7, vec![8; 200]));
    assert_eq!(got, expect);
}

fn set_fsize_limit(soft: libc::rlim_t) -> libc::rlim_t {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit struct.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_FSIZE, &mut lim) }, 0);
    let old = lim.rlim_cur;
    lim.rlim_cur = soft.min(lim.rlim_max);
    // SAFETY: `lim` is a valid rlimit struct; lowering/raising the soft
    // limit up to the hard limit needs no privilege.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &lim) }, 0);
    old
}

#[test]
#[ignore = "child process of efbig_from_rlimit_fsize_in_child_process"]
fn efbig_child() {
    let Some(dir) = std::env::var_os(ENV) else {
        return;
    };
    // SAFETY: ignoring SIGXFSZ makes writes past RLIMIT_FSIZE fail with
    // EFBIG instead of killing the process; no handler code is involved.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let wal = open(dir.as_ref(), WalOptions::default());
    let size = wal.segments().last().unwrap().bytes;
    let path = wal.segments().last().unwrap().path.clone();
    let applied: Arc<Mutex<Vec<u64>>> = Arc::default();
    let a = applied.clone();
    let c = Committer::new(wal, move |g: &[(u64, u64)]| {
        a.lock().unwrap().extend(g.iter().map(|(lsn, _)| *lsn))
    });
    let old = set_fsize_limit(size + 50);
    let err = c.commit(vec![7; 200], 0).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EFBIG), "{err}");
    assert!(matches!(
        err,
        WalError::Io {
            op: IoOp::Write,
            ..
        }
    ));
    let msg = err.to_string();
    assert!(
        msg.contains("File too large") && msg.contains("write"),
        "{msg}"
    );
    eprintln!("got: {msg}");
    assert!(applied.lock().unwrap().is_empty(), "apply must not run");
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        size,
        "truncated back"
    );
    assert!(c.poisoned().is_none());
    // A record that fits under the limit gets the LSN the failed one would
    // have had.
    assert_eq!(c.commit(b"small".to_vec(), 1).unwrap(), 6);
    set_fsize_limit(old);
    assert_eq!(c.commit(vec![8; 200], 2).unwrap(), 7);
    assert_eq!(*applied.lock().unwrap(), [6, 7]);
    println!("CHILD OK");
}
