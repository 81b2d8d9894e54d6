//! Per-backend copies of the small, rarely written state that every token
//! check reads: the revoked jtis, the revoked sessions, the active signing
//! key, and the users whose tokens a check can refuse (not active, or with
//! a tokens_valid_after: the partial index users_token_state) with the
//! deleted users. With them verify_jwt reads no table at all, where it
//! made three index probes, and sign_jwt none. And, per key, the API tokens
//! this backend verified with their users' rows (`verified_token`): a
//! repeated verify_api_token reads no table either, where it made two.
//!
//! Invalidation is Postgres' own, the way its catalog caches work:
//! - a statement-level trigger on identity.revoked_jwts, revoked_sessions,
//!   signing_keys, users, deleted_users and api_tokens calls
//!   CacheInvalidateRelcache on its table. Logical replication's apply
//!   worker fires row triggers only, never statement ones: a row trigger
//!   on each (`cached_row_applied`, ENABLE REPLICA, so it fires only where
//!   session_replication_role is replica, as in the apply worker) sends
//!   the same message for each applied row on a subscriber. The message is
//!   transactional: other backends receive it when the writer commits
//!   (nothing on rollback); it is also written to the WAL with the commit,
//!   so hot standbys drop their copies when they replay it.
//! - every read first calls AcceptInvalidationMessages (a flag check when
//!   nothing is pending), so a revocation committed before the call is seen
//!   by it, as with a probe.
//! - a copy is loaded with a fresh snapshot taken after that, so it is never
//!   older than the messages already processed; and it is kept only if no
//!   message arrived while it was read (one could predate the snapshot).
//!
//! The writing backend's own uncommitted change is seen (its invalidation
//! runs at the next command) and forgotten again if it rolls back (Postgres
//! replays the transaction's invalidations on abort).
//! A table over MAX_ROWS rows is not copied; it is probed per call as before.
//! A revocation table over FILTERED_ROWS is left to the shared filter when
//! the server has one, and the refusable users are copied only after a
//! backend has probed a sixteenth as many (`user_token_state`): a new
//! connection loads no big copy for its first check.
//! In parallel mode (no new snapshot allowed) nothing is filled: a miss is
//! probed under the statement's snapshot.

use crate::core::bounded::FifoMap;
use crate::core::hashing::{HashMap, HashSet};
use crate::core::ids::{SessionId, UserId};
use crate::core::keys::{Alg, SigningKey};
use crate::pg::shared_filter::{self, Kind};
use crate::pg::{inval, probe};
use crate::store::tables;
pub use crate::store::tables::UserToken;
use pgrx::prelude::*;
use std::cell::RefCell;

/// Above this many rows a table is probed instead of copied.
const MAX_ROWS: usize = 50_000;
/// A backend loads the copy of the refusable users after probing one user
/// in this many of them (`user_token_state`'s ski rental).
const PROBE_SHARE: usize = 16;

/// Above this many rows a revocation table is not copied when this server
/// has its shared filter (`filter_rules_out`): the filter answers as fast
/// as a copy, with no per-backend load. A new connection's first check
/// loaded 40,000 jtis and 40,000 sessions in about 13 ms; the filter is
/// built once per server instead. Standbys, and servers without the
/// filter, still copy up to MAX_ROWS.
const FILTERED_ROWS: usize = 1_000;

/// How many rows of revocation table `kind` a backend copies, given the
/// table's row estimate: FILTERED_ROWS when it has more and the database
/// has (or now claims) the filter for it, else MAX_ROWS. A database with
/// small tables claims no filter.
fn copy_limit(kind: Kind, estimated: f64) -> usize {
    let filtered = estimated > FILTERED_ROWS as f64
        && can_fill()
        && !shared_filter::in_recovery()
        && shared_filter::cell(kind, true).is_some();
    if filtered {
        FILTERED_ROWS
    } else {
        MAX_ROWS
    }
}

enum Copied<T> {
    Unknown,
    Loaded(T),
    TooBig,
}

