//! Credential encryption at rest: ChaCha20-Poly1305 with a key derived from `HERALD_SECRETS_KEY`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use sha2::{Digest, Sha256};

/// Seals and opens connection credentials.
#[derive(Clone)]
pub struct Sealer {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer { .. }")
    }
}

/// An encrypted value as stored: base64 nonce and ciphertext.
#[derive(Debug, Clone)]
pub struct Sealed {
    pub nonce: String,
    pub ciphertext: String,
}

impl Sealer {
    /// Derives the 256-bit key from the configured secret (any length) with SHA-256.
    pub fn new(secret: &str) -> Sealer {
        let digest = Sha256::digest(secret.as_bytes());
        Sealer {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&digest)),
        }
    }

    pub fn seal(&self, plaintext: &[u8]) -> Sealed {
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ciphertext = self
            .cipher
            .encrypt(&nonce, plaintext)
            .expect("encrypting in memory cannot fail");
        Sealed {
            nonce: STANDARD.encode(nonce),
            ciphertext: STANDARD.encode(ciphertext),
        }
    }

    /// Opens a sealed value; `None` when it was sealed with another key or tampered with.
    pub fn open(&self, sealed: &Sealed) -> Option<Vec<u8>> {
        let nonce = STANDARD.decode(&sealed.nonce).ok()?;
        let ciphertext = STANDARD.decode(&sealed.ciphertext).ok()?;
        if nonce.len() != 12 {
            return None;
        }
        self.cipher
            .decrypt(Nonce::from_slice(&nonce), ciphertext.as_ref())
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_the_same_key() {
        let sealer = Sealer::new("one key");
        let sealed = sealer.seal(b"SG.secret");
        assert!(!sealed.ciphertext.contains("SG.secret"));
        assert_eq!(sealer.open(&sealed).unwrap(), b"SG.secret");
        assert!(Sealer::new("another key").open(&sealed).is_none());
    }
}
