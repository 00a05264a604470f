//! Credential encryption at rest: ChaCha20-Poly1305 with a key derived from `HERALD_SECRETS_KEY`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
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

    /// Seals a connection's credentials, bound to its org and id as associated data: a sealed
    /// row copied to another connection (by someone who can write the database but does not
    /// hold the key) no longer opens there.
    pub fn seal_for(&self, org_id: &str, connection_id: &str, plaintext: &[u8]) -> Sealed {
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let aad = associated_data(org_id, connection_id);
        let ciphertext = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .expect("encrypting in memory cannot fail");
        Sealed {
            nonce: format!("{BOUND}{}", STANDARD.encode(nonce)),
            ciphertext: STANDARD.encode(ciphertext),
        }
    }

    /// Opens what [`Sealer::seal_for`] sealed for this org and connection; `None` when it was
    /// sealed with another key, for another connection, or tampered with. A value sealed before
    /// the binding existed (no version prefix) opens without it; [`reseal_unbound`] rewrites
    /// those at start.
    pub fn open_for(&self, org_id: &str, connection_id: &str, sealed: &Sealed) -> Option<Vec<u8>> {
        let (nonce, aad) = match sealed.nonce.strip_prefix(BOUND) {
            Some(nonce) => (nonce, associated_data(org_id, connection_id)),
            None => (sealed.nonce.as_str(), Vec::new()),
        };
        let nonce = STANDARD.decode(nonce).ok()?;
        let ciphertext = STANDARD.decode(&sealed.ciphertext).ok()?;
        if nonce.len() != 12 {
            return None;
        }
        self.cipher
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &ciphertext,
                    aad: &aad,
                },
            )
            .ok()
    }
}

/// The prefix of a nonce whose value is bound to its org and connection.
const BOUND: &str = "v2:";

/// `org_id NUL connection_id`: neither can hold a NUL, so no two pairs give the same bytes.
fn associated_data(org_id: &str, connection_id: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(org_id.len() + connection_id.len() + 1);
    aad.extend_from_slice(org_id.as_bytes());
    aad.push(0);
    aad.extend_from_slice(connection_id.as_bytes());
    aad
}

/// Re-seals every stored credential sealed before values were bound to their connection, so a
/// copied row stops opening elsewhere. Rows this key cannot open are left as they are (and
/// logged): they open nowhere anyway. Returns how many were re-sealed.
pub async fn reseal_unbound(db: &crate::db::Db, sealer: &Sealer) -> Result<u64, sqlx::Error> {
    use sqlx::Row;
    let rows = sqlx::query(
        "select org_id, id, nonce, ciphertext from connection_secrets where nonce not like 'v2:%'",
    )
    .fetch_all(&db.write)
    .await?;
    let mut resealed = 0;
    for row in rows {
        let (org_id, id): (String, String) = (row.try_get("org_id")?, row.try_get("id")?);
        let old = Sealed {
            nonce: row.try_get("nonce")?,
            ciphertext: row.try_get("ciphertext")?,
        };
        let Some(plain) = sealer.open_for(&org_id, &id, &old) else {
            tracing::warn!(org = %org_id, connection = %id, "stored credentials do not open with HERALD_SECRETS_KEY; left as they are");
            continue;
        };
        let new = sealer.seal_for(&org_id, &id, &plain);
        resealed += sqlx::query(
            "update connection_secrets set nonce = $1, ciphertext = $2
             where org_id = $3 and id = $4 and nonce = $5",
        )
        .bind(&new.nonce)
        .bind(&new.ciphertext)
        .bind(&org_id)
        .bind(&id)
        .bind(&old.nonce)
        .execute(&db.write)
        .await?
        .rows_affected();
    }
    Ok(resealed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_the_same_key() {
        let sealer = Sealer::new("one key");
        let sealed = sealer.seal_for("acme", "conn-1", b"SG.secret");
        assert!(!sealed.ciphertext.contains("SG.secret"));
        assert_eq!(
            sealer.open_for("acme", "conn-1", &sealed).unwrap(),
            b"SG.secret"
        );
        assert!(Sealer::new("another key")
            .open_for("acme", "conn-1", &sealed)
            .is_none());
    }

    #[test]
    fn sealed_values_open_only_for_their_org_and_connection() {
        let sealer = Sealer::new("one key");
        let sealed = sealer.seal_for("acme", "conn-1", b"SG.secret");
        assert!(sealer.open_for("beta", "conn-1", &sealed).is_none());
        assert!(sealer.open_for("acme", "conn-2", &sealed).is_none());
        // The separator keeps ("ac", "me\0…") from meaning ("acme", …).
        assert!(sealer.open_for("acm", "e\0conn-1", &sealed).is_none());
    }

    #[test]
    fn values_sealed_before_the_binding_still_open() {
        let sealer = Sealer::new("one key");
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ciphertext = sealer.cipher.encrypt(&nonce, b"SG.old".as_ref()).unwrap();
        let legacy = Sealed {
            nonce: STANDARD.encode(nonce),
            ciphertext: STANDARD.encode(ciphertext),
        };
        assert_eq!(
            sealer.open_for("acme", "conn-1", &legacy).unwrap(),
            b"SG.old"
        );
    }
}
