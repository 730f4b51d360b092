//! Typed configuration from environment variables, validated at start-up.
//!
//! Every key is documented in the README with its default. A bad value becomes a [`ConfigError`]
//! naming the key; `main` prints it as one line and exits non-zero.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use entity::crypto::MIN_SECRET_KEY_BYTES;
use url::Url;

/// A value that must never be printed (URLs with passwords, keys).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> std::fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A configuration key with a bad value.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    pub key: &'static str,
    pub message: String,
}

impl ConfigError {
    pub fn new(key: &'static str, message: impl Into<String>) -> Self {
        Self {
            key,
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Limits on GraphQL requests (SPEC §6).
#[derive(Debug, Clone)]
pub struct GraphqlSettings {
    pub max_depth: usize,
    pub max_complexity: usize,
    pub max_body_bytes: usize,
    pub introspection: bool,
    pub graphiql: bool,
    /// Time a WebSocket client has to send `connection_init` (then 4408).
    pub ws_init_timeout: Duration,
    /// Query text the document cache and the persisted-query store may each hold.
    pub document_cache_bytes: usize,
}

/// Where the process keeps its state when no external service is configured.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub database_url: Secret<String>,
    pub database_max_connections: u32,
    pub redis_url: Option<Secret<String>>,
    /// Prepended to every Redis key and channel, so several deployments (or tests) share a server.
    pub redis_prefix: String,
    pub smtp_url: Option<Secret<String>>,
    pub mail_from: String,
    pub public_base_url: Url,
    pub bind_addr: SocketAddr,
    /// `None` until [`Settings::load_secret_key`] has run (it may create a file).
    pub secret_key: Option<Secret<Vec<u8>>>,
    pub log_level: String,
    pub log_format: LogFormat,
    pub graphql: GraphqlSettings,
    pub expiry_interval: Duration,
    /// How often the sweeper looks for emails no queued job will send.
    pub email_sweep_interval: Duration,
    /// How long an email must have been due before the sweeper queues it again.
    pub email_sweep_grace: Duration,
    /// Send attempts before an email is FAILED.
    pub email_max_attempts: u32,
    /// How long one send may take before another worker may retry the delivery.
    pub email_send_lease: Duration,
    /// How long a verified API key is trusted without asking the database; also the longest
    /// time a revoked key keeps working.
    pub api_key_cache_ttl: Duration,
    pub webhooks: WebhookSettings,
}

/// Webhook delivery.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Admit loopback targets (and plain `http` to them): development and tests only.
    pub allow_loopback: bool,
    /// Longest one attempt may take.
    pub timeout: Duration,
    pub max_attempts: u32,
    /// Wait after the first failed attempt; doubles after each further one (capped at 4 h).
    pub first_retry_delay: Duration,
    /// An endpoint whose attempts have all failed for this long is disabled.
    pub disable_after: Duration,
    /// Requests in flight at once per worker process.
    pub concurrency: usize,
    /// How long finished deliveries and their attempts are kept.
    pub retention: Duration,
}

pub const DEFAULT_BIND_ADDR: &str = "127.0.0.1:8080";
pub const SECRET_KEY_FILE: &str = "secret.key";

fn parse_num<T>(
    get: &dyn Fn(&str) -> Option<String>,
    key: &'static str,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let Some(raw) = get(key) else {
        return Ok(default);
    };
    let value: T = raw
        .trim()
        .parse()
        .map_err(|_| ConfigError::new(key, format!("{raw:?} is not a number")))?;
    if !range.contains(&value) {
        return Err(ConfigError::new(
            key,
            format!(
                "{value} is out of range {}..={}",
                range.start(),
                range.end()
            ),
        ));
    }
    Ok(value)
}

