//! The release build of the `invitations` binary, for benchmarks that run it as its own process.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// `target/release/invitations`, built by `tests/bench/run` before the benchmark starts:
/// benchmarks run from `target/release/deps`, so the binary sits one folder up. (It cannot be
/// built from here: `cargo bench` holds the build folder's lock while the benchmark runs.)
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current executable");
    let binary = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/release")
        .join("invitations");
    assert!(
        binary.exists(),
        "{} is missing: run benchmarks with tests/bench/run NAME, which builds it first",
        binary.display()
    );
    binary
}

/// This process's limit on open files (`Max open files` of `/proc/self/limits`), 0 if unknown.
pub fn open_files_limit() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Installs Debian's `package` with apt-get when `program` does not run (`program --version`);
/// panics with what to do when that fails.
pub fn require_tool(program: &str, package: &str) {
    if Command::new(program).arg("--version").output().is_ok() {
        return;
    }
    let installed = Command::new("apt-get")
        .args(["update", "-qq"])
        .status()
        .and_then(|_| {
            Command::new("apt-get")
                .args(["install", "-y", "-qq", package])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status()
        });
    assert!(
        matches!(installed, Ok(s) if s.success()),
        "{program} is needed and `apt-get install {package}` failed: install it and run again"
    );
}

/// A free TCP port on 127.0.0.1 (taken by binding port 0 and letting go of it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a loopback port")
        .port()
}

/// Resident memory of process `pid` in KiB (`VmRSS` of `/proc/{pid}/status`), 0 if unknown.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A release `invitations serve --no-workers` process on a free loopback port. Dropping it
/// kills the process and removes its data folder, so a benchmark that panics leaves no server
/// behind.
pub struct Server {
    exe: PathBuf,
    child: Child,
    base: String,
    env: Vec<(String, String)>,
    data_dir: PathBuf,
}

impl Server {
    /// Starts the server with a fresh `DATA_DIR`, a fixed `SECRET_KEY`, `LOG_LEVEL=error`,
    /// `BIND_ADDR` and `PUBLIC_BASE_URL` on a free port, and `env` on top (at least
    /// `DATABASE_URL`); waits until `/readyz` answers 200, which is after the migrations.
    pub async fn start(env: &[(&str, &str)]) -> Self {
        Self::start_binary(binary(), env).await
    }

    /// [`Server::start`] with another build of `invitations` (a benchmark's baseline).
    pub async fn start_binary(exe: PathBuf, env: &[(&str, &str)]) -> Self {
        Self::start_under(&[], exe, env).await
    }

    /// [`Server::start_binary`] run by `launcher` (a program and its arguments, e.g. valgrind's,
    /// the server's command line appended); [`Server::cli`] still runs the binary itself. Waits
    /// up to three minutes for readiness: under valgrind start-up is many times slower.
    pub async fn start_under(launcher: &[String], exe: PathBuf, env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let data_dir = std::env::temp_dir().join(format!(
            "invitations-bench-{}",
            uuid::Uuid::now_v7().simple()
        ));
        let mut all = vec![
            ("DATA_DIR".to_owned(), data_dir.display().to_string()),
            (
                "SECRET_KEY".to_owned(),
                "bench-secret-key-that-is-long-enough-0123456789".to_owned(),
            ),
            ("BIND_ADDR".to_owned(), format!("127.0.0.1:{port}")),
            ("PUBLIC_BASE_URL".to_owned(), base.clone()),
            ("LOG_LEVEL".to_owned(), "error".to_owned()),
        ];
        all.extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let mut command = match launcher.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(&exe);
                command
            }
            None => Command::new(&exe),
        };
        let child = command
            .args(["serve", "--no-workers"])
            .env_clear()
            .envs(all.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .spawn()
            .expect("start the release server");
        let server = Self {
            exe,
            child,
            base,
            env: all,
            data_dir,
        };
        let ready = format!("{}/readyz", server.base);
        crate::poll::eventually("the server to be ready", Duration::from_secs(180), || {
            let url = ready.clone();
            async move {
                reqwest::get(url)
                    .await
                    .ok()
                    .filter(|r| r.status() == 200)
                    .map(|_| ())
            }
        })
        .await;
        server
    }

    /// `http://127.0.0.1:{port}`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The process id, e.g. for [`rss_kib`].
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Runs the binary's command line (`org create NAME --json`, …) with the server's
    /// environment and returns what it printed; panics if it fails.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(&self.exe)
            .args(args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stderr(Stdio::inherit())
            .output()
            .expect("run the release binary");
        assert!(out.status.success(), "invitations {args:?} failed");
        String::from_utf8(out.stdout).expect("UTF-8 output")
    }
}

impl Server {
    /// A new organization made with the command line, a GraphQL client with its API key, and
    /// the id of one company it created ("Bench Company").
    pub async fn organization_with_company(&self) -> (crate::graphql::Gql, serde_json::Value) {
        let created: serde_json::Value =
            serde_json::from_str(&self.cli(&["org", "create", "Bench", "--json"]))
                .expect("`org create --json` prints JSON");
        let gql = crate::graphql::Gql::new(self.base())
            .with_api_key(created["apiKey"].as_str().expect("an API key"));
        let company = gql
            .query(
                "mutation { createCompany(input: { name: \"Bench Company\" }) { id } }",
                serde_json::json!({}),
            )
            .await
            .data()["createCompany"]["id"]
            .clone();
        (gql, company)
    }

    /// Starts `invitations worker` with the server's environment plus `extra`; the caller
    /// stops it.
    pub fn worker(&self, extra: &[(&str, &str)]) -> Child {
        Command::new(&self.exe)
            .arg("worker")
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(extra.iter().copied())
            .stdout(Stdio::null())
            .spawn()
            .expect("start a release worker")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}
