//! Failure injection for tests (`cfg(test)` or the `failpoints` feature).
//! Without either, [`FailPoints`] is a zero-sized no-op that the optimizer
//! removes.

use std::io;

use crate::error::IoOp;

#[cfg(any(test, feature = "failpoints"))]
mod imp {
    use std::sync::Arc;

    use parking_lot::Mutex;

    use super::*;

    /// A shared handle that makes upcoming file-system operations of one WAL
    /// fail with an injected `io::Error` (e.g. `libc::ENOSPC`), to test the
    /// failure paths without filling a disk.
    ///
    /// Injected failures are consumed in FIFO order per [`IoOp`]. Sites that
    /// honour them: `Write` (records and headers; an injected record write
    /// first writes the first half of the buffer, like a real short write),
    /// `Sync`, `SyncDir`, `Truncate`, `Create`, `Remove`.
    #[derive(Clone, Default, Debug)]
    pub struct FailPoints {
        pending: Arc<Mutex<Vec<(IoOp, i32)>>>,
    }

    impl FailPoints {
        pub(crate) fn new() -> Self {
            Self::default()
        }

        /// The next `op` fails with `io::Error::from_raw_os_error(errno)`.
        pub fn fail_next(&self, op: IoOp, errno: i32) {
            self.pending.lock().push((op, errno));
        }

        /// Drops every pending injected failure.
        pub fn clear(&self) {
            self.pending.lock().clear();
        }

        /// Number of injected failures not yet consumed.
        pub fn pending(&self) -> usize {
            self.pending.lock().len()
        }

        pub(crate) fn check(&self, op: IoOp) -> io::Result<()> {
            let mut p = self.pending.lock();
            match p.iter().position(|(o, _)| *o == op) {
                Some(i) => Err(io::Error::from_raw_os_error(p.remove(i).1)),
                None => Ok(()),
            }
        }
    }
}

#[cfg(not(any(test, feature = "failpoints")))]
mod imp {
    use super::*;

    #[derive(Clone, Default, Debug)]
    pub struct FailPoints;

    impl FailPoints {
        pub(crate) fn new() -> Self {
            FailPoints
        }

        #[inline(always)]
        pub(crate) fn check(&self, _op: IoOp) -> io::Result<()> {
            Ok(())
        }
    }
}

pub use imp::FailPoints;
