//! Reads one row of an identity table by its primary key, straight through
//! the index: no SQL, no SPI, no planner. The hook's user lookup and the JWT
//! verifier's revocation and user-status checks go through here; that is why
//! they need neither SPI's per-call setup nor SECURITY DEFINER.
//!
//! Safety of running with the caller's rights: nothing here resolves a name
//! through search_path (the schema is named explicitly, relations are found in
//! it by name, columns by name in that relation), so a caller's shadowing
//! objects cannot be substituted; relation privileges are what the SQL
//! executor checks, and this path does not go through it, so EXECUTE on the
//! calling function is the gate (see the grant lists in `api::admin`). Locks:
//! AccessShareLock on table and index, as a SELECT takes; no row locks.
//! Visibility: the active snapshot, as the calling statement sees the tables.

use crate::core::claims::uuid_text;
use pgrx::pg_guard;
use pgrx::pg_sys;
use pgrx::FromDatum;
use std::cell::{Cell, RefCell};
use std::ffi::CStr;

/// A table read by primary key: its name, its primary key index, the key's
/// type, and the columns a probe returns (in this order).
pub struct Table {
    pub name: &'static CStr,
    pub index: &'static CStr,
    pub key: KeyType,
    pub columns: &'static [&'static CStr],
}

/// The type of an index's first column, which a probe's key must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    Uuid,
    Text,
    Bytea,
    Bool,
}

impl KeyType {
    /// The type's btree equality function.
    fn equality(self) -> pg_sys::Oid {
        pg_sys::Oid::from(match self {
            KeyType::Uuid => pg_sys::F_UUID_EQ,
            KeyType::Text => pg_sys::F_TEXTEQ,
            KeyType::Bytea => pg_sys::F_BYTEAEQ,
            KeyType::Bool => pg_sys::F_BOOLEQ,
        })
    }
}

/// A probe's key value.
#[derive(Clone, Copy, Debug)]
pub enum Key<'a> {
    Uuid([u8; 16]),
    Text(&'a str),
    Bytea(&'a [u8]),
    Bool(bool),
}

impl Key<'_> {
    fn key_type(&self) -> KeyType {
        match self {
            Key::Uuid(_) => KeyType::Uuid,
            Key::Text(_) => KeyType::Text,
            Key::Bytea(_) => KeyType::Bytea,
            Key::Bool(_) => KeyType::Bool,
        }
    }

    /// The key as a Datum, palloc'd in the current memory context (it lives
    /// to the end of the probe that made it).
    fn datum(self) -> pg_sys::Datum {
        use pgrx::IntoDatum;
        match self {
            Key::Uuid(b) => pgrx::Uuid::from_bytes(b).into_datum(),
            Key::Text(t) => t.into_datum(),
            Key::Bytea(b) => b.into_datum(),
            Key::Bool(b) => b.into_datum(),
        }
        .expect("a key is never NULL")
    }
}

/// Where a table lives: found once per backend, forgotten on any pg_class
/// change (syscache invalidation), so DDL is always seen.
#[derive(Clone)]
struct Rels {
    table: pg_sys::Oid,
    index: pg_sys::Oid,
    /// Shared, so the per-probe copy of `Rels` allocates nothing.
    attnums: std::rc::Rc<[i16]>,
}