struct Caches {
    /// revoked_jwts, revoked_sessions, signing_keys, users, deleted_users,
    /// api_tokens (InvalidOid: not known yet).
    oids: [inval::Oid; 6],
    jtis: Copied<HashSet<Box<[u8]>>>,
    sessions: Copied<HashSet<SessionId>>,
    /// None: not read yet; Some(None): no active key.
    active_key: Option<Option<ActiveKey>>,
    /// The users a token check can refuse (users_token_state) and the
    /// tombstones; a user in neither passes the checks.
    refusable: Copied<Refusable>,
    /// When `refusable` is TooBig, or not loaded yet: users probed, by id.
    users: FifoMap<UserId, UserToken>,
    /// Users probed since `refusable` was last dropped, and how many
    /// `user_token_state` probes before it loads the copy (read once from
    /// the index's row estimate; None: not yet).
    probed: usize,
    probe_budget: Option<usize>,
    /// API tokens verified here, by token hash; and their users' rows
    /// (`verified_token`).
    tokens: FifoMap<[u8; 32], tables::TokenRow>,
    user_rows: FifoMap<UserId, tables::UserState>,
    /// Users the hook probed once (`user_state`), the oldest dropped first.
    seen_once: FifoMap<UserId, ()>,
}

/// Users whose tokens a check can refuse: not active, or with a
/// tokens_valid_after; and the ids of deleted users.
struct Refusable {
    users: HashMap<UserId, UserToken>,
    deleted: HashSet<UserId>,
}

/// The active asymmetric signing key, with its private key decrypted and
/// parsed once per change of identity.signing_keys.
#[derive(Clone)]
pub struct ActiveKey {
    pub kid: String,
    pub alg: Alg,
    pub key: std::rc::Rc<SigningKey>,
}

/// At most this many users are remembered (the oldest dropped first).
const MAX_USERS: usize = 16_384;

thread_local! {
    /// Whether `forget` listens to this backend's relcache messages.
    static LISTENING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static RESET_ALL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Relcache messages processed so far: a fill stores its result only if
    /// none arrived while it read (its snapshot may predate that message).
    static INVALS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    static CACHES: RefCell<Caches> = {
        RefCell::new(Caches {
            oids: [inval::ALL; 6],
            jtis: Copied::Unknown,
            sessions: Copied::Unknown,
            active_key: None,
            refusable: Copied::Unknown,
            users: FifoMap::new(MAX_USERS),
            probed: 0,
            probe_budget: None,
            tokens: FifoMap::new(MAX_TOKENS),
            user_rows: FifoMap::new(MAX_TOKENS),
            seen_once: FifoMap::new(MAX_TOKENS),
        })
    };
}

/// Relcache callback: forget the copy of the invalidated table (every copy
/// for InvalidOid, a full reset). Runs during invalidation processing, so it
/// only drops Rust values: no catalog access.
fn forget(relid: inval::Oid) {
    INVALS.with(|n| n.set(n.get().wrapping_add(1)));
    CACHES.with(|c| {
        let Ok(mut c) = c.try_borrow_mut() else {
            // Never expected (no borrow is held across a Postgres call); if
            // it happens anyway, nothing is lost: everything is reset on the
            // next read.
            RESET_ALL.with(|r| r.set(true));
            recheck(Kind::Jtis);
            recheck(Kind::Sessions);
            return;
        };
        let hit = |oid: inval::Oid| relid == inval::ALL || oid == inval::ALL || relid == oid;
        // A dropped and recreated table gets a new oid: look it up again.
        for oid in c.oids.iter_mut() {
            if relid == inval::ALL || *oid == relid {
                *oid = inval::ALL;
            }
        }
        if hit(c.oids[0]) {
            c.jtis = Copied::Unknown;
            recheck(Kind::Jtis);
        }
        if hit(c.oids[1]) {
            c.sessions = Copied::Unknown;
            recheck(Kind::Sessions);
        }
        if hit(c.oids[2]) {
            c.active_key = None;
        }
        if hit(c.oids[3]) || hit(c.oids[4]) {
            c.refusable = Copied::Unknown;
            c.users.clear();
            c.probed = 0;
            c.probe_budget = None;
            c.user_rows.clear();
        }
        if hit(c.oids[5]) {
            c.tokens.clear();
        }
    });
}

fn recheck(kind: Kind) {
    RECHECK.with(|r| {
        let mut v = r.get();
        v[kind as usize] = true;
        r.set(v);
    });
}

/// Remembers which table a copy came from (before loading it); looked up
/// only when not known (a message for the table forgets it again).
fn set_oid(i: usize, t: &probe::Table) {
    if CACHES.with(|c| c.borrow().oids[i]) == inval::ALL {
        let oid = probe::table_oid(t);
        CACHES.with(|c| c.borrow_mut().oids[i] = oid);
    }
}

