//! The one module that runs SQL. Statements are `&'static str` constants and
//! every value goes in as a bound parameter, so nothing a caller passes can
//! change a statement's text. The single exception is `run_for_role`, for DDL
//! (GRANT/REVOKE) whose role name cannot be a parameter: it is quoted by
//! Postgres' own `quote_identifier` after the role was looked up by a bound
//! query.
//!
//! Errors from Postgres are never swallowed: they propagate as `ErrorReport`.

use crate::pg::error::Pg;
use crate::pg::error::{spi as spi_err, PgResult};
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::{pg_sys, JsonB};
use std::ffi::{CStr, CString};

/// First column of the first row, or None when there is no row or it is NULL.
pub fn one<T: FromDatum + IntoDatum>(
    sql: &'static str,
    args: &[DatumWithOid],
) -> PgResult<Option<T>> {
    Spi::connect(|c| match c.select(sql, Some(1), args) {
        Ok(t) if t.is_empty() => Ok(None),
        Ok(t) => t.first().get_one::<T>().map_err(spi_err),
        Err(e) => Err(spi_err(e)),
    })
}

/// `one` in read-write mode: the statement sees every write of this
/// transaction so far (SPI increments the command counter and takes a new
/// snapshot first, as a VOLATILE plpgsql function's statements do), where
/// `one` sees the calling statement's snapshot. For triggers, whose
/// statement's snapshot predates the row they fire for.
pub fn one_fresh<T: FromDatum + IntoDatum>(
    sql: &'static str,
    args: &[DatumWithOid],
) -> PgResult<Option<T>> {
    write_one(sql, args)
}

/// A statement that writes (INSERT/UPDATE/DELETE ... RETURNING allowed).
///
/// Runs the statement to completion (no row limit): SPI's limit stops the
/// executor early, and a statement stopped early never fires its AFTER
/// STATEMENT triggers (cache.rs depends on them).
pub fn write_one<T: FromDatum + IntoDatum>(
    sql: &'static str,
    args: &[DatumWithOid],
) -> PgResult<Option<T>> {
    Spi::connect_mut(|c| match c.update(sql, None, args) {
        Ok(t) if t.is_empty() => Ok(None),
        Ok(t) => t.first().get_one::<T>().map_err(spi_err),
        Err(e) => Err(spi_err(e)),
    })
}

/// First row's first two columns of a writing statement (e.g. RETURNING).
pub fn write_two<A: FromDatum + IntoDatum, B: FromDatum + IntoDatum>(
    sql: &'static str,
    args: &[DatumWithOid],
) -> PgResult<Option<(Option<A>, Option<B>)>> {
    Spi::connect_mut(|c| match c.update(sql, None, args) {
        Ok(t) if t.is_empty() => Ok(None),
        Ok(t) => t.first().get_two::<A, B>().map(Some).map_err(spi_err),
        Err(e) => Err(spi_err(e)),
    })
}

/// Every row's first column (a SELECT).
pub fn column<T: FromDatum + IntoDatum>(
    sql: &'static str,
    args: &[DatumWithOid],
) -> PgResult<Vec<T>> {
    Spi::connect(|c| first_column(c.select(sql, None, args).map_err(spi_err)?))
}

/// Every row's first column of a statement that locks or writes
/// (SELECT ... FOR UPDATE, ... RETURNING): run in read-write SPI mode.
pub fn column_mut<T: FromDatum + IntoDatum>(
    sql: &'static str,
    args: &[DatumWithOid],
) -> PgResult<Vec<T>> {
    Spi::connect_mut(|c| first_column(c.update(sql, None, args).map_err(spi_err)?))
}

fn first_column<T: FromDatum + IntoDatum>(t: pgrx::spi::SpiTupleTable) -> PgResult<Vec<T>> {
    let mut out = Vec::with_capacity(t.len());
    for row in t {
        if let Some(v) = row.get::<T>(1).map_err(spi_err)? {
            out.push(v);
        }
    }
    Ok(out)
}

pub fn run(sql: &'static str, args: &[DatumWithOid]) -> PgResult<()> {
    Spi::run_with_args(sql, args).map_err(spi_err)
}

pub fn role_exists(role: &str) -> PgResult<bool> {
    Ok(one::<bool>(
        "select true from pg_catalog.pg_roles where rolname operator(pg_catalog.=) $1",
        &[role.into()],
    )?
    .unwrap_or(false))
}

/// Runs `template` with `{role}` replaced by the quoted role name. Only for
/// statements that cannot take the role as a bound parameter (GRANT/REVOKE).
pub fn run_for_role(template: &str, role: &str) -> PgResult<()> {
    let c = CString::new(role)
        .map_err(|_| crate::core::error::IdentityError::invalid("role name contains a NUL byte"))
        .pg()?;
    // SAFETY: quote_identifier returns its argument or a palloc'd copy; both
    // live until we copy them out below.
    let quoted = unsafe { CStr::from_ptr(pg_sys::quote_identifier(c.as_ptr())) }
        .to_str()
        .expect("role names are valid UTF-8 in a UTF-8 database")
        .to_owned();
    let sql = template.replace("{role}", &quoted);
    Spi::run(&sql).map_err(spi_err)
}

