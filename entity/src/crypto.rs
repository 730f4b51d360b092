//! Tokens, hashing, sealing (AEAD) and signing, all derived from the one configured secret key.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::DomainError;

/// Bytes of randomness in an invitation token or API key secret (256 bits).
pub const TOKEN_BYTES: usize = 32;
/// Minimum length of a configured secret key, in bytes.
pub const MIN_SECRET_KEY_BYTES: usize = 32;

/// A fresh URL-safe token carrying [`TOKEN_BYTES`] bytes from `rand`'s thread-local CSPRNG
/// (ChaCha12, seeded and periodically reseeded from the operating system).
pub fn generate_token() -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Hex SHA-256 of a high-entropy token. Tokens carry 256 random bits, so a plain hash is enough
/// to make a database dump useless for opening links, and it keeps lookup a single indexed query.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Constant-time comparison of two strings (hashes, signatures).
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// Keys derived from the configured secret: one for sealing, one for signing, one for keyed
/// hashes of short secrets (verification codes), so no key serves two purposes.
#[derive(Clone)]
pub struct Keyring {
    seal: [u8; 32],
    sign: [u8; 32],
    mac: [u8; 32],
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keyring(..)")
    }
}

/// Sealed values bound to their place (see [`Slot`]).
const SEAL_PREFIX: &str = "v2.";
/// Values sealed before they were bound to their place; only [`crate::reseal`] reads them.
const UNBOUND_PREFIX: &str = "v1.";

/// Where a sealed value is stored: table, column and row. Sealing binds the value to its slot
/// (AEAD associated data), so a value that a database writer copies to another row or column
/// no longer opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot(String);

impl Slot {
    fn new(table: &str, column: &str, row: impl std::fmt::Display) -> Self {
        Self(format!("{table}.{column}:{row}"))
    }

    pub fn invitation_token(invitation_id: Uuid) -> Self {
        Self::new("invitations", "token_sealed", invitation_id)
    }

    pub fn connection_password(connection_id: Uuid) -> Self {
        Self::new("connections", "password_sealed", connection_id)
    }

    pub fn connection_edit_link(connection_id: Uuid) -> Self {
        Self::new("connections", "edit_link_secret_sealed", connection_id)
    }

    pub fn company_magic_link(company_id: Uuid) -> Self {
        Self::new("companies", "magic_link_secret_sealed", company_id)
    }

    pub fn webhook_secret(endpoint_id: Uuid) -> Self {
        Self::new("webhook_endpoints", "secret_sealed", endpoint_id)
    }

    pub fn webhook_previous_secret(endpoint_id: Uuid) -> Self {
        Self::new("webhook_endpoints", "previous_secret_sealed", endpoint_id)
    }

    /// A verification code in an email delivery's payload: bound to the invitation and the
    /// address it was sent to (the delivery row does not exist yet when the code is sealed).
    pub fn verification_code(invitation_id: Uuid, email: &str) -> Self {
        Self::new(
            "email_deliveries",
            "payload.sealedCode",
            format!("{invitation_id}:{email}"),
        )
    }
}

impl Keyring {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            seal: derive(secret, b"invitations/seal/v1"),
            sign: derive(secret, b"invitations/sign/v1"),
            mac: derive(secret, b"invitations/mac/v1"),
        }
    }

    /// Encrypts and authenticates `plaintext` for `slot` (XChaCha20-Poly1305, random 192-bit
    /// nonce, the slot as associated data).
    pub fn seal(&self, plaintext: &[u8], slot: &Slot) -> Result<String, DomainError> {
        self.encrypt(SEAL_PREFIX, plaintext, slot.0.as_bytes())
    }

    fn encrypt(&self, prefix: &str, msg: &[u8], aad: &[u8]) -> Result<String, DomainError> {
        let cipher = XChaCha20Poly1305::new((&self.seal).into());
        let mut nonce = [0u8; 24];
        rand::rng().fill_bytes(&mut nonce);
        let ciphertext = cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg, aad })
            .map_err(|_| DomainError::Crypto)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ciphertext);
        Ok(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(out)))
    }

    /// Opens a value sealed for `slot`; anything else (another slot, another key, a tampered
    /// or unbound value) is [`DomainError::Crypto`].
    pub fn open(&self, sealed: &str, slot: &Slot) -> Result<Vec<u8>, DomainError> {
        let body = sealed
            .strip_prefix(SEAL_PREFIX)
            .ok_or(DomainError::Crypto)?;
        self.decrypt(body, slot.0.as_bytes())
    }

    pub fn open_string(&self, sealed: &str, slot: &Slot) -> Result<String, DomainError> {
        String::from_utf8(self.open(sealed, slot)?).map_err(|_| DomainError::Crypto)
    }

    /// Whether `sealed` predates slot binding (and must be sealed again).
    pub fn is_unbound(sealed: &str) -> bool {
        sealed.starts_with(UNBOUND_PREFIX)
    }

    /// Opens a value sealed before slot binding, for [`crate::reseal`] only.
    pub(crate) fn open_unbound(&self, sealed: &str) -> Result<Vec<u8>, DomainError> {
        let body = sealed
            .strip_prefix(UNBOUND_PREFIX)
            .ok_or(DomainError::Crypto)?;
        self.decrypt(body, b"")
    }

    fn decrypt(&self, body: &str, aad: &[u8]) -> Result<Vec<u8>, DomainError> {
        let raw = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| DomainError::Crypto)?;
        if raw.len() < 24 {
            return Err(DomainError::Crypto);
        }
        let (nonce, msg) = raw.split_at(24);
        XChaCha20Poly1305::new((&self.seal).into())
            .decrypt(XNonce::from_slice(nonce), Payload { msg, aad })
            .map_err(|_| DomainError::Crypto)
    }

    /// A value sealed the way it was before slot binding; tests of the re-seal use it.
    #[doc(hidden)]
    pub fn seal_unbound(&self, plaintext: &[u8]) -> Result<String, DomainError> {
        self.encrypt(UNBOUND_PREFIX, plaintext, b"")
    }

    /// URL-safe HMAC-SHA256 signature of `message`.
    pub fn sign(&self, message: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(hmac(&self.sign, message))
    }

    pub fn verify(&self, message: &[u8], signature: &str) -> bool {
        constant_time_eq(&self.sign(message), signature)
    }

    /// Keyed hash for short secrets (6-digit codes) that a plain hash would not protect.
    pub fn keyed_hash(&self, value: &[u8]) -> String {
        hex::encode(hmac(&self.mac, value))
    }
}

fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(message);
    mac.finalize().into_bytes().into()
}

fn derive(secret: &[u8], label: &[u8]) -> [u8; 32] {
    hmac(secret, label)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn tokens_are_url_safe_and_carry_256_bits() {
        let token = generate_token();
        let decoded = URL_SAFE_NO_PAD.decode(&token).unwrap();
        assert_eq!(decoded.len(), 32);
        assert!(
            token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }

    #[test]
    fn tokens_do_not_repeat_and_look_random() {
        let tokens: Vec<String> = (0..2000).map(|_| generate_token()).collect();
        let unique: HashSet<&String> = tokens.iter().collect();
        assert_eq!(unique.len(), tokens.len());
        // Bit balance over 2000 * 256 bits: a fair source lands very close to one half.
        let ones: u32 = tokens
            .iter()
            .flat_map(|t| URL_SAFE_NO_PAD.decode(t).unwrap())
            .map(u8::count_ones)
            .sum();
        let ratio = f64::from(ones) / (2000.0 * 256.0);
        assert!((0.49..0.51).contains(&ratio), "bit ratio {ratio}");
    }

    #[test]
    fn token_hash_is_stable_hex_and_hides_the_token() {
        let token = generate_token();
        let hash = hash_token(&token);
        assert_eq!(hash.len(), 64);
        assert_eq!(hash, hash_token(&token));
        assert_ne!(hash, hash_token(&generate_token()));
        assert!(!hash.contains(&token));
    }

    #[test]
    fn seal_round_trips_and_detects_tampering_and_wrong_keys() {
        let keys = Keyring::new(&[7u8; 32]);
        let slot = Slot::connection_password(Uuid::now_v7());
        let sealed = keys.seal(b"hunter2", &slot).unwrap();
        assert!(!sealed.contains("hunter2"));
        assert_ne!(
            sealed,
            keys.seal(b"hunter2", &slot).unwrap(),
            "nonces must differ"
        );
        assert_eq!(keys.open(&sealed, &slot).unwrap(), b"hunter2");
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert!(
            keys.open(std::str::from_utf8(&tampered).unwrap(), &slot)
                .is_err()
        );
        assert!(Keyring::new(&[8u8; 32]).open(&sealed, &slot).is_err());
    }

    #[test]
    fn a_sealed_value_opens_only_in_its_own_slot() {
        let keys = Keyring::new(&[7u8; 32]);
        let id = Uuid::now_v7();
        let sealed = keys.seal(b"secret", &Slot::invitation_token(id)).unwrap();
        assert!(keys.open(&sealed, &Slot::invitation_token(id)).is_ok());
        // Another row, another column of the same row.
        assert!(
            keys.open(&sealed, &Slot::invitation_token(Uuid::now_v7()))
                .is_err()
        );
        assert!(keys.open(&sealed, &Slot::connection_password(id)).is_err());
        // Unbound values are refused except by the re-seal.
        let old = keys.seal_unbound(b"secret").unwrap();
        assert!(Keyring::is_unbound(&old) && !Keyring::is_unbound(&sealed));
        assert!(keys.open(&old, &Slot::invitation_token(id)).is_err());
        assert_eq!(keys.open_unbound(&old).unwrap(), b"secret");
    }

    #[test]
    fn signatures_verify_only_for_the_signed_message() {
        let keys = Keyring::new(&[1u8; 32]);
        let sig = keys.sign(b"invitation:a@example.com");
        assert!(keys.verify(b"invitation:a@example.com", &sig));
        assert!(!keys.verify(b"invitation:b@example.com", &sig));
        assert!(!Keyring::new(&[2u8; 32]).verify(b"invitation:a@example.com", &sig));
    }
}