fn prepare() {
    if !LISTENING.with(std::cell::Cell::get) {
        inval::listen(forget);
        LISTENING.with(|l| l.set(true));
    }
    // Messages committed by others up to now (cheap when there are none).
    inval::accept();
    if RESET_ALL.with(|r| r.replace(false)) {
        CACHES.with(|c| {
            let mut c = c.borrow_mut();
            c.jtis = Copied::Unknown;
            c.sessions = Copied::Unknown;
            c.active_key = None;
            c.refusable = Copied::Unknown;
            c.users.clear();
            c.probed = 0;
            c.probe_budget = None;
            c.tokens.clear();
            c.user_rows.clear();
        });
    }
}

/// What a copy says, read out before any Postgres call (so no borrow is
/// held while an invalidation may arrive).
enum Known {
    Answer(bool),
    Probe,
    Load,
}

fn invals() -> u64 {
    INVALS.with(std::cell::Cell::get)
}

/// The invalidations this backend has taken in, after taking in those
/// committed up to now: a view of the claims built at one count is stale
/// at another (`claims::view`).
pub fn generation() -> u64 {
    prepare();
    invals()
}

/// The invalidations this backend has taken in so far, without taking in
/// new ones (Postgres does at every transaction start and every lock a
/// statement takes): what a per-row helper compares, a thread-local read
/// once the listener is registered.
pub fn generation_seen() -> u64 {
    match generation_seen_no_call() {
        NOT_LISTENING => generation(),
        seen => seen,
    }
}

/// `generation_seen` that never calls into Postgres (for the fast helpers'
/// unguarded path): `NOT_LISTENING` until the listener is registered.
pub fn generation_seen_no_call() -> u64 {
    if LISTENING.with(std::cell::Cell::get) {
        invals()
    } else {
        NOT_LISTENING
    }
}

/// What `generation_seen_no_call` answers before the listener exists: a
/// count no view is ever built at.
pub const NOT_LISTENING: u64 = u64::MAX;

/// Copies are filled only outside parallel mode (a fill needs a fresh
/// snapshot, which parallel workers cannot take).
fn can_fill() -> bool {
    !inval::in_parallel_mode()
}

/// Proof that this backend took in the invalidation messages committed
/// before `fresh()` returned it: lookups through it see every change
/// committed before. One per verification (three lookups, one
/// AcceptInvalidationMessages); never kept across statements.
pub struct Fresh(());

/// Takes in pending invalidation messages (see `Fresh`).
pub fn fresh() -> Fresh {
    prepare();
    Fresh(())
}

impl Fresh {
    /// Is `jti` revoked?
    pub fn jti_revoked(&self, jti: &str) -> bool {
        revoked(
            |c| &mut c.jtis,
            0,
            Kind::Jtis,
            &tables::REVOKED_JWTS,
            jti.as_bytes(),
            |r| r.text(0).map(|j| j.into_bytes().into()),
            || {
                // The filter holds the stored bytes: the claim's are the
                // same for ASCII, or in a UTF-8 database.
                let comparable = jti.is_ascii() || crate::pg::jsonb::utf8_database();
                !(comparable && filter_rules_out(Kind::Jtis, &tables::REVOKED_JWTS, jti.as_bytes()))
                    && tables::jti_revoked(jti)
            },
        )
    }

    /// Is session `id` revoked?
    pub fn session_revoked(&self, id: SessionId) -> bool {
        revoked(
            |c| &mut c.sessions,
            1,
            Kind::Sessions,
            &tables::REVOKED_SESSIONS,
            &id,
            |r| r.uuid_bytes(0).map(SessionId),
            || {
                !filter_rules_out(Kind::Sessions, &tables::REVOKED_SESSIONS, &id.0)
                    && tables::session_revoked(id)
            },
        )
    }
}

thread_local! {
    /// Whether the revocation filter's trigger must be looked at again
    /// before the filter is trusted (by kind): at first, and after any
    /// invalidation of its table (`forget`), which every ALTER TABLE of it
    /// sends.
    static RECHECK: std::cell::Cell<[bool; 2]> = const { std::cell::Cell::new([true; 2]) };
}

/// A build that has not finished after this long was abandoned (its
/// backend's statement failed): another backend may take it over.
const BUILD_ABANDONED_MS: u64 = 60_000;
/// A filter too small for its table is built again at most this often.
const FULL_RETRY_MS: u64 = 300_000;

