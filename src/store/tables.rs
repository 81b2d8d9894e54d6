//! The extension's tables as the index probes read them (`pg::probe`): one
//! descriptor per primary or unique index a hot path uses, and the rows
//! those paths need, typed. No SQL here; visibility is the active snapshot.

use crate::core::claims::{UserRole, UserRow, UserStatus};
use crate::core::ids::{SessionId, TokenId, UserId};
use crate::pg::probe::{probe, probe_in, Key, KeyType, Snapshot, Table};

pub const USERS: Table = Table {
    name: c"users",
    index: c"users_pkey",
    key: KeyType::Uuid,
    columns: &[
        c"is_service_user",
        c"user_role",
        c"organization_id",
        c"application_id",
        c"status",
        c"tokens_valid_after",
        c"email",
    ],
};

/// The users a token check can refuse, through the partial index
/// users_token_state (status not active, or a tokens_valid_after).
pub const USERS_TOKEN_STATE: Table = Table {
    name: c"users",
    index: c"users_token_state",
    key: KeyType::Uuid,
    columns: &[c"id", c"status", c"tokens_valid_after"],
};

/// Tombstones of users removed by delete_user: their ids stay refused.
pub const DELETED_USERS: Table = Table {
    name: c"deleted_users",
    index: c"deleted_users_pkey",
    key: KeyType::Uuid,
    columns: &[c"id"],
};

pub const REVOKED_JWTS: Table = Table {
    name: c"revoked_jwts",
    index: c"revoked_jwts_pkey",
    key: KeyType::Text,
    columns: &[c"jti"],
};

pub const REVOKED_SESSIONS: Table = Table {
    name: c"revoked_sessions",
    index: c"revoked_sessions_pkey",
    key: KeyType::Uuid,
    columns: &[c"session_id"],
};

/// External issuers (API.md section 11), by `iss`: the version first, so a
/// backend re-reads the set and options only when they moved.
pub const ISSUERS: Table = Table {
    name: c"issuers",
    index: c"issuers_pkey",
    key: KeyType::Text,
    columns: &[c"version", c"jwks", c"options"],
};

/// What token checks need of an identity.users row.
#[derive(Clone)]
pub struct UserState {
    pub row: UserRow,
    /// Unix seconds; tokens issued before are refused.
    pub tokens_valid_after: Option<i64>,
    pub email: String,
}

/// The hook's view of identity.users row `id`, if visible.
pub fn user_by_id(id: UserId) -> Option<UserRow> {
    user_state(id).map(|u| u.row)
}

/// identity.users row `id`, if visible; a deleted user (a tombstone in
/// identity.deleted_users, probed only when the row is missing) is a row
/// with status `deleted`, so the hook, verify_jwt and every actor check
/// refuse them at once.
pub fn user_state(id: UserId) -> Option<UserState> {
    crate::pg::probe::with_newest_snapshot(|snapshot| user_state_in(id, snapshot))
}

/// `user_state` under `snapshot`.
pub fn user_state_in(id: UserId, snapshot: Snapshot) -> Option<UserState> {
    live_user(id, snapshot).or_else(|| {
        probe_in(&DELETED_USERS, Key::Uuid(id.0), snapshot, |_| ()).map(|_| UserState {
            row: UserRow {
                is_service_user: false,
                user_role: UserRole::User,
                organization_id: None,
                application_id: None,
                status: UserStatus::Deleted,
            },
            tokens_valid_after: Some(i64::MAX),
            email: String::new(),
        })
    })
}

/// What verify_jwt needs of user `id`: whether it is active, and its
/// tokens_valid_after (rounded up, as in `live_user`). Reads two columns, no
/// other conversion; a tombstoned user is (false, i64::MAX).
/// tokens_valid_after as verify_jwt compares it: rounded up to the next
/// second (a token issued in the same second as a suspension is refused).
pub fn valid_after(epoch_seconds: Option<i64>) -> Option<i64> {
    epoch_seconds.map(|s| {
        if s == i64::MIN {
            s
        } else {
            s.saturating_add(1)
        }
    })
}

/// What verify_jwt's user checks read of a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserToken {
    /// tokens_valid_after, rounded up (`valid_after`).
    pub valid_after: Option<i64>,
    pub status: UserStatus,
}

impl UserToken {
    /// A tombstoned user.
    pub fn deleted() -> UserToken {
        UserToken {
            valid_after: Some(i64::MAX),
            status: UserStatus::Deleted,
        }
    }
}

