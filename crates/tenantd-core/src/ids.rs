use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::FieldError;

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new, time-ordered id (UUID v7).
            #[allow(clippy::new_without_default)]
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Parses the canonical hyphenated form; the error names `field`.
            pub fn parse(s: &str, field: &str) -> Result<Self, FieldError> {
                Uuid::try_parse(s).map(Self).map_err(|_| FieldError::new(field, "must be a UUID"))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }
    };
}

id_type!(
    /// A tenant.
    TenantId
);
id_type!(
    /// A user (global: one user may belong to several tenants).
    UserId
);
id_type!(
    /// A tenant-owned resource.
    ResourceId
);
id_type!(
    /// An invitation.
    InvitationId
);
id_type!(
    /// An API key.
    ApiKeyId
);
id_type!(
    /// A login session: one refresh-token family.
    SessionId
);
id_type!(
    /// An audit event.
    EventId
);
id_type!(
    /// A stored file.
    FileId
);
id_type!(
    /// A webhook endpoint.
    WebhookId
);
id_type!(
    /// One delivery of one event to one webhook endpoint (its attempts share it).
    DeliveryId
);
id_type!(
    /// An agent run.
    RunId
);
