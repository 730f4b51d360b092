//! Instructions a server process executes, counted by valgrind's callgrind.
//!
//! A count is repeatable for the same binary, requests and data whatever else the machine is
//! doing, so a change of a few percent shows where request rates on two shared cores vary by
//! more from one run to the next. It counts user-space instructions only: time in the kernel,
//! waiting on the database and cache misses are not in it, so it complements the wall-clock
//! figures and does not replace them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// One process run under callgrind, its counts written to files next to `out`.
pub struct Callgrind {
    out: PathBuf,
}

impl Callgrind {
    /// Counts go to `dir/{name}.callgrind` and its numbered dumps. Installs valgrind with
    /// apt-get when it is missing.
    pub fn new(dir: &Path, name: &str) -> Self {
        crate::release::require_tool("valgrind", "valgrind");
        Self {
            out: dir.join(format!("{name}.callgrind")),
        }
    }

    /// The launcher for [`crate::release::Server::start_under`].
    pub fn launcher(&self) -> Vec<String> {
        vec![
            "valgrind".to_owned(),
            "--tool=callgrind".to_owned(),
            "--quiet".to_owned(),
            format!("--callgrind-out-file={}", self.out.display()),
        ]
    }

    /// Instructions process `pid` (started with [`Callgrind::launcher`]) executes while `work`
    /// runs: its counters are zeroed before and dumped after.
    pub async fn instructions(&self, pid: u32, work: impl Future<Output = ()>) -> u64 {
        control(pid, "--zero");
        work.await;
        let before = self.dumps();
        control(pid, "--dump");
        let dump = crate::poll::eventually("callgrind's dump", Duration::from_secs(60), || {
            let new = self.dumps().into_iter().find(|d| !before.contains(d));
            async move { new }
        })
        .await;
        // The file is complete once its totals line is written.
        crate::poll::eventually("callgrind's totals", Duration::from_secs(60), || {
            let total = totals(&dump);
            async move { total }
        })
        .await
    }

    /// The dump files written so far (`{out}.1`, `{out}.2`, …).
    fn dumps(&self) -> Vec<PathBuf> {
        let name = self.out.file_name().unwrap().to_string_lossy().into_owned();
        let dir = self.out.parent().unwrap();
        std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_prefix(&name))
                    .and_then(|n| n.strip_prefix('.'))
                    .is_some_and(|n| n.parse::<u32>().is_ok())
            })
            .collect()
    }
}

/// Sends `command` to the callgrind of `pid` and checks it was taken.
fn control(pid: u32, command: &str) {
    let out = Command::new("callgrind_control")
        .args([command, &pid.to_string()])
        .output()
        .expect("run callgrind_control (package valgrind)");
    assert!(
        out.status.success(),
        "callgrind_control {command} {pid} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The instruction total of a dump, once its `totals:` (or `summary:`) line is there.
fn totals(dump: &Path) -> Option<u64> {
    std::fs::read_to_string(dump)
        .ok()?
        .lines()
        .find_map(|l| {
            l.strip_prefix("totals:")
                .or_else(|| l.strip_prefix("summary:"))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}
