//! Standard Webhooks signatures: `v1,` + base64 HMAC-SHA256 of `{id}.{timestamp}.{body}` under
//! the endpoint secret (`whsec_` + base64 of the key bytes).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::DomainError;

pub const SECRET_PREFIX: &str = "whsec_";
/// Key bytes of a generated secret (256 bits).
const SECRET_BYTES: usize = 32;

/// A fresh signing secret, shown to the organization once.
pub fn generate_secret() -> String {
    let mut bytes = [0u8; SECRET_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
}

/// One `v1,…` signature of a message.
pub fn sign(
    secret: &str,
    message_id: &str,
    timestamp: i64,
    body: &str,
) -> Result<String, DomainError> {
    let key = secret
        .strip_prefix(SECRET_PREFIX)
        .and_then(|k| STANDARD.decode(k).ok())
        .ok_or(DomainError::Crypto)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| DomainError::Crypto)?;
    mac.update(format!("{message_id}.{timestamp}.").as_bytes());
    mac.update(body.as_bytes());
    Ok(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// The `webhook-signature` header: one signature per secret, space-separated, so a receiver
/// holding either the new or the previous secret (during a rotation's overlap) verifies it.
pub fn signature_header(
    secrets: &[String],
    message_id: &str,
    timestamp: i64,
    body: &str,
) -> Result<String, DomainError> {
    let signatures = secrets
        .iter()
        .map(|s| sign(s, message_id, timestamp, body))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(signatures.join(" "))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_webhooks_reference_vector() {
        // The example of the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = r#"{"test": 2432232314}"#;
        let sig = sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body).unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn generated_secrets_are_distinct_and_well_formed() {
        let a = generate_secret();
        let b = generate_secret();
        assert_ne!(a, b);
        assert!(a.starts_with(SECRET_PREFIX));
        assert_eq!(
            STANDARD.decode(&a[SECRET_PREFIX.len()..]).unwrap().len(),
            32
        );
    }

    #[test]
    fn header_carries_one_signature_per_secret() {
        let (a, b) = (generate_secret(), generate_secret());
        let header = signature_header(&[a.clone(), b.clone()], "msg_1", 1, "{}").unwrap();
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(
            parts,
            [
                sign(&a, "msg_1", 1, "{}").unwrap(),
                sign(&b, "msg_1", 1, "{}").unwrap()
            ]
        );
        assert!(sign("not-a-secret", "m", 1, "").is_err());
    }
}
