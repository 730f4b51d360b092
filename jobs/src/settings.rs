//! The workers' configuration sections. Each default is stated here once, except the webhook
//! retry policy's, which [`WebhookPolicy::default`] states beside the code that applies it.
//! The README's configuration table documents every key.

use std::time::Duration;

use crate::conf::SecretString;
use entity::outbox::RetrySchedule;
use entity::outbox::webhook::WebhookPolicy;
use entity::webhook::target::TargetPolicy;
use lettre::Address;
use serde::{Deserialize, Deserializer};

use crate::mailer::Mailbox;

/// When the periodic work of a worker process runs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct WorkerSettings {
    /// How often the workers persist expiries.
    #[serde(
        rename = "EXPIRY_INTERVAL_SECONDS",
        deserialize_with = "crate::conf::de::seconds::<_, 1, 86_400>"
    )]
    pub expiry_interval: Duration,
    /// How often the sweeper looks for deliveries (email and webhook) that no queued job will
    /// handle.
    #[serde(
        rename = "EMAIL_SWEEP_INTERVAL_SECONDS",
        deserialize_with = "crate::conf::de::seconds::<_, 1, 3600>"
    )]
    pub sweep_interval: Duration,
    /// How long a delivery must have been due before the sweeper queues it again; leaves fresh
    /// rows to the jobs queued with them.
    #[serde(
        rename = "EMAIL_SWEEP_GRACE_SECONDS",
        deserialize_with = "crate::conf::de::seconds::<_, 1, 86_400>"
    )]
    pub sweep_grace: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            expiry_interval: Duration::from_secs(30),
            sweep_interval: Duration::from_secs(5),
            sweep_grace: Duration::from_secs(30),
        }
    }
}

/// Sending email.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct EmailSettings {
    /// Send attempts (transient failures) before an email is FAILED.
    #[serde(
        rename = "EMAIL_MAX_ATTEMPTS",
        deserialize_with = "crate::conf::de::number::<_, _, 1, 50>"
    )]
    pub max_attempts: u32,
    /// How long a claim keeps other workers away from a delivery: one send, plus the writes
    /// that record it, plus margin. Also how long an email waits when its sender died mid-send.
    #[serde(
        rename = "EMAIL_SEND_LEASE_SECONDS",
        deserialize_with = "crate::conf::de::seconds::<_, 1, 3600>"
    )]
    pub send_lease: Duration,
    /// Messages in flight at once per worker process, and the size of its SMTP connection pool.
    #[serde(
        rename = "EMAIL_CONCURRENCY",
        deserialize_with = "crate::conf::de::number::<_, _, 1, 256>"
    )]
    pub concurrency: usize,
    /// Most messages one worker process hands to the mail server per second; 0 is no cap.
    #[serde(
        rename = "EMAIL_RATE_LIMIT_PER_SECOND",
        deserialize_with = "crate::conf::de::number::<_, _, 0, 100_000>"
    )]
    pub rate_limit: u32,
    /// Invitation emails (initial and resent) one organization may queue per hour.
    #[serde(
        rename = "EMAIL_ORGANIZATION_HOURLY_LIMIT",
        deserialize_with = "crate::conf::de::number::<_, _, 1, 100_000_000>"
    )]
    pub organization_hourly_limit: u64,
}

/// Wait after the first failed send; each further failure doubles it.
const EMAIL_FIRST_RETRY_DELAY: Duration = Duration::from_secs(2);
/// Longest wait between two sends of one email.
const EMAIL_MAX_RETRY_DELAY: Duration = Duration::from_secs(600);

impl Default for EmailSettings {
    /// Six attempts, 2 s, 4 s, 8 s, 16 s and 32 s apart (about a minute in all): enough to ride
    /// out a mail server restart without leaving a recipient waiting long.
    fn default() -> Self {
        Self {
            max_attempts: 6,
            send_lease: Duration::from_secs(180),
            // Eight connections keep a relay busy without tripping the per-client connection
            // limits common ones set (Postfix allows 50, Amazon SES and SendGrid far more).
            concurrency: 8,
            rate_limit: 0,
            organization_hourly_limit: 2000,
        }
    }
}

