//! Users, memberships and invitations; the `users` quota counts members plus pending
//! invitations.

use async_trait::async_trait;
use tenantd_core::access::Role;
use tenantd_core::audit::AuditDraft;
use tenantd_core::identity::{Invitation, Membership, NewInvitation, NewUser, User};
use tenantd_core::ids::{InvitationId, TenantId, UserId};
use tenantd_core::store::{Joiner, MemberStore, NewSession, SetupEvents};
use tenantd_core::{Error, Result, time};

use super::credentials::insert_session;
use super::{Catalog, insert_outbox, lock_tenant};
use crate::db::{Columns, Conn, Db, Int, Record, Text, Tx, q};
use crate::rows::{AcceptedRow, InvitationRow, MembershipRow, UserRow, fmt, role};
use crate::sql::{credentials, identity};
use crate::{classify_conflict, quota};

pub(crate) async fn insert_user(tx: &mut impl Conn, u: &NewUser) -> Result<()> {
    tx.execute(
        q(identity::INSERT_USER)
            .bind(u.id.to_string())
            .bind(u.email.as_str())
            .bind(&u.name)
            .bind(&u.password_hash)
            .bind(fmt(time::now())),
    )
    .await?;
    Ok(())
}

pub(crate) async fn insert_membership(
    tx: &mut impl Conn,
    tenant: TenantId,
    user: UserId,
    role: Role,
) -> Result<()> {
    tx.execute(
        q(identity::INSERT_MEMBERSHIP)
            .bind(tenant.to_string())
            .bind(user.to_string())
            .bind(role.as_str())
            .bind(fmt(time::now())),
    )
    .await
    .map_err(|e| classify_conflict(e, "email", "already a member of this tenant"))?;
    Ok(())
}

pub(crate) async fn insert_invitation(tx: &mut impl Conn, inv: &NewInvitation) -> Result<()> {
    tx.execute(
        q(identity::INSERT_INVITATION)
            .bind(inv.id.to_string())
            .bind(inv.tenant_id.to_string())
            .bind(inv.email.as_str())
            .bind(inv.role.as_str())
            .bind(&inv.token_hash)
            .bind(fmt(inv.expires_at))
            .bind(inv.created_by.map(|u| u.to_string()))
            .bind(fmt(time::now())),
    )
    .await?;
    Ok(())
}

async fn owner_count(tx: &mut impl Conn, tenant: TenantId) -> Result<i64> {
    let Int(n) = tx
        .fetch_one(q(identity::OWNER_COUNT).bind(tenant.to_string()))
        .await?;
    Ok(n)
}

async fn member_role(tx: &mut impl Conn, tenant: TenantId, user: UserId) -> Result<Role> {
    let Text(r) = tx
        .fetch_one(
            q(identity::ROLE)
                .bind(tenant.to_string())
                .bind(user.to_string()),
        )
        .await?;
    role(&r, "role")
}

async fn membership_in(tx: &mut impl Conn, tenant: TenantId, user: UserId) -> Result<Membership> {
    let row: MembershipRow = tx
        .fetch_one(
            q(identity::FIND_MEMBERSHIP)
                .bind(tenant.to_string())
                .bind(user.to_string()),
        )
        .await?;
    row.try_into()
}

/// Frees the `users` slots of pending invitations that have expired.
async fn release_expired_invitations(tx: &mut impl Conn, tenant: TenantId) -> Result<()> {
    let n = tx
        .execute(
            q(identity::RELEASE_EXPIRED)
                .bind(tenant.to_string())
                .bind(fmt(time::now())),
        )
        .await?;
    if n > 0 {
        quota::release(tx, tenant, "users", n as i64).await?;
    }
    Ok(())
}

#[async_trait]
impl<D: Db> MemberStore for Catalog<D> {
    async fn find_user(&self, id: UserId) -> Result<Option<User>> {
        let row: Option<UserRow> = self
            .db
            .reader()?
            .fetch_optional(q(identity::FIND_USER).bind(id.to_string()))
            .await?;
        row.map(User::try_from).transpose()
    }

    async fn find_user_by_email(&self, email: &str) -> Result<Option<User>> {
        let row: Option<UserRow> = self
            .db
            .reader()?
            .fetch_optional(q(identity::FIND_USER_BY_EMAIL).bind(email))
            .await?;
        row.map(User::try_from).transpose()
    }

    async fn set_user_last_tenant(&self, user: UserId, tenant: TenantId) -> Result<()> {
        self.db
            .writer()?
            .execute(
                q(identity::SET_LAST_TENANT)
                    .bind(tenant.to_string())
                    .bind(user.to_string()),
            )
            .await?;
        Ok(())
    }

