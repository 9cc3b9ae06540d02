use std::sync::Arc;

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use tenantd_core::Error;
use tenantd_core::identity::Password;
use tokio::sync::Semaphore;

use crate::config::PasswordCost;

/// Hashes and verifies passwords with argon2id on the blocking pool, at most `permits` at a
/// time, so a burst of logins cannot starve the async workers or exhaust memory.
#[derive(Clone)]
pub struct PasswordHashing {
    params: Params,
    permits: Arc<Semaphore>,
    /// A hash of a random password, verified against when the user does not exist, so an
    /// unknown email costs the same as a wrong password.
    dummy: Arc<String>,
}

impl PasswordHashing {
    /// Sets up hashing at `cost`.
    pub fn new(cost: PasswordCost) -> Result<Self, Error> {
        let params = match cost {
            PasswordCost::Owasp => Params::new(19 * 1024, 2, 1, None),
            PasswordCost::InsecureFastForTests => Params::new(256, 1, 1, None),
        }
        .map_err(|e| Error::Internal(format!("argon2 params: {e}")))?;
        let permits = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .max(2);
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let dummy = argon
            .hash_password(crate::auth::secrets::random_secret()?.as_bytes())
            .map_err(|e| Error::Internal(format!("argon2: {e}")))?
            .to_string();
        Ok(Self {
            params,
            permits: Arc::new(Semaphore::new(permits)),
            dummy: Arc::new(dummy),
        })
    }

    /// The argon2id PHC string of `password`.
    pub async fn hash(&self, password: &Password) -> Result<String, Error> {
        let pw = password.expose().to_owned();
        let params = self.params.clone();
        self.blocking(move || {
            Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
                .hash_password(pw.as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| Error::Internal(format!("argon2: {e}")))
        })
        .await
    }

    /// Whether `password` matches `phc`; with no hash (unknown user, or no password set) it
    /// still does the work of one verification and answers `false`.
    pub async fn verify(&self, password: &str, phc: Option<&str>) -> Result<bool, Error> {
        let (hash, real) = match phc {
            Some(h) => (h.to_owned(), true),
            None => (self.dummy.as_str().to_owned(), false),
        };
        let pw = password.to_owned();
        let ok = self
            .blocking(move || {
                Ok(Argon2::default()
                    .verify_password(pw.as_bytes(), hash.as_str())
                    .is_ok())
            })
            .await?;
        Ok(ok && real)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| Error::Unavailable)?;
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| Error::Internal(format!("hash task: {e}")))?
    }
}
