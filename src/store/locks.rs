//! Locks that no other role can take or hold up: rows of identity.mutexes
//! (sql/schema.sql), locked FOR UPDATE as the extension's owner. A role
//! needs UPDATE on a table to lock its rows and none is granted on this one;
//! an advisory lock's key, by contrast, is public (any role can take
//! `pg_advisory_lock(k1, k2)` first and hold it, and pg_locks shows every
//! key in use). The rows are never written, so locking one never fails a
//! REPEATABLE READ transaction. Row 0 is the audit chain's
//! (`identity.audit_chain_pending`); a key is spread over rows 1 to 1024 by
//! its hash: two keys on one row only queue behind each other.

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

/// FNV-1a over a tag naming the kind of key and the key's parts, each
/// ended by a 0xff byte (no part of UTF-8 text or of a tag has one).
fn row(m: &Mutex) -> i32 {
    let mut h: u32 = 0x811c_9dc5;
    let mut feed = |bytes: &[u8]| {
        for &b in bytes.iter().chain(std::iter::once(&0xffu8)) {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        }
    };
    match m {
        Mutex::Subject { issuer, subject } => {
            feed(b"subject");
            feed(issuer.as_bytes());
            feed(subject.as_bytes());
        }
        Mutex::CredentialsOf(user) => {
            feed(b"credentials");
            feed(user);
        }
    }
    (1 + h % ROWS) as i32
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_land_on_rows_1_to_1024_and_kinds_differ() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..5000u32 {
            let mut u = [0u8; 16];
            u[..4].copy_from_slice(&i.to_be_bytes());
            let r = row(&Mutex::CredentialsOf(u));
            assert!((1..=1024).contains(&r));
            seen.insert(r);
        }
        assert!(seen.len() > 900, "spread over the rows: {}", seen.len());
        let a = row(&Mutex::Subject {
            issuer: "ab",
            subject: "c",
        });
        let b = row(&Mutex::Subject {
            issuer: "a",
            subject: "bc",
        });
        assert_ne!(a, b, "the parts are delimited");
    }
}
