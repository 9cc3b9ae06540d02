//! One-line reasons for the domain's errors, shared by the commands.

use anyhow::anyhow;

/// The domain error as the one line a command exits with.
pub fn err(e: tenantd_core::Error) -> anyhow::Error {
    match e {
        tenantd_core::Error::Validation(v) => {
            anyhow!(
                "invalid input: {}",
                v.iter()
                    .map(|f| format!("{}: {}", f.field, f.message))
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        }
        tenantd_core::Error::Conflict { message, .. } => anyhow!("conflict: {message}"),
        tenantd_core::Error::TenantDeleted => anyhow!("the tenant is deleted"),
        tenantd_core::Error::Forbidden(why) => anyhow!("refused: {why}"),
        tenantd_core::Error::QuotaExceeded {
            resource,
            current,
            limit,
            ..
        } => {
            anyhow!("quota {resource}: {current} in use, the plan allows {limit} (use --force)")
        }
        other => anyhow!("{other}"),
    }
}