/// Runs `f` the way a SECURITY DEFINER function with
/// `SET search_path = pg_catalog, pg_temp` runs, but only around the SQL:
/// as the owner of the extension's tables, flagged as a restricted
/// operation, with search_path pinned. The management functions decide who
/// the actor is *before* (the admin grant level is a privilege of the calling
/// role, which a SECURITY DEFINER function could no longer see), then do
/// their reads and writes in here. On error the (sub)transaction abort
/// restores the user id and the setting, as it does for SECURITY DEFINER.
pub fn privileged<R>(f: impl FnOnce() -> R) -> R {
    pinned(crate::pg::probe::schema_owner(), &[], true, f)
}

/// `privileged`'s switch for identity's own owner with `settings` set too
/// (each a (name, value) pair, e.g. a `lock_timeout`), all undone after `f`.
pub fn pinned_as<R>(
    owner: pg_sys::Oid,
    settings: &[(&'static CStr, &'static CStr)],
    f: impl FnOnce() -> R,
) -> R {
    pinned(owner, settings, true, f)
}

/// Runs `f` (one read of a table identity does not own) as that table's
/// owner `owner`, a role identity does not trust: search_path pinned,
/// `row_security` off (a policy of theirs raises instead of running), and
/// every setting `f`'s statement changed, even with `set_config(..,
/// false)`, thrown away after it, as Postgres does after a restricted
/// operation (REFRESH MATERIALIZED VIEW), so nothing of theirs outlives
/// the read.
pub fn as_untrusted_owner<R>(owner: pg_sys::Oid, f: impl FnOnce() -> R) -> R {
    pinned(owner, &[(c"row_security", c"off")], false, f)
}

fn pinned<R>(
    owner: pg_sys::Oid,
    settings: &[(&'static CStr, &'static CStr)],
    keep_settings: bool,
    f: impl FnOnce() -> R,
) -> R {
    // SAFETY: NewGUCNestLevel / set_config_option / AtEOXact_GUC pair up within this closure; an
    // error aborts the (sub)transaction, which unwinds both the GUC nest level and the user id.
    crate::pg::probe::as_owner(owner, || unsafe {
        let nest = pg_sys::NewGUCNestLevel();
        for (name, value) in std::iter::once((c"search_path", c"pg_catalog, pg_temp"))
            .chain(settings.iter().copied())
        {
            pg_sys::set_config_option(
                name.as_ptr(),
                value.as_ptr(),
                pg_sys::GucContext::PGC_USERSET,
                pg_sys::GucSource::PGC_S_SESSION,
                pg_sys::GucAction::GUC_ACTION_SAVE,
                true,
                0,
                false,
            );
        }
        let out = f();
        pg_sys::AtEOXact_GUC(keep_settings, nest);
        out
    })
}

/// An error caught by `attempt`: its SQLSTATE (five characters) and
/// message, as Postgres reported it.
#[derive(Debug, Clone)]
pub struct Caught {
    pub sqlstate: String,
    pub message: String,
}

/// Runs `f` in a subtransaction: its writes stay when it returns Ok, and
/// are undone, with every lock, setting and user id it took, when it
/// returns Err or raises (a Postgres ERROR or a panic), which is then
/// answered as `Caught` instead of failing the caller's statement. A query
/// cancel is not caught.
pub fn attempt<R>(f: impl FnOnce() -> PgResult<R>) -> Result<R, Caught> {
    use pgrx::pg_sys::panic::CaughtError;
    use std::panic::AssertUnwindSafe;
    // SAFETY: the subtransaction begun here is released or rolled back on
    // every path below, in this frame, with the memory context and
    // resource owner of the caller restored after each (as plpgsql does
    // for an EXCEPTION block); an ERROR inside `f` is caught by
    // PgTryBuilder, which copies and flushes the error state.
    let (context, owner) = unsafe {
        let context = pg_sys::CurrentMemoryContext;
        let owner = pg_sys::CurrentResourceOwner;
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(context);
        (context, owner)
    };
    let f = AssertUnwindSafe(f);
    let done = pgrx::PgTryBuilder::new(AssertUnwindSafe(move || {
        let f = f;
        match (f.0)() {
            Ok(r) => Ok(r),
            // Raised, so that its SQLSTATE reaches the catch below.
            Err(e) => {
                e.report(pgrx::PgLogLevel::ERROR);
                unreachable!("an ERROR report does not return")
            }
        }
    }))
    .catch_others(|e| {
        let r = match &e {
            CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) => r,
            CaughtError::RustPanic { ereport, .. } => ereport,
        };
        // A cancel (statement_timeout, pg_cancel_backend) is the caller's,
        // not f's failure: it goes on up, as plpgsql's WHEN OTHERS lets it
        // (the transaction's abort ends the subtransaction too).
        if r.sql_error_code() == pgrx::PgSqlErrorCode::ERRCODE_QUERY_CANCELED {
            e.rethrow();
        }
        Err(Caught {
            sqlstate: crate::pg::error::sqlstate_text(r.sql_error_code() as i32),
            message: r.message().to_owned(),
        })
    })
    .execute();
    // SAFETY: as above: the subtransaction is this call's, still current.
    unsafe {
        if done.is_ok() {
            pg_sys::ReleaseCurrentSubTransaction();
        } else {
            pg_sys::MemoryContextSwitchTo(context);
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
        }
        pg_sys::MemoryContextSwitchTo(context);
        pg_sys::CurrentResourceOwner = owner;
    }
    done
}

