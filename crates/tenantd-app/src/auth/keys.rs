use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tenantd_core::store::{CatalogStore, SigningKeyRecord};
use tenantd_core::{Error, time};

use crate::auth::seal::{MasterKey, MasterKeySource, is_sealed};

/// The claims of a tenantd access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user.
    pub sub: String,
    /// The tenant.
    pub tid: String,
    /// The role in that tenant when the token was issued (the live membership decides).
    pub role: String,
    /// The session (refresh-token family); revoking it kills the token.
    pub sid: String,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Expiry (seconds since the epoch).
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Token id.
    pub jti: String,
    /// The refresh generation it was minted at (0 at login, +1 per refresh).
    #[serde(default)]
    pub r#gen: i64,
}

/// An Ed25519 signature over a document, with the key that made it (base64url, no padding).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetachedSignature {
    /// The signing key's id (as in the JWKS).
    pub kid: String,
    /// Its public key.
    pub public_key: String,
    /// The signature.
    pub value: String,
}

impl DetachedSignature {
    /// Whether it is a valid signature of `message` by its own public key.
    pub fn verifies(&self, message: &[u8]) -> bool {
        let Ok(public) = URL_SAFE_NO_PAD.decode(&self.public_key) else {
            return false;
        };
        let Ok(sig) = URL_SAFE_NO_PAD.decode(&self.value) else {
            return false;
        };
        let (Ok(public), Ok(sig)) = (
            <[u8; 32]>::try_from(public.as_slice()),
            ed25519_dalek::Signature::from_slice(&sig),
        ) else {
            return false;
        };
        ed25519_dalek::VerifyingKey::from_bytes(&public)
            .is_ok_and(|k| k.verify_strict(message, &sig).is_ok())
    }
}

/// Clock skew tolerated on `exp`.
const LEEWAY_SECS: u64 = 5;

/// PKCS#8 v1 wrapping of an Ed25519 seed (RFC 8410): a fixed 16-byte prefix, then the seed.
const PKCS8_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

struct Verifier {
    key: DecodingKey,
    public: Vec<u8>,
    until: Option<DateTime<Utc>>,
}

struct Inner {
    signer: Option<(String, EncodingKey)>,
    verifiers: HashMap<String, Verifier>,
    loaded: Instant,
}

/// The node's signing keys, loaded from the catalog (so every node and restart shares them),
/// their private halves sealed there under the master key.
#[derive(Clone)]
pub struct KeyRing {
    inner: Arc<RwLock<Inner>>,
    master: Arc<MasterKey>,
    issuer: String,
    ttl: i64,
}

fn encoding_key(seed: &[u8]) -> EncodingKey {
    let mut der = PKCS8_ED25519_PREFIX.to_vec();
    der.extend_from_slice(seed);
    EncodingKey::from_ed_der(&der)
}

/// A fresh Ed25519 key record, its private key sealed under `master`.
pub fn generate_key(master: &MasterKey) -> Result<SigningKeyRecord, Error> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| Error::Internal(format!("rng: {e}")))?;
    let public = ed25519_dalek::SigningKey::from_bytes(&seed)
        .verifying_key()
        .to_bytes();
    let now = time::now();
    let kid = format!("k{}", now.format("%Y%m%d%H%M%S%6f"));
    let sealed = master.seal(&kid, &seed)?;
    seed.fill(0);
    Ok(SigningKeyRecord {
        kid,
        private_key: sealed,
        public_key: public.to_vec(),
        created_at: now,
        verify_until: None,
    })
}

/// The signing seed of a stored key: opened with the master key, and checked against the
/// stored public key (a key that opens to another key pair is refused).
fn open_seed(master: &MasterKey, k: &SigningKeyRecord) -> Result<Vec<u8>, Error> {
    let seed = if is_sealed(&k.private_key) {
        master.open(&k.kid, &k.private_key).ok_or_else(|| {
            Error::Internal(format!(
                "the master key does not open signing key {}: wrong TENANTD_MASTER_KEY or master_key_file",
                k.kid
            ))
        })?
    } else {
        k.private_key.clone()
    };
    let seed32 = <[u8; 32]>::try_from(seed.as_slice())
        .map_err(|_| Error::Internal(format!("signing key {}: not an Ed25519 seed", k.kid)))?;
    let public = ed25519_dalek::SigningKey::from_bytes(&seed32).verifying_key();
    if public.as_bytes().as_slice() != k.public_key.as_slice() {
        return Err(Error::Internal(format!(
            "signing key {}: its private and public halves do not match",
            k.kid
        )));
    }
    Ok(seed)
}

