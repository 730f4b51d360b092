//! Building the messages: which words, which link, which code; `templates` lays them out as
//! plain text first, then HTML.

use chrono::{DateTime, Utc};
use entity::crypto::Keyring;
use entity::entities::{email_deliveries, invitations};
use entity::outbox::email::{VerificationCodePayload, preverify_message};
use entity::{DeliveryKind, InvitationType};
use lettre::Message;
use lettre::message::{Mailbox, MultiPart};
use url::Url;
use uuid::Uuid;

use templates::{Code, Invitation, Letter};

mod templates;

/// Why a message could not be built. None of these improves on retry.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("the invitation token cannot be opened with the configured key")]
    Token,
    #[error("the verification code payload is unusable: {0}")]
    Payload(String),
    #[error("the verification code expired before it could be sent")]
    CodeExpired,
    #[error("the recipient address is not valid: {0}")]
    Recipient(String),
    #[error("the message could not be built: {0}")]
    Build(String),
}

/// Everything messages need besides the rows: who sends, where links point, the keys that open
/// tokens and codes and sign links.
#[derive(Debug, Clone)]
pub struct Composer {
    pub keys: Keyring,
    pub public_base_url: Url,
    pub from: Mailbox,
}

impl Composer {
    /// The message for one delivery, as of `at`. `company_name` is the company's display name
    /// (or its name).
    pub fn compose(
        &self,
        delivery: &email_deliveries::Model,
        invitation: &invitations::Model,
        company_name: &str,
        at: DateTime<Utc>,
    ) -> Result<Message, ComposeError> {
        let to: Mailbox = delivery
            .recipient
            .parse()
            .map_err(|e: lettre::address::AddressError| ComposeError::Recipient(e.to_string()))?;
        let letter = match delivery.kind {
            DeliveryKind::VerificationCode => self.code_letter(delivery, company_name, at)?,
            DeliveryKind::Invitation | DeliveryKind::Resend | DeliveryKind::Reminder => {
                self.invitation_letter(delivery, invitation, company_name, at)?
            }
        };
        Message::builder()
            .message_id(Some(delivery.message_id.clone()))
            .date(at.into())
            .from(self.from.clone())
            .to(to)
            .subject(letter.subject)
            .multipart(MultiPart::alternative_plain_html(letter.text, letter.html))
            .map_err(|e| ComposeError::Build(e.to_string()))
    }

    /// `{base}/p/i/{token}?email=…&sig=…`: the invitation link, pre-verified for `recipient`.
    pub fn invitation_link(&self, invitation_id: Uuid, token: &str, recipient: &str) -> Url {
        let mut url = entity::invitation::page_url(&self.public_base_url, token);
        let sig = self
            .keys
            .sign(preverify_message(invitation_id, recipient).as_bytes());
        url.query_pairs_mut()
            .append_pair("email", recipient)
            .append_pair("sig", &sig);
        url
    }

    fn invitation_letter(
        &self,
        delivery: &email_deliveries::Model,
        invitation: &invitations::Model,
        company: &str,
        at: DateTime<Utc>,
    ) -> Result<Letter, ComposeError> {
        let token = self
            .keys
            .open_string(
                &invitation.token_sealed,
                &entity::crypto::Slot::invitation_token(invitation.id),
            )
            .map_err(|_| ComposeError::Token)?;
        let link = self.invitation_link(invitation.id, &token, &delivery.recipient);
        let (headline, why) = match invitation.invitation_type {
            InvitationType::CreateConnection => (
                format!("Connect your utility account for {company}"),
                format!(
                    "{company} invites you to connect your utility account, so that your utility \
                     data can be collected for them. You sign in to your utility provider on a \
                     secure page; it takes a few minutes."
                ),
            ),
            InvitationType::EditConnection => (
                format!("Reconnect your utility account for {company}"),
                format!(
                    "The connection {company} has to your utility account stopped working. \
                     Please sign in to your utility provider again on a secure page; it takes a \
                     few minutes."
                ),
            ),
        };
        let (subject, intro) = match delivery.kind {
            DeliveryKind::Reminder => (
                format!("Reminder: {headline}"),
                format!("This is a reminder. {why}"),
            ),
            _ => (headline.clone(), why),
        };
        let expiry = expiry_in_words(invitation.expires_at, at);
        let vars = Invitation {
            headline: &headline,
            intro: &intro,
            link: link.as_str(),
            expiry: &expiry,
            recipient: &delivery.recipient,
        };
        Letter::invitation(&subject, &vars).map_err(|e| ComposeError::Build(e.to_string()))
    }

    fn code_letter(
        &self,
        delivery: &email_deliveries::Model,
        company: &str,
        at: DateTime<Utc>,
    ) -> Result<Letter, ComposeError> {
        let payload = VerificationCodePayload::from_json(&delivery.payload)
            .map_err(|e| ComposeError::Payload(e.to_string()))?;
        if payload.expires_at <= at {
            return Err(ComposeError::CodeExpired);
        }
        let code = payload
            .code(
                &self.keys,
                &entity::crypto::Slot::verification_code(
                    delivery.invitation_id,
                    &delivery.recipient,
                ),
            )
            .map_err(|_| ComposeError::Payload("the sealed code cannot be opened".into()))?;
        let expiry = expiry_in_words(Some(payload.expires_at), at);
        let vars = Code {
            company,
            code: &code,
            expiry: &expiry,
        };
        let subject = format!("Your verification code for {company}");
        Letter::code(&subject, &vars).map_err(|e| ComposeError::Build(e.to_string()))
    }
}

/// "expires in 3 days (on 28 Nov 2026, 14:00 UTC)", "does not expire". Each unit is rounded
/// to the nearest whole one, so a three-day link sent a few seconds late still reads 3 days.
pub fn expiry_in_words(expires_at: Option<DateTime<Utc>>, at: DateTime<Utc>) -> String {
    let Some(expires_at) = expires_at else {
        return "does not expire".to_owned();
    };
    let secs = (expires_at - at).num_seconds();
    let when = expires_at.format("%-d %b %Y, %H:%M UTC");
    let round = |unit: i64| (secs + unit / 2) / unit;
    let span = if secs <= 0 {
        return format!("expired on {when}");
    } else if secs < 60 {
        "less than a minute".to_owned()
    } else if round(60) < 60 {
        plural(round(60), "minute")
    } else if round(3600) < 24 {
        plural(round(3600), "hour")
    } else {
        plural(round(86_400), "day")
    };
    format!("expires in {span} (on {when})")
}

fn plural(n: i64, unit: &str) -> String {
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(crate) mod tests;
