//! The sections `api` itself reads. Each default is stated once, in the section's `Default`;
//! the two that derive from another key (`DATABASE_URL`, `PUBLIC_BASE_URL`) are resolved in
//! [`super::Settings::from_vars`].

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use entity::crypto::MIN_SECRET_KEY_BYTES;
use jobs::conf::{ExposeSecret, SecretString};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{Directive, LevelFilter};
use url::Url;

pub const DEFAULT_BIND_ADDR: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080));

/// The keys of the composition root: where state lives, where to listen, the key.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub(super) struct Core {
    #[serde(rename = "DATA_DIR")]
    pub data_dir: PathBuf,
    /// `None`: the embedded SQLite file in `data_dir`.
    #[serde(rename = "DATABASE_URL", deserialize_with = "database_url")]
    pub database_url: Option<DatabaseUrl>,
    #[serde(
        rename = "DATABASE_MAX_CONNECTIONS",
        deserialize_with = "jobs::conf::de::number::<_, _, 2, 1000>"
    )]
    pub database_max_connections: u32,
    #[serde(rename = "BIND_ADDR", deserialize_with = "bind_addr")]
    pub bind_addr: SocketAddr,
    /// `None`: `/metrics` on the public port (`serve`), nothing to scrape (`worker`).
    #[serde(rename = "METRICS_ADDR", deserialize_with = "metrics_addr")]
    pub metrics_addr: Option<SocketAddr>,
    /// `None`: `http://{bind_addr}`.
    #[serde(rename = "PUBLIC_BASE_URL", deserialize_with = "public_base_url")]
    pub public_base_url: Option<Url>,
    /// `None`: read or created in `data_dir` at start.
    #[serde(rename = "SECRET_KEY", deserialize_with = "secret_key")]
    pub secret_key: Option<SecretString>,
    #[serde(
        rename = "API_KEY_CACHE_SECONDS",
        deserialize_with = "jobs::conf::de::seconds::<_, 0, 3600>"
    )]
    pub api_key_cache_ttl: Duration,
}

impl Default for Core {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
            database_url: None,
            database_max_connections: 20,
            bind_addr: DEFAULT_BIND_ADDR,
            metrics_addr: None,
            public_base_url: None,
            secret_key: None,
            api_key_cache_ttl: Duration::from_secs(30),
        }
    }
}

fn database_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DatabaseUrl>, D::Error> {
    jobs::conf::de::parsed(d).map(Some)
}

fn bind_addr<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    jobs::conf::de::parsed::<D, SocketAddr>(d)
        .map_err(|_| D::Error::custom("expected host:port, e.g. 127.0.0.1:8080"))
}

fn metrics_addr<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    bind_addr(d).map(Some)
}

fn public_base_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Url>, D::Error> {
    let raw = String::deserialize(d)?;
    jobs::conf::de::url(raw.trim_end_matches('/'), &["http", "https"])
        .map(Some)
        .map_err(D::Error::custom)
}

fn secret_key<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
    let key = SecretString::from(String::deserialize(d)?);
    if key.expose_secret().len() < MIN_SECRET_KEY_BYTES {
        return Err(D::Error::custom(format!(
            "must be at least {MIN_SECRET_KEY_BYTES} characters"
        )));
    }
    Ok(Some(key))
}

/// `DATABASE_URL`, checked. A PostgreSQL URL may carry a password, so it stays secret; a
/// SQLite URL names a file and may be printed.
#[derive(Debug, Clone)]
pub enum DatabaseUrl {
    Sqlite(String),
    Postgres(SecretString),
}

impl DatabaseUrl {
    /// The embedded default: `invitations.db` in the data folder.
    pub(super) fn embedded(data_dir: &Path) -> Self {
        Self::Sqlite(format!(
            "sqlite://{}?mode=rwc",
            data_dir.join("invitations.db").display()
        ))
    }

