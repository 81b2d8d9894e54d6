//! Plain V1 C entry points (the function manager's calling convention), for
//! the few SQL functions that are not `#[pg_extern]`s: the per-row RLS
//! helpers (a generation compare and a 16-byte copy, measured in
//! bench/rls.sh) and `pre_request` (its `PTxxx` SQLSTATEs would become
//! XX000 through pgrx's error mapping). The macros keep every FFI type here;
//! `api` only names the SQL symbol and the safe Rust function that answers.

use pgrx::pg_sys;
/// A Postgres object id (a role, a table), as the layers above name it.
pub use pgrx::pg_sys::Oid;

/// The trigger data of a call made by the trigger manager; an ERROR naming
/// `function` when it was called any other way.
///
/// # Safety
/// `fcinfo` is the function manager's call info of the running call, and
/// the caller runs inside a `#[pg_guard]` (the ERROR raises).
pub unsafe fn trigger_data(
    fcinfo: pg_sys::FunctionCallInfo,
    function: &str,
) -> *mut pg_sys::TriggerData {
    // SAFETY: fcinfo is this call's; context is a node or NULL.
    let ctx = unsafe { (*fcinfo).context };
    // SAFETY: ctx is non-null here and points at a Node.
    if ctx.is_null() || unsafe { (*ctx).type_ } != pg_sys::NodeTag::T_TriggerData {
        pgrx::ereport!(
            ERROR,
            pgrx::PgSqlErrorCode::ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED,
            format!("{function} is a trigger function"),
            crate::core::reason::Reason::Internal.as_str()
        );
    }
    ctx.cast()
}

/// The V1 info record every `pg_finfo_*` returns.
pub static V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };

/// A uuid result: a palloc'd 16-byte copy, or SQL NULL.
///
/// # Safety
/// `fcinfo` is the function manager's call info of the running call, and the
/// caller runs inside a `#[pg_guard]` (palloc may raise).
#[doc(hidden)]
#[inline(always)]
pub unsafe fn uuid_datum(fcinfo: pg_sys::FunctionCallInfo, v: Option<[u8; 16]>) -> pg_sys::Datum {
    match v {
        Some(b) => {
            // SAFETY: palloc returns 16 writable bytes in the current memory
            // context (or raises, which the caller's #[pg_guard] turns into
            // an ERROR); the copy fills exactly those bytes.
            unsafe {
                let p = pg_sys::palloc(16).cast::<u8>();
                std::ptr::copy_nonoverlapping(b.as_ptr(), p, 16);
                pg_sys::Datum::from(p)
            }
        }
        // SAFETY: see the function's contract.
        None => unsafe { null_datum(fcinfo) },
    }
}

/// A boolean result, or SQL NULL.
///
/// # Safety
/// `fcinfo` is the function manager's call info of the running call.
#[doc(hidden)]
#[inline(always)]
pub unsafe fn bool_datum(fcinfo: pg_sys::FunctionCallInfo, v: Option<bool>) -> pg_sys::Datum {
    match v {
        Some(b) => pg_sys::Datum::from(b),
        // SAFETY: see the function's contract.
        None => unsafe { null_datum(fcinfo) },
    }
}

/// SQL NULL (also the result of a `void` function).
///
/// # Safety
/// `fcinfo` is the function manager's call info of the running call.
#[doc(hidden)]
#[inline(always)]
pub unsafe fn null_datum(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: fcinfo points to the live call info (the contract), whose
    // isnull flag the callee sets.
    unsafe { (*fcinfo).isnull = true };
    pg_sys::Datum::from(0)
}

/// `v1_function!(uuid identity_uid, pg_finfo_identity_uid => answer)`:
/// defines the C symbol `identity_uid` (and its info function) returning `answer()`'s
/// `Option<[u8; 16]>` as uuid; `bool` instead of `uuid` for
/// `Option<bool>`. The entry point is #[pg_guard]ed: an error raised inside
/// (palloc out of memory, any panic) becomes a Postgres ERROR at its boundary
/// instead of unwinding through Postgres' C frames; the guard costs nothing
/// on the path that does not fail.
#[macro_export]
macro_rules! v1_function {
    (uuid $sym:ident, $finfo:ident => $answer:path) => {
        $crate::v1_function!(@define $sym, $finfo, uuid_datum, $answer);
    };
    (bool $sym:ident, $finfo:ident => $answer:path) => {
        $crate::v1_function!(@define $sym, $finfo, bool_datum, $answer);
    };
    (@define $sym:ident, $finfo:ident, $conv:ident, $answer:path) => {
        /// # Safety
        /// Called only by the function manager, with this call's `fcinfo`.
        #[no_mangle]
        #[pgrx::pg_guard]
        pub unsafe extern "C-unwind" fn $sym(
            fcinfo: pgrx::pg_sys::FunctionCallInfo,
        ) -> pgrx::pg_sys::Datum {
            let answer = $answer();
            // SAFETY: called by the function manager with this call's fcinfo,
            // inside this #[pg_guard].
            unsafe { $crate::pg::fmgr::$conv(fcinfo, answer) }
        }
        #[no_mangle]
        pub extern "C" fn $finfo() -> &'static pgrx::pg_sys::Pg_finfo_record {
            &$crate::pg::fmgr::V1
        }
    };
}

