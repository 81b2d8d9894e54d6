//! Argument conversion between SQL uuids (`pgrx::Uuid`) and the core's id
//! newtypes. Traits, because neither type is this crate's (orphan rule).

use crate::core::ids::{OrgId, SessionId, TokenId, UserId};
use pgrx::Uuid;

/// A core id as a SQL uuid.
pub trait ToUuid {
    fn uuid(&self) -> Uuid;
}

macro_rules! to_uuid {
    ($($t:ty),*) => {$(
        impl ToUuid for $t {
            fn uuid(&self) -> Uuid {
                Uuid::from_bytes(self.0)
            }
        }
    )*};
}
to_uuid!(UserId, OrgId, SessionId, TokenId);

/// A SQL uuid read as the id it is.
pub trait FromUuid {
    fn user_id(&self) -> UserId;
    fn org_id(&self) -> OrgId;
}

impl FromUuid for Uuid {
    fn user_id(&self) -> UserId {
        UserId(*self.as_bytes())
    }
    fn org_id(&self) -> OrgId {
        OrgId(*self.as_bytes())
    }
}
