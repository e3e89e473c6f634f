//! What the two embedded SQLite files (the run store's and the queues')
//! share: how a file is opened, and who checkpoints its write-ahead log.
//!
//! Both run in WAL mode with `synchronous=NORMAL`: a commit appends to the
//! WAL and costs no fsync; the syncs happen at *checkpoints*, when the WAL's
//! pages are copied back into the database (one fsync of the WAL, one of the
//! database). SQLite's default runs a checkpoint inside whichever commit
//! crosses 1,000 WAL pages, i.e. inside a request that happens to be
//! unlucky, while it holds the store's lock: on a shared disk those two
//! syncs took from 1 ms to over a second (docs/benchmarks.md, "serve
//! intake"), and every request queued behind the lock waited with it.
//!
//! So the connections that serve requests never checkpoint
//! (`wal_autocheckpoint=0`), and a [`Checkpointer`] thread with a
//! connection of its own runs `PASSIVE` checkpoints in the background.
//! `PASSIVE` never waits for a lock and never blocks a reader or a writer:
//! commits go on appending to the WAL while it copies, and the next writer
//! after a complete checkpoint starts the WAL from its beginning again, so
//! the file stays bounded by what arrives between two checkpoints.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use rusqlite::Connection;

/// How long a write waits for another connection's write lock.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the checkpointer looks at the WAL. A no-op checkpoint (nothing
/// new since the last one) reads the WAL index and returns without a sync,
/// so looking often is cheap; between two looks the WAL grows by what the
/// writers commit in this time (at 5,000 single-row commits/s, ~15 MB).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Opens `path` (creating it and its directory) for a store: WAL mode,
/// `synchronous=NORMAL`, the busy timeout, and no checkpoints of its own.
/// Pair it with a [`Checkpointer`] on the same path.
pub(super) fn open(path: &Path) -> rusqlite::Result<Connection> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // Reported through rusqlite's error type so both stores keep one
        // error path for opening; the message names the directory.
        std::fs::create_dir_all(dir).map_err(|e| {
            rusqlite::Error::InvalidPath(PathBuf::from(format!("{}: {e}", dir.display())))
        })?;
    }
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // `journal_mode` returns a row, so it is read, not executed.
    let _mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    conn.execute_batch("PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=0;")?;
    Ok(conn)
}

/// An in-memory database for tests and benchmarks: no file, so no WAL and
/// nothing to checkpoint.
pub(super) fn open_in_memory() -> rusqlite::Result<Connection> {
    let conn = Connection::open_in_memory()?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.execute_batch("PRAGMA synchronous=NORMAL;")?;
    Ok(conn)
}

/// Checkpoints one database file's WAL from a background thread for as
/// long as it lives. Dropping it stops the thread and waits for it (at
/// most one checkpoint in progress: the thread waits on a channel that the
/// drop closes, not on a sleep), so a dropped store has closed its file, as
/// it had before there was a thread.
#[derive(Debug)]
pub(super) struct Checkpointer {
    // Never sent on: dropping it is the stop signal.
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            // A panic in the thread was already reported on its way out.
            let _ = thread.join();
        }
    }
}

impl Checkpointer {
    /// Starts the thread. Its connection is opened here, so a file that
    /// cannot be opened is an error at start, not a silent thread exit.
    pub(super) fn start(path: &Path) -> std::io::Result<Self> {
        let conn = Connection::open(path)
            .and_then(|conn| {
                // Reads the file's header: a path that is no database fails
                // here rather than at every tick.
                let _mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
                Ok(conn)
            })
            .map_err(std::io::Error::other)?;
        let (stop, stopped) = mpsc::channel::<()>();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let label = path.display().to_string();
        let thread = std::thread::Builder::new()
            .name(format!("checkpoint {name}"))
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECKPOINT_EVERY) {
                    checkpoint(&conn, &label);
                }
                // The store is gone. Closing the last connection to the file
                // checkpoints and removes the WAL, here as well as anywhere.
            })?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

/// One `PASSIVE` checkpoint. A failure is logged and retried at the next
/// tick: the WAL keeps every commit safe until a checkpoint succeeds, so
/// nothing is lost, the file only grows meanwhile.
fn checkpoint(conn: &Connection, label: &str) {
    // (busy, frames in the WAL, frames checkpointed)
    let result = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
        ))
    });
    match result {
        Ok((_, frames, done)) if frames > done => {
            // Readers still on older snapshots hold back the rest; the
            // next tick copies it.
            tracing::trace!(file = label, frames, done, "partial WAL checkpoint");
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(file = label, error = %e, "WAL checkpoint failed; retrying"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The database file proper: a checkpoint is what moves pages from the
    /// WAL into it, so its size tells whether one ran.
    fn db_bytes(path: &Path) -> u64 {
        std::fs::metadata(path).unwrap().len()
    }

    /// 3,000 commits of a 4 KiB row: past SQLite's default threshold of
    /// 1,000 WAL pages three times over.
    fn write_12_mib(conn: &Connection) {
        conn.execute_batch("CREATE TABLE t (v BLOB)").unwrap();
        for _ in 0..3_000 {
            conn.execute("INSERT INTO t VALUES (zeroblob(4096))", [])
                .unwrap();
        }
    }

    #[test]
    fn sqlites_default_checkpoints_inside_commits() {
        // The contrast the module exists for: without the pragma, commits
        // themselves copy the WAL into the database file (and sync it).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("default.sqlite3");
        let conn = Connection::open(&path).unwrap();
        let _mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .unwrap();
        write_12_mib(&conn);
        assert!(db_bytes(&path) > 4 << 20, "{}", db_bytes(&path));
    }

    #[test]
    fn commits_do_not_checkpoint_and_the_checkpointer_does() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join("db.sqlite3");
        let conn = open(&path).unwrap();
        write_12_mib(&conn);
        assert!(
            db_bytes(&path) < 1 << 20,
            "no commit checkpointed: {} bytes in the database file",
            db_bytes(&path)
        );

        let _checkpointer = Checkpointer::start(&path).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while db_bytes(&path) < 3_000 * 4096 {
            assert!(
                std::time::Instant::now() < deadline,
                "the background checkpoint never ran"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 3_000, "every committed row is still there");
    }

    #[test]
    fn dropping_the_checkpointer_stops_its_thread() {
        let dir = tempfile::tempdir().unwrap();
        // Named so that its thread (`checkpoint <file>`, cut to the 15
        // bytes Linux keeps) is this test's alone.
        let path = dir.path().join("dropped.sqlite3");
        let _conn = open(&path).unwrap();
        let checkpointer = Checkpointer::start(&path).unwrap();
        let threads = || {
            std::fs::read_dir("/proc/self/task")
                .unwrap()
                .filter(|t| {
                    let comm = t.as_ref().unwrap().path().join("comm");
                    std::fs::read_to_string(comm).is_ok_and(|c| c.trim() == "checkpoint drop")
                })
                .count()
        };
        // The thread names itself once it runs.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while threads() == 0 {
            assert!(std::time::Instant::now() < deadline, "no thread started");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(threads(), 1, "one thread, under its file's name");
        drop(checkpointer);
        // The drop joins the thread, but the kernel may list an exited
        // thread a little longer (under ptrace, until the tracer reaps it:
        // tarpaulin). That the drop waits is shown by the queue's
        // newer-schema test, which edits the file right after a drop.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while threads() > 0 {
            assert!(std::time::Instant::now() < deadline, "thread still running");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn a_path_that_is_no_database_is_an_error_at_start() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Checkpointer::start(dir.path()).is_err());
    }
}
