//! Bearer-token authentication and org/role authorization (`api.md` section 1).

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// What a request is allowed to do, taken from a verified token and the `orgid` header.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The token's `sub`: recorded as the actor of every event this request causes.
    pub actor: String,
    pub org_id: String,
    pub roles: Vec<Role>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Marketer,
    Analyst,
    Auditor,
}

impl Role {
    /// The role names tokens carry (`api.md` section 1).
    pub const NAMES: [&'static str; 4] = ["admin", "marketer", "analyst", "auditor"];

    fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "marketer" => Some(Role::Marketer),
            "analyst" => Some(Role::Analyst),
            "auditor" => Some(Role::Auditor),
            _ => None,
        }
    }
}

impl Principal {
    /// Writes to campaigns, contacts, audiences, templates and engagements.
    pub fn can_write(&self) -> bool {
        self.roles
            .iter()
            .any(|r| matches!(r, Role::Admin | Role::Marketer))
    }

    pub fn is_admin(&self) -> bool {
        self.roles.contains(&Role::Admin)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: i64,
    #[serde(default)]
    pub orgs: Vec<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<serde_json::Value>,
}

/// Verifies tokens with exactly one configured algorithm.
#[derive(Clone)]
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
    /// Tokens already verified, with their claims: a client sends the same token on every
    /// request, and checking a signature costs more than the rest of a cached `GET`. A hit is
    /// still refused once the token expires.
    verified: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Claims>>>,
}

/// Verified tokens kept; the map is emptied when it fills.
const VERIFIED_CAPACITY: usize = 10_000;

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Verifier({:?})", self.validation.algorithms)
    }
}

impl Verifier {
    /// HS256 with a shared secret, or RS256/ES256 with a PEM public key (the key decides which).
    pub fn new(
        secret: Option<&str>,
        public_key_pem: Option<&str>,
        issuer: Option<&str>,
        audience: Option<&str>,
    ) -> anyhow::Result<Verifier> {
        let (key, algorithm) = match (public_key_pem, secret) {
            (Some(pem), _) => {
                if let Ok(key) = DecodingKey::from_rsa_pem(pem.as_bytes()) {
                    (key, Algorithm::RS256)
                } else if let Ok(key) = DecodingKey::from_ec_pem(pem.as_bytes()) {
                    (key, Algorithm::ES256)
                } else {
                    anyhow::bail!(
                        "HERALD_JWT_PUBLIC_KEY is neither an RSA nor an EC public key in PEM"
                    );
                }
            }
            (None, Some(secret)) => (
                DecodingKey::from_secret(secret.as_bytes()),
                Algorithm::HS256,
            ),
            (None, None) => anyhow::bail!("no JWT secret or public key configured"),
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = 30;
        validation.validate_exp = true;
        // A token issued for later is not good yet (`nbf`, with the same leeway as `exp`).
        validation.validate_nbf = true;
        let mut required = vec!["exp"];
        match issuer {
            Some(iss) => {
                validation.set_issuer(&[iss]);
                required.push("iss");
            }
            None => validation.iss = None,
        }
        match audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        Ok(Verifier {
            key,
            validation,
            verified: Default::default(),
        })
    }

    /// Returns the claims of a valid token, or `None` for any token that is not.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        let now = chrono::Utc::now().timestamp();
        let leeway = self.validation.leeway as i64;
        if let Some(claims) = self.verified.lock().expect("token cache").get(token) {
            return (claims.exp + leeway >= now).then(|| claims.clone());
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).ok()?;
        if data.claims.sub.is_empty() {
            return None;
        }
        let mut verified = self.verified.lock().expect("token cache");
        if verified.len() >= VERIFIED_CAPACITY {
            verified.clear();
        }
        verified.insert(token.to_string(), data.claims.clone());
        Some(data.claims)
    }

    /// Authorizes `claims` for `org_id`; `None` when the org is not among the token's orgs.
    pub fn principal(claims: Claims, org_id: &str) -> Option<Principal> {
        if !claims.orgs.iter().any(|o| o == org_id) {
            return None;
        }
        Some(Principal {
            actor: claims.sub,
            org_id: org_id.to_string(),
            roles: claims.roles.iter().filter_map(|r| Role::parse(r)).collect(),
        })
    }
}

/// Signs an HS256 token (for `herald token` and tests).
pub fn sign_hs256(secret: &str, claims: &Claims) -> anyhow::Result<String> {
    Ok(jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )?)
}
