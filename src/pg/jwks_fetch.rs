//! The JWKS fetcher: a background worker per database that fetches the
//! `jwks_uri` of external issuers (API.md section 11) on their schedule
//! (`jwks_refresh_seconds`) and, when a token named a kid the set does not
//! hold, at most once a minute per issuer. A verification never waits for
//! the network: it reads the set last stored in identity.issuers, and an
//! unknown kid only raises a flag here (`want_refresh`). A fetch that fails
//! (server down, garbage, an invalid set) keeps the last good set and
//! records when and why.
//!
//! Fetches run outside any transaction (no snapshot or lock is held while
//! the network is slow), with a 5 s timeout, no redirects (the URL the
//! system role registered is the one fetched), at most 64 KB of body, and
//! HTTPS with the webpki roots (plain HTTP only to loopback, checked when
//! the option is set).
//!
//! Started on demand, like the audit writer (RegisterDynamicBackgroundWorker):
//! by register_issuer and set_issuer_jwks, and by every verification of an
//! issuer's token (a lookup in shared memory when the worker runs). It stays
//! while a fetch is due within `STAY`, and leaves otherwise, so an idle
//! database is not held open (DROP DATABASE waits for connections).

use crate::pg::workers::{self, my_db, now_ms};
use pgrx::bgworkers::{BackgroundWorker, SignalWakeFlags};
use pgrx::{pg_guard, pg_shmem_init, pg_sys, PGRXSharedMemory, PgLwLock};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const WORKERS: usize = 16;
/// How often the worker looks for due issuers.
const TICK: Duration = Duration::from_millis(500);
/// The worker leaves when no fetch is due within this.
const STAY: f64 = 5.0;
/// A worker without a heartbeat for this long is gone: replaced.
const STALE_MS: i64 = 10_000;
const RESTART: Duration = Duration::from_secs(5);
const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Copy, Clone, Default)]
struct Worker {
    dboid: u32,
    pid: i32,
    seen_ms: i64,
    starts: u32,
    /// A token named an unknown kid: fetch what is past the minute.
    wanted: bool,
}

#[derive(Copy, Clone, Default)]
pub struct Fetchers {
    workers: [Worker; WORKERS],
}

// SAFETY: plain integers and booleans, valid when zeroed, position-independent.
unsafe impl PGRXSharedMemory for Fetchers {}

// SAFETY: the name is unique to this library; created by pg_shmem_init! in
// _PG_init (preloaded) before any backend uses it.
static FETCHERS: PgLwLock<Fetchers> = unsafe { PgLwLock::new(c"identity_jwks_fetchers") };
static INITIALISED: AtomicBool = AtomicBool::new(false);

/// Requests the shared memory, only while preloading.
pub fn init() {
    if crate::pg::workers::preloading() {
        pg_shmem_init!(FETCHERS);
        INITIALISED.store(true, Ordering::Relaxed);
    }
}

/// Makes sure this database has a fetcher; with `unknown_kid`, asks it to
/// refetch what was last fetched over a minute ago. Never waits for it.
pub fn wake(unknown_kid: bool) {
    if !INITIALISED.load(Ordering::Relaxed) {
        return;
    }
    let db = my_db();
    let now = now_ms();
    {
        // The common case: a running worker, nothing to ask.
        let q = FETCHERS.share();
        if !unknown_kid
            && q.workers
                .iter()
                .any(|w| w.dboid == db && now - w.seen_ms < STALE_MS)
        {
            return;
        }
    }
    let start = {
        let mut q = FETCHERS.exclusive();
        if let Some(w) = q
            .workers
            .iter_mut()
            .find(|w| w.dboid == db && now - w.seen_ms < STALE_MS)
        {
            w.wanted |= unknown_kid;
            false
        } else if let Some(w) = q
            .workers
            .iter_mut()
            .find(|w| w.dboid == 0 || w.dboid == db || now - w.seen_ms >= STALE_MS)
        {
            *w = Worker {
                dboid: db,
                pid: 0,
                seen_ms: now,
                starts: 0,
                wanted: unknown_kid,
            };
            true
        } else {
            false
        }
    };
    if start {
        let started = workers::start(
            "identity jwks fetcher",
            "identity_jwks_fetcher",
            db,
            RESTART,
        );
        if !started {
            let mut q = FETCHERS.exclusive();
            for w in q.workers.iter_mut().filter(|w| w.dboid == db && w.pid == 0) {
                *w = Worker::default();
            }
        }
    }
}