thread_local! {
    /// Keyed by index name (two descriptors may share a table).
    static RELS: RefCell<Vec<(&'static CStr, Rels)>> = const { RefCell::new(Vec::new()) };
    static CALLBACK_REGISTERED: Cell<bool> = const { Cell::new(false) };
}

#[pg_guard]
unsafe extern "C-unwind" fn forget_rels(
    _arg: pg_sys::Datum,
    _cacheid: std::ffi::c_int,
    _hash: u32,
) {
    RELS.with(|r| r.borrow_mut().clear());
}

fn rels(t: &Table) -> Rels {
    if let Some(r) = RELS.with(|c| {
        c.borrow()
            .iter()
            .find(|(n, _)| *n == t.index)
            .map(|(_, r)| r.clone())
    }) {
        return r;
    }
    if !CALLBACK_REGISTERED.with(Cell::get) {
        // SAFETY: registers a #[pg_guard] callback, once per backend.
        unsafe {
            pg_sys::CacheRegisterSyscacheCallback(
                pg_sys::SysCacheIdentifier::RELOID as std::ffi::c_int,
                Some(forget_rels),
                pg_sys::Datum::from(0),
            )
        };
        CALLBACK_REGISTERED.with(|c| c.set(true));
    }
    // SAFETY: catalog lookups by name in schema identity; every pointer passed is a static
    // NUL-terminated name.
    let r = unsafe {
        let nsp = pg_sys::get_namespace_oid(c"identity".as_ptr(), false);
        let table = pg_sys::get_relname_relid(t.name.as_ptr(), nsp);
        let index = pg_sys::get_relname_relid(t.index.as_ptr(), nsp);
        assert!(
            table != pg_sys::InvalidOid && index != pg_sys::InvalidOid,
            "identity.{:?} or its primary key is missing",
            t.name
        );
        let attnums = t
            .columns
            .iter()
            .map(|c| {
                let n = pg_sys::get_attnum(table, c.as_ptr());
                assert!(n > 0, "identity.{:?} has no column {c:?}", t.name);
                n
            })
            .collect::<Vec<i16>>()
            .into();
        Rels {
            table,
            index,
            attnums,
        }
    };
    RELS.with(|c| c.borrow_mut().push((t.index, r.clone())));
    r
}

/// The columns of a found row, readable while the probe runs: a slot's
/// deformed values, or an index tuple's (`scan_all`'s index-only rows).
pub struct Row<'a> {
    values: *const pg_sys::Datum,
    isnull: *const bool,
    /// Column `i` of `Table::columns` is `values[attnums[i] - 1]`.
    attnums: &'a [i16],
}

