//! Postgres' relcache invalidation messages, for the per-backend copies of
//! `store::cache`: a listener per backend, taking in the messages others
//! committed, and the trigger that sends one when a cached table changes.

use pgrx::pg_sys;
use pgrx::prelude::*;
use std::cell::{Cell, RefCell};

pub use pg_sys::Oid;

/// A relation id; `ALL` in a message means "every relation".
pub const ALL: Oid = pg_sys::InvalidOid;

thread_local! {
    static LISTENERS: RefCell<Vec<fn(Oid)>> = const { RefCell::new(Vec::new()) };
    static REGISTERED: Cell<bool> = const { Cell::new(false) };
}

/// Runs during invalidation processing: only calls the listeners, which
/// must not touch the catalogs (they drop Rust values).
#[pg_guard]
unsafe extern "C-unwind" fn on_relcache(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    let listeners = LISTENERS.with(|l| l.borrow().clone());
    for f in listeners {
        f(relid);
    }
}

/// Calls `f` with each invalidated relation id (`ALL` for a reset) from now
/// on in this backend. Registering the same `f` twice calls it once.
pub fn listen(f: fn(Oid)) {
    LISTENERS.with(|l| {
        let mut l = l.borrow_mut();
        if !l.iter().any(|g| std::ptr::fn_addr_eq(*g, f)) {
            l.push(f);
        }
    });
    if !REGISTERED.with(Cell::get) {
        // SAFETY: registers a #[pg_guard] callback, once per backend (the
        // flag); Postgres keeps it for the backend's life.
        unsafe { pg_sys::CacheRegisterRelcacheCallback(Some(on_relcache), pg_sys::Datum::from(0)) };
        REGISTERED.with(|r| r.set(true));
    }
}

/// Takes in the invalidation messages other backends committed up to now
/// (cheap when there are none); listeners run inside.
pub fn accept() {
    // SAFETY: a plain call at a point where catalog access is allowed.
    unsafe { pg_sys::AcceptInvalidationMessages() };
}

/// Whether the backend is in parallel mode (no new snapshot may be taken).
pub fn in_parallel_mode() -> bool {
    // SAFETY: reads backend state; no preconditions.
    unsafe { pg_sys::IsInParallelMode() }
}

/// The trigger on the cached tables: queue a relcache invalidation of the
/// table, delivered to every backend (and standby) when the writer commits.
///
/// # Safety
/// Called only by the function manager as a trigger, with its `fcinfo`.
#[no_mangle]
#[pg_guard]
pub unsafe extern "C-unwind" fn identity_cached_table_changed(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: called by the function manager with this call's fcinfo, in a
    // #[pg_guard].
    let data = unsafe { crate::pg::fmgr::trigger_data(fcinfo, "identity_cached_table_changed") };
    // SAFETY: a T_TriggerData node is a TriggerData whose relation is open.
    unsafe { pg_sys::CacheInvalidateRelcache((*data).tg_relation) };
    pg_sys::Datum::from(0)
}

static V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
#[no_mangle]
pub extern "C" fn pg_finfo_identity_cached_table_changed() -> &'static pg_sys::Pg_finfo_record {
    &V1
}