fn parse_bool(
    get: &dyn Fn(&str) -> Option<String>,
    key: &'static str,
    default: bool,
) -> Result<bool, ConfigError> {
    match get(key).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if ["1", "true", "yes", "on"].contains(&v.as_str()) => Ok(true),
        Some(v) if ["0", "false", "no", "off"].contains(&v.as_str()) => Ok(false),
        Some(v) => Err(ConfigError::new(key, format!("{v:?} is not true or false"))),
    }
}

/// Checks the shape of a URL without printing it (it may hold a password).
fn check_url(key: &'static str, raw: &str, schemes: &[&str]) -> Result<Url, ConfigError> {
    let url =
        Url::parse(raw).map_err(|e| ConfigError::new(key, format!("not a valid URL ({e})")))?;
    if !schemes.contains(&url.scheme()) {
        return Err(ConfigError::new(
            key,
            format!(
                "scheme {:?} is not supported; use one of {}",
                url.scheme(),
                schemes.join(", ")
            ),
        ));
    }
    Ok(url)
}

impl WebhookSettings {
    pub fn targets(&self) -> entity::webhook::target::TargetPolicy {
        entity::webhook::target::TargetPolicy {
            allow_loopback: self.allow_loopback,
        }
    }
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&|key| std::env::var(key).ok().filter(|v| !v.is_empty()))
    }

    /// Reads configuration through `get`, so tests can pass a map.
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let data_dir = PathBuf::from(get("DATA_DIR").unwrap_or_else(|| "data".to_owned()));

        let database_url = match get("DATABASE_URL") {
            Some(raw) => {
                if raw.starts_with("sqlite:") {
                    if raw
                        .trim_start_matches("sqlite:")
                        .trim_start_matches("//")
                        .is_empty()
                    {
                        return Err(ConfigError::new("DATABASE_URL", "sqlite URL names no file"));
                    }
                } else {
                    let url = check_url("DATABASE_URL", &raw, &["postgres", "postgresql"])?;
                    if url.host_str().unwrap_or_default().is_empty() {
                        return Err(ConfigError::new("DATABASE_URL", "URL has no host"));
                    }
                }
                raw
            }
            None => format!(
                "sqlite://{}?mode=rwc",
                data_dir.join("invitations.db").display()
            ),
        };

        let database_max_connections = parse_num(get, "DATABASE_MAX_CONNECTIONS", 20u32, 2..=1000)?;
        let redis_url = get("REDIS_URL")
            .map(|raw| {
                check_url("REDIS_URL", &raw, &["redis", "rediss"])?;
                Ok(Secret::new(raw))
            })
            .transpose()?;
        let redis_prefix = get("REDIS_KEY_PREFIX").unwrap_or_else(|| "invitations:".into());
        let smtp_url = get("SMTP_URL")
            .map(|raw| {
                check_url("SMTP_URL", &raw, &["smtp", "smtps"])?;
                Ok(Secret::new(raw))
            })
            .transpose()?;
        let mail_from =
            get("MAIL_FROM").unwrap_or_else(|| "Invitations <invitations@localhost>".into());
        if mail_from.parse::<jobs::mailer::Mailbox>().is_err() {
            return Err(ConfigError::new("MAIL_FROM", "not a valid mailbox"));
        }

        let bind_addr: SocketAddr = get("BIND_ADDR")
            .unwrap_or_else(|| DEFAULT_BIND_ADDR.into())
            .parse()
            .map_err(|_| {
                ConfigError::new("BIND_ADDR", "expected host:port, e.g. 127.0.0.1:8080")
            })?;
        let public_base_url = match get("PUBLIC_BASE_URL") {
            Some(raw) => check_url(
                "PUBLIC_BASE_URL",
                raw.trim_end_matches('/'),
                &["http", "https"],
            )?,
            None => Url::parse(&format!("http://{bind_addr}"))
                .map_err(|e| ConfigError::new("PUBLIC_BASE_URL", e.to_string()))?,
        };

        let secret_key = match get("SECRET_KEY") {
            Some(k) if k.len() < MIN_SECRET_KEY_BYTES => {
                return Err(ConfigError::new(
                    "SECRET_KEY",
                    format!("must be at least {MIN_SECRET_KEY_BYTES} characters"),
                ));
            }
            Some(k) => Some(Secret::new(k.into_bytes())),
            None => None,
        };

        let log_level = get("LOG_LEVEL").unwrap_or_else(|| "info".into());
        if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
            return Err(ConfigError::new(
                "LOG_LEVEL",
                format!("{log_level:?} is not a valid filter"),
            ));
        }
        let log_format = match get("LOG_FORMAT").as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError::new(
                    "LOG_FORMAT",
                    format!("{other:?} is not text or json"),
                ));
            }
        };

        let graphql = GraphqlSettings {
            max_depth: parse_num(get, "GRAPHQL_MAX_DEPTH", 12, 2..=64)?,
            max_complexity: parse_num(get, "GRAPHQL_MAX_COMPLEXITY", 5000, 10..=1_000_000)?,
            max_body_bytes: parse_num(
                get,
                "GRAPHQL_MAX_BODY_BYTES",
                256 * 1024,
                1024..=16 * 1024 * 1024,
            )?,
            introspection: parse_bool(get, "GRAPHQL_INTROSPECTION", true)?,
            graphiql: parse_bool(get, "GRAPHQL_GRAPHIQL", true)?,
            ws_init_timeout: Duration::from_secs(parse_num(
                get,
                "GRAPHQL_WS_INIT_TIMEOUT_SECONDS",
                10u64,
                1..=300,
            )?),
            document_cache_bytes: parse_num(
                get,
                "GRAPHQL_DOCUMENT_CACHE_BYTES",
                2 * 1024 * 1024,
                1024..=1024 * 1024 * 1024,
            )?,
        };
        let api_key_cache_ttl =
            Duration::from_secs(parse_num(get, "API_KEY_CACHE_SECONDS", 30u64, 0..=3600)?);
        let expiry_interval = Duration::from_secs(parse_num(
            get,
            "EXPIRY_INTERVAL_SECONDS",
            30u64,
            1..=86_400,
        )?);
        let email_sweep_interval = Duration::from_secs(parse_num(
            get,
            "EMAIL_SWEEP_INTERVAL_SECONDS",
            5u64,
            1..=3600,
        )?);
        let email_sweep_grace = Duration::from_secs(parse_num(
            get,
            "EMAIL_SWEEP_GRACE_SECONDS",
            30u64,
            1..=86_400,
        )?);
        let email_max_attempts = parse_num(get, "EMAIL_MAX_ATTEMPTS", 6u32, 1..=50)?;
        let email_send_lease = Duration::from_secs(parse_num(
            get,
            "EMAIL_SEND_LEASE_SECONDS",
            180u64,
            1..=3600,
        )?);
        let webhooks = WebhookSettings {
            allow_loopback: parse_bool(get, "WEBHOOK_ALLOW_LOOPBACK", false)?,
            timeout: Duration::from_secs(parse_num(get, "WEBHOOK_TIMEOUT_SECONDS", 15u64, 1..=60)?),
            max_attempts: parse_num(get, "WEBHOOK_MAX_ATTEMPTS", 12u32, 1..=30)?,
            first_retry_delay: Duration::from_secs(parse_num(
                get,
                "WEBHOOK_RETRY_FIRST_DELAY_SECONDS",
                15u64,
                1..=3600,
            )?),
            disable_after: Duration::from_secs(parse_num(
                get,
                "WEBHOOK_DISABLE_AFTER_SECONDS",
                432_000u64,
                1..=2_592_000,
            )?),
            concurrency: parse_num(get, "WEBHOOK_CONCURRENCY", 16usize, 1..=256)?,
            retention: Duration::from_secs(parse_num(
                get,
                "WEBHOOK_RETENTION_SECONDS",
                2_592_000u64,
                1..=315_360_000,
            )?),
        };

        Ok(Self {
            data_dir,
            database_url: Secret::new(database_url),
            database_max_connections,
            redis_url,
            redis_prefix,
            smtp_url,
            mail_from,
            public_base_url,
            bind_addr,
            secret_key,
            log_level,
            log_format,
            graphql,
            expiry_interval,
            email_sweep_interval,
            email_sweep_grace,
            email_max_attempts,
            email_send_lease,
            api_key_cache_ttl,
            webhooks,
        })
    }

    pub fn is_sqlite(&self) -> bool {
        self.database_url.expose().starts_with("sqlite:")
    }

    /// Creates the data folder and checks that it is writable.
    pub fn prepare_data_dir(&self) -> Result<(), ConfigError> {
        let fail = |e: std::io::Error| {
            ConfigError::new(
                "DATA_DIR",
                format!("{} is not a writable folder ({e})", self.data_dir.display()),
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
            ConfigError::new(
                "SECRET_KEY",
                format!("not set, and {} cannot be used ({e})", path.display()),
            )
        })?;
        self.secret_key = Some(Secret::new(key));
        Ok(true)
    }

    pub fn outbox_dir(&self) -> PathBuf {
        self.data_dir.join("outbox")
    }

    pub fn queue_db_path(&self) -> PathBuf {
        self.data_dir.join("queue.db")
    }
}

