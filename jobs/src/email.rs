//! Building the messages: templates in `jobs/templates/`, plain text first, then HTML.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use entity::crypto::Keyring;
use entity::entities::{email_deliveries, invitations};
use entity::outbox::email::{VerificationCodePayload, preverify_message};
use entity::{DeliveryKind, InvitationType};
use lettre::Message;
use lettre::message::{Mailbox, MultiPart};
use url::Url;
use uuid::Uuid;

const INVITATION_TXT: &str = include_str!("../templates/invitation.txt");
const INVITATION_HTML: &str = include_str!("../templates/invitation.html");
const CODE_TXT: &str = include_str!("../templates/verification_code.txt");
const CODE_HTML: &str = include_str!("../templates/verification_code.html");

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
            .open_string(&invitation.token_sealed)
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
        let vars = [
            ("headline", headline.as_str()),
            ("intro", intro.as_str()),
            ("link", link.as_str()),
            ("expiry", expiry.as_str()),
            ("recipient", delivery.recipient.as_str()),
        ];
        Ok(Letter::new(subject, INVITATION_TXT, INVITATION_HTML, &vars))
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
            .code(&self.keys)
            .map_err(|_| ComposeError::Payload("the sealed code cannot be opened".into()))?;
        let expiry = expiry_in_words(Some(payload.expires_at), at);
        let vars = [
            ("company", company),
            ("code", code.as_str()),
            ("expiry", expiry.as_str()),
        ];
        let subject = format!("Your verification code for {company}");
        Ok(Letter::new(subject, CODE_TXT, CODE_HTML, &vars))
    }
}

struct Letter {
    subject: String,
    text: String,
    html: String,
}

impl Letter {
    fn new(subject: String, text: &str, html: &str, vars: &[(&str, &str)]) -> Self {
        // A display name is tenant input: a line break in it must not reach the header.
        let subject = subject
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        Self {
            subject,
            text: render(text, vars, Cow::Borrowed),
            html: render(html, vars, escape_html),
        }
    }
}