impl Row<'_> {
    /// The row a slot holds, deformed up to the largest of `attnums`.
    ///
    /// # Safety
    /// `slot` holds a row deformed that far, and stays valid (and
    /// unchanged) while the Row is used.
    unsafe fn of_slot(slot: *mut pg_sys::TupleTableSlot, attnums: &[i16]) -> Row<'_> {
        // SAFETY: the caller's contract; only the two array pointers are read.
        unsafe {
            Row {
                values: (*slot).tts_values,
                isnull: (*slot).tts_isnull,
                attnums,
            }
        }
    }

    /// Column `i` of `Table::columns`: (datum, is_null). Private: a
    /// by-reference datum points into the slot or index page, so only the
    /// typed readers below, which copy what they return, hand values to
    /// safe code.
    fn get(&self, i: usize) -> (pg_sys::Datum, bool) {
        let n = (self.attnums[i] - 1) as usize;
        // SAFETY: the arrays hold at least `max(attnums)` deformed
        // attributes (of_slot's contract, or index_only_rows' arrays of the
        // index's width, which bound its positions), and n is below that;
        // they live as long as this Row.
        unsafe { (*self.values.add(n), *self.isnull.add(n)) }
    }
    pub fn text(&self, i: usize) -> Option<String> {
        let (d, n) = self.get(i);
        // SAFETY: column i is a text column of the probed row (Table::columns), read while the slot
        // is valid.
        unsafe { String::from_datum(d, n) }
    }
    pub fn uuid(&self, i: usize) -> Option<String> {
        let (d, n) = self.get(i);
        // SAFETY: column i is a uuid column of the probed row (Table::columns), read while the slot
        // is valid.
        unsafe { pgrx::Uuid::from_datum(d, n) }.map(|u| uuid_text(u.as_bytes()))
    }
    pub fn bool(&self, i: usize) -> Option<bool> {
        let (d, n) = self.get(i);
        // SAFETY: column i is a boolean column of the probed row (Table::columns).
        unsafe { bool::from_datum(d, n) }
    }
    /// Whether column `i` is NULL.
    pub fn is_null(&self, i: usize) -> bool {
        self.get(i).1
    }
    /// A uuid column as its 16 bytes.
    pub fn uuid_bytes(&self, i: usize) -> Option<[u8; 16]> {
        let (d, n) = self.get(i);
        // SAFETY: column i is a uuid column of the row (Table::columns); the
        // bytes are copied out while the slot is valid.
        unsafe { pgrx::Uuid::from_datum(d, n) }.map(|u| *u.as_bytes())
    }
    /// A bytea column, copied.
    pub fn bytea(&self, i: usize) -> Option<Vec<u8>> {
        let (d, n) = self.get(i);
        // SAFETY: column i is a bytea column of the row; copied out.
        unsafe { Vec::<u8>::from_datum(d, n) }
    }
    /// A text[] column, NULL elements dropped, copied.
    pub fn text_array(&self, i: usize) -> Vec<String> {
        let (d, n) = self.get(i);
        // SAFETY: column i is a text[] column of the row; copied out.
        unsafe { Vec::<Option<String>>::from_datum(d, n) }
            .unwrap_or_default()
            .into_iter()
            .flatten()
            .collect()
    }
    /// A jsonb column, parsed into serde JSON.
    pub fn jsonb(&self, i: usize) -> Option<pgrx::JsonB> {
        let (d, n) = self.get(i);
        // SAFETY: column i is a jsonb column of the row; parsed (copied) out.
        unsafe { pgrx::JsonB::from_datum(d, n) }
    }
    /// Whether a text column equals `want`, without building a String.
    pub fn text_is(&self, i: usize, want: &[u8]) -> bool {
        self.with_text_bytes(i, |b| b == want).unwrap_or(false)
    }
    /// `f` over a text column's stored bytes (no copy, no UTF-8 check).
    pub fn with_text_bytes<R>(&self, i: usize, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let (d, null) = self.get(i);
        if null {
            return None;
        }
        // SAFETY: column i is a text column of the row; its bytes are read
        // while the slot is valid (detoasting copies if needed).
        let bytes = unsafe {
            pgrx::varlena::varlena_to_byte_slice(pg_sys::pg_detoast_datum_packed(d.cast_mut_ptr()))
        };
        Some(f(bytes))
    }
    /// A bigint column.
    pub fn int8(&self, i: usize) -> Option<i64> {
        let (d, n) = self.get(i);
        // SAFETY: column i is a bigint column of the row (Table::columns).
        unsafe { i64::from_datum(d, n) }
    }
    /// A timestamptz as seconds since the Unix epoch (±infinity saturate).
    pub fn epoch_seconds(&self, i: usize) -> Option<i64> {
        let (d, n) = self.get(i);
        if n {
            return None;
        }
        let us = d.value() as i64;
        Some(match us {
            i64::MIN => i64::MIN,
            i64::MAX => i64::MAX,
            // Postgres timestamps count from 2000-01-01.
            _ => us.div_euclid(1_000_000) + 946_684_800,
        })
    }
}

/// A snapshot a probe reads under: the statement's active one, or a fresh
/// registered one inside `with_latest_snapshot`. The pointer is private, so
/// safe code cannot forge or keep one past the call it was made for.
#[derive(Clone, Copy)]
pub struct Snapshot(pg_sys::Snapshot);

impl Snapshot {
    /// The active snapshot of the running statement (what SQL in it sees).
    pub fn active() -> Snapshot {
        // SAFETY: a function called from SQL always runs with an active
        // snapshot set by the executor; this only reads the pointer.
        Snapshot(unsafe { pg_sys::GetActiveSnapshot() })
    }

    /// Makes this the active snapshot for the length of `f`.
    pub fn while_active<R>(self, f: impl FnOnce() -> R) -> R {
        // SAFETY: self is a valid snapshot (see the type); Push and Pop are
        // paired, and an error in `f` aborts the transaction, which resets
        // the active snapshot stack.
        unsafe { pg_sys::PushActiveSnapshot(self.0) };
        let out = f();
        // SAFETY: pops what was pushed above.
        unsafe { pg_sys::PopActiveSnapshot() };
        out
    }
}

/// Probes `t` for primary key `key` under the newest snapshot
/// (`with_newest_snapshot`); `read` sees the row while it is valid.
pub fn probe<R>(t: &Table, key: Key, read: impl FnOnce(&Row) -> R) -> Option<R> {
    with_newest_snapshot(|snapshot| probe_in(t, key, snapshot, read))
}

