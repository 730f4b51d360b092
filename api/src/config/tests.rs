#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::*;

fn load(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Settings::from_lookup(&|k| map.get(k).cloned())
}

/// The README's configuration table: key -> default cell.
fn readme_table() -> BTreeMap<String, String> {
    let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"));
    let section = readme
        .split("\n## Configuration\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .unwrap();
    let mut table = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split(" | ").collect();
        let key = cells[0].trim_start_matches("| ").trim_matches('`');
        let fresh = table.insert(key.to_owned(), cells[1].trim().to_owned());
        assert!(fresh.is_none(), "{key} is documented twice");
    }
    table
}

#[test]
fn defaults_are_embedded() {
    let s = load(&[]).unwrap();
    assert!(s.is_sqlite());
    assert!(s.redis.url.is_none() && s.mail.smtp_url.is_none());
    assert_eq!(s.bind_addr, DEFAULT_BIND_ADDR);
    assert_eq!(s.public_base_url.as_str(), "http://127.0.0.1:8080/");
    assert_eq!(
        s.database_url.expose(),
        "sqlite://data/invitations.db?mode=rwc"
    );
}

#[test]
fn each_bad_value_names_its_key() {
    for (key, value) in [
        ("DATABASE_URL", "mysql://x/y"),
        ("DATABASE_URL", "postgres//nohost"),
        ("DATABASE_URL", "sqlite://"),
        ("DATABASE_MAX_CONNECTIONS", "1"),
        ("REDIS_URL", "http://localhost"),
        ("SMTP_URL", "::"),
        ("BIND_ADDR", "localhost"),
        ("PUBLIC_BASE_URL", "ftp://x"),
        ("SECRET_KEY", "short"),
        ("LOG_LEVEL", "info,=[x"),
        ("LOG_FORMAT", "xml"),
        ("GRAPHQL_MAX_DEPTH", "1000"),
        ("GRAPHQL_INTROSPECTION", "maybe"),
        ("MAIL_FROM", "not an address"),
        ("EMAIL_SEND_LEASE_SECONDS", "0"),
        ("EMAIL_MAX_ATTEMPTS", "51"),
        ("WEBHOOK_TIMEOUT_SECONDS", "0"),
        ("WEBHOOK_MAX_ATTEMPTS", "many"),
        ("WEBHOOK_ALLOW_LOOPBACK", "sometimes"),
        ("WEBHOOK_DISABLE_AFTER_SECONDS", "-1"),
    ] {
        let err = load(&[(key, value)]).unwrap_err();
        assert_eq!(err.key, key, "{key}={value}");
        let line = err.to_string();
        assert!(
            line.starts_with(&format!("{key}: ")) && !line.contains('\n'),
            "{line}"
        );
    }
}

#[test]
fn values_are_parsed_once_into_their_types() {
    let s = load(&[
        ("EMAIL_SEND_LEASE_SECONDS", "4"),
        ("WEBHOOK_ALLOW_LOOPBACK", "true"),
        ("LOG_FORMAT", "json"),
        ("PUBLIC_BASE_URL", "https://invite.example.com/"),
        ("REDIS_KEY_PREFIX", "123"),
    ])
    .unwrap();
    assert_eq!(s.email.send_lease, Duration::from_secs(4));
    assert!(s.webhooks.targets().allow_loopback);
    assert_eq!(s.log.format, LogFormat::Json);
    assert_eq!(s.public_base_url.as_str(), "https://invite.example.com/");
    assert_eq!(s.redis.key_prefix, "123");
}

#[test]
fn secrets_never_print() {
    let s = load(&[
        ("DATABASE_URL", "postgres://u:hunter2@db/x"),
        ("REDIS_URL", "redis://:hunter3@cache"),
        ("SMTP_URL", "smtps://u:hunter4@mail"),
        ("SECRET_KEY", &"k".repeat(40)),
    ])
    .unwrap();
    let printed = format!("{s:?}");
    for secret in ["hunter2", "hunter3", "hunter4", &"k".repeat(40)] {
        assert!(!printed.contains(secret), "{secret}");
    }
}

#[test]
fn readme_documents_every_key_and_nothing_else() {
    let keys = Settings::keys();
    let read: BTreeSet<&str> = keys.iter().copied().collect();
    assert_eq!(read.len(), keys.len(), "a key is read by two sections");
    let table = readme_table();
    let documented: BTreeSet<&str> = table.keys().map(String::as_str).collect();
    assert_eq!(
        read.difference(&documented).collect::<Vec<_>>(),
        Vec::<&&str>::new(),
        "keys missing from the README's configuration table"
    );
    assert_eq!(
        documented.difference(&read).collect::<Vec<_>>(),
        Vec::<&&str>::new(),
        "README keys that no section reads"
    );
}

/// Setting a key to the default the README states changes nothing. `$KEY` in a default stands
/// for that key's default; defaults that are not a literal value ("unset", "generated …") are
/// skipped.
#[test]
fn readme_defaults_are_the_code_defaults() {
    let table = readme_table();
    let literal = |cell: &str| -> Option<String> {
        let inner = cell.strip_prefix('`')?.split('`').next()?;
        Some(inner.to_owned())
    };
    let defaults: BTreeMap<&str, String> = table
        .iter()
        .filter_map(|(k, cell)| Some((k.as_str(), literal(cell)?)))
        .collect();
    let expand = |value: &str| {
        defaults
            .iter()
            .fold(value.to_owned(), |v, (k, d)| v.replace(&format!("${k}"), d))
    };
    let baseline = format!("{:?}", load(&[]).unwrap());
    for (key, value) in &defaults {
        let value = expand(value);
        let set = load(&[(key, &value)]).unwrap_or_else(|e| panic!("{key}={value}: {e}"));
        assert_eq!(
            format!("{set:?}"),
            baseline,
            "{key}: the README says {value}"
        );
    }
    assert!(
        defaults.len() >= 29,
        "only {} defaults checked",
        defaults.len()
    );
}
