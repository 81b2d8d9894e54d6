//! Reads one identity.users row by primary key straight through its index:
//! no SQL, no SPI, no planner. This is the hook's lookup, and the reason the
//! hook needs neither SPI's per-call setup nor SECURITY DEFINER.
//!
//! Safety of running with the caller's rights: nothing here resolves a name
//! through search_path (the schema is named explicitly, relations are found in
//! it by name, columns by name in that relation), so a caller's shadowing
//! objects cannot be substituted; relation-level privileges are what the SQL
//! executor checks, and this path does not go through it, so EXECUTE on the
//! calling function is the gate (see the hook's grants). Locks: AccessShareLock on the
//! table and index, as a SELECT takes; no row locks. Visibility: the active
//! snapshot, as the calling statement sees the table.

use crate::core::claims::{uuid_text, UserRow};
use pgrx::pg_sys;
use pgrx::{FromDatum, IntoDatum};
use pgrx::pg_guard;
use std::cell::Cell;

const COLUMNS: [&std::ffi::CStr; 5] = [c"is_service_user", c"user_role", c"organization_id", c"application_id", c"status"];

/// Where identity.users lives, found once per backend and forgotten on any
/// pg_class change (syscache invalidation), so DDL is always seen.
#[derive(Clone, Copy)]
struct Rels {
    table: pg_sys::Oid,
    index: pg_sys::Oid,
    attnums: [i16; 5],
}

thread_local! {
    static RELS: Cell<Option<Rels>> = const { Cell::new(None) };
    static CALLBACK_REGISTERED: Cell<bool> = const { Cell::new(false) };
}

#[pg_guard]
unsafe extern "C-unwind" fn forget_rels(_arg: pg_sys::Datum, _cacheid: std::ffi::c_int, _hash: u32) {
    RELS.with(|r| r.set(None));
}

fn rels() -> Rels {
    if let Some(r) = RELS.with(Cell::get) {
        return r;
    }
    if !CALLBACK_REGISTERED.with(Cell::get) {
        unsafe {
            pg_sys::CacheRegisterSyscacheCallback(
                pg_sys::SysCacheIdentifier::RELOID as std::ffi::c_int,
                Some(forget_rels),
                pg_sys::Datum::from(0),
            )
        };
        CALLBACK_REGISTERED.with(|c| c.set(true));
    }
    let r = unsafe {
        let nsp = pg_sys::get_namespace_oid(c"identity".as_ptr(), false);
        let table = pg_sys::get_relname_relid(c"users".as_ptr(), nsp);
        let index = pg_sys::get_relname_relid(c"users_pkey".as_ptr(), nsp);
        assert!(
            table != pg_sys::InvalidOid && index != pg_sys::InvalidOid,
            "identity.users or its primary key is missing"
        );
        let mut attnums = [0i16; 5];
        for (i, name) in COLUMNS.iter().enumerate() {
            attnums[i] = pg_sys::get_attnum(table, name.as_ptr());
            assert!(attnums[i] > 0, "identity.users has no column {name:?}");
        }
        Rels { table, index, attnums }
    };
    RELS.with(|c| c.set(Some(r)));
    r
}

fn text(d: pg_sys::Datum, null: bool) -> Option<String> {
    unsafe { String::from_datum(d, null) }
}

fn uuid(d: pg_sys::Datum, null: bool) -> Option<String> {
    unsafe { pgrx::Uuid::from_datum(d, null) }.map(|u| uuid_text(u.as_bytes()))
}

/// The row of identity.users with primary key `id`, if visible.
pub fn user_by_id(id: [u8; 16]) -> Option<UserRow> {
    unsafe {
        let Rels { table: rel_oid, index: idx_oid, attnums: att } = rels();
        let lock = pg_sys::AccessShareLock as pg_sys::LOCKMODE;
        let rel = pg_sys::table_open(rel_oid, lock);
        let idx = pg_sys::index_open(idx_oid, lock);
        let key_datum = pgrx::Uuid::from_bytes(id).into_datum().expect("uuid datum");
        let mut key: pg_sys::ScanKeyData = std::mem::zeroed();
        pg_sys::ScanKeyInit(&mut key, 1, pg_sys::BTEqualStrategyNumber as u16, pg_sys::Oid::from(pg_sys::F_UUID_EQ), key_datum);
        let scan = pg_sys::index_beginscan(rel, idx, pg_sys::GetActiveSnapshot(), 1, 0);
        pg_sys::index_rescan(scan, &mut key, 1, std::ptr::null_mut(), 0);
        let slot = pg_sys::table_slot_create(rel, std::ptr::null_mut());
        let row = if pg_sys::index_getnext_slot(scan, pg_sys::ScanDirection::ForwardScanDirection, slot) {
            let max = *att.iter().max().expect("5 columns");
            pg_sys::slot_getsomeattrs_int(slot, max as i32);
            let col = |n: i16| {
                let i = (n - 1) as usize;
                (*(*slot).tts_values.add(i), *(*slot).tts_isnull.add(i))
            };
            let (d, n) = col(att[0]);
            let is_service_user = bool::from_datum(d, n).unwrap_or(false);
            let (d, n) = col(att[1]);
            let user_role = text(d, n).unwrap_or_default();
            let (d, n) = col(att[2]);
            let organization_id = uuid(d, n);
            let (d, n) = col(att[3]);
            let application_id = uuid(d, n);
            let (d, n) = col(att[4]);
            let status = text(d, n).unwrap_or_default();
            Some(UserRow { is_service_user, user_role, organization_id, application_id, status })
        } else {
            None
        };
        pg_sys::ExecDropSingleTupleTableSlot(slot);
        pg_sys::index_endscan(scan);
        // Locks are held to the end of the transaction, as a SELECT's are.
        pg_sys::index_close(idx, pg_sys::NoLock as pg_sys::LOCKMODE);
        pg_sys::table_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
        row
    }
}
