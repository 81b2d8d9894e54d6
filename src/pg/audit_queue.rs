//! Audit records that must outlive the caller's transaction (a secret
//! revealed, an attempt refused): written into a ring in shared memory
//! under an LWLock (a copy of at most `SLOT_BYTES`, a few microseconds) and
//! inserted into that database's identity.audit_log by a background worker
//! that commits on its own. A rollback or an error in the caller, or the
//! caller's backend being terminated after the call returned, loses nothing:
//! the record is already in shared memory and the writer commits it within
//! `POLL`. (A crash of the whole server, which resets shared memory, can
//! lose the records of the last `POLL`.)
//!
//! One writer per database, started on demand by the first backend that
//! queues a record for it (RegisterDynamicBackgroundWorker) and exiting
//! after `IDLE` without records. A record is freed only after the writer's
//! transaction committed; a writer that died leaves its records in flight,
//! and the next writer of that database takes them again. A writer ended
//! by an ERROR is started again by the postmaster after `RESTART` (at most
//! 3 times without a transaction that ran, so a dropped database does not
//! keep one restarting); a heartbeat in shared memory lets wake() replace
//! a writer that is gone.
//!
//! Needs the library in shared_preload_libraries (as everything here does);
//! without the ring (not preloaded, or full) `record` returns false: a
//! secret is then not revealed (`Class::Essential`), a refusal not recorded.
//!
//! No database can take the ring from another, and refusals cannot take it
//! from reveals: a database holds at most `SHARE` slots (queued or in
//! flight), refusals at most `REFUSAL_SHARE` of them, and refusals never
//! take the last `RESERVE` free slots of the ring. A database whose oldest
//! record has waited `STUCK_MS` (its writer cannot write) gets no more
//! reveals queued: they are refused, never queued to be lost. Repeated refusals of one
//! actor (`Class::Refusal`'s key: who, the action, the operation, the
//! SQLSTATE) are written once per identity.audit_refusal_window: the first at once, the rest
//! counted in shared memory (`repeats`) and written as one row with
//! `details.repeated` (how many refusals it stands for) and
//! `details.distinct_targets` when the window closes.

use crate::pg::workers::{self, now_ms};
use pgrx::bgworkers::{BackgroundWorker, SignalWakeFlags};
use pgrx::{pg_guard, pg_shmem_init, pg_sys, PGRXSharedMemory, PgLwLock};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const SLOTS: usize = 512;
/// What one database may hold of the ring (queued or in flight).
const SHARE: usize = SLOTS / 8;
/// ... of which refusals.
const REFUSAL_SHARE: usize = SHARE / 2;
/// A database whose oldest record has waited this long has a writer that
/// cannot write (its settings, a lock, a dropped table): its reveals are
/// refused until the writer catches up, never queued to be lost.
const STUCK_MS: i64 = 5_000;
/// Free slots that refusals never take (reveals of every database do).
const RESERVE: usize = SLOTS / 4;
/// Refusal windows open at once (across databases).
const REPEATS: usize = 64;
pub const SLOT_BYTES: usize = 2000;
const WRITERS: usize = 16;
const POLL: Duration = Duration::from_millis(20);
// Short: a writer holds a connection to its database, and DROP DATABASE
// (without FORCE) waits at most 5 s for every connection to leave.
const IDLE: Duration = Duration::from_millis(250);

const FREE: u8 = 0;
const QUEUED: u8 = 1;
const IN_FLIGHT: u8 = 2;

#[derive(Copy, Clone)]
struct Slot {
    state: u8,
    /// A refusal's record (counts towards REFUSAL_SHARE).
    refusal: bool,
    dboid: u32,
    /// When it was queued (ms since the epoch).
    queued_ms: i64,
    len: u32,
    data: [u8; SLOT_BYTES],
}

#[derive(Copy, Clone)]
struct Writer {
    dboid: u32,
    /// 0 while starting.
    pid: i32,
    /// When it was registered, then its heartbeat (ms since the epoch; the
    /// writer refreshes it every loop). A stale one is a writer that never
    /// came or died (an ERROR ends a background worker): wake() starts
    /// another.
    seen_ms: i64,
    /// Starts since the last transaction that ran: bounds the postmaster's
    /// restarts of a writer whose database is gone (its connection fails).
    starts: u32,
}