    async fn find_membership(&self, tenant: TenantId, user: UserId) -> Result<Option<Membership>> {
        let row: Option<MembershipRow> = self
            .db
            .reader()?
            .fetch_optional(
                q(identity::FIND_MEMBERSHIP)
                    .bind(tenant.to_string())
                    .bind(user.to_string()),
            )
            .await?;
        row.map(Membership::try_from).transpose()
    }

    async fn list_user_memberships(&self, user: UserId) -> Result<Vec<Membership>> {
        let rows: Vec<MembershipRow> = self
            .db
            .reader()?
            .fetch_all(q(identity::LIST_OF_USER).bind(user.to_string()))
            .await?;
        rows.into_iter().map(Membership::try_from).collect()
    }

    async fn list_members(&self, tenant: TenantId) -> Result<Vec<Membership>> {
        let rows: Vec<MembershipRow> = self
            .db
            .reader()?
            .fetch_all(q(identity::LIST_OF_TENANT).bind(tenant.to_string()))
            .await?;
        rows.into_iter().map(Membership::try_from).collect()
    }

    async fn update_member_role(
        &self,
        tenant: TenantId,
        user: UserId,
        role: Role,
        outbox: Vec<AuditDraft>,
    ) -> Result<Membership> {
        let mut tx = self.db.begin().await?;
        lock_tenant(&mut tx, tenant).await?;
        let current = member_role(&mut tx, tenant, user).await?;
        if current == Role::Owner && role != Role::Owner && owner_count(&mut tx, tenant).await? <= 1
        {
            return Err(Error::conflict("role", "the last owner cannot be demoted"));
        }
        tx.execute(
            q(identity::SET_ROLE)
                .bind(role.as_str())
                .bind(tenant.to_string())
                .bind(user.to_string()),
        )
        .await?;
        insert_outbox(&mut tx, &outbox).await?;
        let m = membership_in(&mut tx, tenant, user).await?;
        tx.commit().await?;
        Ok(m)
    }

    async fn remove_member(
        &self,
        tenant: TenantId,
        user: UserId,
        outbox: Vec<AuditDraft>,
    ) -> Result<()> {
        let mut tx = self.db.begin().await?;
        lock_tenant(&mut tx, tenant).await?;
        let current = member_role(&mut tx, tenant, user).await?;
        if current == Role::Owner && owner_count(&mut tx, tenant).await? <= 1 {
            return Err(Error::conflict(
                "user_id",
                "the last owner cannot be removed",
            ));
        }
        let (t, u, now) = (tenant.to_string(), user.to_string(), fmt(time::now()));
        tx.execute(q(identity::DELETE_MEMBERSHIP).bind(&t).bind(&u))
            .await?;
        tx.execute(
            q(credentials::REVOKE_SESSIONS_OF_MEMBER)
                .bind(&now)
                .bind(&t)
                .bind(&u),
        )
        .await?;
        // Their API keys die with the membership, for good: a later re-invitation does not
        // bring them back.
        tx.execute(
            q(credentials::REVOKE_API_KEYS_OF_MEMBER)
                .bind(&now)
                .bind(&t)
                .bind(&u),
        )
        .await?;
        quota::release(&mut tx, tenant, "users", 1).await?;
        insert_outbox(&mut tx, &outbox).await?;
        tx.commit().await
    }

    async fn users_used(&self, tenant: TenantId) -> Result<i64> {
        let Int(n) = self
            .db
            .reader()?
            .fetch_one(
                q(identity::USERS_USED)
                    .bind(tenant.to_string())
                    .bind(fmt(time::now())),
            )
            .await?;
        Ok(n)
    }

    async fn create_invitation(
        &self,
        inv: NewInvitation,
        limit: Option<i64>,
        outbox: Vec<AuditDraft>,
    ) -> Result<Invitation> {
        let mut tx = self.db.begin().await?;
        let t = inv.tenant_id.to_string();
        lock_tenant(&mut tx, inv.tenant_id).await?;
        let Int(member) = tx
            .fetch_one(
                q(identity::MEMBERS_WITH_EMAIL)
                    .bind(&t)
                    .bind(inv.email.as_str()),
            )
            .await?;
        if member > 0 {
            return Err(Error::conflict("email", "already a member of this tenant"));
        }
        release_expired_invitations(&mut tx, inv.tenant_id).await?;
        let Int(pending) = tx
            .fetch_one(
                q(identity::PENDING_FOR_EMAIL)
                    .bind(&t)
                    .bind(inv.email.as_str()),
            )
            .await?;
        if pending > 0 {
            return Err(Error::conflict(
                "email",
                "a pending invitation for this email exists",
            ));
        }
        let alerts = quota::take(&mut tx, inv.tenant_id, "users", limit, 1).await?;
        insert_invitation(&mut tx, &inv).await?;
        insert_outbox(&mut tx, &outbox).await?;
        insert_outbox(&mut tx, &alerts).await?;
        let row: InvitationRow = tx
            .fetch_one(q(identity::FIND_INVITATION).bind(inv.id.to_string()))
            .await?;
        let out = row.at(time::now())?;
        tx.commit().await?;
        Ok(out)
    }