/// Runs `f` under a snapshot that sees every change committed before the
/// call, whatever the transaction's isolation level: a REPEATABLE READ or
/// SERIALIZABLE transaction that began before a revocation, a suspension or
/// a key's revocation committed still sees it in every check. In parallel
/// mode (no new snapshot may be taken) the statement's snapshot.
pub fn with_newest_snapshot<R>(f: impl FnOnce(Snapshot) -> R) -> R {
    if crate::pg::inval::in_parallel_mode() {
        f(Snapshot::active())
    } else {
        with_latest_snapshot(f)
    }
}

/// Runs `f` with a fresh registered snapshot (newer than every invalidation
/// message this backend has processed): for filling cache.rs's copies.
/// Not in parallel mode, where Postgres allows no new snapshot.
pub fn with_latest_snapshot<R>(f: impl FnOnce(Snapshot) -> R) -> R {
    // SAFETY: GetLatestSnapshot returns a static snapshot that
    // RegisterSnapshot copies and pins until UnregisterSnapshot below (an
    // error in between releases it with the resource owner).
    let snapshot = unsafe { pg_sys::RegisterSnapshot(pg_sys::GetLatestSnapshot()) };
    let out = f(Snapshot(snapshot));
    // SAFETY: registered above, unregistered once.
    unsafe { pg_sys::UnregisterSnapshot(snapshot) };
    out
}

/// `probe` under a given snapshot.
pub fn probe_in<R>(
    t: &Table,
    key: Key,
    snapshot: Snapshot,
    read: impl FnOnce(&Row) -> R,
) -> Option<R> {
    assert_eq!(key.key_type(), t.key, "probe key of the index's type");
    let key = key.datum();
    let snapshot = snapshot.0;
    let r = rels(t);
    // SAFETY: the relation and index are opened and closed here with
    // AccessShareLock; the scan key compares the index's first column with
    // `key` of its own type (asserted above) under the index's collation; the
    // slot and scan are dropped before returning and `read` sees the row only
    // while the slot is valid.
    unsafe {
        let lock = pg_sys::AccessShareLock as pg_sys::LOCKMODE;
        let rel = pg_sys::table_open(r.table, lock);
        let idx = pg_sys::index_open(r.index, lock);
        let mut scankey: pg_sys::ScanKeyData = std::mem::zeroed();
        pg_sys::ScanKeyInit(
            &mut scankey,
            1,
            pg_sys::BTEqualStrategyNumber as u16,
            t.key.equality(),
            key,
        );
        // ScanKeyInit assumes the C collation; a text key must compare under
        // the index's own collation, or the btree descent can miss the row.
        scankey.sk_collation = *(*idx).rd_indcollation;
        let scan = begin_index_scan(rel, idx, snapshot, 1);
        pg_sys::index_rescan(scan, &mut scankey, 1, std::ptr::null_mut(), 0);
        let slot = pg_sys::table_slot_create(rel, std::ptr::null_mut());
        let out = if pg_sys::index_getnext_slot(
            scan,
            pg_sys::ScanDirection::ForwardScanDirection,
            slot,
        ) {
            let max = *r.attnums.iter().max().expect("at least one column");
            pg_sys::slot_getsomeattrs_int(slot, max as i32);
            // SAFETY: deformed up to max above; the slot outlives `read`.
            Some(read(&Row::of_slot(slot, &r.attnums)))
        } else {
            None
        };
        pg_sys::ExecDropSingleTupleTableSlot(slot);
        pg_sys::index_endscan(scan);
        // Locks are held to the end of the transaction, as a SELECT's are.
        pg_sys::index_close(idx, pg_sys::NoLock as pg_sys::LOCKMODE);
        pg_sys::table_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
        out
    }
}

/// The Oid of table `t`.
pub fn table_oid(t: &Table) -> pg_sys::Oid {
    rels(t).table
}