/// True when the shared revocation filter of `table` (kind `kind`) shows
/// `key` was never revoked, so the probe can be skipped; false means
/// "probe" (maybe revoked, or no filter to trust: not preloaded, size 0, a
/// standby, parallel mode, a database without a slot, a filter being
/// built, or one whose trigger changed since it was built).
///
/// The filter is trusted only while its row trigger is the one it was
/// built under, enabled ALWAYS: the trigger adds every key before its
/// transaction commits, and any ALTER TABLE that could let a row in without
/// it (DISABLE TRIGGER, as pg_restore --disable-triggers does, DROP TRIGGER)
/// gives the trigger a new pg_trigger row version, seen here after the
/// table's invalidation; the filter is then rebuilt. A build holds the
/// table's SHARE lock (taken without waiting: no writer is in progress, none
/// starts) while it scans the heap (about 0.2 s for 1,000,000 rows), so no
/// key can fall between the scan and the trigger.
/// A hint for the revocation checks to come (`Fresh::jti_revoked`,
/// `session_revoked`): for a kind this backend leaves to the shared filter,
/// the filter's block for the key is fetched into the CPU's cache now,
/// while the token's HMAC is still being computed (at 40,000 revocations
/// the two lookups waited on memory). No answer depends on it.
pub fn prefetch_revocations(jti: Option<&str>, session: impl FnOnce() -> Option<SessionId>) {
    let filtered = CACHES.with(|c| {
        let c = c.borrow();
        [
            matches!(c.jtis, Copied::TooBig),
            matches!(c.sessions, Copied::TooBig),
        ]
    });
    let prefetch = |kind: Kind, key: &[u8]| {
        if let Some(cell) = shared_filter::cell(kind, false) {
            if cell.state().0 == shared_filter::READY {
                cell.filter().prefetch(key);
            }
        }
    };
    if let (true, Some(j)) = (filtered[0], jti) {
        prefetch(Kind::Jtis, j.as_bytes());
    }
    // The session's UUID is parsed only when its filter is the one used.
    if let Some(s) = filtered[1].then(session).flatten() {
        prefetch(Kind::Sessions, &s.0);
    }
}

fn filter_rules_out(kind: Kind, table: &probe::Table, key: &[u8]) -> bool {
    if !can_fill() || shared_filter::in_recovery() {
        return false;
    }
    let Some(cell) = shared_filter::cell(kind, true) else {
        return false;
    };
    let relid = probe::table_oid(table);
    let (state, generation) = cell.state();
    if state == shared_filter::READY && cell.relid() == relid {
        if cell.added() as usize > cell.filter().capacity() {
            // Over capacity: false positives grow; build it again.
            cell.transition((state, generation), shared_filter::STALE);
            return false;
        }
        let mut recheck = RECHECK.with(std::cell::Cell::get);
        if recheck[kind as usize] {
            if shared_filter::trigger_version(relid, shared_filter::TRIGGER) != Some(cell.trigger())
            {
                cell.transition((state, generation), shared_filter::STALE);
                return false;
            }
            recheck[kind as usize] = false;
            RECHECK.with(|r| r.set(recheck));
        }
        let absent = !cell.filter().may_contain(key);
        // A rebuild clears the bits only after moving the state away from
        // READY (and its stores are Release, the loads Acquire): when the
        // state is still the one read above, no clear had begun when the
        // bits were read.
        return absent && cell.state() == (state, generation);
    }
    // (The clock only off the hot path: a READY filter needs none.)
    let now = crate::pg::workers::now_ms() as u64;
    let since = now.saturating_sub(cell.built_ms());
    let may_build = match state {
        shared_filter::EMPTY => true,
        shared_filter::READY => true, // built for a table since dropped
        shared_filter::STALE => {
            cell.added() as usize <= cell.filter().capacity() || since > FULL_RETRY_MS
        }
        _ => since > BUILD_ABANDONED_MS, // BUILDING
    };
    if may_build {
        build(cell, (state, generation), kind, table, relid);
    }
    false
}

/// Builds `cell` from its table (see filter_rules_out), when it can take
/// the build and the table's SHARE lock without waiting.
fn build(
    cell: shared_filter::CellRef,
    from: (u32, u32),
    kind: Kind,
    table: &probe::Table,
    relid: inval::Oid,
) {
    if !cell.transition(from, shared_filter::BUILDING) {
        return; // another backend took it
    }
    let mine = (shared_filter::BUILDING, from.1.wrapping_add(1));
    cell.set_building_since();
    let Some(lock) = shared_filter::lock_out_writers(relid) else {
        // Writers at work: later.
        cell.transition(mine, shared_filter::STALE);
        return;
    };
    let Some(version) = shared_filter::trigger_version(relid, shared_filter::TRIGGER) else {
        lock.release();
        cell.set_built(relid, 0, u64::MAX);
        cell.transition(mine, shared_filter::STALE);
        return;
    };
    let filter = cell.filter();
    filter.clear();
    let capacity = filter.capacity();
    let mut keys = 0usize;
    let complete = probe::scan_heap(table, |r| {
        let added = match kind {
            Kind::Jtis => r.with_text_bytes(0, |b| filter.insert(b)).is_some(),
            Kind::Sessions => r.uuid_bytes(0).map(|u| filter.insert(&u)).is_some(),
        };
        keys += usize::from(added);
        keys <= capacity
    });
    lock.release();
    cell.set_built(
        relid,
        version,
        if complete { keys as u64 } else { u64::MAX },
    );
    let done = if complete {
        shared_filter::READY
    } else {
        shared_filter::STALE
    };
    if cell.transition(mine, done) && complete {
        RECHECK.with(|r| {
            let mut v = r.get();
            v[kind as usize] = false;
            r.set(v);
        });
    }
}

