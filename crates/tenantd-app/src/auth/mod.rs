//! Credentials: signing keys and access tokens, password hashing, opaque secrets.

/// Ed25519 signing keys, access tokens and the JWKS.
pub mod keys;
/// argon2id on a bounded blocking pool.
pub mod password;
/// The master key and sealed secrets.
pub mod seal;
/// Random opaque secrets (refresh tokens, API keys, invitations) and their hashes.
pub mod secrets;