/// `wake(true)` once the current transaction commits (nothing on
/// rollback): a fetcher woken before the commit would look for the new or
/// changed issuer, not see it yet, and leave.
pub fn wake_after_commit() {
    if !INITIALISED.load(Ordering::Relaxed) {
        return;
    }
    pgrx::register_xact_callback(pgrx::PgXactCallbackEvent::Commit, || wake(true));
}

/// The heartbeat; returns (and clears) the unknown-kid flag.
fn beat(db: u32, pid: i32) -> bool {
    let mut q = FETCHERS.exclusive();
    let now = now_ms();
    let mut wanted = false;
    for w in q
        .workers
        .iter_mut()
        .filter(|w| w.dboid == db && w.pid == pid)
    {
        w.seen_ms = now;
        wanted |= std::mem::take(&mut w.wanted);
    }
    wanted
}

fn leave(db: u32, pid: i32) {
    let mut q = FETCHERS.exclusive();
    for w in q
        .workers
        .iter_mut()
        .filter(|w| w.dboid == db && w.pid == pid)
    {
        *w = Worker::default();
    }
}

/// The background worker of one database (its oid in the argument).
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn identity_jwks_fetcher(arg: pg_sys::Datum) {
    let db = arg.value() as u32;
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    {
        let mut q = FETCHERS.exclusive();
        if let Some(w) = q.workers.iter_mut().find(|w| w.dboid == db) {
            w.starts += 1;
            if w.starts > 3 {
                *w = Worker::default();
                return;
            }
        }
    }
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(pg_sys::Oid::from(db)), None);
    // As the audit writer: search_path pinned, statements as identity_worker.
    BackgroundWorker::transaction(super::workers::pin_settings);
    // SAFETY: MyProcPid is this process' pid.
    let pid = unsafe { pg_sys::MyProcPid };
    {
        let mut q = FETCHERS.exclusive();
        let now = now_ms();
        if q.workers
            .iter()
            .any(|w| w.dboid == db && w.pid != 0 && w.pid != pid && now - w.seen_ms < STALE_MS)
        {
            return;
        }
        let Some(i) = q.workers.iter().position(|w| w.dboid == db).or_else(|| {
            q.workers
                .iter()
                .position(|w| w.dboid == 0 || now - w.seen_ms >= STALE_MS)
        }) else {
            return;
        };
        let keep = q.workers[i].dboid == db;
        q.workers[i] = Worker {
            dboid: db,
            pid,
            seen_ms: now,
            starts: if keep { q.workers[i].starts } else { 0 },
            wanted: keep && q.workers[i].wanted,
        };
    }
    let mut agent = new_agent();
    let mut wanted = false;
    loop {
        if BackgroundWorker::sighup_received() {
            // SAFETY: a worker re-reading the configuration files on SIGHUP,
            // between transactions, as Postgres' own background processes do.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
            agent = new_agent();
        }
        wanted |= beat(db, pid);
        let due = BackgroundWorker::transaction(|| due_issuers(wanted));
        {
            let mut q = FETCHERS.exclusive();
            for w in q
                .workers
                .iter_mut()
                .filter(|w| w.dboid == db && w.pid == pid)
            {
                w.starts = 0;
            }
        }
        wanted = false;
        // sigterm_received() clears the flag it reads: a SIGTERM seen here
        // must end the outer loop too (else, with a fetch due within STAY,
        // the worker never leaves and the server cannot shut down).
        let mut stopping = false;
        for (issuer, uri) in due {
            let outcome = fetch(&agent, &uri);
            BackgroundWorker::transaction(|| store(&issuer, &uri, outcome));
            if BackgroundWorker::sigterm_received() {
                stopping = true;
                break;
            }
        }
        if stopping {
            break;
        }
        let next = BackgroundWorker::transaction(next_due);
        if next.is_none_or(|s| s > STAY)
            && !FETCHERS
                .share()
                .workers
                .iter()
                .any(|w| w.dboid == db && w.pid == pid && w.wanted)
        {
            break;
        }
        if !BackgroundWorker::wait_latch(Some(TICK)) {
            break;
        }
    }
    leave(db, pid);
}

/// The fetcher's HTTP client: no proxy, no redirect, a global timeout,
/// and a resolver that refuses a host any of whose addresses the fetcher
/// may not reach (`core::external::address_allowed`); it connects only to
/// the addresses it checked, so a name cannot resolve to another address
/// between the check and the connection.
fn new_agent() -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(TIMEOUT))
        .max_redirects(0)
        .http_status_as_error(false)
        .proxy(None)
        .user_agent("identity-jwks-fetcher")
        .build();
    ureq::Agent::with_parts(
        config,
        ureq::unversioned::transport::DefaultConnector::new(),
        CheckedResolver {
            allow_private: crate::pg::gucs::jwks_allow_private(),
        },
    )
}

