//! Parsers for `#[serde(deserialize_with = "…")]`: each reads the variable's text and returns the
//! parsed value, or an error message that never repeats a value that may be secret.
//!
//! Ranges are const parameters, so a field states its key, its parser and its bounds in one
//! attribute: `deserialize_with = "conf::de::seconds::<_, 1, 3600>"`.

use std::fmt::Display;
use std::str::FromStr;
use std::time::Duration;

use secrecy::SecretString;
use serde::de::{Deserialize, Deserializer, Error, Visitor};
use url::Url;

fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    String::deserialize(d)
}

/// A whole number in `MIN..=MAX`.
pub fn number<'de, D, T, const MIN: u64, const MAX: u64>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    let raw = text(d)?;
    let value: u64 = raw
        .trim()
        .parse()
        .map_err(|_| D::Error::custom(format!("{raw:?} is not a number")))?;
    let out_of_range = || D::Error::custom(format!("{value} is out of range {MIN}..={MAX}"));
    if !(MIN..=MAX).contains(&value) {
        return Err(out_of_range());
    }
    T::try_from(value).map_err(|_| out_of_range())
}

/// A number of seconds in `MIN..=MAX`.
pub fn seconds<'de, D, const MIN: u64, const MAX: u64>(d: D) -> Result<Duration, D::Error>
where
    D: Deserializer<'de>,
{
    number::<D, u64, MIN, MAX>(d).map(Duration::from_secs)
}

/// `true`, `1`, `yes`, `on` or `false`, `0`, `no`, `off`, in any case.
pub fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let raw = text(d)?;
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        other => Err(D::Error::custom(format!("{other:?} is not true or false"))),
    }
}

/// Any `FromStr` type; the message is its parse error's.
pub fn parsed<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: Display,
{
    text(d)?.parse().map_err(D::Error::custom)
}

/// Parses `raw` as a URL with one of `schemes`. The message never repeats the URL (it may
/// carry a password).
pub fn url(raw: &str, schemes: &[&str]) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|e| format!("not a valid URL ({e})"))?;
    if !schemes.contains(&url.scheme()) {
        return Err(format!(
            "scheme {:?} is not supported; use one of {}",
            url.scheme(),
            schemes.join(", ")
        ));
    }
    Ok(url)
}

/// A URL with one of `schemes` that may carry a password: checked, then kept as the text the
/// client libraries take, in a secret that never prints and is wiped on drop.
pub fn secret_url<'de, D: Deserializer<'de>>(
    d: D,
    schemes: &[&str],
) -> Result<SecretString, D::Error> {
    let raw = text(d)?;
    url(&raw, schemes).map_err(D::Error::custom)?;
    Ok(SecretString::from(raw))
}

/// The deserializer behind [`crate::conf::keys`]: records the field names a struct asks for, then
/// stops with an error.
pub(crate) struct FieldNames<'a>(pub(crate) &'a mut &'static [&'static str]);

#[derive(Debug)]
pub(crate) struct Probed;

impl Display for Probed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("field names recorded")
    }
}

impl std::error::Error for Probed {}

impl Error for Probed {
    fn custom<T: Display>(_: T) -> Self {
        Self
    }
}

impl<'de> Deserializer<'de> for FieldNames<'_> {
    type Error = Probed;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Probed> {
        Err(Probed)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Probed> {
        *self.0 = fields;
        Err(Probed)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}