/// A window of repeated refusals: opened by the first (queued at once),
/// counting the ones after it; the writer writes the count when it closes.
#[derive(Copy, Clone)]
struct Repeat {
    /// 0: unused.
    dboid: u32,
    key: u64,
    /// When the window closes (the recording backend's
    /// identity.audit_refusal_window after its first refusal).
    until_ms: i64,
    /// Refusals after the first, not written yet (the first too when it
    /// could not be queued).
    count: u32,
    /// One bit per target hash (mod 64) seen in the window: a linear
    /// counting estimate of how many targets were tried.
    targets: u64,
    len: u32,
    data: [u8; SLOT_BYTES],
}

const NO_REPEAT: Repeat = Repeat {
    dboid: 0,
    key: 0,
    until_ms: 0,
    count: 0,
    targets: 0,
    len: 0,
    data: [0; SLOT_BYTES],
};

#[derive(Copy, Clone)]
pub struct Queue {
    slots: [Slot; SLOTS],
    writers: [Writer; WRITERS],
    repeats: [Repeat; REPEATS],
    /// Refusals neither queued nor counted, by database (0: unused).
    dropped: [(u32, u32); WRITERS],
}

impl Default for Queue {
    fn default() -> Self {
        Queue {
            slots: [Slot {
                state: FREE,
                refusal: false,
                dboid: 0,
                queued_ms: 0,
                len: 0,
                data: [0; SLOT_BYTES],
            }; SLOTS],
            writers: [Writer {
                dboid: 0,
                pid: 0,
                seen_ms: 0,
                starts: 0,
            }; WRITERS],
            repeats: [NO_REPEAT; REPEATS],
            dropped: [(0, 0); WRITERS],
        }
    }
}

// SAFETY: Queue is plain data (integers and byte arrays), valid when zeroed
// and position-independent, as shared memory requires.
unsafe impl PGRXSharedMemory for Queue {}

// SAFETY: the name is unique to this library; the lock is created by
// pg_shmem_init! in _PG_init (preloaded) before any backend uses it.
static QUEUE: PgLwLock<Queue> = unsafe { PgLwLock::new(c"identity_audit_queue") };
static INITIALISED: AtomicBool = AtomicBool::new(false);

/// Requests the ring's shared memory. Only while preloading (Postgres
/// allows shared memory requests only then).
pub fn init() {
    if crate::pg::workers::preloading() {
        pg_shmem_init!(QUEUE);
        INITIALISED.store(true, Ordering::Relaxed);
    }
}

/// Whether the ring exists in this process (preloaded; a backend forked by
/// the postmaster inherits the flag).
fn available() -> bool {
    INITIALISED.load(Ordering::Relaxed)
}

/// How long a writer may go without a heartbeat (it loops every POLL).
const STALE_MS: i64 = 2000;
/// When the postmaster starts a writer again after it ended with an ERROR.
const RESTART: Duration = Duration::from_secs(3);

/// What a record is, for the ring's shares.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Class {
    /// Must be written before the caller may go on (a secret revealed):
    /// the caller refuses its work when it cannot be queued.
    Essential,
    /// An attempt refused, by its key (who, what, how it failed) and a hash
    /// of its target: repeats within identity.audit_refusal_window are
    /// counted into one row, with an estimate of how many targets differed.
    Refusal { key: u64, target: u64 },
}

/// Queues `record` (a JSON object's text, at most SLOT_BYTES) for this
/// database's writer, starting the writer when there is none. True when it
/// is queued, or (a refusal) counted into its open window; false when the
/// ring is unavailable, the record too long, or the database's share (or,
/// for a refusal, the refusals' share or the reserve) is used up.
pub fn record(record: &[u8], class: Class) -> bool {
    if !available() || record.len() > SLOT_BYTES {
        return false;
    }
    let db = workers::my_db();
    let window_ms = crate::pg::gucs::audit_refusal_window_ms();
    let queued = {
        let mut q = QUEUE.exclusive();
        queue_in(&mut q, db, record, class, now_ms(), window_ms)
    };
    if queued {
        wake();
    }
    queued
}