    /// The URL as the driver takes it.
    pub fn expose(&self) -> &str {
        match self {
            Self::Sqlite(url) => url,
            Self::Postgres(url) => url.expose_secret(),
        }
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self, Self::Sqlite(_))
    }

    /// The file a SQLite URL names (not for `:memory:`).
    pub fn sqlite_file(&self) -> Option<PathBuf> {
        let Self::Sqlite(url) = self else {
            return None;
        };
        let rest = url.strip_prefix("sqlite:")?;
        let path = rest.strip_prefix("//").unwrap_or(rest);
        let path = path.split('?').next().unwrap_or_default();
        (!path.is_empty() && !path.starts_with(':')).then(|| PathBuf::from(path))
    }
}

impl FromStr for DatabaseUrl {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        if let Some(rest) = raw.strip_prefix("sqlite:") {
            if rest.trim_start_matches("//").is_empty() {
                return Err("sqlite URL names no file".into());
            }
            return Ok(Self::Sqlite(raw.to_owned()));
        }
        let url = jobs::conf::de::url(raw, &["postgres", "postgresql"])?;
        if url.host_str().unwrap_or_default().is_empty() {
            return Err("URL has no host".into());
        }
        Ok(Self::Postgres(SecretString::from(raw)))
    }
}

/// Redis, when configured.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RedisSettings {
    /// `redis://…` or `rediss://…`: job queues and live events go through Redis; `None` uses
    /// the embedded queue.
    #[serde(rename = "REDIS_URL", deserialize_with = "redis_url")]
    pub url: Option<SecretString>,
    /// Prepended to every Redis key and channel, so several deployments (or tests) share a
    /// server.
    #[serde(rename = "REDIS_KEY_PREFIX")]
    pub key_prefix: String,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: None,
            key_prefix: "invitations:".into(),
        }
    }
}

fn redis_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
    jobs::conf::de::secret_url(d, &["redis", "rediss"]).map(Some)
}

/// Logs.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LogSettings {
    #[serde(rename = "LOG_LEVEL", deserialize_with = "jobs::conf::de::parsed")]
    pub level: LogFilter,
    #[serde(rename = "LOG_FORMAT", deserialize_with = "jobs::conf::de::parsed")]
    pub format: LogFormat,
    /// OTLP/HTTP collector base URL (`/v1/traces` is appended); `None`: no trace is exported.
    #[serde(
        rename = "OTEL_EXPORTER_OTLP_ENDPOINT",
        deserialize_with = "otlp_endpoint"
    )]
    pub otlp_endpoint: Option<Url>,
    /// `service.name` of the exported spans.
    #[serde(rename = "OTEL_SERVICE_NAME")]
    pub service_name: String,
}

fn otlp_endpoint<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Url>, D::Error> {
    let raw = String::deserialize(d)?;
    jobs::conf::de::url(raw.trim_end_matches('/'), &["http", "https"])
        .map(Some)
        .map_err(D::Error::custom)
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            level: LogFilter(vec![LevelFilter::INFO.into()]),
            format: LogFormat::Text,
            otlp_endpoint: None,
            service_name: "invitations".to_owned(),
        }
    }
}

/// The directives of a `tracing` filter (`info,sqlx=warn`), parsed once. An `EnvFilter` is
/// built from them when the subscriber is installed (it cannot be cloned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFilter(Vec<Directive>);

impl LogFilter {
    pub fn to_env_filter(&self) -> EnvFilter {
        self.0
            .iter()
            .cloned()
            .fold(EnvFilter::default(), EnvFilter::add_directive)
    }
}

impl FromStr for LogFilter {
    type Err = String;