impl EmailSettings {
    /// The per-organization send limit the API applies when it queues invitation emails.
    pub fn quota(&self) -> entity::outbox::email::SendQuota {
        entity::outbox::email::SendQuota {
            per_hour: self.organization_hourly_limit,
        }
    }

    /// When a failed email is tried again, and when it is given up.
    pub fn retry(&self) -> RetrySchedule {
        RetrySchedule {
            max_attempts: self.max_attempts,
            first_delay: EMAIL_FIRST_RETRY_DELAY,
            max_delay: EMAIL_MAX_RETRY_DELAY,
        }
    }
}

/// Where mail goes, and from whom.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct MailSettings {
    /// `smtp://…` or `smtps://…`; `None` writes `.eml` files into the outbox folder.
    #[serde(rename = "SMTP_URL", deserialize_with = "smtp_url")]
    pub smtp_url: Option<SecretString>,
    /// The sender of every message.
    #[serde(rename = "MAIL_FROM", deserialize_with = "mail_from")]
    pub from: Mailbox,
    /// Admit plain `smtp://` (no TLS) to a host that is not loopback: credentials, links and
    /// codes then cross the network in clear.
    #[serde(
        rename = "SMTP_ALLOW_INSECURE_PLAINTEXT",
        deserialize_with = "crate::conf::de::flag"
    )]
    pub allow_insecure_plaintext: bool,
}

impl MailSettings {
    /// Refuses plain SMTP beyond this machine unless explicitly allowed: `smtps://`, or
    /// `smtp://` with `?tls=required`, is encrypted; `tls=opportunistic` is not counted, as
    /// anyone on the path can strip STARTTLS.
    pub fn check(&self) -> Result<(), crate::conf::ConfigError> {
        use crate::conf::ExposeSecret;
        let Some(raw) = &self.smtp_url else {
            return Ok(());
        };
        let Ok(url) = url::Url::parse(raw.expose_secret()) else {
            return Ok(());
        };
        let encrypted = url.scheme() == "smtps"
            || url
                .query_pairs()
                .any(|(k, v)| k == "tls" && v.eq_ignore_ascii_case("required"));
        let loopback = match url.host() {
            // `smtp:` is not a special scheme to the URL parser: IPv4 hosts stay text.
            Some(url::Host::Domain(name)) => {
                name.eq_ignore_ascii_case("localhost")
                    || name
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            }
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        if encrypted || loopback || self.allow_insecure_plaintext {
            return Ok(());
        }
        Err(crate::conf::ConfigError::new(
            "SMTP_URL",
            "plain smtp:// to a host that is not loopback would send credentials, links and codes in clear; use smtps://, add ?tls=required, or set SMTP_ALLOW_INSECURE_PLAINTEXT=true",
        ))
    }
}

impl Default for MailSettings {
    fn default() -> Self {
        Self {
            smtp_url: None,
            allow_insecure_plaintext: false,
            // The literal is a valid address (tested below).
            from: Mailbox::new(
                Some("Invitations".into()),
                Address::new_dangerous("invitations", "localhost"),
            ),
        }
    }
}

fn smtp_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
    crate::conf::de::secret_url(d, &["smtp", "smtps"]).map(Some)
}

fn mail_from<'de, D: Deserializer<'de>>(d: D) -> Result<Mailbox, D::Error> {
    crate::conf::de::parsed::<D, Mailbox>(d)
        .map_err(|_| serde::de::Error::custom("not a valid mailbox"))
}