/// `record`'s work under the lock.
fn queue_in(q: &mut Queue, db: u32, record: &[u8], class: Class, now: i64, window_ms: i64) -> bool {
    if let Class::Refusal { key, target } = class {
        if let Some(r) = q
            .repeats
            .iter_mut()
            .find(|r| r.dboid == db && r.key == key && now < r.until_ms)
        {
            r.count = r.count.saturating_add(1);
            r.targets |= 1u64 << (target % 64);
            return true;
        }
    }
    let used = q.slots.iter().filter(|s| s.state != FREE && s.dboid == db);
    let (mine, refusals, oldest) = used.fold((0, 0, now), |(m, r, o), s| {
        (m + 1, r + usize::from(s.refusal), o.min(s.queued_ms))
    });
    let free = q.slots.iter().filter(|s| s.state == FREE).count();
    let stuck = now - oldest >= STUCK_MS;
    let fits = match class {
        Class::Essential => mine < SHARE && free > 0 && !stuck,
        Class::Refusal { .. } => mine < SHARE && refusals < REFUSAL_SHARE && free > RESERVE,
    };
    let Class::Refusal { key, target } = class else {
        return fits && put(q, db, record, false, now);
    };
    // A new window: the first refusal is written now (or, when it cannot
    // be queued, counted, and written when the window closes).
    let window = q
        .repeats
        .iter()
        .position(|r| r.dboid == 0 || (now >= r.until_ms && r.count == 0));
    let queued = fits && put(q, db, record, true, now);
    if let Some(i) = window {
        let r = &mut q.repeats[i];
        *r = Repeat {
            dboid: db,
            key,
            until_ms: now + window_ms,
            count: u32::from(!queued),
            targets: 1u64 << (target % 64),
            len: record.len() as u32,
            data: r.data,
        };
        r.data[..record.len()].copy_from_slice(record);
        return true;
    }
    if !queued {
        // Neither queued nor counted in a window: counted as dropped, and
        // the writer records how many (`take_dropped`).
        match q.dropped.iter_mut().find(|d| d.0 == db || d.0 == 0) {
            Some(d) => *d = (db, d.1.saturating_add(1)),
            None => q.dropped[0].1 = q.dropped[0].1.saturating_add(1),
        }
    }
    queued
}

/// A record of the refusals of database `db` that could be neither queued
/// nor counted (the ring's refusal share and windows were full): how many,
/// as one row of its own; the count starts again.
fn take_dropped(db: u32) -> Option<serde_json::Value> {
    let mut q = QUEUE.exclusive();
    let d = q.dropped.iter_mut().find(|d| d.0 == db && d.1 > 0)?;
    let n = d.1;
    *d = (0, 0);
    Some(serde_json::json!({
        "actor_kind": "system",
        "action": "audit.refusals_dropped",
        "target_type": "audit_log",
        "details": {"count": n},
    }))
}

/// Puts `record` in a free slot.
fn put(q: &mut Queue, db: u32, record: &[u8], refusal: bool, now: i64) -> bool {
    let Some(slot) = q.slots.iter_mut().find(|s| s.state == FREE) else {
        return false;
    };
    slot.state = QUEUED;
    slot.refusal = refusal;
    slot.dboid = db;
    slot.queued_ms = now;
    slot.len = record.len() as u32;
    slot.data[..record.len()].copy_from_slice(record);
    true
}

/// The closed refusal windows of database `db` with repeats to write: each
/// its first record with `details.repeated` (how many more); their
/// windows are freed. Windows without
/// repeats are freed once closed.
fn closed_windows(db: u32, now: i64) -> Vec<serde_json::Value> {
    let mut q = QUEUE.exclusive();
    let mut out = Vec::new();
    for r in q.repeats.iter_mut() {
        if r.dboid != db || now < r.until_ms {
            continue;
        }
        if r.count > 0 {
            if let Ok(mut v) =
                serde_json::from_slice::<serde_json::Value>(&r.data[..r.len as usize])
            {
                if let Some(d) = v
                    .get_mut("details")
                    .and_then(serde_json::Value::as_object_mut)
                {
                    d.insert("repeated".into(), r.count.into());
                    d.insert("distinct_targets".into(), distinct(r.targets).into());
                }
                out.push(v);
            }
        }
        *r = Repeat {
            data: r.data,
            ..NO_REPEAT
        };
    }
    out
}

/// How many targets a window's bitmap stands for: linear counting over 64
/// bits (exact for a few, an estimate for many; 64 bits all set: "64 or
/// more").
fn distinct(bits: u64) -> u64 {
    let zeros = u64::from(bits.count_zeros());
    if zeros == 0 {
        return 64;
    }
    (-64.0 * (zeros as f64 / 64.0).ln()).round() as u64
}

/// Whether database `db` has refusal windows with repeats still to write.
fn windows_pending(q: &Queue, db: u32) -> bool {
    q.repeats.iter().any(|r| r.dboid == db && r.count > 0)
}