/// Replaces each `{{name}}` with its value, passed through `escape`. One pass over the
/// template, so a value that itself contains `{{…}}` is never expanded.
fn render<'v>(
    template: &str,
    vars: &[(&str, &'v str)],
    escape: fn(&'v str) -> Cow<'v, str>,
) -> String {
    let mut out = String::with_capacity(template.len() + 512);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start + 2..].find("}}") else {
            break;
        };
        out.push_str(&rest[..start]);
        let name = &rest[start + 2..start + 2 + len];
        match vars.iter().find(|(key, _)| *key == name) {
            Some((_, value)) => out.push_str(&escape(value)),
            None => out.push_str(&rest[start..start + len + 4]),
        }
        rest = &rest[start + len + 4..];
    }
    out.push_str(rest);
    out
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape_html(raw: &str) -> Cow<'_, str> {
    if !raw.contains(['&', '<', '>', '"', '\'']) {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len() + 16);
    for c in raw.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
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
pub(crate) mod tests {
    use super::*;
    use base64::Engine;
    use chrono::{Duration, TimeZone};
    use entity::{DeliveryStatus, InvitationStatus, Prefill, StringList};

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 14, 0, 0).unwrap()
    }

    #[test]
    fn escape_covers_markup_and_both_quotes() {
        assert_eq!(
            escape_html(r#"<a href="x" title='y'>Tom & Jerry</a>"#),
            "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;Tom &amp; Jerry&lt;/a&gt;"
        );
        assert!(matches!(
            escape_html("plain text é"),
            Cow::Borrowed("plain text é")
        ));
        // Already-escaped text is escaped again, never trusted.
        assert_eq!(escape_html("&amp;"), "&amp;amp;");
    }

    #[test]
    fn render_substitutes_once_and_escapes_values() {
        let vars = [("a", "<b>"), ("b", "{{a}}")];
        assert_eq!(
            render("x {{a}} {{b}} {{c}} {{", &vars, Cow::Borrowed),
            "x <b> {{a}} {{c}} {{"
        );
        assert_eq!(render("{{a}}{{b}}", &vars, escape_html), "&lt;b&gt;{{a}}");
    }

    #[test]
    fn expiry_reads_in_the_nearest_unit() {
        let t = at();
        let words = |d: Duration| expiry_in_words(Some(t + d), t);
        assert_eq!(expiry_in_words(None, t), "does not expire");
        assert_eq!(
            words(Duration::days(3)),
            "expires in 3 days (on 28 Nov 2026, 14:00 UTC)"
        );
        assert!(words(Duration::days(3) - Duration::seconds(5)).starts_with("expires in 3 days"));
        assert!(words(Duration::hours(1)).starts_with("expires in 1 hour "));
        assert!(
            words(Duration::minutes(59) + Duration::seconds(40)).starts_with("expires in 1 hour ")
        );
        assert!(words(Duration::minutes(10)).starts_with("expires in 10 minutes"));
        assert!(
            words(Duration::hours(23) + Duration::minutes(40)).starts_with("expires in 1 day ")
        );
        assert!(words(Duration::seconds(30)).starts_with("expires in less than a minute"));
        assert!(words(Duration::seconds(-1)).starts_with("expired on"));
    }

    fn composer(keys: &Keyring) -> Composer {
        Composer {
            keys: keys.clone(),
            public_base_url: Url::parse("https://invite.example.com/base/").unwrap(),
            from: "Invitations <invitations@example.com>".parse().unwrap(),
        }
    }

    fn invitation(keys: &Keyring, token: &str) -> invitations::Model {
        invitations::Model {
            id: Uuid::now_v7(),
            organization_id: Uuid::now_v7(),
            company_id: Uuid::now_v7(),
            connection_id: None,
            invitation_type: InvitationType::CreateConnection,
            status: InvitationStatus::Active,
            token_hash: String::new(),
            token_sealed: keys.seal(token.as_bytes()).unwrap(),
            allowed_emails: StringList(vec!["ann+x@example.com".into()]),
            expires_at: Some(at() + Duration::days(3)),
            max_uses: None,
            use_count: 0,
            prefill: Prefill::default(),
            locked_fields: StringList::default(),
            remind_before_expiry_seconds: None,
            reminder_sent_at: None,
            created_by: "test".into(),
            created_at: at(),
            updated_at: at(),
            revoked_at: None,
            revoked_reason: None,
            fulfilled_at: None,
            expired_at: None,
        }
    }

    fn delivery(
        invitation: &invitations::Model,
        kind: DeliveryKind,
        payload: serde_json::Value,
    ) -> email_deliveries::Model {
        let id = Uuid::now_v7();
        email_deliveries::Model {
            id,
            organization_id: invitation.organization_id,
            invitation_id: invitation.id,
            kind,
            recipient: "ann+x@example.com".into(),
            status: DeliveryStatus::Pending,
            attempts: 0,
            last_error: None,
            message_id: format!("<{id}@invitations.local>"),
            idempotency_key: None,
            payload,
            next_attempt_at: at(),
            created_at: at(),
            updated_at: at(),
            sent_at: None,
        }
    }

    /// A parsed message: header block (unfolded) and each decoded part as (content type, body).
    pub(crate) struct Parsed {
        pub(crate) headers: String,
        pub(crate) parts: Vec<(String, String)>,
    }

    fn parse(message: &Message) -> Parsed {
        parse_raw(&String::from_utf8(message.formatted()).unwrap())
    }

    pub(crate) fn parse_raw(raw: &str) -> Parsed {
        let (headers, body) = raw.split_once("\r\n\r\n").unwrap();
        let headers = headers.replace("\r\n ", " ").replace("\r\n\t", " ");
        let boundary = headers
            .split("boundary=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("multipart boundary");
        let parts = body
            .split(&format!("--{boundary}"))
            .filter(|p| p.starts_with("\r\n"))
            .map(|part| {
                let (head, content) = part
                    .trim_start_matches("\r\n")
                    .split_once("\r\n\r\n")
                    .unwrap();
                let header = |name: &str| {
                    head.lines()
                        .find_map(|l| l.strip_prefix(name))
                        .map(str::trim)
                        .unwrap_or_default()
                        .to_owned()
                };
                let content = content.trim_end_matches("\r\n");
                let decoded = match header("Content-Transfer-Encoding:").as_str() {
                    "base64" => String::from_utf8(
                        base64::engine::general_purpose::STANDARD
                            .decode(content.replace("\r\n", ""))
                            .unwrap(),
                    )
                    .unwrap(),
                    "quoted-printable" => decode_quoted_printable(content),
                    _ => content.to_owned(),
                };
                (header("Content-Type:"), decoded)
            })
            .collect();
        Parsed { headers, parts }
    }

    fn decode_quoted_printable(s: &str) -> String {
        let joined = s.replace("=\r\n", "");
        let bytes = joined.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'=' && i + 2 < bytes.len() {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn invitation_message_is_multipart_alternative_with_the_signed_link_in_both_parts() {
        let keys = Keyring::new(&[9u8; 32]);
        let c = composer(&keys);
        let inv = invitation(&keys, "tok_EN");
        let d = delivery(&inv, DeliveryKind::Invitation, serde_json::json!({}));
        let message = c.compose(&d, &inv, "Acme <Utilities> & Co", at()).unwrap();
        let parsed = parse(&message);

        assert!(
            parsed
                .headers
                .contains("Content-Type: multipart/alternative"),
            "{}",
            parsed.headers
        );
        assert!(
            parsed
                .headers
                .contains(&format!("Message-ID: {}", d.message_id))
        );
        assert!(
            parsed
                .headers
                .contains("Date: Wed, 25 Nov 2026 14:00:00 +0000")
        );
        assert!(parsed.headers.contains("To: ann+x@example.com"));
        assert!(
            parsed
                .headers
                .contains("Subject: Connect your utility account for Acme <Utilities> & Co")
        );

        let sig = keys.sign(preverify_message(inv.id, "ann+x@example.com").as_bytes());
        let link = format!(
            "https://invite.example.com/base/p/i/tok_EN?email=ann%2Bx%40example.com&sig={sig}"
        );
        assert_eq!(
            c.invitation_link(inv.id, "tok_EN", "ann+x@example.com")
                .as_str(),
            link
        );

        let [(text_type, text), (html_type, html)] = &parsed.parts[..] else {
            panic!("expected two parts, got {:?}", parsed.parts);
        };
        assert!(text_type.starts_with("text/plain"));
        assert!(html_type.starts_with("text/html"));
        assert!(text.contains(&link), "{text}");
        assert!(text.contains("expires in 3 days (on 28 Nov 2026, 14:00 UTC)"));
        assert!(text.contains("Acme <Utilities> & Co invites you"));
        let escaped_link = link.replace('&', "&amp;");
        assert!(
            html.contains(&format!("<a href=\"{escaped_link}\">{escaped_link}</a>")),
            "{html}"
        );
        assert!(html.contains("Acme &lt;Utilities&gt; &amp; Co invites you"));
        assert!(!html.contains("<Utilities>"));
        assert!(html.contains("expires in 3 days"));
        assert!(!text.contains("{{") && !html.contains("{{"));
    }

    #[test]
    fn reminders_and_reconnects_say_so_and_never_expiring_links_say_that() {
        let keys = Keyring::new(&[9u8; 32]);
        let c = composer(&keys);
        let mut inv = invitation(&keys, "tok");
        inv.invitation_type = InvitationType::EditConnection;
        inv.expires_at = None;
        let d = delivery(&inv, DeliveryKind::Reminder, serde_json::json!({}));
        let parsed = parse(
            &c.compose(&d, &inv, "Acme\r\nBcc: evil@example.com", at())
                .unwrap(),
        );
        assert!(parsed.headers.contains(
            "Subject: Reminder: Reconnect your utility account for Acme  Bcc: evil@example.com"
        ));
        assert!(!parsed.headers.contains("\nBcc:"));
        assert!(parsed.parts[0].1.contains("This is a reminder."));
        assert!(parsed.parts[0].1.contains("This link does not expire."));
    }

    #[test]
    fn verification_code_message_shows_the_code_and_its_validity() {
        let keys = Keyring::new(&[9u8; 32]);
        let c = composer(&keys);
        let inv = invitation(&keys, "tok");
        let payload =
            VerificationCodePayload::new(&keys, "042917", at() + Duration::minutes(10)).unwrap();
        let d = delivery(&inv, DeliveryKind::VerificationCode, payload.to_json());
        let parsed = parse(&c.compose(&d, &inv, "Acme", at()).unwrap());
        assert!(
            parsed
                .headers
                .contains("Subject: Your verification code for Acme")
        );
        for (_, body) in &parsed.parts {
            assert!(body.contains("042917"));
            assert!(body.contains("expires in 10 minutes"));
            assert!(!body.contains("/p/i/"), "a code email carries no link");
        }

        let late = c.compose(&d, &inv, "Acme", at() + Duration::minutes(11));
        assert!(matches!(late, Err(ComposeError::CodeExpired)));
        let broken = delivery(
            &inv,
            DeliveryKind::VerificationCode,
            serde_json::json!({"sealedCode": 1}),
        );
        assert!(matches!(
            c.compose(&broken, &inv, "Acme", at()),
            Err(ComposeError::Payload(_))
        ));
    }

    #[test]
    fn unusable_rows_are_reported_not_sent() {
        let keys = Keyring::new(&[9u8; 32]);
        let c = composer(&keys);
        let inv = invitation(&Keyring::new(&[1u8; 32]), "tok");
        let d = delivery(&inv, DeliveryKind::Invitation, serde_json::json!({}));
        assert!(matches!(
            c.compose(&d, &inv, "Acme", at()),
            Err(ComposeError::Token)
        ));
        let mut bad = delivery(
            &invitation(&keys, "tok"),
            DeliveryKind::Invitation,
            serde_json::json!({}),
        );
        bad.recipient = "not an address".into();
        assert!(matches!(
            c.compose(&bad, &inv, "Acme", at()),
            Err(ComposeError::Recipient(_))
        ));
    }
}
