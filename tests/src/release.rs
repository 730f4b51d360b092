//! The release build of the `invitations` binary, for benchmarks that run it as its own process.

use std::path::PathBuf;

/// Builds (if needed) and returns `target/release/invitations`; benchmarks run from
/// `target/release/deps`, so the binary sits one folder up.
pub fn binary() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = std::process::Command::new(cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "api",
            "--bin",
            "invitations",
        ])
        .status()
        .expect("run cargo build");
    assert!(status.success(), "cargo build --release failed");
    let exe = std::env::current_exe().expect("current executable");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target/release")
        .join("invitations")
}