/// User `id` as verify_jwt's checks read it, under `snapshot`; a tombstone
/// reads as `UserToken::deleted`.
pub fn token_state(id: UserId, snapshot: crate::pg::probe::Snapshot) -> Option<UserToken> {
    probe_in(&USERS, Key::Uuid(id.0), snapshot, |r| {
        // status is text; compare its bytes without building a String.
        let status = if r.text_is(4, b"active") {
            UserStatus::Active
        } else {
            UserStatus::parse(&r.text(4).unwrap_or_default())
        };
        UserToken {
            valid_after: valid_after(r.epoch_seconds(5)),
            status,
        }
    })
    .or_else(|| {
        probe_in(&DELETED_USERS, Key::Uuid(id.0), snapshot, |_| {
            UserToken::deleted()
        })
    })
}

fn live_user(id: UserId, snapshot: Snapshot) -> Option<UserState> {
    probe_in(&USERS, Key::Uuid(id.0), snapshot, |r| UserState {
        row: UserRow {
            is_service_user: r.bool(0).unwrap_or(false),
            user_role: UserRole::parse(&r.text(1).unwrap_or_default()),
            organization_id: r.uuid(2),
            application_id: r.uuid(3),
            status: UserStatus::parse(&r.text(4).unwrap_or_default()),
        },
        // Rounded up: a token issued (iat, whole seconds) in the same second
        // as a suspension or sign-out-everywhere is refused too.
        tokens_valid_after: valid_after(r.epoch_seconds(5)),
        email: r.text(6).unwrap_or_default(),
    })
}

pub fn jti_revoked(jti: &str) -> bool {
    probe(&REVOKED_JWTS, Key::Text(jti), |_| ()).is_some()
}

pub fn session_revoked(session_id: SessionId) -> bool {
    probe(&REVOKED_SESSIONS, Key::Uuid(session_id.0), |_| ()).is_some()
}

pub const API_TOKENS: Table = Table {
    name: c"api_tokens",
    index: c"api_tokens_token_hash_key",
    key: KeyType::Bytea,
    columns: &[
        c"id",
        c"user_id",
        c"scopes",
        c"expires_at",
        c"revoked_at",
        c"last_used_at",
    ],
};

/// What verification needs of an api_tokens row.
#[derive(Clone)]
pub struct TokenRow {
    pub id: String,
    pub user_id: UserId,
    pub scopes: Vec<String>,
    pub expires_at: Option<i64>,
    pub revoked: bool,
    pub last_used_at: Option<i64>,
}

/// The api_tokens row whose token_hash is `hash`, if visible.
pub fn token_by_hash(hash: &[u8; 32]) -> Option<TokenRow> {
    crate::pg::probe::with_newest_snapshot(|snapshot| token_by_hash_in(hash, snapshot))
}

/// `token_by_hash` under `snapshot`.
pub fn token_by_hash_in(hash: &[u8; 32], snapshot: Snapshot) -> Option<TokenRow> {
    probe_in(&API_TOKENS, Key::Bytea(hash), snapshot, |r| TokenRow {
        id: r.uuid(0).unwrap_or_default(),
        user_id: UserId(r.uuid_bytes(1).unwrap_or([0; 16])),
        scopes: r.text_array(2),
        expires_at: r.epoch_seconds(3),
        revoked: !r.is_null(4),
        last_used_at: r.epoch_seconds(5),
    })
}

/// api_tokens by primary key: whether a token a JWT was derived from still
/// stands.
pub const API_TOKENS_BY_ID: Table = Table {
    name: c"api_tokens",
    index: c"api_tokens_pkey",
    key: KeyType::Uuid,
    columns: &[c"expires_at", c"revoked_at"],
};

/// Whether API token `id` exists (its user was not deleted), is not revoked
/// and has not expired (a rotation's grace ends as an expiry) at `now`.
pub fn token_live(id: TokenId, now: i64) -> bool {
    probe(&API_TOKENS_BY_ID, Key::Uuid(id.0), |r| {
        r.is_null(1) && r.epoch_seconds(0).is_none_or(|e| e > now)
    })
    .unwrap_or(false)
}

pub const SIGNING_KEYS: Table = Table {
    name: c"signing_keys",
    index: c"signing_keys_pkey",
    key: KeyType::Text,
    columns: &[c"alg", c"public_jwk", c"status", c"expires_at"],
};

/// The active signing key, through the partial unique index on (true).
pub const ACTIVE_SIGNING_KEY: Table = Table {
    name: c"signing_keys",
    index: c"signing_keys_one_active",
    key: KeyType::Bool,
    columns: &[c"kid", c"alg", c"private_key_ciphertext", c"status"],
};