/// Makes sure this database has a writer: it inserts queued records and
/// chains committed audit rows (identity.audit_chain_pending). Called after
/// every audit row an extension function writes: a lookup in shared memory
/// while the writer runs, a worker registration when it does not.
pub fn wake() {
    if !available() {
        return;
    }
    let db = workers::my_db();
    let start = {
        let mut q = QUEUE.exclusive();
        // A writer for this database with a fresh heartbeat (or registered
        // just now). A stale entry is taken over.
        let now = now_ms();
        let has_writer = q
            .writers
            .iter()
            .any(|w| w.dboid == db && now - w.seen_ms < STALE_MS);
        if has_writer {
            false
        } else if let Some(w) = q
            .writers
            .iter_mut()
            .find(|w| w.dboid == 0 || w.dboid == db || now - w.seen_ms >= STALE_MS)
        {
            *w = Writer {
                dboid: db,
                pid: 0,
                seen_ms: now,
                starts: 0,
            };
            true
        } else {
            false
        }
    };
    if start {
        // RESTART is longer than STALE_MS, so a writer restarted after an
        // ERROR takes over its own stale slot.
        let started = workers::start(
            "identity audit writer",
            "identity_audit_writer",
            db,
            RESTART,
        );
        if !started {
            let mut q = QUEUE.exclusive();
            for w in q.writers.iter_mut().filter(|w| w.dboid == db && w.pid == 0) {
                w.dboid = 0;
            }
        }
    }
}

/// Takes up to `max` queued records of database `db` (marking them in
/// flight), and, when `reclaim`, the in-flight ones a dead writer left.
fn take(db: u32, pid: i32, max: usize, reclaim: bool) -> Vec<(usize, Vec<u8>)> {
    let mut q = QUEUE.exclusive();
    // The heartbeat.
    let now = now_ms();
    for w in q
        .writers
        .iter_mut()
        .filter(|w| w.dboid == db && w.pid == pid)
    {
        w.seen_ms = now;
    }
    let mut out = Vec::new();
    for (i, s) in q.slots.iter_mut().enumerate() {
        if out.len() == max {
            break;
        }
        if s.dboid == db && (s.state == QUEUED || (reclaim && s.state == IN_FLIGHT)) {
            s.state = IN_FLIGHT;
            out.push((i, s.data[..s.len as usize].to_vec()));
        }
    }
    out
}

fn release(db: u32, taken: &[(usize, Vec<u8>)]) {
    let mut q = QUEUE.exclusive();
    for (i, _) in taken {
        let s = &mut q.slots[*i];
        if s.dboid == db && s.state == IN_FLIGHT {
            s.state = FREE;
            s.refusal = false;
            s.dboid = 0;
        }
    }
}