    async fn list_invitations(&self, tenant: TenantId) -> Result<Vec<Invitation>> {
        let now = time::now();
        let rows: Vec<InvitationRow> = self
            .db
            .reader()?
            .fetch_all(q(identity::LIST_INVITATIONS).bind(tenant.to_string()))
            .await?;
        rows.into_iter().map(|r| r.at(now)).collect()
    }

    async fn revoke_invitation(
        &self,
        tenant: TenantId,
        id: InvitationId,
        outbox: Vec<AuditDraft>,
    ) -> Result<()> {
        let mut tx = self.db.begin().await?;
        let Int(released) = tx
            .fetch_one(
                q(identity::PENDING_RELEASED)
                    .bind(id.to_string())
                    .bind(tenant.to_string()),
            )
            .await?;
        tx.execute(
            q(identity::REVOKE_INVITATION)
                .bind(fmt(time::now()))
                .bind(id.to_string()),
        )
        .await?;
        if released == 0 {
            quota::release(&mut tx, tenant, "users", 1).await?;
        }
        insert_outbox(&mut tx, &outbox).await?;
        tx.commit().await
    }

    async fn put_password_setup(
        &self,
        tenant: TenantId,
        user: UserId,
        token_hash: &str,
        expires_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<()> {
        let mut tx = self.db.begin().await?;
        tx.execute(
            q(identity::END_PASSWORD_SETUPS)
                .bind(user.to_string())
                .bind(fmt(time::now())),
        )
        .await?;
        tx.execute(
            q(identity::INSERT_PASSWORD_SETUP)
                .bind(token_hash)
                .bind(user.to_string())
                .bind(tenant.to_string())
                .bind(fmt(expires_at)),
        )
        .await?;
        tx.commit().await
    }

    async fn use_password_setup(
        &self,
        token_hash: &str,
        password_hash: &str,
        outbox: SetupEvents,
    ) -> Result<(UserId, TenantId)> {
        let mut tx = self.db.begin().await?;
        let used: Option<SetupRow> = tx
            .fetch_optional(
                q(identity::USE_PASSWORD_SETUP)
                    .bind(token_hash)
                    .bind(fmt(time::now())),
            )
            .await?;
        let SetupRow(user, tenant) = used.ok_or(Error::NotFound)?;
        let set = tx
            .execute(
                q(identity::SET_FIRST_PASSWORD)
                    .bind(user.to_string())
                    .bind(password_hash),
            )
            .await?;
        if set == 0 {
            // The account has a password by now: the link is spent, nothing else changes.
            tx.commit().await?;
            return Err(Error::NotFound);
        }
        insert_outbox(&mut tx, &outbox(user, tenant)).await?;
        tx.commit().await?;
        Ok((user, tenant))
    }

    async fn find_pending_invitation(&self, token_hash: &str) -> Result<Option<Invitation>> {
        let now = time::now();
        let row: Option<InvitationRow> = self
            .db
            .reader()?
            .fetch_optional(
                q(identity::FIND_PENDING_BY_TOKEN)
                    .bind(token_hash)
                    .bind(fmt(now)),
            )
            .await?;
        row.map(|r| r.at(now)).transpose()
    }

    async fn accept_invitation(
        &self,
        id: InvitationId,
        joiner: Joiner,
        session: NewSession,
        outbox: Vec<AuditDraft>,
    ) -> Result<()> {
        let mut tx = self.db.begin().await?;
        let row: AcceptedRow = tx
            .fetch_one(
                q(identity::ACCEPT_INVITATION)
                    .bind(fmt(time::now()))
                    .bind(id.to_string()),
            )
            .await?;
        let (tenant, role) = row.parse()?;
        let user = match &joiner {
            Joiner::Existing(u) => *u,
            Joiner::New(u) => {
                insert_user(&mut tx, u).await?;
                u.id
            }
        };
        // The invitation's `users` slot becomes the member's: the counter does not move.
        insert_membership(&mut tx, tenant, user, role).await?;
        insert_session(&mut tx, &session).await?;
        insert_outbox(&mut tx, &outbox).await?;
        tx.commit().await
    }
}

/// A used password link's account and tenant.
struct SetupRow(UserId, TenantId);

impl Record for SetupRow {
    fn read(row: &dyn Columns) -> Result<Self> {
        let id = |c: &str| -> Result<uuid::Uuid> {
            row.text(c)?
                .parse()
                .map_err(|_| Error::Internal(format!("password_setups.{c}")))
        };
        Ok(SetupRow(UserId(id("user_id")?), TenantId(id("tenant_id")?)))
    }
}
