//! The master key and the sealed form of stored secrets.
//!
//! Private signing keys are stored only sealed: XChaCha20-Poly1305 under a 256-bit master key
//! that never enters the database, with a random 192-bit nonce per value and the value's name
//! (the key's `kid`) as associated data, so a sealed value cannot be moved to another row.
//! A database dump or backup without the master key mints no token.
//!
//! Sealed layout: `"TDS1"` ‖ nonce (24 bytes) ‖ ciphertext with its 16-byte tag.

pub use crate::config::MasterKeySource;
use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use tenantd_core::Error;

const MAGIC: &[u8; 4] = b"TDS1";
const NONCE_LEN: usize = 24;

/// The key that seals stored secrets.
pub struct MasterKey {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

fn parse(text: &str, what: &str) -> Result<[u8; 32], Error> {
    let bytes = STANDARD.decode(text.trim()).map_err(|_| {
        Error::Internal(format!(
            "{what}: not base64 (expected 32 random bytes, base64)"
        ))
    })?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| Error::Internal(format!("{what}: expected 32 bytes, found {}", bytes.len())))
}

impl MasterKey {
    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(bytes.into()),
        }
    }

    /// A fresh random key and its base64 text.
    pub fn generate() -> Result<(Self, String), Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| Error::Internal(format!("rng: {e}")))?;
        Ok((Self::from_bytes(&bytes), STANDARD.encode(bytes)))
    }

    /// Reads the key. `may_create`: nothing is sealed yet, so a missing file may be created
    /// (mode 0600); otherwise a missing key is an error, never a silent new key.
    pub fn load(source: &MasterKeySource, may_create: bool) -> Result<Self, Error> {
        match source {
            MasterKeySource::Value(v) => {
                Ok(Self::from_bytes(&parse(v.expose(), "TENANTD_MASTER_KEY")?))
            }
            MasterKeySource::File(path) => match std::fs::read_to_string(path) {
                Ok(text) => {
                    warn_if_readable_by_others(path);
                    Ok(Self::from_bytes(&parse(
                        &text,
                        &format!("master_key_file {}", path.display()),
                    )?))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && may_create => create(path),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    Err(Error::Internal(format!(
                        "master_key_file {} is missing, and the catalog's signing keys are sealed with it: restore the file or set TENANTD_MASTER_KEY",
                        path.display()
                    )))
                }
                Err(e) => Err(Error::Internal(format!(
                    "master_key_file {}: {e}",
                    path.display()
                ))),
            },
        }
    }

    /// Seals `plain`, bound to `name`.
    pub fn seal(&self, name: &str, plain: &[u8]) -> Result<Vec<u8>, Error> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| Error::Internal(format!("rng: {e}")))?;
        let sealed = self
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plain,
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| Error::Internal("seal failed".into()))?;
        let mut out = Vec::with_capacity(MAGIC.len() + NONCE_LEN + sealed.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens a value sealed for `name`; `None` when this key did not seal it (a wrong master
    /// key, another row's value, or tampering).
    pub fn open(&self, name: &str, sealed: &[u8]) -> Option<Vec<u8>> {
        let rest = sealed.strip_prefix(MAGIC.as_slice())?;
        if rest.len() < NONCE_LEN {
            return None;
        }
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        self.cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: body,
                    aad: name.as_bytes(),
                },
            )
            .ok()
    }
}

/// Whether a stored value is in the sealed form (else it is a clear value from before sealing).
pub fn is_sealed(value: &[u8]) -> bool {
    value.starts_with(MAGIC)
}

fn create(path: &Path) -> Result<MasterKey, Error> {
    let bad =
        |e: std::io::Error| Error::Internal(format!("master_key_file {}: {e}", path.display()));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(bad)?;
    }
    let (key, text) = MasterKey::generate()?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(path) {
        Ok(mut f) => {
            f.write_all(format!("{text}\n").as_bytes()).map_err(bad)?;
            f.sync_all().map_err(bad)?;
            tracing::info!(path = %path.display(), "created the master key (keep it with your backups, apart from the database)");
            Ok(key)
        }
        // Another process of this deployment created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            MasterKey::load(&MasterKeySource::File(path.to_owned()), false)
        }
        Err(e) => Err(bad(e)),
    }
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = std::fs::metadata(path)
            && m.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(path = %path.display(), mode = format!("{:o}", m.permissions().mode() & 0o777), "the master key file is readable by other users; chmod 600 it");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_its_name() {
        let (key, _) = MasterKey::generate().unwrap();
        let (other, _) = MasterKey::generate().unwrap();
        let sealed = key.seal("k1", b"secret seed").unwrap();
        assert!(is_sealed(&sealed));
        assert_eq!(
            key.open("k1", &sealed).as_deref(),
            Some(&b"secret seed"[..])
        );
        assert!(key.open("k2", &sealed).is_none(), "bound to its name");
        assert!(
            other.open("k1", &sealed).is_none(),
            "a wrong key opens nothing"
        );
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(key.open("k1", &tampered).is_none(), "tampering is detected");
        assert!(!sealed.windows(11).any(|w| w == b"secret seed"));
    }

    #[test]
    fn a_master_key_must_be_32_bytes_of_base64() {
        assert!(parse("not base64!", "k").is_err());
        assert!(parse(&STANDARD.encode([0u8; 16]), "k").is_err());
        assert!(parse(&STANDARD.encode([7u8; 32]), "k").is_ok());
    }
}