impl KeyRing {
    /// Loads the keys: opens the master key (creating its file only while nothing is sealed),
    /// seals any key stored in clear by an older release, and creates the first key on a new
    /// catalog.
    pub async fn load(
        catalog: &dyn CatalogStore,
        master: &MasterKeySource,
        issuer: &str,
        ttl: i64,
    ) -> Result<Self, Error> {
        let records = catalog.list_signing_keys().await?;
        let any_sealed = records.iter().any(|k| is_sealed(&k.private_key));
        let master = Arc::new(MasterKey::load(master, !any_sealed)?);
        for k in records.iter().filter(|k| !is_sealed(&k.private_key)) {
            open_seed(&master, k)?;
            let sealed = master.seal(&k.kid, &k.private_key)?;
            if catalog
                .reseal_signing_key(&k.kid, &k.private_key, &sealed)
                .await?
            {
                tracing::info!(kid = %k.kid, "sealed a signing key stored in clear");
            }
        }
        if records.is_empty() {
            catalog
                .insert_signing_key(generate_key(&master)?, None)
                .await?;
        }
        let ring = Self {
            inner: Arc::new(RwLock::new(Inner {
                signer: None,
                verifiers: HashMap::new(),
                loaded: Instant::now(),
            })),
            master,
            issuer: issuer.to_owned(),
            ttl,
        };
        ring.reload(catalog).await?;
        Ok(ring)
    }

    /// Adds a new signing key (sealed); older keys keep verifying for one access-token
    /// lifetime. Returns its `kid`.
    pub async fn rotate(&self, catalog: &dyn CatalogStore) -> Result<String, Error> {
        let key = generate_key(&self.master)?;
        let kid = key.kid.clone();
        catalog
            .insert_signing_key(key, Some(time::now() + Duration::seconds(self.ttl + 60)))
            .await?;
        self.reload(catalog).await?;
        Ok(kid)
    }

