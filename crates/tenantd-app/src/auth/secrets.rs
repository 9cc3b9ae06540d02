use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use tenantd_core::Error;

/// 32 random bytes, base64url: the body of every opaque secret.
pub fn random_secret() -> Result<String, Error> {
    let mut buf = [0u8; 32];
    getrandom::fill(&mut buf).map_err(|e| Error::Internal(format!("rng: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

/// The stored form of a secret: sha256, hex. Secrets carry 256 bits of entropy, so a fast
/// hash is enough (no dictionary to attack) and keeps lookups by hash cheap.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A new refresh token (`rt_…`).
pub fn refresh_token() -> Result<String, Error> {
    Ok(format!("rt_{}", random_secret()?))
}

/// A new invitation token (`inv_…`).
pub fn invitation_token() -> Result<String, Error> {
    Ok(format!("inv_{}", random_secret()?))
}

/// A new API key (`tdk_<8 chars>_<secret>`) and its visible prefix.
pub fn api_key() -> Result<(String, String), Error> {
    let secret = random_secret()?;
    let prefix = format!("tdk_{}", &secret[..8]);
    Ok((format!("{prefix}_{}", &secret[8..]), prefix))
}

/// Whether a bearer credential is an API key rather than a JWT.
pub fn looks_like_api_key(s: &str) -> bool {
    s.starts_with("tdk_")
}