/// Walks every row of `t` in index order under a fresh snapshot (newer
/// than every invalidation this backend has processed: see cache.rs),
/// while `read` returns true. Returns false when stopped early.
///
/// When the index holds every column read (a key-only copy, or
/// users_token_state with its INCLUDE columns), it is an index-only scan:
/// rows on heap pages the visibility map marks all-visible come from the
/// index tuples, and only the others are fetched to check visibility, as
/// nodeIndexonlyscan.c does. A backend's first read of each heap page costs
/// a page fault: for 2,000 users on as many pages, about 4 ms of its first
/// verify_jwt, against a few index pages.
pub fn scan_all(t: &Table, read: impl FnMut(&Row) -> bool) -> bool {
    let r = rels(t);
    // SAFETY: as probe_in, with a registered snapshot released at the end
    // and a forward scan of the whole index.
    unsafe {
        let lock = pg_sys::AccessShareLock as pg_sys::LOCKMODE;
        let rel = pg_sys::table_open(r.table, lock);
        let idx = pg_sys::index_open(r.index, lock);
        let snapshot = pg_sys::RegisterSnapshot(pg_sys::GetLatestSnapshot());
        let scan = begin_index_scan(rel, idx, snapshot, 0);
        let in_index = index_positions(idx, &r.attnums);
        (*scan).xs_want_itup = in_index.is_some();
        pg_sys::index_rescan(scan, std::ptr::null_mut(), 0, std::ptr::null_mut(), 0);
        // (The closures run inside this block: the scan is open, the slot the table's.)
        let complete = match in_index {
            Some(positions) => index_only_rows(rel, scan, &positions, read),
            None => each_row(rel, &r.attnums, read, |slot| {
                pg_sys::index_getnext_slot(scan, pg_sys::ScanDirection::ForwardScanDirection, slot)
            }),
        };
        pg_sys::index_endscan(scan);
        pg_sys::UnregisterSnapshot(snapshot);
        pg_sys::index_close(idx, pg_sys::NoLock as pg_sys::LOCKMODE);
        pg_sys::table_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
        complete
    }
}

/// The positions (1-based) in index `idx` of the table columns `attnums`,
/// when the index holds them all (key or INCLUDE columns, not expressions);
/// None otherwise.
///
/// # Safety
/// `idx` is an open btree index.
unsafe fn index_positions(idx: pg_sys::Relation, attnums: &[i16]) -> Option<Vec<i16>> {
    // SAFETY: rd_index is the index's pg_index row, whose indkey has
    // indnatts entries (key and INCLUDE columns).
    let indkey = unsafe {
        let index = (*idx).rd_index;
        let n = (*index).indnatts as usize;
        (*index).indkey.values.as_slice(n)
    };
    attnums
        .iter()
        .map(|a| indkey.iter().position(|k| k == a).map(|p| p as i16 + 1))
        .collect()
}

/// `read` over the rows of index-only scan `scan` of `rel` (xs_want_itup
/// set), each from its index tuple; `positions` are the columns' places in
/// it. A tuple on a page not all-visible is fetched from the heap first and
/// skipped when invisible to the scan's snapshot.
///
/// # Safety
/// `rel` is open, `scan` an open btree scan of one of its indexes under an
/// MVCC snapshot, with xs_want_itup set before its rescan; `positions` are
/// within the index's columns (index_positions).
unsafe fn index_only_rows(
    rel: pg_sys::Relation,
    scan: pg_sys::IndexScanDesc,
    positions: &[i16],
    mut read: impl FnMut(&Row) -> bool,
) -> bool {
    // SAFETY: the scan returns a TID and, because xs_want_itup is set, the
    // index tuple at it (valid until the next call, with the page pinned);
    // it is deformed into arrays of the index's width; the heap slot and
    // the visibility map pin are released before returning.
    unsafe {
        let desc = (*scan).xs_itupdesc;
        let width = (*desc).natts as usize;
        let mut values = vec![pg_sys::Datum::from(0); width];
        let mut isnull = vec![true; width];
        let heap = pg_sys::table_slot_create(rel, std::ptr::null_mut());
        let mut vmbuffer: pg_sys::Buffer = pg_sys::InvalidBuffer as pg_sys::Buffer;
        let mut complete = true;
        let mut rows = 0u32;
        loop {
            let tid = pg_sys::index_getnext_tid(scan, pg_sys::ScanDirection::ForwardScanDirection);
            if tid.is_null() {
                break;
            }
            rows = rows.wrapping_add(1);
            if rows.is_multiple_of(1024) {
                pg_sys::check_for_interrupts!();
            }
            let block = pgrx::itemptr::item_pointer_get_block_number(tid);
            let all_visible = pg_sys::visibilitymap_get_status(rel, block, &mut vmbuffer) as u32
                & pg_sys::VISIBILITYMAP_ALL_VISIBLE
                != 0;
            if !all_visible {
                // A heap tuple of this entry's chain visible to the
                // snapshot has the indexed values (HOT keeps them).
                if !pg_sys::index_fetch_heap(scan, heap) {
                    continue;
                }
                pg_sys::ExecClearTuple(heap);
            }
            pg_sys::index_deform_tuple(
                (*scan).xs_itup,
                desc,
                values.as_mut_ptr(),
                isnull.as_mut_ptr(),
            );
            let row = Row {
                values: values.as_ptr(),
                isnull: isnull.as_ptr(),
                attnums: positions,
            };
            if !read(&row) {
                complete = false;
                break;
            }
        }
        if vmbuffer != pg_sys::InvalidBuffer as pg_sys::Buffer {
            pg_sys::ReleaseBuffer(vmbuffer);
        }
        pg_sys::ExecDropSingleTupleTableSlot(heap);
        complete
    }
}