/// One row in identity.events and a NOTIFY identity_events carrying its id
/// and type only: any role can LISTEN (Postgres has no privilege for it), so
/// the payload names no user or organization; workers read the row.
/// Postgres delivers notifications only when the transaction commits, and
/// drops them on rollback, as it drops the row.
pub fn event(
    kind: &'static str,
    user_id: Option<pgrx::Uuid>,
    organization_id: Option<pgrx::Uuid>,
    payload: serde_json::Value,
) -> PgResult<()> {
    run(
        include_str!("../../sql/queries/spi_event.sql"),
        &[
            kind.into(),
            user_id.into(),
            organization_id.into(),
            JsonB(payload).into(),
        ],
    )
}

/// One row in identity.audit_log, in the caller's transaction.
pub struct Audit<'a> {
    pub actor_id: Option<pgrx::Uuid>,
    pub actor_kind: &'static str,
    pub organization_id: Option<pgrx::Uuid>,
    pub action: &'static str,
    pub target_type: &'static str,
    pub target_id: Option<&'a str>,
    pub details: serde_json::Value,
}

pub fn audit(a: Audit) -> PgResult<()> {
    // The database's background writer chains the row once it committed.
    crate::pg::audit_queue::wake();
    run(
        include_str!("../../sql/queries/spi_audit.sql"),
        &[
            a.actor_id.into(),
            a.actor_kind.into(),
            a.organization_id.into(),
            a.action.into(),
            a.target_type.into(),
            a.target_id.into(),
            JsonB(a.details).into(),
        ],
    )
}

thread_local! {
    /// Plans prepared once per backend and kept (SPI_keepplan). Postgres'
    /// plan cache re-plans them after DDL on the tables they read.
    static PLANS: std::cell::RefCell<std::collections::HashMap<&'static str, std::rc::Rc<pgrx::spi::OwnedPreparedStatement>>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// The kept plan of `sql` (made by `prepare` the first time). The caller
/// runs it with the map not borrowed: a statement may fire a trigger that
/// comes back here.
fn kept_plan(
    sql: &'static str,
    prepare: impl FnOnce() -> pgrx::spi::Result<pgrx::spi::OwnedPreparedStatement>,
) -> PgResult<std::rc::Rc<pgrx::spi::OwnedPreparedStatement>> {
    if let Some(p) = PLANS.with(|plans| plans.borrow().get(sql).cloned()) {
        return Ok(p);
    }
    let p = std::rc::Rc::new(prepare().map_err(spi_err)?);
    PLANS.with(|plans| plans.borrow_mut().insert(sql, p.clone()));
    Ok(p)
}

/// A statement through a plan prepared once per backend (`PLANS`): for a
/// write on a hot path, where parsing and planning it each time cost more
/// than running it.
pub fn run_cached(
    sql: &'static str,
    arg_types: &[pgrx::PgOid],
    args: &[DatumWithOid],
) -> PgResult<()> {
    Spi::connect_mut(|c| {
        let stmt = kept_plan(sql, || Ok(c.prepare_mut(sql, arg_types)?.keep()))?;
        c.update(&*stmt, None, args).map_err(spi_err)?;
        Ok(())
    })
}

/// A read-only query through a plan prepared once per backend; `read` gets
/// the result table. (Only the hook's reference lookup uses it today.)
#[cfg(any(test, feature = "pg_test"))]
pub fn select_cached<R>(
    sql: &'static str,
    arg_types: &[pgrx::PgOid],
    args: &[DatumWithOid],
    read: impl FnOnce(pgrx::spi::SpiTupleTable) -> pgrx::spi::Result<R>,
) -> PgResult<R> {
    Spi::connect(|c| {
        let stmt = kept_plan(sql, || Ok(c.prepare(sql, arg_types)?.keep()))?;
        read(c.select(&*stmt, None, args).map_err(spi_err)?).map_err(spi_err)
    })
}