/// The background worker of one database (its oid in the argument).
///
/// # Safety
/// Called by the postmaster as a background worker's main function.
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn identity_audit_writer(arg: pg_sys::Datum) {
    let db = arg.value() as u32;
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    // Before connecting (which ends the process if the database is gone):
    // a writer restarted 3 times without a transaction that ran gives up.
    {
        let mut q = QUEUE.exclusive();
        if let Some(w) = q.writers.iter_mut().find(|w| w.dboid == db) {
            w.starts += 1;
            if w.starts > 3 {
                *w = Writer {
                    dboid: 0,
                    pid: 0,
                    seen_ms: 0,
                    starts: 0,
                };
                return;
            }
        }
    }
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(pg_sys::Oid::from(db)), None);
    // Connected as the bootstrap superuser, with the database's settings:
    // search_path pinned before any statement, and every statement run as
    // identity_worker (insert_and_chain).
    BackgroundWorker::transaction(super::workers::pin_settings);
    // SAFETY: MyProcPid is this process' pid.
    let pid = unsafe { pg_sys::MyProcPid };
    {
        let mut q = QUEUE.exclusive();
        let now = now_ms();
        let running = q
            .writers
            .iter()
            .any(|w| w.dboid == db && w.pid != 0 && w.pid != pid && now - w.seen_ms < STALE_MS);
        if running {
            return;
        }
        let mine = q.writers.iter().position(|w| w.dboid == db).or_else(|| {
            q.writers
                .iter()
                .position(|w| w.dboid == 0 || now - w.seen_ms >= STALE_MS)
        });
        match mine {
            Some(i) => {
                let starts = if q.writers[i].dboid == db {
                    q.writers[i].starts
                } else {
                    0
                };
                q.writers[i] = Writer {
                    dboid: db,
                    pid,
                    seen_ms: now,
                    starts,
                }
            }
            None => return,
        }
    }
    let mut reclaim = true;
    let mut idle = Duration::ZERO;
    loop {
        let taken = take(db, pid, 64, reclaim);
        reclaim = false;
        let mut batch: Vec<serde_json::Value> = taken
            .iter()
            .filter_map(|(_, bytes)| serde_json::from_slice(bytes).ok())
            .collect();
        // Closed refusal windows: one row each with their count. Lost if
        // this transaction fails (as a crash loses the ring).
        let windows = closed_windows(db, now_ms());
        let counted = !windows.is_empty();
        batch.extend(windows);
        batch.extend(take_dropped(db));
        // Insert the queued records and chain what committed, in one
        // transaction of this worker's own.
        let done = BackgroundWorker::transaction(|| insert_and_chain(&batch));
        if done.is_some() {
            let mut q = QUEUE.exclusive();
            for w in q
                .writers
                .iter_mut()
                .filter(|w| w.dboid == db && w.pid == pid)
            {
                w.starts = 0;
            }
        }
        if taken.is_empty() && !counted && done == Some(0) {
            let stop = !BackgroundWorker::wait_latch(Some(POLL));
            idle += POLL;
            // Leave only when nothing is queued, checked under the lock that
            // wake() takes: a record queued before this sees the queue
            // non-empty here, one queued after finds no writer and starts one.
            if (stop || idle >= IDLE) && leave(db, pid) {
                return;
            }
            if stop {
                break;
            }
            continue;
        }
        idle = Duration::ZERO;
        if done.is_some() {
            release(db, &taken);
        } else {
            // Put them back for the next round (or the next writer).
            reclaim = true;
            if !BackgroundWorker::wait_latch(Some(POLL)) {
                break;
            }
        }
        if BackgroundWorker::sigterm_received() {
            break;
        }
    }
    // Shutting down (postmaster exit or SIGTERM): the slot is freed; queued
    // records wait for the next writer.
    let mut q = QUEUE.exclusive();
    free_writer(&mut q, db, pid);
}

/// Frees writer `pid`'s slot of database `db` (under the queue's lock).
fn free_writer(q: &mut Queue, db: u32, pid: i32) {
    for w in q
        .writers
        .iter_mut()
        .filter(|w| w.dboid == db && w.pid == pid)
    {
        *w = Writer {
            dboid: 0,
            pid: 0,
            seen_ms: 0,
            starts: 0,
        };
    }
}

/// Frees this writer's slot unless records of its database are queued
/// (then it must go on); true when it may exit.
fn leave(db: u32, pid: i32) -> bool {
    let mut q = QUEUE.exclusive();
    if q.slots.iter().any(|s| s.dboid == db && s.state == QUEUED) || windows_pending(&q, db) {
        return false;
    }
    free_writer(&mut q, db, pid);
    true
}

/// Inserts a batch of records into identity.audit_log and chains every
/// committed row not chained yet (if the extension is in this database), as
/// the role identity_worker through identity.worker_write_audit (its only
/// privilege). Some(rows chained) when the statement ran, None when it
/// failed or the role does not exist.
fn insert_and_chain(batch: &[serde_json::Value]) -> Option<i64> {
    // No error is caught here: catching one without a subtransaction would
    // leave the transaction unusable. An ERROR (the extension dropped under
    // the writer, say) ends this worker; the postmaster starts it again
    // after RESTART, and it takes its in-flight records again.
    let records = pgrx::JsonB(serde_json::Value::Array(batch.to_vec()));
    super::workers::as_worker_role(|| {
        pgrx::Spi::connect_mut(|c| {
            let exists = c
                .select(
                    "select pg_catalog.to_regprocedure('identity.worker_write_audit(pg_catalog.jsonb)') is not null",
                    None,
                    &[],
                )
                .ok()
                .and_then(|t| t.first().get_one::<bool>().ok().flatten())
                .unwrap_or(false);
            if !exists {
                return Some(0);
            }
            c.update(
                "select identity.worker_write_audit($1)",
                None,
                &[records.into()],
            )
            .ok()
            .and_then(|t| t.first().get_one::<i32>().ok().flatten())
            .map(i64::from)
        })
    })
    .flatten()
}
