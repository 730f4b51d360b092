//! Typed configuration from environment variables, validated at start-up.
//!
//! [`Settings`] composes sections: the ones in [`sections`] are `api`'s own, the workers' come
//! from `jobs::settings`. Each section states its defaults once (its `Default`) and parses its
//! keys into the types the code uses. A bad value becomes a [`ConfigError`] naming the key;
//! `main` prints it as one line and exits with code 2. The README documents every key, and a
//! test below holds the README table and the code to the same keys and defaults.

mod sections;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use entity::crypto::MIN_SECRET_KEY_BYTES;
use jobs::conf::{ExposeSecret, SecretString, Vars};
use jobs::settings::{EmailSettings, MailSettings, WebhookSettings, WorkerSettings};
use url::Url;

pub use jobs::conf::ConfigError;
pub use sections::{
    DEFAULT_BIND_ADDR, DatabaseUrl, GraphqlSettings, HttpSettings, LogFilter, LogFormat,
    LogSettings, RedisSettings,
};

use sections::Core;

/// Everything the process is configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the process keeps its state when no external service is configured.
    pub data_dir: PathBuf,
    pub database_url: DatabaseUrl,
    pub database_max_connections: u32,
    pub redis: RedisSettings,
    pub mail: MailSettings,
    pub public_base_url: Url,
    pub bind_addr: SocketAddr,
    /// Where `/metrics`, `/healthz` and `/readyz` are served apart from the API (both roles).
    pub metrics_addr: Option<SocketAddr>,
    /// `None` until [`Settings::load_secret_key`] has run (it may create a file).
    pub secret_key: Option<SecretString>,
    pub log: LogSettings,
    pub graphql: GraphqlSettings,
    pub http: HttpSettings,
    /// How long a verified API key is trusted without asking the database; also the longest
    /// time a revoked key keeps working.
    pub api_key_cache_ttl: Duration,
    pub workers: WorkerSettings,
    pub email: EmailSettings,
    pub webhooks: WebhookSettings,
}

pub const SECRET_KEY_FILE: &str = "secret.key";

impl Settings {
    /// `{PUBLIC_BASE_URL}/p/connect/{publicCompanyId}[/workflow]/{secret}`.
    pub fn magic_link_url(&self, public_company_id: &str, secret: &str, edit: bool) -> String {
        let base = self.public_base_url.as_str().trim_end_matches('/');
        let workflow = if edit { "/workflow" } else { "" };
        format!("{base}/p/connect/{public_company_id}{workflow}/{secret}")
    }

    /// `{PUBLIC_BASE_URL}/p/i/{token}`.
    pub fn invitation_url(&self, token: &str) -> String {
        entity::invitation::page_url(&self.public_base_url, token).into()
    }

    /// Every key the settings read, section by section.
    pub fn keys() -> Vec<&'static str> {
        [
            jobs::conf::keys::<Core>(),
            jobs::conf::keys::<RedisSettings>(),
            jobs::conf::keys::<MailSettings>(),
            jobs::conf::keys::<LogSettings>(),
            jobs::conf::keys::<GraphqlSettings>(),
            jobs::conf::keys::<HttpSettings>(),
            jobs::conf::keys::<WorkerSettings>(),
            jobs::conf::keys::<EmailSettings>(),
            jobs::conf::keys::<WebhookSettings>(),
        ]
        .concat()
    }

    /// Reads the process environment; an empty variable counts as unset.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&|key| std::env::var(key).ok().filter(|v| !v.is_empty()))
    }

    /// Reads configuration through `get`, so tests can pass a map.
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::from_vars(&Vars::lookup(Self::keys(), get))
    }

    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let core: Core = vars.section()?;
        let database_url = core
            .database_url
            .unwrap_or_else(|| DatabaseUrl::embedded(&core.data_dir));
        let public_base_url = match core.public_base_url {
            Some(url) => url,
            None => Url::parse(&format!("http://{}", core.bind_addr)).map_err(|e| {
                ConfigError::caused("PUBLIC_BASE_URL", "cannot be derived from BIND_ADDR", e)
            })?,
        };
        let mail: MailSettings = vars.section()?;
        mail.check()?;
        Ok(Self {
            data_dir: core.data_dir,
            database_url,
            database_max_connections: core.database_max_connections,
            redis: vars.section()?,
            mail,
            public_base_url,
            bind_addr: core.bind_addr,
            metrics_addr: core.metrics_addr,
            secret_key: core.secret_key,
            log: vars.section()?,
            graphql: vars.section()?,
            http: vars.section()?,
            api_key_cache_ttl: core.api_key_cache_ttl,
            workers: vars.section()?,
            email: vars.section()?,
            webhooks: vars.section()?,
        })
    }

    pub fn is_sqlite(&self) -> bool {
        self.database_url.is_sqlite()
    }

    /// Creates the data folder (0700) and checks that it is writable; creates the SQLite files
    /// this process will open there as 0600 before a driver can create them with the umask's
    /// mode (SQLite gives its `-wal` and `-shm` files the database file's mode). The outbox
    /// holds live links and codes, and the databases sealed credentials: no other local user
    /// may read them. Existing entries that are looser are reported, not changed.
    pub fn prepare_data_dir(&self) -> Result<(), ConfigError> {
        let fail = |e: std::io::Error| {
            ConfigError::caused(
                "DATA_DIR",
                format!("{} is not a writable folder", self.data_dir.display()),
                e,
            )
        };
        for loose in private::looser_than_owner(&self.data_dir) {
            tracing::warn!(
                path = %loose.display(),
                "readable or writable by other users; the data folder should be 0700 and its files 0600"
            );
        }
        private::create_dir(&self.data_dir).map_err(fail)?;
        // A name of its own: processes starting together on one folder must not remove each
        // other's probe.
        let probe = self
            .data_dir
            .join(format!(".write-test-{}", unique_suffix()));
        std::fs::write(&probe, b"ok").map_err(fail)?;
        std::fs::remove_file(&probe).map_err(fail)?;
        if self.redis.url.is_none() {
            private::create_file(&self.queue_db_path()).map_err(fail)?;
        }
        if let Some(path) = self.database_url.sqlite_file() {
            private::create_file(&path).map_err(|e| {
                ConfigError::caused(
                    "DATABASE_URL",
                    format!("cannot create {}", path.display()),
                    e,
                )
            })?;
        }
        Ok(())
    }

    /// Uses `SECRET_KEY` when set; otherwise reads or creates `DATA_DIR/secret.key`. Returns
    /// whether the key came from the data folder, so the caller can warn about it.
    pub fn load_secret_key(&mut self) -> Result<bool, ConfigError> {
        if self.secret_key.is_some() {
            return Ok(false);
        }
        let path = self.data_dir.join(SECRET_KEY_FILE);
        let key = read_or_create_key(&path).map_err(|e| {
            ConfigError::caused(
                "SECRET_KEY",
                format!("not set, and {} cannot be used", path.display()),
                e,
            )
        })?;
        self.secret_key = Some(key);
        Ok(true)
    }

    pub fn outbox_dir(&self) -> PathBuf {
        self.data_dir.join("outbox")
    }

    pub fn queue_db_path(&self) -> PathBuf {
        self.data_dir.join("queue.db")
    }
}

