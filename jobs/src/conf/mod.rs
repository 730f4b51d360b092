//! Typed configuration from environment variables, for the crates that own settings.
//!
//! A crate declares each of its sections as a serde struct: `#[serde(default)]` with a `Default`
//! impl that states every default once, a `rename` per field naming its variable, and a parser
//! from [`de`] for anything that is not plain text, so the struct holds parsed values
//! (`Duration`, `Url`, enums). The composition root reads the variables once into [`Vars`] and
//! extracts every section from them; a bad value comes back as a [`ConfigError`] naming its key.

pub mod de;

use std::borrow::Cow;

use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::de::DeserializeOwned;

pub use secrecy::{ExposeSecret, SecretString};

/// Any error kept as the cause of another.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A configuration key with a bad value, or naming a service that cannot be used. Prints as one
/// line, `KEY: message (cause)`; the cause stays reachable through `source()`.
#[derive(Debug)]
pub struct ConfigError {
    pub key: Cow<'static, str>,
    pub message: Cow<'static, str>,
    source: Option<BoxError>,
}

impl ConfigError {
    pub fn new(key: impl Into<Cow<'static, str>>, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
            source: None,
        }
    }

    /// `message` caused by `source`.
    pub fn caused(
        key: impl Into<Cow<'static, str>>,
        message: impl Into<Cow<'static, str>>,
        source: impl Into<BoxError>,
    ) -> Self {
        Self {
            source: Some(source.into()),
            ..Self::new(key, message)
        }
    }

    /// A failure whose own text says everything: printed as `KEY: source`.
    pub fn from_source(key: impl Into<Cow<'static, str>>, source: impl Into<BoxError>) -> Self {
        Self::caused(key, "", source)
    }

    /// The key is the path figment reports. The message is the parser's, never figment's full
    /// text (which appends the key path and the provider).
    fn from_figment(e: figment::Error) -> Self {
        let key = e.path.join(".");
        Self::new(
            if key.is_empty() {
                Cow::Borrowed("configuration")
            } else {
                Cow::Owned(key)
            },
            e.kind.to_string(),
        )
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: ", self.key)?;
        match (&self.source, self.message.is_empty()) {
            (None, _) => f.write_str(&self.message),
            (Some(source), true) => write!(f, "{source}"),
            (Some(source), false) => write!(f, "{} ({source})", self.message),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Environment variables as figment data. Values stay text exactly as given and each parser
/// reads its own: figment's `Env` provider guesses types (`REDIS_KEY_PREFIX=123` would become a
/// number that a text field refuses) and reads only the process environment, while tests start
/// many differently configured applications in one process.
///
/// Deliberately not `Debug`: the values include secrets.
#[derive(Clone)]
pub struct Vars {
    figment: Figment,
}

/// The provider behind [`Vars`].
struct Text(Dict);

impl Provider for Text {
    fn metadata(&self) -> Metadata {
        Metadata::named("environment variables")
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.0.clone()))
    }
}

impl Vars {
    /// `(key, value)` pairs; a repeated key keeps its last value.
    pub fn new<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        let dict: Dict = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), Value::from(v.into())))
            .collect();
        Self {
            figment: Figment::from(Text(dict)),
        }
    }

    /// Asks `lookup` for each of `keys`; `None` leaves a key unset.
    pub fn lookup<'k>(
        keys: impl IntoIterator<Item = &'k str>,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Self {
        Self::new(
            keys.into_iter()
                .filter_map(|key| lookup(key).map(|value| (key, value))),
        )
    }

    /// Extracts one section: its unset keys take the section's defaults.
    pub fn section<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        self.figment.extract().map_err(ConfigError::from_figment)
    }
}

/// The keys (serialized field names) a section reads, in declaration order; empty for a type
/// that is not a struct. Lets the composition root ask for exactly its keys and check that
/// every one is documented.
pub fn keys<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    // The probe always ends in an error: it only records what the struct asked for.
    let _ = T::deserialize(de::FieldNames(&mut fields));
    fields
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[derive(Debug, serde::Deserialize)]
    #[serde(default)]
    struct Section {
        #[serde(rename = "A_SECONDS", deserialize_with = "de::seconds::<_, 1, 60>")]
        a: Duration,
        #[serde(rename = "B_COUNT", deserialize_with = "de::number::<_, _, 2, 10>")]
        b: u32,
        #[serde(rename = "C_NAME")]
        c: String,
        #[serde(rename = "D_ON", deserialize_with = "de::flag")]
        d: bool,
    }

    impl Default for Section {
        fn default() -> Self {
            Self {
                a: Duration::from_secs(5),
                b: 3,
                c: "x".into(),
                d: false,
            }
        }
    }

    fn load(pairs: &[(&str, &str)]) -> Result<Section, ConfigError> {
        Vars::new(pairs.iter().copied()).section()
    }

    #[test]
    fn unset_keys_take_the_defaults_and_set_ones_are_parsed() {
        let s = load(&[]).unwrap();
        assert_eq!(
            (s.a, s.b, s.c.as_str(), s.d),
            (Duration::from_secs(5), 3, "x", false)
        );
        let s = load(&[("A_SECONDS", " 7 "), ("C_NAME", "123"), ("D_ON", "Yes")]).unwrap();
        assert_eq!(
            (s.a, s.b, s.c.as_str(), s.d),
            (Duration::from_secs(7), 3, "123", true)
        );
    }

    #[test]
    fn a_bad_value_is_one_line_naming_its_key() {
        let e = load(&[("B_COUNT", "many")]).unwrap_err();
        assert_eq!(e.to_string(), r#"B_COUNT: "many" is not a number"#);
        let e = load(&[("B_COUNT", "11")]).unwrap_err();
        assert_eq!(e.to_string(), "B_COUNT: 11 is out of range 2..=10");
        let e = load(&[("A_SECONDS", "-1")]).unwrap_err();
        assert_eq!(e.key, "A_SECONDS");
        let e = load(&[("D_ON", "sometimes")]).unwrap_err();
        assert_eq!(e.to_string(), r#"D_ON: "sometimes" is not true or false"#);
    }

    #[test]
    fn keys_lists_the_variables_of_a_section() {
        assert_eq!(
            keys::<Section>(),
            ["A_SECONDS", "B_COUNT", "C_NAME", "D_ON"]
        );
        assert!(keys::<u32>().is_empty());
    }

    #[test]
    fn lookup_reads_only_the_keys_asked_for() {
        // The lookup answers for any key; only B_COUNT is asked.
        let vars = Vars::lookup(["B_COUNT"], &|_| Some("4".to_owned()));
        let s: Section = vars.section().unwrap();
        assert_eq!((s.a, s.b), (Duration::from_secs(5), 4));
    }

    #[test]
    fn errors_keep_their_cause() {
        let io = std::io::Error::other("disk on fire");
        let e = ConfigError::caused("DATA_DIR", "not writable", io);
        assert_eq!(e.to_string(), "DATA_DIR: not writable (disk on fire)");
        assert_eq!(
            std::error::Error::source(&e).unwrap().to_string(),
            "disk on fire"
        );
        let e = ConfigError::from_source("REDIS_URL", std::io::Error::other("refused"));
        assert_eq!(e.to_string(), "REDIS_URL: refused");
    }
}