    /// Signs `message` with the current signing key (the one that signs tokens): its `kid`,
    /// public key and the Ed25519 signature. Reads the key from the catalog, so the seed is
    /// held only for the call.
    pub async fn sign_detached(
        &self,
        catalog: &dyn CatalogStore,
        message: &[u8],
    ) -> Result<DetachedSignature, Error> {
        use ed25519_dalek::Signer;
        let records = catalog.list_signing_keys().await?;
        let k = records
            .iter()
            .filter(|k| k.verify_until.is_none())
            .max_by_key(|k| k.created_at)
            .ok_or_else(|| Error::Internal("no signing key".into()))?;
        let mut seed = open_seed(&self.master, k)?;
        let seed32 = <[u8; 32]>::try_from(seed.as_slice())
            .map_err(|_| Error::Internal("not an Ed25519 seed".into()))?;
        seed.fill(0);
        let key = ed25519_dalek::SigningKey::from_bytes(&seed32);
        Ok(DetachedSignature {
            kid: k.kid.clone(),
            public_key: URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes()),
            value: URL_SAFE_NO_PAD.encode(key.sign(message).to_bytes()),
        })
    }

    /// Re-reads the keys (after a rotation by the CLI or another node).
    pub async fn reload(&self, catalog: &dyn CatalogStore) -> Result<(), Error> {
        let records = catalog.list_signing_keys().await?;
        let now = time::now();
        let signer = match records
            .iter()
            .filter(|k| k.verify_until.is_none())
            .max_by_key(|k| k.created_at)
        {
            Some(k) => Some((k.kid.clone(), encoding_key(&open_seed(&self.master, k)?))),
            None => None,
        };
        let verifiers = records
            .iter()
            .filter(|k| k.verify_until.is_none_or(|u| u > now))
            .map(|k| {
                (
                    k.kid.clone(),
                    Verifier {
                        key: DecodingKey::from_ed_der(&k.public_key),
                        public: k.public_key.clone(),
                        until: k.verify_until,
                    },
                )
            })
            .collect();
        let mut inner = self
            .inner
            .write()
            .map_err(|_| Error::Internal("key ring lock".into()))?;
        *inner = Inner {
            signer,
            verifiers,
            loaded: Instant::now(),
        };
        Ok(())
    }

    /// The token issuer (`iss`, and `aud`): the configured `public_url`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Whether the keys were loaded more than `secs` ago.
    pub fn older_than(&self, secs: u64) -> bool {
        self.inner
            .read()
            .map(|i| i.loaded.elapsed().as_secs() >= secs)
            .unwrap_or(true)
    }

    /// Whether `kid` is known.
    pub fn knows(&self, kid: &str) -> bool {
        self.inner
            .read()
            .map(|i| i.verifiers.contains_key(kid))
            .unwrap_or(false)
    }

    /// The master key (it seals webhook secrets too).
    pub fn master(&self) -> &MasterKey {
        &self.master
    }

    /// Access-token lifetime, seconds.
    pub fn ttl(&self) -> i64 {
        self.ttl
    }

    /// Signs an access token.
    pub fn issue(
        &self,
        sub: &str,
        tid: &str,
        role: &str,
        sid: &str,
        generation: i64,
    ) -> Result<String, Error> {
        let inner = self
            .inner
            .read()
            .map_err(|_| Error::Internal("key ring lock".into()))?;
        let (kid, key) = inner
            .signer
            .as_ref()
            .ok_or_else(|| Error::Internal("no signing key".into()))?;
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: sub.to_owned(),
            tid: tid.to_owned(),
            role: role.to_owned(),
            sid: sid.to_owned(),
            iss: self.issuer.clone(),
            aud: self.issuer.clone(),
            exp: now + self.ttl,
            iat: now,
            jti: uuid::Uuid::now_v7().to_string(),
            r#gen: generation,
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.clone());
        jsonwebtoken::encode(&header, &claims, key)
            .map_err(|e| Error::Internal(format!("jwt: {e}")))
    }

    /// Verifies an access token: EdDSA only, a known and live `kid`, signature, `exp`,
    /// `iss`, `aud`. Anything else is `UNAUTHENTICATED`.
    pub fn verify(&self, token: &str) -> Result<Claims, Error> {
        self.verify_until(token).map(|(c, _)| c)
    }

    /// Verifies an access token, and says until when that verdict holds: its expiry (with the
    /// leeway) or its key's retirement, whichever is first (seconds since the epoch).
    pub fn verify_until(&self, token: &str) -> Result<(Claims, i64), Error> {
        let bad = Error::Unauthenticated("invalid access token");
        if token.len() > 8192 {
            return Err(bad);
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| Error::Unauthenticated("invalid access token"))?;
        if header.alg != Algorithm::EdDSA {
            return Err(bad);
        }
        let kid = header
            .kid
            .ok_or(Error::Unauthenticated("invalid access token"))?;
        let inner = self
            .inner
            .read()
            .map_err(|_| Error::Internal("key ring lock".into()))?;
        let v = inner
            .verifiers
            .get(&kid)
            .ok_or(Error::Unauthenticated("invalid access token"))?;
        if v.until.is_some_and(|u| u <= Utc::now()) {
            return Err(bad);
        }
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECS;
        let claims = jsonwebtoken::decode::<Claims>(token, &v.key, &validation)
            .map(|d| d.claims)
            .map_err(|_| Error::Unauthenticated("invalid access token"))?;
        let mut until = claims.exp.saturating_add(LEEWAY_SECS as i64);
        if let Some(u) = v.until {
            until = until.min(u.timestamp());
        }
        Ok((claims, until))
    }

    /// The JWKS document of the keys that verify.
    pub fn jwks(&self) -> Value {
        let keys: Vec<Value> = self
            .inner
            .read()
            .map(|i| {
                i.verifiers
                    .iter()
                    .map(|(kid, v)| {
                        json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": kid, "x": URL_SAFE_NO_PAD.encode(&v.public)})
                    })
                    .collect()
            })
            .unwrap_or_default();
        json!({ "keys": keys })
    }
}
