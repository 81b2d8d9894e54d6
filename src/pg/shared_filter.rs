//! Shared memory for the revocation filters (`core::bloom`): per database,
//! one filter of identity.revoked_jwts' jtis and one of
//! identity.revoked_sessions' ids, which every backend reads without a lock
//! and the tables' row trigger (`identity_revocation_added`) writes into
//! before the writing transaction commits. When and how a filter is built,
//! trusted and rebuilt is `store::cache`'s; this module is the memory, the
//! trigger and the few catalog and lock calls that takes.
//!
//! Layout, `identity.revocation_filter_kb` per filter (0: none at all):
//! a seed chosen at server start, `CELLS` cell headers, then each cell's
//! words. A cell belongs to one (database, table); `SLOTS` databases get
//! one each, first come (a cell of a dropped database is taken over).
//! Needs the library in shared_preload_libraries; without it, or with the
//! size 0, `cell` answers None and every check probes the table.

use crate::core::bloom::{self, Filter};
use pgrx::{pg_guard, pg_sys};
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// Databases with filters.
const SLOTS: usize = 4;
/// The tables filtered, per database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Jtis = 0,
    Sessions = 1,
}
const CELLS: usize = SLOTS * 2;

/// Not built since the server started (or the cell is free).
pub const EMPTY: u32 = 0;
/// Being built by one backend (it holds the table's SHARE lock).
pub const BUILDING: u32 = 1;
/// Holds every key of the table (and maybe more).
pub const READY: u32 = 2;
/// Must be built again before it is trusted (the trigger changed, or the
/// filter is over its capacity).
pub const STALE: u32 = 3;

#[repr(C)]
struct Cell {
    /// The state (low half) and a generation (high half), bumped on every
    /// move into BUILDING, so a builder that lost its claim cannot finish.
    state: AtomicU64,
    /// The database, 0 while free.
    dboid: AtomicU32,
    /// The table, when built.
    relid: AtomicU32,
    _pad: AtomicU32,
    /// The row trigger's pg_trigger version when built (`trigger_version`).
    trigger: AtomicU64,
    /// Keys added since built.
    added: AtomicU64,
    /// When it was last built (ms since the epoch).
    built_ms: AtomicU64,
}

#[repr(C)]
struct Header {
    seed: AtomicU64,
    cells: [Cell; CELLS],
}

static BASE: AtomicPtr<Header> = AtomicPtr::new(std::ptr::null_mut());
/// Words per cell (0: no filters).
static WORDS: AtomicUsize = AtomicUsize::new(0);

fn words_per_cell() -> usize {
    let kb = crate::pg::gucs::revocation_filter_kb();
    // Whole blocks.
    kb * 1024 / 8 / bloom::BLOCK_WORDS * bloom::BLOCK_WORDS
}

fn region_size(words: usize) -> usize {
    std::mem::size_of::<Header>() + CELLS * words * 8
}

static mut PREV_REQUEST: Option<unsafe extern "C-unwind" fn()> = None;
static mut PREV_STARTUP: Option<unsafe extern "C-unwind" fn()> = None;