fn read_or_create_key(path: &Path) -> std::io::Result<SecretString> {
    if let Some(existing) = read_key(path)? {
        return Ok(existing);
    }
    // Written whole under a name of its own, then linked into place: a process starting at the
    // same moment either wins the link or reads the complete key of the one that did, never a
    // half-written file.
    let key = SecretString::from(entity::crypto::generate_token());
    let draft = path.with_extension(format!("new-{}", unique_suffix()));
    write_private(&draft, key.expose_secret().as_bytes())?;
    let linked = std::fs::hard_link(&draft, path);
    std::fs::remove_file(&draft)?;
    match linked {
        Ok(()) => Ok(key),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_key(path)?
            .ok_or_else(|| std::io::Error::other("the key file vanished while it was read")),
        Err(e) => Err(e),
    }
}

/// The key in `path`, `None` when there is no such file.
fn read_key(path: &Path) -> std::io::Result<Option<SecretString>> {
    match std::fs::read_to_string(path).map(SecretString::from) {
        Ok(existing) => {
            let key = existing.expose_secret().trim();
            if key.len() < MIN_SECRET_KEY_BYTES {
                return Err(std::io::Error::other(
                    "the file holds a key that is too short",
                ));
            }
            Ok(Some(SecretString::from(key)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// `pid-random`, for file names no other process uses.
fn unique_suffix() -> String {
    format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple())
}

#[cfg(unix)]
pub mod private {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    use std::path::{Path, PathBuf};

    /// Creates `path` (and missing parents) as 0700; an existing folder is left as it is.
    pub fn create_dir(path: &Path) -> std::io::Result<()> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
    }

    /// Creates `path` empty as 0600 unless it exists.
    pub fn create_file(path: &Path) -> std::io::Result<()> {
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
            .map(drop)
    }

    /// `path` and the entries directly inside it (and inside `outbox/`, first entries only)
    /// that other users may read or write.
    pub fn looser_than_owner(path: &Path) -> Vec<PathBuf> {
        let loose = |p: &Path| {
            std::fs::symlink_metadata(p).is_ok_and(|m| m.permissions().mode() & 0o077 != 0)
        };
        let mut found: Vec<PathBuf> = Vec::new();
        let mut look = |dir: &Path, limit: usize| {
            if let Ok(entries) = std::fs::read_dir(dir) {
                found.extend(
                    entries
                        .filter_map(Result::ok)
                        .map(|e| e.path())
                        .filter(|p| loose(p))
                        .take(limit),
                );
            }
        };
        look(path, usize::MAX);
        look(&path.join("outbox"), 10);
        if loose(path) {
            found.insert(0, path.to_owned());
        }
        found
    }
}

#[cfg(not(unix))]
pub mod private {
    use std::path::{Path, PathBuf};

    pub fn create_dir(path: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(path)
    }

    pub fn create_file(path: &Path) -> std::io::Result<()> {
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .map(drop)
    }

    pub fn looser_than_owner(_: &Path) -> Vec<PathBuf> {
        Vec::new()
    }
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests;