/// Is `key` in revocation table `table` (copy `copy`, oid slot `oid`,
/// filter `kind`)? From the copy; loaded whole (`read` gives a row's key)
/// when unknown; when too big (`copy_limit`) or in parallel mode, asked
/// per call (`probe`: the filter, then the index).
fn revoked<K, Q>(
    copy: fn(&mut Caches) -> &mut Copied<HashSet<K>>,
    oid: usize,
    kind: Kind,
    table: &probe::Table,
    key: &Q,
    read: impl Fn(&probe::Row) -> Option<K>,
    probe: impl Fn() -> bool,
) -> bool
where
    K: std::borrow::Borrow<Q> + std::hash::Hash + Eq,
    Q: std::hash::Hash + Eq + ?Sized,
{
    let known = CACHES.with(|c| match copy(&mut c.borrow_mut()) {
        Copied::Loaded(set) => Known::Answer(set.contains(key)),
        Copied::TooBig => Known::Probe,
        Copied::Unknown => Known::Load,
    });
    match known {
        Known::Answer(a) => return a,
        Known::Probe => return probe(),
        Known::Load if !can_fill() => return probe(),
        Known::Load => {}
    }
    set_oid(oid, table);
    let before = invals();
    let estimated = probe::estimated_rows(table);
    let limit = copy_limit(kind, estimated);
    // The planner's row estimate says it is too big: no scan of `limit`
    // rows to find out again after every change of a big table.
    if estimated > limit as f64 {
        if invals() == before {
            CACHES.with(|c| *copy(&mut c.borrow_mut()) = Copied::TooBig);
        }
        return probe();
    }
    // Sized for the estimate (at most the limit): no rehash while it loads.
    let mut set = HashSet::with_capacity_and_hasher(
        estimated.clamp(0.0, limit as f64) as usize,
        Default::default(),
    );
    let complete = probe::scan_all(table, |r| {
        set.extend(read(r));
        set.len() <= limit
    });
    let answer = set.contains(key) || (!complete && probe());
    let loaded = if complete {
        Copied::Loaded(set)
    } else {
        Copied::TooBig
    };
    if invals() == before {
        CACHES.with(|c| *copy(&mut c.borrow_mut()) = loaded);
    }
    answer
}