    /// Comma-separated directives, as `EnvFilter` reads them.
    fn from_str(raw: &str) -> Result<Self, String> {
        raw.split(',')
            .filter(|s| !s.is_empty())
            .map(Directive::from_str)
            .collect::<Result<_, _>>()
            .map(Self)
            .map_err(|_| format!("{raw:?} is not a valid filter"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        match raw {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!("{other:?} is not text or json")),
        }
    }
}

/// Limits on GraphQL requests (SPEC §6).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct GraphqlSettings {
    #[serde(
        rename = "GRAPHQL_MAX_DEPTH",
        deserialize_with = "jobs::conf::de::number::<_, _, 2, 64>"
    )]
    pub max_depth: usize,
    #[serde(
        rename = "GRAPHQL_MAX_COMPLEXITY",
        deserialize_with = "jobs::conf::de::number::<_, _, 10, 1_000_000>"
    )]
    pub max_complexity: usize,
    #[serde(
        rename = "GRAPHQL_MAX_BODY_BYTES",
        deserialize_with = "jobs::conf::de::number::<_, _, 1024, { 16 * 1024 * 1024 }>"
    )]
    pub max_body_bytes: usize,
    #[serde(
        rename = "GRAPHQL_INTROSPECTION",
        deserialize_with = "jobs::conf::de::flag"
    )]
    pub introspection: bool,
    #[serde(rename = "GRAPHQL_GRAPHIQL", deserialize_with = "jobs::conf::de::flag")]
    pub graphiql: bool,
    /// Time a WebSocket client has to send `connection_init` (then 4408).
    #[serde(
        rename = "GRAPHQL_WS_INIT_TIMEOUT_SECONDS",
        deserialize_with = "jobs::conf::de::seconds::<_, 1, 300>"
    )]
    pub ws_init_timeout: Duration,
    /// Query text the document cache and the persisted-query store may each hold.
    #[serde(
        rename = "GRAPHQL_DOCUMENT_CACHE_BYTES",
        deserialize_with = "jobs::conf::de::number::<_, _, 1024, { 1024 * 1024 * 1024 }>"
    )]
    pub document_cache_bytes: usize,
}

impl Default for GraphqlSettings {
    fn default() -> Self {
        Self {
            max_depth: 12,
            max_complexity: 5000,
            max_body_bytes: 256 * 1024,
            introspection: true,
            graphiql: true,
            ws_init_timeout: Duration::from_secs(10),
            document_cache_bytes: 2 * 1024 * 1024,
        }
    }
}

/// The HTTP server's own limits, and whose forwarding headers it believes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct HttpSettings {
    /// Time a client has to send a request's headers; also how long a keep-alive connection
    /// may sit idle between requests.
    #[serde(
        rename = "HTTP_HEADER_TIMEOUT_SECONDS",
        deserialize_with = "jobs::conf::de::seconds::<_, 1, 300>"
    )]
    pub header_timeout: Duration,
    /// Longest time from the end of the headers to the response (body upload included).
    #[serde(
        rename = "HTTP_REQUEST_TIMEOUT_SECONDS",
        deserialize_with = "jobs::conf::de::seconds::<_, 1, 3600>"
    )]
    pub request_timeout: Duration,
    /// Open HTTP connections at once; further clients wait in the listen backlog.
    #[serde(
        rename = "HTTP_MAX_CONNECTIONS",
        deserialize_with = "jobs::conf::de::number::<_, _, 1, 1_000_000>"
    )]
    pub max_connections: usize,
    /// Proxies whose `Forwarded` / `X-Forwarded-For` name the client; empty: nobody's.
    #[serde(
        rename = "TRUSTED_PROXIES",
        deserialize_with = "jobs::conf::de::parsed"
    )]
    pub trusted_proxies: crate::client::TrustedProxies,
    /// Counters each in-process rate limit keeps before evicting the least recently used.
    #[serde(
        rename = "RATE_LIMIT_MAX_KEYS",
        deserialize_with = "jobs::conf::de::number::<_, _, 100, 100_000_000>"
    )]
    pub rate_limit_max_keys: u64,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 4096,
            trusted_proxies: crate::client::TrustedProxies::default(),
            rate_limit_max_keys: 100_000,
        }
    }
}