/// Resolves as ureq does, then checks every address.
#[derive(Debug)]
struct CheckedResolver {
    allow_private: bool,
}

impl ureq::unversioned::resolver::Resolver for CheckedResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        let addrs = ureq::unversioned::resolver::DefaultResolver::default()
            .resolve(uri, config, timeout)?;
        let https = uri.scheme_str() == Some("https");
        if let Some(bad) = addrs
            .iter()
            .find(|a| !crate::core::external::address_allowed(a.ip(), https, self.allow_private))
        {
            return Err(ureq::Error::Io(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "{} resolves to {}, an address the fetcher may not reach \
                     (private, link-local or loopback: identity.jwks_allow_private_addresses)",
                    uri.host().unwrap_or_default(),
                    bad.ip()
                ),
            )));
        }
        Ok(addrs)
    }
}

fn extension_here(c: &pgrx::spi::SpiClient) -> bool {
    c.select(
        "select pg_catalog.to_regprocedure('identity.worker_jwks_store(pg_catalog.text, pg_catalog.text, pg_catalog.jsonb, pg_catalog.text)') is not null",
        None,
        &[],
    )
    .ok()
    .and_then(|t| t.first().get_one::<bool>().ok().flatten())
    .unwrap_or(false)
}

/// The issuers due for a fetch (identity.worker_jwks_due, as identity_worker).
fn due_issuers(unknown_kid: bool) -> Vec<(String, String)> {
    super::workers::as_worker_role(|| {
        pgrx::Spi::connect(|c| {
            if !extension_here(c) {
                return Vec::new();
            }
            let Ok(t) = c.select(
                "select w.issuer, w.jwks_uri from identity.worker_jwks_due($1) w",
                None,
                &[unknown_kid.into()],
            ) else {
                return Vec::new();
            };
            t.filter_map(|r| {
                Some((
                    r.get::<String>(1).ok().flatten()?,
                    r.get::<String>(2).ok().flatten()?,
                ))
            })
            .collect()
        })
    })
    .unwrap_or_default()
}

/// Seconds until the next scheduled fetch (identity.worker_jwks_next).
fn next_due() -> Option<f64> {
    super::workers::as_worker_role(|| {
        pgrx::Spi::connect(|c| {
            if !extension_here(c) {
                return None;
            }
            c.select("select identity.worker_jwks_next()", None, &[])
                .ok()
                .and_then(|t| t.first().get_one::<f64>().ok().flatten())
        })
    })
    .flatten()
}

/// GETs `uri` and checks the body is a valid set (core::external::parse_jwks):
/// the set, or why not (no secret can be in it: a public URL's status or
/// a parse error).
fn fetch(agent: &ureq::Agent, uri: &str) -> Result<serde_json::Value, String> {
    if let Err(e) = crate::core::external::check_jwks_uri(uri) {
        return Err(e.message.to_string());
    }
    let mut resp = agent
        .get(uri)
        .header("accept", "application/json")
        .call()
        .map_err(|e| format!("fetch failed: {e}"))?;
    if resp.status() != 200 {
        return Err(format!("fetch answered HTTP {}", resp.status().as_u16()));
    }
    let body = resp
        .body_mut()
        .with_config()
        .limit(crate::core::external::MAX_JWKS_BYTES as u64)
        .read_to_string()
        .map_err(|e| format!("reading the body failed: {e}"))?;
    let v: serde_json::Value =
        serde_json::from_str(&body).map_err(|_| "the body is not JSON".to_string())?;
    crate::core::external::parse_jwks(&v).map_err(|e| match e.detail {
        Some(d) => format!("not a usable JWKS: {} ({d})", e.message),
        None => format!("not a usable JWKS: {}", e.message),
    })?;
    Ok(v)
}

fn store(issuer: &str, uri: &str, outcome: Result<serde_json::Value, String>) {
    super::workers::as_worker_role(|| {
        pgrx::Spi::connect_mut(|c| {
            if !extension_here(c) {
                return;
            }
            let (set, why) = match outcome {
                Ok(set) => (Some(pgrx::JsonB(set)), None),
                Err(why) => {
                    pgrx::log!("identity jwks fetcher: {issuer}: {why}");
                    (None, Some(why))
                }
            };
            // An ERROR here ends the worker (restarted after RESTART): never
            // caught without a subtransaction.
            let _ = c.update(
                "select identity.worker_jwks_store($1, $2, $3, $4)",
                None,
                &[issuer.into(), uri.into(), set.into(), why.into()],
            );
        })
    });
}