impl Fresh {
    /// What verify_jwt's user checks need of user `id`: `Some((active,
    /// tokens_valid_after, status))` for a user they can refuse (not active, a
    /// tokens_valid_after, or deleted), `None` for one they pass (active with no
    /// tokens_valid_after, or no such user). From the copy of users_token_state
    /// and the tombstones, loaded once the backend has probed a sixteenth of
    /// that set's users (at once when it is under 64): then no probe at all
    /// while it is under MAX_ROWS; before, and beyond, one probe per user not
    /// seen yet.
    pub fn user_token_state(&self, id: UserId) -> Option<UserToken> {
        enum Seen {
            Answer(Option<UserToken>),
            PerUser,
            Load,
        }
        let seen = CACHES.with(|c| {
            let c = c.borrow();
            match &c.refusable {
                Copied::Loaded(r) => Seen::Answer(match r.users.get(&id) {
                    Some(u) => Some(u.clone()),
                    None => r.deleted.contains(&id).then(deleted_state),
                }),
                Copied::TooBig => match c.users.get(&id) {
                    Some(u) => Seen::Answer(refusable(u.clone())),
                    None => Seen::PerUser,
                },
                Copied::Unknown => match c.users.get(&id) {
                    Some(u) => Seen::Answer(refusable(u.clone())),
                    None => Seen::Load,
                },
            }
        });
        match seen {
            Seen::Answer(a) => return a,
            _ if !can_fill() => {
                return tables::token_state(id, probe::Snapshot::active()).and_then(refusable)
            }
            Seen::PerUser => return per_user(id),
            Seen::Load => {}
        }
        set_oid(3, &tables::USERS);
        set_oid(4, &tables::DELETED_USERS);
        // Ski rental: a backend probes users one by one (remembering each)
        // until those probes have cost about what loading the copy costs,
        // then loads it. A short connection checks its few users and loads
        // nothing (with 4,000 refusable users the load was most of a new
        // connection's first verify_jwt); a long one loads the copy once.
        // The price of a probe: in a new backend (bench/jwt.sh, 1,937
        // refusable users of 100,000) 480 probes cost about 3 ms (each
        // touches heap and index pages the backend has not mapped yet)
        // and the load about 0.35 ms, so a probe is about 30 rows of the
        // load; in a warm one about 8. A sixteenth: with a quarter, that
        // benchmark's new backends spent 3 ms more on their first 1,000
        // tokens.
        let budget = match CACHES.with(|c| c.borrow().probe_budget) {
            Some(b) => b,
            None => {
                let rows = probe::estimated_index_rows(&tables::USERS_TOKEN_STATE);
                if rows > MAX_ROWS as f64 {
                    CACHES.with(|c| c.borrow_mut().refusable = Copied::TooBig);
                    return per_user(id);
                }
                let b = if rows < 64.0 {
                    0
                } else {
                    (rows / PROBE_SHARE as f64) as usize
                };
                CACHES.with(|c| c.borrow_mut().probe_budget = Some(b));
                b
            }
        };
        let probed = CACHES.with(|c| {
            let mut c = c.borrow_mut();
            c.probed += 1;
            c.probed
        });
        if probed <= budget {
            return per_user(id);
        }
        let before = invals();
        // Sized for the estimate the budget came from (a sixteenth of it).
        let mut users = HashMap::with_capacity_and_hasher(
            budget.saturating_mul(PROBE_SHARE).min(MAX_ROWS),
            Default::default(),
        );
        let complete_users = probe::scan_all(&tables::USERS_TOKEN_STATE, |r| {
            if let Some(u) = r.uuid_bytes(0) {
                let status = r
                    .with_text_bytes(1, |b| {
                        crate::core::claims::UserStatus::parse(std::str::from_utf8(b).unwrap_or(""))
                    })
                    .unwrap_or(crate::core::claims::UserStatus::Disabled);
                users.insert(
                    UserId(u),
                    UserToken {
                        valid_after: tables::valid_after(r.epoch_seconds(2)),
                        status,
                    },
                );
            }
            users.len() <= MAX_ROWS
        });
        let mut deleted = HashSet::default();
        let complete = complete_users
            && probe::scan_all(&tables::DELETED_USERS, |r| {
                if let Some(u) = r.uuid_bytes(0) {
                    deleted.insert(UserId(u));
                }
                deleted.len() <= MAX_ROWS
            });
        if !complete {
            if invals() == before {
                CACHES.with(|c| c.borrow_mut().refusable = Copied::TooBig);
            }
            return per_user(id);
        }
        let answer = match users.get(&id) {
            Some(u) => Some(u.clone()),
            None => deleted.contains(&id).then(deleted_state),
        };
        if invals() == before {
            CACHES
                .with(|c| c.borrow_mut().refusable = Copied::Loaded(Refusable { users, deleted }));
        }
        answer
    }
}

/// A tombstoned user, as tables::token_state reports one.
fn deleted_state() -> UserToken {
    UserToken::deleted()
}

/// A user state the checks can refuse; None for one they pass (active,
/// no tokens_valid_after).
fn refusable(u: UserToken) -> Option<UserToken> {
    (!(u.status.is_active() && u.valid_after.is_none_or(|t| t == i64::MIN))).then_some(u)
}

/// More refusable users than a copy holds: probe each user once and keep
/// its state (MAX_USERS per backend; a user not found is not kept).
fn per_user(id: UserId) -> Option<UserToken> {
    let before = invals();
    let state = probe::with_latest_snapshot(|snapshot| tables::token_state(id, snapshot))?;
    if invals() == before {
        CACHES.with(|c| c.borrow_mut().users.insert(id, state.clone()));
    }
    refusable(state)
}

/// At most this many API tokens, and as many of their users' rows, are
/// remembered per backend (the oldest dropped first).
const MAX_TOKENS: usize = 8_192;

