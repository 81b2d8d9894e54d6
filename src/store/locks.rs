//! Locks that no other role can take or hold up: rows of identity.mutexes
//! (sql/schema.sql), locked FOR UPDATE as the extension's owner. A role
//! needs UPDATE on a table to lock its rows and none is granted on this one;
//! an advisory lock's key, by contrast, is public (any role can take
//! `pg_advisory_lock(k1, k2)` first and hold it, and pg_locks shows every
//! key in use). The rows are never written, so locking one never fails a
//! REPEATABLE READ transaction. Row 0 is the audit chain's
//! (`identity.audit_chain_pending`); a key is spread over rows 1 to 1024 by
//! a keyed hash: two keys on one row only queue behind each other, and no
//! caller can aim a key at another's row.

use crate::pg::error::PgResult;
use crate::pg::spi;

/// The rows a key can land on (1..=ROWS).
const ROWS: u32 = 1024;

/// What a lock serialises, for the rest of the transaction.
pub enum Mutex<'a> {
    /// The first sign-in and the webhook deliveries of one subject of one
    /// issuer: one user results.
    Subject { issuer: &'a str, subject: &'a str },
    /// The changes of one user's credentials (defaults, credit), keyed on
    /// the user, never on the user's row: the user's own open transaction
    /// never delays an admin's update, suspension or deletion of them.
    CredentialsOf([u8; 16]),
}

/// The row of `m`: a keyed hash (`core::hashing::keyed_row`) under the
/// server's encryption key (else its JWT secret), so no caller can pick
/// keys (users, subjects) that land on a victim's row and hold it. Without
/// either secret the key is empty: the rows are predictable, but then no
/// credential can be stored either.
fn row(m: &Mutex) -> i32 {
    let hash = |key: &[u8]| match m {
        Mutex::Subject { issuer, subject } => crate::core::hashing::keyed_row(
            key,
            &[b"subject", issuer.as_bytes(), subject.as_bytes()],
            ROWS,
        ),
        Mutex::CredentialsOf(user) => {
            crate::core::hashing::keyed_row(key, &[b"credentials", user], ROWS)
        }
    };
    let r = match crate::pg::gucs::encryption_key() {
        Some(k) => hash(k.as_bytes()),
        None => crate::pg::gucs::with_jwt_secret(|s| hash(s.unwrap_or_default())),
    };
    r as i32
}

/// Takes `m` until the transaction ends (waiting for its holder).
pub fn lock(m: Mutex) -> PgResult<()> {
    let id = row(&m);
    spi::privileged(|| {
        spi::run(
            "select from identity.mutexes m where m.id operator(pg_catalog.=) $1 for update",
            &[id.into()],
        )
    })
}