/// Walks every row of `t` in heap order (a sequential scan: for a whole
/// table, several times faster than `scan_all`'s walk of the index) under a
/// fresh snapshot, while `read` returns true. Returns false when stopped
/// early. Interrupts are taken at every page (heapgetpage).
pub fn scan_heap(t: &Table, read: impl FnMut(&Row) -> bool) -> bool {
    let r = rels(t);
    // SAFETY: the table is opened with AccessShareLock (kept until the
    // transaction ends) and closed here; the registered snapshot, the scan
    // and the slot are released before returning, and `read` sees each row
    // only while the slot holds it.
    unsafe {
        let rel = pg_sys::table_open(r.table, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        let snapshot = pg_sys::RegisterSnapshot(pg_sys::GetLatestSnapshot());
        let scan = pg_sys::table_beginscan(rel, snapshot, 0, std::ptr::null_mut());
        // (The closure runs inside this block: the scan is open, the slot the table's.)
        let complete = each_row(rel, &r.attnums, read, |slot| {
            pg_sys::table_scan_getnextslot(scan, pg_sys::ScanDirection::ForwardScanDirection, slot)
        });
        pg_sys::table_endscan(scan);
        pg_sys::UnregisterSnapshot(snapshot);
        pg_sys::table_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
        complete
    }
}

/// Gives `read` each row `next` puts into a slot of `rel` (with columns
/// `attnums` deformed), while both return true; false when `read` stopped.
///
/// # Safety
/// `rel` is open for the call; `next` fills the slot it is given from a
/// scan of `rel` that stays open for the call.
unsafe fn each_row(
    rel: pg_sys::Relation,
    attnums: &[i16],
    mut read: impl FnMut(&Row) -> bool,
    mut next: impl FnMut(*mut pg_sys::TupleTableSlot) -> bool,
) -> bool {
    // SAFETY: a slot of rel's row type, dropped before returning; each row
    // is deformed up to the largest column read, and `read` sees it only
    // while the slot holds it.
    unsafe {
        let slot = pg_sys::table_slot_create(rel, std::ptr::null_mut());
        let max = *attnums.iter().max().expect("at least one column");
        let mut complete = true;
        while next(slot) {
            pg_sys::slot_getsomeattrs_int(slot, max as i32);
            if !read(&Row::of_slot(slot, attnums)) {
                complete = false;
                break;
            }
        }
        pg_sys::ExecDropSingleTupleTableSlot(slot);
        complete
    }
}

/// pg_class.reltuples of table `t`: the row count as of its last VACUUM or
/// ANALYZE (-1: never counted).
pub fn estimated_rows(t: &Table) -> f64 {
    reltuples(rels(t).table)
}

/// pg_class.reltuples of `t`'s index (for a partial index, the rows it
/// holds) as of its table's last VACUUM or ANALYZE (-1: never counted).
pub fn estimated_index_rows(t: &Table) -> f64 {
    reltuples(rels(t).index)
}

fn reltuples(relid: pg_sys::Oid) -> f64 {
    // SAFETY: opens the relation, a table or an index (AccessShareLock until
    // the transaction ends), reads its relcache pg_class row, closes it.
    unsafe {
        let rel = pg_sys::relation_open(relid, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        let n = (*(*rel).rd_rel).reltuples;
        pg_sys::relation_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
        f64::from(n)
    }
}

/// The owner of table `t` (the role the extension's objects belong to).
pub fn table_owner(t: &Table) -> pg_sys::Oid {
    let r = rels(t);
    // SAFETY: opens the relation `rels` found (locked AccessShare until the
    // transaction ends), reads its owner from the relcache entry, closes it.
    unsafe {
        let rel = pg_sys::table_open(r.table, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        let owner = (*(*rel).rd_rel).relowner;
        pg_sys::table_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
        owner
    }
}

/// The owner of schema identity: the role that created the extension,
/// which owns every object of it (the tables `spi::privileged` runs as).
/// One syscache lookup.
pub fn schema_owner() -> pg_sys::Oid {
    // SAFETY: get_namespace_oid raises if the schema is missing (never, while
    // the extension exists); the syscache tuple is valid until released, and
    // its struct is pg_namespace's fixed-size part.
    unsafe {
        let nsp = pg_sys::get_namespace_oid(c"identity".as_ptr(), false);
        let tup = pg_sys::SearchSysCache1(
            pg_sys::SysCacheIdentifier::NAMESPACEOID as std::ffi::c_int,
            pg_sys::Datum::from(nsp),
        );
        assert!(!tup.is_null(), "schema identity has no pg_namespace row");
        let owner = (*pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_namespace>(tup)).nspowner;
        pg_sys::ReleaseSysCache(tup);
        owner
    }
}

/// Runs `f` as `owner`, flagged as a restricted operation, the way fmgr runs
/// a SECURITY DEFINER function but without its per-call GUC changes. For one
/// fixed, fully qualified statement only. An error aborts the (sub)transaction,
/// which restores the user id.
pub fn as_owner<R>(owner: pg_sys::Oid, f: impl FnOnce() -> R) -> R {
    let (mut user, mut sec) = (pg_sys::InvalidOid, 0);
    // SAFETY: saves the current user id and security context, to restore
    // them after `f`; the flags forbid SET ROLE and similar inside.
    unsafe {
        pg_sys::GetUserIdAndSecContext(&mut user, &mut sec);
        pg_sys::SetUserIdAndSecContext(
            owner,
            sec | (pg_sys::SECURITY_LOCAL_USERID_CHANGE | pg_sys::SECURITY_RESTRICTED_OPERATION)
                as i32,
        );
    }
    let out = f();
    // SAFETY: restores exactly the user id and security context saved above.
    unsafe { pg_sys::SetUserIdAndSecContext(user, sec) };
    out
}

/// `index_beginscan` with `nkeys` keys and no order-bys. PostgreSQL 18 added
/// an instrumentation argument (NULL: none), the one signature change
/// between the supported majors (15, 17, 18) on this path.
///
/// # Safety
/// `rel` and `idx` are open (the table and one of its indexes), `snapshot`
/// is valid for the scan's life.
unsafe fn begin_index_scan(
    rel: pg_sys::Relation,
    idx: pg_sys::Relation,
    snapshot: pg_sys::Snapshot,
    nkeys: i32,
) -> pg_sys::IndexScanDesc {
    #[cfg(any(feature = "pg15", feature = "pg17"))]
    // SAFETY: the caller's contract.
    return unsafe { pg_sys::index_beginscan(rel, idx, snapshot, nkeys, 0) };
    #[cfg(feature = "pg18")]
    // SAFETY: the caller's contract; a NULL instrumentation is allowed.
    return unsafe { pg_sys::index_beginscan(rel, idx, snapshot, std::ptr::null_mut(), nkeys, 0) };
}