/// An API token's row by token hash, and its user's row (None: no such
/// token; the user's state None: no such user, not even a tombstone), for
/// verify_api_token: from this backend's memory when it verified the token
/// since the tables last changed, else probed under a fresh snapshot (kept
/// when no invalidation arrived meanwhile). Unknown hashes are not
/// remembered, so guessing fills nothing.
///
/// Invalidation is the copies' (module comment): the statement trigger on
/// api_tokens fires for every change but one of last_used_at alone, the
/// one on users for the columns a principal holds, so a revocation, expiry
/// change, rotation, deletion, suspension or role change committed before
/// the call is seen by it.
pub fn verified_token(hash: &[u8; 32]) -> Option<(tables::TokenRow, Option<tables::UserState>)> {
    prepare();
    let known = CACHES.with(|c| {
        let c = c.borrow();
        let t = c.tokens.get(hash)?;
        Some((t.clone(), c.user_rows.get(&t.user_id).cloned()))
    });
    match known {
        Some((t, Some(u))) => return Some((t, Some(u))),
        _ if !can_fill() => {
            let t = tables::token_by_hash(hash)?;
            let u = tables::user_state(t.user_id);
            return Some((t, u));
        }
        _ => {}
    }
    set_oid(3, &tables::USERS);
    set_oid(4, &tables::DELETED_USERS);
    set_oid(5, &tables::API_TOKENS);
    let before = invals();
    let (t, u) = probe::with_latest_snapshot(|snapshot| {
        let t = match known {
            Some((t, None)) => t,
            _ => tables::token_by_hash_in(hash, snapshot)?,
        };
        let u = tables::user_state_in(t.user_id, snapshot);
        Some((t, u))
    })?;
    if invals() == before {
        CACHES.with(|c| c.borrow_mut().tokens.insert(*hash, t.clone()));
        if let Some(u) = &u {
            remember_user_row(t.user_id, u);
        }
    }
    Some((t, u))
}

fn remember_user_row(id: UserId, u: &tables::UserState) {
    CACHES.with(|c| c.borrow_mut().user_rows.insert(id, u.clone()));
}

/// User `id`'s row as the hook reads it (None: no such user, not even a
/// tombstone): from this backend's memory when it read it since
/// identity.users and deleted_users last changed (the users trigger fires
/// for every column it holds); else probed. A user is remembered on its
/// second probe since the memory was last cleared (under a fresh snapshot,
/// kept when no invalidation arrived meanwhile), so a backend that answers
/// for ever new users pays no snapshot and no copy for them.
pub fn user_state(id: UserId) -> Option<tables::UserState> {
    prepare();
    if let Some(u) = CACHES.with(|c| c.borrow().user_rows.get(&id).cloned()) {
        return Some(u);
    }
    let again = CACHES.with(|c| {
        let mut c = c.borrow_mut();
        let again = c.seen_once.get(&id).is_some();
        if !again {
            c.seen_once.insert(id, ());
        }
        again
    });
    if !again || !can_fill() {
        return tables::user_state(id);
    }
    set_oid(3, &tables::USERS);
    set_oid(4, &tables::DELETED_USERS);
    let before = invals();
    let u = probe::with_latest_snapshot(|snapshot| tables::user_state_in(id, snapshot))?;
    if invals() == before {
        remember_user_row(id, &u);
    }
    Some(u)
}

/// Records that token `hash`'s last_used_at was just written (or found
/// fresh) at `now`, so this backend does not try again within the minute.
pub fn token_touched(hash: &[u8; 32], now: i64) {
    CACHES.with(|c| {
        if let Some(t) = c.borrow_mut().tokens.get_mut(hash) {
            t.last_used_at = Some(now);
        }
    });
}

/// The active signing key (None: sign with HS256), read once per change.
pub fn active_key(
    load: impl FnOnce() -> Result<Option<ActiveKey>, crate::core::error::IdentityError>,
) -> Result<Option<ActiveKey>, crate::core::error::IdentityError> {
    prepare();
    if let Some(k) = CACHES.with(|c| c.borrow().active_key.clone()) {
        return Ok(k);
    }
    if !can_fill() {
        return load();
    }
    set_oid(2, &tables::SIGNING_KEYS);
    let before = invals();
    let k = probe::with_latest_snapshot(|snapshot| {
        // The load probes under the active snapshot: make it this fresh one.
        snapshot.while_active(load)
    })?;
    if invals() == before {
        CACHES.with(|c| c.borrow_mut().active_key = Some(k.clone()));
    }
    Ok(k)
}