fn read_or_create_key(path: &Path) -> std::io::Result<Vec<u8>> {
    match std::fs::read_to_string(path) {
        Ok(existing) if existing.trim().len() >= MIN_SECRET_KEY_BYTES => {
            return Ok(existing.trim().as_bytes().to_vec());
        }
        Ok(_) => {
            return Err(std::io::Error::other(
                "the file holds a key that is too short",
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let key = entity::crypto::generate_token();
    write_private(path, key.as_bytes())?;
    Ok(key.into_bytes())
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
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_lookup(&|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_are_embedded() {
        let s = load(&[]).unwrap();
        assert!(s.is_sqlite());
        assert!(s.redis_url.is_none() && s.smtp_url.is_none());
        assert_eq!(s.bind_addr.to_string(), DEFAULT_BIND_ADDR);
        assert_eq!(s.public_base_url.as_str(), "http://127.0.0.1:8080/");
    }

    #[test]
    fn each_bad_value_names_its_key() {
        for (key, value) in [
            ("DATABASE_URL", "mysql://x/y"),
            ("DATABASE_URL", "postgres//nohost"),
            ("REDIS_URL", "http://localhost"),
            ("SMTP_URL", "::"),
            ("BIND_ADDR", "localhost"),
            ("PUBLIC_BASE_URL", "ftp://x"),
            ("SECRET_KEY", "short"),
            ("LOG_FORMAT", "xml"),
            ("GRAPHQL_MAX_DEPTH", "1000"),
            ("GRAPHQL_INTROSPECTION", "maybe"),
            ("MAIL_FROM", "not an address"),
            ("WEBHOOK_TIMEOUT_SECONDS", "0"),
            ("WEBHOOK_MAX_ATTEMPTS", "many"),
            ("WEBHOOK_ALLOW_LOOPBACK", "sometimes"),
            ("WEBHOOK_DISABLE_AFTER_SECONDS", "-1"),
        ] {
            let err = load(&[(key, value)]).unwrap_err();
            assert_eq!(err.key, key, "{key}={value}");
        }
    }

    #[test]
    fn secrets_never_print() {
        let s = load(&[
            ("DATABASE_URL", "postgres://u:hunter2@db/x"),
            ("SECRET_KEY", &"k".repeat(40)),
        ])
        .unwrap();
        let printed = format!("{s:?}");
        assert!(!printed.contains("hunter2"));
        assert!(!printed.contains(&"k".repeat(40)));
    }
}