/// Webhook delivery.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct WebhookSettings {
    /// Admit loopback targets (and plain `http` to them): development and tests only.
    #[serde(
        rename = "WEBHOOK_ALLOW_LOOPBACK",
        deserialize_with = "crate::conf::de::flag"
    )]
    pub allow_loopback: bool,
    /// Longest one attempt may take, connection to last response byte.
    #[serde(
        rename = "WEBHOOK_TIMEOUT_SECONDS",
        deserialize_with = "crate::conf::de::seconds::<_, 1, 60>"
    )]
    pub timeout: Duration,
    /// Attempts before a delivery is FAILED.
    #[serde(
        rename = "WEBHOOK_MAX_ATTEMPTS",
        deserialize_with = "crate::conf::de::number::<_, _, 1, 30>"
    )]
    pub max_attempts: u32,
    /// Wait after the first failed attempt; doubles after each further one (capped by the
    /// policy).
    #[serde(
        rename = "WEBHOOK_RETRY_FIRST_DELAY_SECONDS",
        deserialize_with = "crate::conf::de::seconds::<_, 1, 3600>"
    )]
    pub first_retry_delay: Duration,
    /// An endpoint whose attempts have all failed for this long is disabled.
    #[serde(
        rename = "WEBHOOK_DISABLE_AFTER_SECONDS",
        deserialize_with = "crate::conf::de::seconds::<_, 1, 2_592_000>"
    )]
    pub disable_after: Duration,
    /// Requests in flight at once per worker process.
    #[serde(
        rename = "WEBHOOK_CONCURRENCY",
        deserialize_with = "crate::conf::de::number::<_, _, 1, 256>"
    )]
    pub concurrency: usize,
    /// How long finished deliveries and their attempts are kept.
    #[serde(
        rename = "WEBHOOK_RETENTION_SECONDS",
        deserialize_with = "crate::conf::de::seconds::<_, 1, 315_360_000>"
    )]
    pub retention: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        let policy = WebhookPolicy::default();
        Self {
            allow_loopback: false,
            timeout: Duration::from_secs(15),
            max_attempts: policy.retry.max_attempts,
            first_retry_delay: policy.retry.first_delay,
            disable_after: policy.disable_after,
            concurrency: 16,
            retention: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

impl WebhookSettings {
    /// Which targets deliveries may reach.
    pub fn targets(&self) -> TargetPolicy {
        TargetPolicy {
            allow_loopback: self.allow_loopback,
        }
    }

    /// The default policy with the configured attempts, first delay and disabling time.
    pub fn policy(&self) -> WebhookPolicy {
        let mut policy = WebhookPolicy::default();
        policy.retry.max_attempts = self.max_attempts;
        policy.retry.first_delay = self.first_retry_delay;
        policy.disable_after = self.disable_after;
        policy
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn default_email_schedule_matches_its_documentation() {
        let s = EmailSettings::default().retry();
        let waits: Vec<u64> = (1..s.max_attempts)
            .map(|n| s.delay_after(n).as_secs())
            .collect();
        assert_eq!(waits, [2, 4, 8, 16, 32]);
        assert!(s.exhausted(6) && !s.exhausted(5));
    }

    #[test]
    fn default_sender_is_a_valid_mailbox() {
        let parsed: Mailbox = "Invitations <invitations@localhost>".parse().unwrap();
        assert_eq!(MailSettings::default().from, parsed);
    }

    #[test]
    fn plain_smtp_only_to_loopback_unless_allowed() {
        let with = |url: &str, allow: bool| MailSettings {
            smtp_url: Some(SecretString::from(url)),
            allow_insecure_plaintext: allow,
            ..MailSettings::default()
        };
        for ok in [
            "smtp://127.0.0.1:2525",
            "smtp://localhost:25",
            "smtp://[::1]:25",
            "smtps://mail.example.com",
            "smtp://mail.example.com:587?tls=required",
        ] {
            assert!(with(ok, false).check().is_ok(), "{ok}");
        }
        for refused in [
            "smtp://mail.example.com:25",
            "smtp://u:p@10.0.0.5:587?tls=opportunistic",
            "smtp://127.0.0.1.example.com:25",
        ] {
            let err = with(refused, false).check().unwrap_err();
            assert_eq!(err.key, "SMTP_URL");
            assert!(!err.to_string().contains(":p@"), "{err}");
            assert!(with(refused, true).check().is_ok(), "{refused}");
        }
    }

    #[test]
    fn default_webhook_settings_keep_the_default_policy() {
        assert_eq!(
            WebhookSettings::default().policy(),
            WebhookPolicy::default()
        );
    }
}