extension_sql!(
    r#"
CREATE FUNCTION identity.cached_table_changed() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'identity_cached_table_changed';
REVOKE ALL ON FUNCTION identity.cached_table_changed() FROM PUBLIC;
CREATE TRIGGER cached_table_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON identity.revoked_jwts
    FOR EACH STATEMENT EXECUTE FUNCTION identity.cached_table_changed();
CREATE TRIGGER cached_table_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON identity.revoked_sessions
    FOR EACH STATEMENT EXECUTE FUNCTION identity.cached_table_changed();
CREATE TRIGGER cached_table_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON identity.signing_keys
    FOR EACH STATEMENT EXECUTE FUNCTION identity.cached_table_changed();
CREATE TRIGGER cached_table_changed AFTER INSERT OR UPDATE OF id, status, tokens_valid_after, is_service_user, user_role, organization_id, application_id, email OR DELETE OR TRUNCATE ON identity.users
    FOR EACH STATEMENT EXECUTE FUNCTION identity.cached_table_changed();
CREATE TRIGGER cached_table_changed AFTER INSERT OR UPDATE OF id, user_id, kind, name, token_hash, display_prefix, last4, scopes, expires_at, revoked_at, rotated_from, created_by, created_at OR DELETE OR TRUNCATE ON identity.api_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION identity.cached_table_changed();
CREATE TRIGGER cached_table_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON identity.deleted_users
    FOR EACH STATEMENT EXECUTE FUNCTION identity.cached_table_changed();
ALTER TABLE identity.revoked_jwts ENABLE ALWAYS TRIGGER cached_table_changed;
ALTER TABLE identity.revoked_sessions ENABLE ALWAYS TRIGGER cached_table_changed;
ALTER TABLE identity.signing_keys ENABLE ALWAYS TRIGGER cached_table_changed;
ALTER TABLE identity.users ENABLE ALWAYS TRIGGER cached_table_changed;
ALTER TABLE identity.deleted_users ENABLE ALWAYS TRIGGER cached_table_changed;
ALTER TABLE identity.api_tokens ENABLE ALWAYS TRIGGER cached_table_changed;
CREATE TRIGGER cached_row_applied AFTER INSERT OR UPDATE OR DELETE ON identity.revoked_jwts
    FOR EACH ROW EXECUTE FUNCTION identity.cached_table_changed();
CREATE TRIGGER cached_row_applied AFTER INSERT OR UPDATE OR DELETE ON identity.revoked_sessions
    FOR EACH ROW EXECUTE FUNCTION identity.cached_table_changed();
CREATE TRIGGER cached_row_applied AFTER INSERT OR UPDATE OR DELETE ON identity.signing_keys
    FOR EACH ROW EXECUTE FUNCTION identity.cached_table_changed();
CREATE TRIGGER cached_row_applied AFTER INSERT OR UPDATE OR DELETE ON identity.users
    FOR EACH ROW EXECUTE FUNCTION identity.cached_table_changed();
CREATE TRIGGER cached_row_applied AFTER INSERT OR UPDATE OR DELETE ON identity.api_tokens
    FOR EACH ROW EXECUTE FUNCTION identity.cached_table_changed();
CREATE TRIGGER cached_row_applied AFTER INSERT OR UPDATE OR DELETE ON identity.deleted_users
    FOR EACH ROW EXECUTE FUNCTION identity.cached_table_changed();
ALTER TABLE identity.revoked_jwts ENABLE REPLICA TRIGGER cached_row_applied;
ALTER TABLE identity.revoked_sessions ENABLE REPLICA TRIGGER cached_row_applied;
ALTER TABLE identity.signing_keys ENABLE REPLICA TRIGGER cached_row_applied;
ALTER TABLE identity.users ENABLE REPLICA TRIGGER cached_row_applied;
ALTER TABLE identity.api_tokens ENABLE REPLICA TRIGGER cached_row_applied;
ALTER TABLE identity.deleted_users ENABLE REPLICA TRIGGER cached_row_applied;
CREATE FUNCTION identity.revocation_added() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'identity_revocation_added';
REVOKE ALL ON FUNCTION identity.revocation_added() FROM PUBLIC;
CREATE TRIGGER revocation_filter AFTER INSERT OR UPDATE ON identity.revoked_jwts
    FOR EACH ROW EXECUTE FUNCTION identity.revocation_added('jti');
CREATE TRIGGER revocation_filter AFTER INSERT OR UPDATE ON identity.revoked_sessions
    FOR EACH ROW EXECUTE FUNCTION identity.revocation_added('session');
ALTER TABLE identity.revoked_jwts ENABLE ALWAYS TRIGGER revocation_filter;
ALTER TABLE identity.revoked_sessions ENABLE ALWAYS TRIGGER revocation_filter;
"#,
    name = "cache_triggers",
    requires = ["schema"],
);