/// `v1_void_raising!(identity_pre_request, pg_finfo_identity_pre_request => work)`: a `void` C
/// function
/// whose `work()` (itself #[pg_guard]ed) returns `Some(CustomError)` to
/// refuse; the refusal is raised here, outside any guard, with its own
/// SQLSTATE by `error::raise_custom`.
#[macro_export]
macro_rules! v1_void_raising {
    ($sym:ident, $finfo:ident => $work:path) => {
        /// # Safety
        /// Called only by the function manager, with this call's `fcinfo`.
        #[no_mangle]
        pub unsafe extern "C-unwind" fn $sym(
            fcinfo: pgrx::pg_sys::FunctionCallInfo,
        ) -> pgrx::pg_sys::Datum {
            let refusal = $work();
            if let Some(e) = refusal {
                // SAFETY: this frame is the function manager's direct callee
                // and holds nothing to drop besides `e`, which raise_custom
                // consumes.
                unsafe { $crate::pg::error::raise_custom(e) }
            }
            // SAFETY: fcinfo is the function manager's call info for this call.
            unsafe { $crate::pg::fmgr::null_datum(fcinfo) }
        }
        #[no_mangle]
        pub extern "C" fn $finfo() -> &'static pgrx::pg_sys::Pg_finfo_record {
            &$crate::pg::fmgr::V1
        }
    };
}

/// What a row trigger's function learns of the call: the operation, the
/// table (and its owner), and the uuid column `id` of the row (the new row
/// for INSERT and UPDATE, the old one for DELETE; None when the column is
/// missing, NULL or not a uuid).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowEvent {
    pub op: RowOp,
    pub relation: pg_sys::Oid,
    pub relation_owner: pg_sys::Oid,
    pub id: Option<[u8; 16]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowOp {
    Insert,
    Update,
    Delete,
}

/// The RowEvent of a trigger call; an ERROR unless it is an AFTER ... FOR
/// EACH ROW call on INSERT, UPDATE or DELETE.
///
/// # Safety
/// `fcinfo` is the function manager's call info of the running call, and
/// the caller runs inside a `#[pg_guard]` (the ERROR raises).
pub unsafe fn row_event(fcinfo: pg_sys::FunctionCallInfo, function: &str) -> RowEvent {
    // SAFETY: the contract above.
    let data = unsafe { trigger_data(fcinfo, function) };
    // SAFETY: a T_TriggerData node (checked by trigger_data) is a
    // TriggerData whose relation is open and whose tuples are valid for the
    // call; tg_event is a bit set (trigger.h's TRIGGER_FIRED_* macros).
    unsafe {
        let ev = (*data).tg_event;
        let op = match ev & pg_sys::TRIGGER_EVENT_OPMASK {
            pg_sys::TRIGGER_EVENT_INSERT => RowOp::Insert,
            pg_sys::TRIGGER_EVENT_UPDATE => RowOp::Update,
            pg_sys::TRIGGER_EVENT_DELETE => RowOp::Delete,
            _ => pgrx::error!("{function} is a row trigger on INSERT, UPDATE or DELETE"),
        };
        let row_level = ev & pg_sys::TRIGGER_EVENT_ROW != 0;
        let after = ev & pg_sys::TRIGGER_EVENT_TIMINGMASK == pg_sys::TRIGGER_EVENT_AFTER;
        if !row_level || !after {
            pgrx::error!("{function} is an AFTER ... FOR EACH ROW trigger");
        }
        let rel = (*data).tg_relation;
        let tuple = match op {
            RowOp::Update => (*data).tg_newtuple,
            RowOp::Insert | RowOp::Delete => (*data).tg_trigtuple,
        };
        let desc = (*rel).rd_att;
        let attnum = pg_sys::SPI_fnumber(desc, c"id".as_ptr());
        let mut id = None;
        if attnum > 0 && !tuple.is_null() && pg_sys::SPI_gettypeid(desc, attnum) == pg_sys::UUIDOID
        {
            let mut isnull = false;
            let d = pg_sys::SPI_getbinval(tuple, desc, attnum, &mut isnull);
            if !isnull {
                // A uuid datum points at its 16 bytes.
                let p = d.cast_mut_ptr::<u8>();
                let mut b = [0u8; 16];
                std::ptr::copy_nonoverlapping(p, b.as_mut_ptr(), 16);
                id = Some(b);
            }
        }
        RowEvent {
            op,
            relation: (*rel).rd_id,
            relation_owner: (*(*rel).rd_rel).relowner,
            id,
        }
    }
}

/// `v1_row_trigger!(identity_x, pg_finfo_identity_x => handler)`: an AFTER
/// ROW trigger function whose `handler(RowEvent)` does the work; the
/// trigger's result is a NULL pointer (ignored for AFTER triggers).
#[macro_export]
macro_rules! v1_row_trigger {
    ($sym:ident, $finfo:ident => $handler:path) => {
        /// # Safety
        /// Called only by the trigger manager, with this call's `fcinfo`.
        #[no_mangle]
        #[pgrx::pg_guard]
        pub unsafe extern "C-unwind" fn $sym(
            fcinfo: pgrx::pg_sys::FunctionCallInfo,
        ) -> pgrx::pg_sys::Datum {
            // SAFETY: called by the function manager with this call's fcinfo,
            // inside this #[pg_guard].
            let event = unsafe { $crate::pg::fmgr::row_event(fcinfo, stringify!($sym)) };
            $handler(event);
            // A NULL pointer, not SQL NULL: the trigger manager refuses a
            // NULL result even where it ignores the value.
            pgrx::pg_sys::Datum::from(0)
        }
        #[no_mangle]
        pub extern "C" fn $finfo() -> &'static pgrx::pg_sys::Pg_finfo_record {
            &$crate::pg::fmgr::V1
        }
    };
}