#[pg_guard]
unsafe extern "C-unwind" fn on_request() {
    // SAFETY: the previous hook, set before ours in this process (postmaster), called first.
    if let Some(prev) = unsafe { PREV_REQUEST } {
        // SAFETY: a hook Postgres or another library installed.
        unsafe { prev() };
    }
    let words = words_per_cell();
    if words > 0 {
        // SAFETY: called in the shmem request hook, where requests are allowed.
        unsafe { pg_sys::RequestAddinShmemSpace(region_size(words)) };
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn on_startup() {
    // SAFETY: as on_request.
    if let Some(prev) = unsafe { PREV_STARTUP } {
        // SAFETY: as on_request.
        unsafe { prev() };
    }
    let words = words_per_cell();
    if words == 0 {
        return;
    }
    let mut found = false;
    // SAFETY: the startup hook runs with AddinShmemInitLock available; the
    // region was requested with this size; ShmemInitStruct returns memory
    // for the postmaster's lifetime (zeroed by us when new).
    let p = unsafe {
        // AddinShmemInitLock: MainLWLockArray[21] (lwlocknames.h, the same
        // on every supported major).
        let lock = &raw mut (*pg_sys::MainLWLockArray.add(21)).lock;
        pg_sys::LWLockAcquire(lock, pg_sys::LWLockMode::LW_EXCLUSIVE);
        let p = pg_sys::ShmemInitStruct(
            c"identity_revocation_filters".as_ptr(),
            region_size(words),
            &mut found,
        )
        .cast::<Header>();
        if !found {
            std::ptr::write_bytes(p.cast::<u8>(), 0, region_size(words));
            (*p).seed
                .store(rand::random::<u64>() | 1, Ordering::Relaxed);
        }
        pg_sys::LWLockRelease(lock);
        p
    };
    WORDS.store(words, Ordering::Relaxed);
    BASE.store(p, Ordering::Release);
}

/// Installs the hooks. Only while preloading.
pub fn init() {
    if crate::pg::workers::preloading() {
        // SAFETY: _PG_init of a preloaded library runs once, in the
        // postmaster, before any hook is called: the statics are written
        // only here.
        unsafe {
            PREV_REQUEST = pg_sys::shmem_request_hook;
            pg_sys::shmem_request_hook = Some(on_request);
            PREV_STARTUP = pg_sys::shmem_startup_hook;
            pg_sys::shmem_startup_hook = Some(on_startup);
        }
    }
}

fn header() -> Option<&'static Header> {
    let p = BASE.load(Ordering::Acquire);
    // SAFETY: set once by on_startup to shared memory that lives as long as
    // the server; a backend forked by the postmaster inherits the pointer.
    (!p.is_null()).then(|| unsafe { &*p })
}

/// A cell of this database, for `kind`.
#[derive(Clone, Copy)]
pub struct CellRef {
    index: usize,
}

impl CellRef {
    fn cell(&self) -> &'static Cell {
        &header()
            .expect("a CellRef exists only with the region")
            .cells[self.index]
    }

    /// The state and its generation.
    pub fn state(&self) -> (u32, u32) {
        let v = self.cell().state.load(Ordering::Acquire);
        (v as u32, (v >> 32) as u32)
    }

    /// Moves (state, generation) `from` to state `to` (a move into BUILDING
    /// takes the next generation); false when it was not `from`.
    pub fn transition(&self, from: (u32, u32), to: u32) -> bool {
        let old = (u64::from(from.1) << 32) | u64::from(from.0);
        let generation = if to == BUILDING {
            from.1.wrapping_add(1)
        } else {
            from.1
        };
        let new = (u64::from(generation) << 32) | u64::from(to);
        self.cell()
            .state
            .compare_exchange(old, new, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Records the start of a build (before it scans).
    pub fn set_building_since(&self) {
        self.cell()
            .built_ms
            .store(crate::pg::workers::now_ms() as u64, Ordering::Relaxed);
    }

    pub fn filter(&self) -> Filter<'static> {
        let h = header().expect("a CellRef exists only with the region");
        let words = WORDS.load(Ordering::Relaxed);
        let base = (h as *const Header).cast::<u8>();
        // SAFETY: the region holds CELLS * words u64 words after the header
        // (region_size), 8-aligned (ShmemInitStruct aligns to a cache line,
        // the header is a multiple of 8 bytes); AtomicU64 has u64's layout.
        let all = unsafe {
            std::slice::from_raw_parts(
                base.add(std::mem::size_of::<Header>()).cast::<AtomicU64>(),
                CELLS * words,
            )
        };
        let mine = &all[self.index * words..(self.index + 1) * words];
        Filter::new(mine, h.seed.load(Ordering::Relaxed)).expect("whole blocks")
    }

    pub fn relid(&self) -> pg_sys::Oid {
        pg_sys::Oid::from(self.cell().relid.load(Ordering::Acquire))
    }

    pub fn trigger(&self) -> u64 {
        self.cell().trigger.load(Ordering::Acquire)
    }

    pub fn added(&self) -> u64 {
        self.cell().added.load(Ordering::Relaxed)
    }

    pub fn built_ms(&self) -> u64 {
        self.cell().built_ms.load(Ordering::Relaxed)
    }

    /// Records a finished build (before the state becomes READY).
    pub fn set_built(&self, relid: pg_sys::Oid, trigger: u64, keys: u64) {
        let c = self.cell();
        c.relid.store(u32::from(relid), Ordering::Release);
        c.trigger.store(trigger, Ordering::Release);
        c.added.store(keys, Ordering::Relaxed);
        c.built_ms
            .store(crate::pg::workers::now_ms() as u64, Ordering::Relaxed);
    }
}

/// This database's cell for `kind`; with `claim`, taking a free cell (or
/// one of a database that no longer exists) when it has none.
pub fn cell(kind: Kind, claim: bool) -> Option<CellRef> {
    let h = header()?;
    let db = crate::pg::workers::my_db();
    let range = (0..SLOTS).map(|s| s * 2 + kind as usize);
    if let Some(i) = range
        .clone()
        .find(|&i| h.cells[i].dboid.load(Ordering::Acquire) == db)
    {
        return Some(CellRef { index: i });
    }
    if !claim {
        return None;
    }
    for i in range {
        let c = &h.cells[i];
        let owner = c.dboid.load(Ordering::Acquire);
        let free = owner == 0 || !database_exists(owner);
        if free
            && c.dboid
                .compare_exchange(owner, db, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            // A new owner starts from nothing built (the generation goes on).
            let generation = c.state.load(Ordering::Acquire) >> 32;
            c.state.store(
                (generation.wrapping_add(1) << 32) | u64::from(EMPTY),
                Ordering::Release,
            );
            return Some(CellRef { index: i });
        }
    }
    None
}

fn database_exists(db: u32) -> bool {
    // SAFETY: a syscache existence check by oid; no pointer kept.
    unsafe {
        pg_sys::SearchSysCacheExists(
            pg_sys::SysCacheIdentifier::DATABASEOID as std::ffi::c_int,
            pg_sys::Datum::from(db),
            pg_sys::Datum::from(0),
            pg_sys::Datum::from(0),
            pg_sys::Datum::from(0),
        )
    }
}

/// Whether this server is a standby (or in crash recovery): no trigger
/// fires during replay, so no filter is trusted there.
pub fn in_recovery() -> bool {
    // SAFETY: reads shared state; no preconditions.
    unsafe { pg_sys::RecoveryInProgress() }
}

/// The SHARE lock on a table, taken without waiting: no transaction that
/// writes the table is in progress (but this backend's own) and none can
/// start until `release`. An ERROR before then releases it with the
/// transaction's other locks.
pub struct WritersLockedOut(pg_sys::Oid);

pub fn lock_out_writers(relid: pg_sys::Oid) -> Option<WritersLockedOut> {
    // SAFETY: a conditional lock on a relation id; no pointers.
    let got = unsafe { pg_sys::ConditionalLockRelationOid(relid, pg_sys::ShareLock as i32) };
    got.then_some(WritersLockedOut(relid))
}

impl WritersLockedOut {
    /// Lets writers in again, before the transaction ends.
    pub fn release(self) {
        // SAFETY: releases exactly the lock lock_out_writers took (a lock
        // this backend held already is kept: the count goes back).
        unsafe { pg_sys::UnlockRelationOid(self.0, pg_sys::ShareLock as i32) };
    }
}

/// The version of table `relid`'s trigger `name` when it is enabled
/// ALWAYS: its pg_trigger row's raw xmin and place, which any ALTER
/// TABLE ... DISABLE / ENABLE TRIGGER, DROP and CREATE changes. None when
/// it is missing or not enabled always.
pub fn trigger_version(relid: pg_sys::Oid, name: &std::ffi::CStr) -> Option<u64> {
    // SAFETY: a catalog index scan of pg_trigger by (tgrelid, tgname) under
    // a fresh catalog snapshot; the tuple is read while the scan holds it,
    // and everything is closed before returning.
    unsafe {
        let rel = pg_sys::table_open(
            pg_sys::TriggerRelationId,
            pg_sys::AccessShareLock as pg_sys::LOCKMODE,
        );
        let mut keys: [pg_sys::ScanKeyData; 2] = std::mem::zeroed();
        pg_sys::ScanKeyInit(
            &mut keys[0],
            pg_sys::Anum_pg_trigger_tgrelid as i16,
            pg_sys::BTEqualStrategyNumber as u16,
            pg_sys::Oid::from(pg_sys::F_OIDEQ),
            pg_sys::Datum::from(relid),
        );
        ScanKeyName(&mut keys[1], name);
        let scan = pg_sys::systable_beginscan(
            rel,
            pg_sys::Oid::from(pg_sys::TriggerRelidNameIndexId),
            true,
            std::ptr::null_mut(),
            2,
            keys.as_mut_ptr(),
        );
        let tup = pg_sys::systable_getnext(scan);
        let out = if tup.is_null() {
            None
        } else {
            let t = pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_trigger>(tup);
            let header = (*tup).t_data;
            let xmin = (*header).t_choice.t_heap.t_xmin;
            let ctid = (*tup).t_self;
            let block = (u32::from(ctid.ip_blkid.bi_hi) << 16) | u32::from(ctid.ip_blkid.bi_lo);
            ((*t).tgenabled == pg_sys::TRIGGER_FIRES_ALWAYS as std::ffi::c_char).then_some(
                (u64::from(u32::from(xmin)) << 32)
                    ^ (u64::from(block) << 16)
                    ^ u64::from(ctid.ip_posid),
            )
        };
        pg_sys::systable_endscan(scan);
        pg_sys::table_close(rel, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        out
    }
}

/// A scan key `tgname = name` (a `name` column, compared with nameeq).
///
/// # Safety
/// `key` is written whole; `name` must outlive the scan (the datum points
/// at a NameData copied into the current memory context).
#[allow(non_snake_case)]
unsafe fn ScanKeyName(key: &mut pg_sys::ScanKeyData, name: &std::ffi::CStr) {
    // SAFETY: a palloc'd NameData (zeroed, NAMEDATALEN bytes) holding the
    // name, which stays valid for the current memory context's life.
    unsafe {
        let n = pg_sys::palloc0(pg_sys::NAMEDATALEN as usize).cast::<pg_sys::NameData>();
        pg_sys::namestrcpy(n, name.as_ptr());
        pg_sys::ScanKeyInit(
            key,
            pg_sys::Anum_pg_trigger_tgname as i16,
            pg_sys::BTEqualStrategyNumber as u16,
            pg_sys::Oid::from(pg_sys::F_NAMEEQ),
            pg_sys::Datum::from(n),
        );
    }
}

/// The name of the row trigger on both tables.
pub const TRIGGER: &std::ffi::CStr = c"revocation_filter";

/// The row trigger on identity.revoked_jwts and revoked_sessions (AFTER
/// INSERT OR UPDATE, ENABLE ALWAYS): adds the row's key (the jti's bytes,
/// the session id's 16 bytes) to this database's filter of that table when
/// there is one, in whatever state (a filter being built or to be rebuilt
/// keeps what it is given). Its argument names the table's kind.
///
/// # Safety
/// Called only by the function manager as a trigger, with its `fcinfo`.
#[no_mangle]
#[pg_guard]
pub unsafe extern "C-unwind" fn identity_revocation_added(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: called by the function manager with this call's fcinfo, in a
    // #[pg_guard].
    let data = unsafe { crate::pg::fmgr::trigger_data(fcinfo, "identity_revocation_added") };
    // SAFETY: a T_TriggerData node of a row trigger: its trigger, relation
    // and tuples are valid for this call.
    let (tuple, desc, kind) = unsafe {
        let d = &*data;
        let update = d.tg_event & pg_sys::TRIGGER_EVENT_OPMASK == pg_sys::TRIGGER_EVENT_UPDATE;
        let tuple = if update {
            d.tg_newtuple
        } else {
            d.tg_trigtuple
        };
        let trigger = &*d.tg_trigger;
        let arg = if trigger.tgnargs == 1 {
            std::ffi::CStr::from_ptr(*trigger.tgargs).to_bytes()
        } else {
            b""
        };
        let kind = match arg {
            b"jti" => Kind::Jtis,
            b"session" => Kind::Sessions,
            _ => {
                pgrx::ereport!(
                    ERROR,
                    pgrx::PgSqlErrorCode::ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED,
                    "identity_revocation_added needs the argument jti or session",
                    crate::core::reason::Reason::Internal.as_str()
                );
            }
        };
        (tuple, (*d.tg_relation).rd_att, kind)
    };
    if let Some(c) = cell(kind, false) {
        let filter = c.filter();
        let mut null = false;
        // SAFETY: column 1 (jti text / session_id uuid, the key of both
        // tables) of the trigger's tuple, read with its descriptor; the
        // bytes are used before the call returns.
        unsafe {
            let d = pg_sys::heap_getattr(tuple, 1, desc, &mut null);
            if !null {
                match kind {
                    Kind::Jtis => {
                        let v = pg_sys::pg_detoast_datum_packed(d.cast_mut_ptr());
                        filter.insert(pgrx::varlena::varlena_to_byte_slice(v));
                    }
                    Kind::Sessions => {
                        let u = std::slice::from_raw_parts(d.cast_mut_ptr::<u8>(), 16);
                        filter.insert(u);
                    }
                }
                c.cell().added.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    // An AFTER trigger's result is ignored.
    pg_sys::Datum::from(0)
}

static V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
#[no_mangle]
pub extern "C" fn pg_finfo_identity_revocation_added() -> &'static pg_sys::Pg_finfo_record {
    &V1
}
