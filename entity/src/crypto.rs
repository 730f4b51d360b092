//! Tokens, hashing, sealing (AEAD) and signing, all derived from the one configured secret key.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

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

const SEAL_PREFIX: &str = "v1.";

impl Keyring {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            seal: derive(secret, b"invitations/seal/v1"),
            sign: derive(secret, b"invitations/sign/v1"),
            mac: derive(secret, b"invitations/mac/v1"),
        }
    }

    /// Encrypts and authenticates `plaintext` (XChaCha20-Poly1305, random 192-bit nonce).
    pub fn seal(&self, plaintext: &[u8]) -> Result<String, DomainError> {
        let cipher = XChaCha20Poly1305::new((&self.seal).into());
        let mut nonce = [0u8; 24];
        rand::rng().fill_bytes(&mut nonce);
        let ciphertext = cipher
            .encrypt(XNonce::from_slice(&nonce), plaintext)
            .map_err(|_| DomainError::Crypto)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ciphertext);
        Ok(format!("{SEAL_PREFIX}{}", URL_SAFE_NO_PAD.encode(out)))
    }

    pub fn open(&self, sealed: &str) -> Result<Vec<u8>, DomainError> {
        let body = sealed
            .strip_prefix(SEAL_PREFIX)
            .ok_or(DomainError::Crypto)?;
        let raw = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| DomainError::Crypto)?;
        if raw.len() < 24 {
            return Err(DomainError::Crypto);
        }
        let (nonce, ciphertext) = raw.split_at(24);
        XChaCha20Poly1305::new((&self.seal).into())
            .decrypt(XNonce::from_slice(nonce), ciphertext)
            .map_err(|_| DomainError::Crypto)
    }

    pub fn open_string(&self, sealed: &str) -> Result<String, DomainError> {
        String::from_utf8(self.open(sealed)?).map_err(|_| DomainError::Crypto)
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
        let sealed = keys.seal(b"hunter2").unwrap();
        assert!(!sealed.contains("hunter2"));
        assert_ne!(sealed, keys.seal(b"hunter2").unwrap(), "nonces must differ");
        assert_eq!(keys.open(&sealed).unwrap(), b"hunter2");
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert!(keys.open(std::str::from_utf8(&tampered).unwrap()).is_err());
        assert!(Keyring::new(&[8u8; 32]).open(&sealed).is_err());
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
