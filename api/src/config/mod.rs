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
    DEFAULT_BIND_ADDR, DatabaseUrl, GraphqlSettings, LogFilter, LogFormat, LogSettings,
    RedisSettings,
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
    /// `None` until [`Settings::load_secret_key`] has run (it may create a file).
    pub secret_key: Option<SecretString>,
    pub log: LogSettings,
    pub graphql: GraphqlSettings,
    /// How long a verified API key is trusted without asking the database; also the longest
    /// time a revoked key keeps working.
    pub api_key_cache_ttl: Duration,
    pub workers: WorkerSettings,
    pub email: EmailSettings,
    pub webhooks: WebhookSettings,
}

pub const SECRET_KEY_FILE: &str = "secret.key";

impl Settings {
    /// Every key the settings read, section by section.
    pub fn keys() -> Vec<&'static str> {
        [
            jobs::conf::keys::<Core>(),
            jobs::conf::keys::<RedisSettings>(),
            jobs::conf::keys::<MailSettings>(),
            jobs::conf::keys::<LogSettings>(),
            jobs::conf::keys::<GraphqlSettings>(),
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
        Ok(Self {
            data_dir: core.data_dir,
            database_url,
            database_max_connections: core.database_max_connections,
            redis: vars.section()?,
            mail: vars.section()?,
            public_base_url,
            bind_addr: core.bind_addr,
            secret_key: core.secret_key,
            log: vars.section()?,
            graphql: vars.section()?,
            api_key_cache_ttl: core.api_key_cache_ttl,
            workers: vars.section()?,
            email: vars.section()?,
            webhooks: vars.section()?,
        })
    }

    pub fn is_sqlite(&self) -> bool {
        self.database_url.is_sqlite()
    }

    /// Creates the data folder and checks that it is writable.
    pub fn prepare_data_dir(&self) -> Result<(), ConfigError> {
        let fail = |e: std::io::Error| {
            ConfigError::caused(
                "DATA_DIR",
                format!("{} is not a writable folder", self.data_dir.display()),
                e,
            )
        };
        std::fs::create_dir_all(&self.data_dir).map_err(fail)?;
        let probe = self.data_dir.join(".write-test");
        std::fs::write(&probe, b"ok").map_err(fail)?;
        std::fs::remove_file(&probe).map_err(fail)?;
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
    match std::fs::read_to_string(path).map(SecretString::from) {
        Ok(existing) => {
            let key = existing.expose_secret().trim();
            if key.len() < MIN_SECRET_KEY_BYTES {
                return Err(std::io::Error::other(
                    "the file holds a key that is too short",
                ));
            }
            return Ok(SecretString::from(key));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let key = SecretString::from(entity::crypto::generate_token());
    write_private(path, key.expose_secret().as_bytes())?;
    Ok(key)
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
    file.write_all(bytes)
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests;
