//! The runtime a host's background work runs on, apart from its front door.
//!
//! `testexec serve` answers requests and runs the pipeline in one process.
//! On one shared runtime a request that arrives while both worker threads
//! are busy planning, collecting or rendering a report waits in the same
//! task queues as that work, and the test commands the workers start compete
//! with it for the cores at the same priority: acknowledgements then take as
//! long as the slowest background step in front of them (docs/benchmarks.md,
//! "serve intake"). So the pipeline gets a runtime of its own whose threads
//! run at a lower CPU priority: the kernel gives the front door's threads a
//! core whenever they have work, and the pipeline everything else. Children
//! inherit the priority of the thread that starts them, so test commands
//! run at it too; on an idle machine that changes nothing.

use std::io;

/// The nice value of background threads: the kernel weighs a nice-0 thread
/// about 9× a nice-10 one when both want a core.
pub const BACKGROUND_NICE: i32 = 10;

/// A multi-thread runtime with `threads` workers (and its blocking pool)
/// at [`BACKGROUND_NICE`], named `testexec-work`.
pub fn background_runtime(threads: usize) -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .thread_name("testexec-work")
        .on_thread_start(lower_this_threads_priority)
        .enable_all()
        .build()
}

/// Linux keeps a nice value per thread, so this lowers only the calling
/// thread (and what it starts later). Elsewhere `setpriority` would lower
/// the whole process, front door included, so it does nothing there.
fn lower_this_threads_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid has no arguments; setpriority reads three integers.
        let lowered = unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, BACKGROUND_NICE)
        };
        if lowered != 0 {
            // Raising a nice value needs no privilege; if it still fails the
            // work runs at normal priority, which is only slower to answer.
            tracing::debug!(error = %io::Error::last_os_error(), "could not lower a background thread's priority");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn background_threads_and_their_children_run_at_the_lower_priority() {
        fn nice_of(stat: &str) -> i32 {
            // Field 19 of /proc/<pid>/stat, counted after the `(comm)`.
            let after = &stat[stat.rfind(')').unwrap() + 2..];
            after.split(' ').nth(16).unwrap().parse().unwrap()
        }
        let runtime = background_runtime(1).unwrap();
        let (worker, child) = runtime.block_on(async {
            tokio::spawn(async {
                let tid = unsafe { libc::gettid() };
                let me = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
                let out = tokio::process::Command::new("cat")
                    .arg("/proc/self/stat")
                    .output()
                    .await
                    .unwrap();
                (nice_of(&me), nice_of(&String::from_utf8(out.stdout).unwrap()))
            })
            .await
            .unwrap()
        });
        assert_eq!(worker, BACKGROUND_NICE, "the worker thread");
        assert_eq!(child, BACKGROUND_NICE, "a command it starts");
        let tid = unsafe { libc::gettid() };
        let caller = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
        assert_eq!(nice_of(&caller), 0, "the thread that built it is untouched");
    }
}
