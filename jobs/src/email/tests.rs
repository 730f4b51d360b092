use super::templates::{Code, Invitation, Letter};
use super::*;
use chrono::{Duration, TimeZone};
use entity::{InvitationStatus, Prefill, StringList};
use test_support::mail::Mail;

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 14, 0, 0).unwrap()
}

#[test]
fn html_parts_escape_every_value_and_text_parts_keep_it() {
    let raw = r#"<a href="x" title='y'>Tom & Jerry</a> {{ link }} &amp;"#;
    let escaped = "&#60;a href=&#34;x&#34; title=&#39;y&#39;&#62;Tom &#38; Jerry&#60;/a&#62; \
                   {{ link }} &#38;amp;";
    let vars = Invitation {
        headline: raw,
        intro: raw,
        link: raw,
        expiry: raw,
        recipient: raw,
    };
    let letter = Letter::invitation(raw, &vars).unwrap();
    // Five values, and the headline twice (title and heading), the link three times.
    assert_eq!(letter.html.matches(escaped).count(), 8, "{}", letter.html);
    assert!(!letter.html.contains("<a href=\"x\""));
    assert_eq!(letter.text.matches(raw).count(), 5, "{}", letter.text);

    let vars = Code {
        company: raw,
        code: raw,
        expiry: raw,
    };
    let letter = Letter::code(raw, &vars).unwrap();
    assert_eq!(letter.html.matches(escaped).count(), 4, "{}", letter.html);
    assert_eq!(letter.text.matches(raw).count(), 3, "{}", letter.text);
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
    assert!(words(Duration::minutes(59) + Duration::seconds(40)).starts_with("expires in 1 hour "));
    assert!(words(Duration::minutes(10)).starts_with("expires in 10 minutes"));
    assert!(words(Duration::hours(23) + Duration::minutes(40)).starts_with("expires in 1 day "));
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
    let id = Uuid::now_v7();
    invitations::Model {
        id,
        organization_id: Uuid::now_v7(),
        company_id: Uuid::now_v7(),
        connection_id: None,
        invitation_type: InvitationType::CreateConnection,
        status: InvitationStatus::Active,
        token_hash: String::new(),
        token_sealed: keys
            .seal(
                token.as_bytes(),
                &entity::crypto::Slot::invitation_token(id),
            )
            .unwrap(),
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
    entity::outbox::email::delivery_row(
        invitation,
        kind,
        "ann+x@example.com".into(),
        payload,
        None,
        at(),
    )
}

fn formatted(message: &Message) -> String {
    String::from_utf8(message.formatted()).unwrap()
}

#[test]
fn invitation_message_is_multipart_alternative_with_the_signed_link_in_both_parts() {
    let keys = Keyring::new(&[9u8; 32]);
    let c = composer(&keys);
    let inv = invitation(&keys, "tok_EN");
    let d = delivery(&inv, DeliveryKind::Invitation, serde_json::json!({}));
    let message = c.compose(&d, &inv, "Acme <Utilities> & Co", at()).unwrap();
    let raw = formatted(&message);
    let mail = Mail::parse(&raw);

    assert!(
        mail.header("Content-Type")
            .unwrap()
            .starts_with("multipart/alternative"),
        "{raw}"
    );
    assert_eq!(mail.message_id(), Some(d.message_id.clone()));
    assert_eq!(
        mail.header("Date").as_deref(),
        Some("Wed, 25 Nov 2026 14:00:00 +0000")
    );
    assert_eq!(mail.header("To").as_deref(), Some("ann+x@example.com"));
    assert_eq!(
        mail.subject().as_deref(),
        Some("Connect your utility account for Acme <Utilities> & Co")
    );

    let sig = keys.sign(preverify_message(inv.id, "ann+x@example.com").as_bytes());
    let link =
        format!("https://invite.example.com/base/p/i/tok_EN?email=ann%2Bx%40example.com&sig={sig}");
    assert_eq!(
        c.invitation_link(inv.id, "tok_EN", "ann+x@example.com")
            .as_str(),
        link
    );

    let parts = mail.parts();
    let [text, html] = &parts[..] else {
        panic!("expected two parts, got {parts:?}");
    };
    assert_eq!(text.content_type, "text/plain");
    assert_eq!(html.content_type, "text/html");
    let (text, html) = (&text.body, &html.body);
    assert!(text.contains(&link), "{text}");
    assert!(text.contains("expires in 3 days (on 28 Nov 2026, 14:00 UTC)"));
    assert!(text.contains("Acme <Utilities> & Co invites you"));
    let escaped_link = link.replace('&', "&#38;");
    assert!(
        html.contains(&format!("<a href=\"{escaped_link}\">{escaped_link}</a>")),
        "{html}"
    );
    assert!(html.contains("Acme &#60;Utilities&#62; &#38; Co invites you"));
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
    let raw = formatted(
        &c.compose(&d, &inv, "Acme\r\nBcc: evil@example.com", at())
            .unwrap(),
    );
    let mail = Mail::parse(&raw);
    assert_eq!(
        mail.subject().as_deref(),
        Some("Reminder: Reconnect your utility account for Acme  Bcc: evil@example.com")
    );
    assert_eq!(mail.header("Bcc"), None);
    let text = mail.text().unwrap();
    assert!(text.contains("This is a reminder."));
    assert!(text.contains("This link does not expire."));
}

#[test]
fn verification_code_message_shows_the_code_and_its_validity() {
    let keys = Keyring::new(&[9u8; 32]);
    let c = composer(&keys);
    let inv = invitation(&keys, "tok");
    let slot = entity::crypto::Slot::verification_code(inv.id, "ann+x@example.com");
    let payload =
        VerificationCodePayload::new(&keys, &slot, "042917", at() + Duration::minutes(10)).unwrap();
    let d = delivery(&inv, DeliveryKind::VerificationCode, payload.to_json());
    let raw = formatted(&c.compose(&d, &inv, "Acme", at()).unwrap());
    let mail = Mail::parse(&raw);
    assert_eq!(
        mail.subject().as_deref(),
        Some("Your verification code for Acme")
    );
    for body in mail.parts().iter().map(|p| &p.body) {
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
