//! Checks many tests make of a deployment.

use super::TestApp;

impl TestApp {
    /// Asserts that the tenant's audit chain verifies (`GET /v1/audit/verify` as the platform
    /// admin crossing into it); `context` names the case in the failure.
    pub async fn assert_chain_verifies(&self, tenant_id: &str, context: &str) {
        let v = self
            .call_h(
                "GET",
                "/v1/audit/verify",
                Some(&self.admin_token),
                None,
                &[("x-tenant-id", tenant_id)],
            )
            .await;
        assert_eq!(v.status, 200, "{context}: {}", v.text);
        assert_eq!(v.body["ok"], true, "{context}: {}", v.text);
    }
}
