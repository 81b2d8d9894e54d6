//! Settings of API.md section 1.
//!
//! Every setting that changes what verification accepts is SUSET: a
//! non-superuser cannot `SET identity.claims_source = request` or widen the
//! leeway inside their own session. The two secrets are additionally
//! SUPERUSER_ONLY (hidden from SHOW ALL and pg_settings) and have a show hook
//! that masks the value for everyone, including members of
//! pg_read_all_settings / pg_monitor, so SQL never returns them. They have no
//! check hook on purpose: Postgres prints the rejected value in the error of a
//! failing check hook, which would put the secret in the server log; the
//! value is validated when used, with an error that does not include it.
//!
//! Preload the library (`shared_preload_libraries = 'identity'`) when the
//! secrets are set in postgresql.conf: before the library is loaded Postgres
//! keeps an unknown `identity.*` setting as a placeholder any role can read.

use pgrx::{pg_guard, pg_sys, GucContext, GucFlags, GucRegistry, GucSetting, PostgresGucEnum};
use std::ffi::CString;

#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum ClaimsSource {
    /// Trust `request.jwt.claims` (PostgREST / Supabase set it per request).
    #[name = c"request"]
    Request,
    /// Only claims pinned by `identity.authenticate(token)`.
    #[name = c"verified"]
    Verified,
}

pub static JWT_SECRET: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static JWT_ISSUER: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static JWT_AUDIENCE: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"authenticated"));
pub static JWT_LEEWAY: GucSetting<i32> = GucSetting::<i32>::new(30);
pub static ACCESS_TOKEN_TTL: GucSetting<i32> = GucSetting::<i32>::new(3600);
pub static ENCRYPTION_KEY: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static REDACT_LOGS: GucSetting<bool> = GucSetting::<bool>::new(true);
pub static JWKS_ALLOW_PRIVATE: GucSetting<bool> = GucSetting::<bool>::new(false);
pub static PREVIOUS_ENCRYPTION_KEYS: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(None);
pub static CLAIMS_SOURCE: GucSetting<ClaimsSource> =
    GucSetting::<ClaimsSource>::new(ClaimsSource::Request);
pub static TRIAL_DAYS: GucSetting<i32> = GucSetting::<i32>::new(14);
pub static JWT_CACHE_SIZE: GucSetting<i32> = GucSetting::<i32>::new(1024);
pub static REVOCATION_FILTER_KB: GucSetting<i32> = GucSetting::<i32>::new(2048);
pub static AUDIT_REFUSAL_WINDOW: GucSetting<i32> = GucSetting::<i32>::new(60);
pub static TOKEN_PREFIX: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"idt"));

/// `request.jwt.claims`, defined here (not left a placeholder) so that every
/// change, including the revert at transaction end, runs an assign hook: the
/// RLS helpers' cache is invalidated exactly when the claims change.
pub static REQUEST_CLAIMS: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
/// Claims pinned by identity.authenticate (SUSET: a session cannot set it
/// itself; a GUC, so parallel workers see it too).
pub static VERIFIED_CLAIMS: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static CLAIMS_GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

#[pg_guard]
unsafe extern "C-unwind" fn claims_changed(
    _new: *const std::ffi::c_char,
    _extra: *mut std::ffi::c_void,
) {
    CLAIMS_GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

#[pg_guard]
unsafe extern "C-unwind" fn claims_source_changed(
    _new: std::ffi::c_int,
    _extra: *mut std::ffi::c_void,
) {
    CLAIMS_GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

static SECRET_GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

#[pg_guard]
unsafe extern "C-unwind" fn secret_changed(
    _new: *const std::ffi::c_char,
    _extra: *mut std::ffi::c_void,
) {
    SECRET_GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// Bumped on every assignment of identity.jwt_secret (SET, a reload, the
/// end of a transaction or function that changed it), so what is derived
/// from the secret can be kept until it changes without comparing it.
pub fn jwt_secret_generation() -> u64 {
    SECRET_GENERATION.load(std::sync::atomic::Ordering::Relaxed)
}

/// Bumped on every change of either claims setting or of claims_source.
pub fn claims_generation() -> u64 {
    CLAIMS_GENERATION.load(std::sync::atomic::Ordering::Relaxed)
}

/// SHOW / current_setting / pg_settings print this instead of a secret.
#[pg_guard]
unsafe extern "C-unwind" fn mask_secret() -> *const std::ffi::c_char {
    c"********".as_ptr()
}

pub fn init() {
    // RESET ALL and DISCARD ALL (which any role may run, and poolers run
    // between clients) reset every SUSET setting a superuser SET in the
    // session, whoever runs them. Nothing that decides what verification
    // accepts may move that way: every identity.* setting but the pin is
    // NO_RESET_ALL.
    let keep = GucFlags::NO_RESET_ALL;
    let secret_flags = GucFlags::SUPERUSER_ONLY | GucFlags::NO_SHOW_ALL | keep;
    // SAFETY: the show hook is a #[pg_guard] function returning a static
    // string; the assign hook a #[pg_guard] function touching an atomic.
    unsafe {
        GucRegistry::define_string_guc_with_hooks(
            c"identity.jwt_secret",
            c"HS256 shared secret (at least 32 bytes).",
            c"Superuser-only; never shown by SHOW or pg_settings.",
            &JWT_SECRET,
            GucContext::Suset,
            secret_flags,
            None,
            Some(secret_changed),
            Some(mask_secret),
        );
        GucRegistry::define_string_guc_with_hooks(
            c"identity.encryption_key",
            c"32-byte key, base64, that encrypts secrets at rest.",
            c"Superuser-only; never shown by SHOW or pg_settings.",
            &ENCRYPTION_KEY,
            GucContext::Suset,
            secret_flags,
            None,
            None,
            Some(mask_secret),
        );
        GucRegistry::define_string_guc_with_hooks(
            c"identity.previous_encryption_keys",
            c"Earlier encryption keys (base64, comma-separated) still accepted for decryption.",
            c"Superuser-only, hidden like identity.encryption_key; drop a key once identity.rekey() returned 0.",
            &PREVIOUS_ENCRYPTION_KEYS,
            GucContext::Suset,
            secret_flags,
            None,
            None,
            Some(mask_secret),
        );
    }
    GucRegistry::define_string_guc(
        c"identity.jwt_issuer",
        c"iss put into and required of tokens (unset: not checked).",
        c"",
        &JWT_ISSUER,
        GucContext::Suset,
        keep,
    );
    GucRegistry::define_string_guc(
        c"identity.jwt_audience",
        c"Default aud of access tokens.",
        c"",
        &JWT_AUDIENCE,
        GucContext::Suset,
        keep,
    );
    GucRegistry::define_int_guc(
        c"identity.jwt_leeway",
        c"Clock skew allowed on exp, nbf and iat.",
        c"",
        &JWT_LEEWAY,
        0,
        3600,
        GucContext::Suset,
        GucFlags::UNIT_S | keep,
    );
    GucRegistry::define_int_guc(
        c"identity.access_token_ttl",
        c"Lifetime of access tokens issued by the extension.",
        c"",
        &ACCESS_TOKEN_TTL,
        1,
        7 * 24 * 3600,
        GucContext::Suset,
        GucFlags::UNIT_S | keep,
    );
    // SAFETY: the assign hook is a #[pg_guard] function touching an atomic.
    unsafe {
        GucRegistry::define_enum_guc_with_hooks(
            c"identity.claims_source",
            c"Where RLS helpers read claims: request (request.jwt.claims) or verified (identity.authenticate only).",
            c"",
            &CLAIMS_SOURCE,
            GucContext::Suset,
            keep,
            None,
            Some(claims_source_changed),
            None,
        );
    }
    GucRegistry::define_bool_guc(
        c"identity.redact_logs",
        c"Redact API tokens, JWTs and secret arguments from every server log line (and error).",
        c"Superuser-only; on by default. Turning it off lets statement logging write secrets.",
        &REDACT_LOGS,
        GucContext::Suset,
        keep,
    );
    GucRegistry::define_bool_guc(
        c"identity.jwks_allow_private_addresses",
        c"Lets the JWKS fetcher reach https jwks_uris on private, link-local and loopback addresses.",
        c"Off: every address a jwks_uri's host resolves to must be public (plain http goes to loopback only, either way). Set in the server's configuration (reload).",
        &JWKS_ALLOW_PRIVATE,
        GucContext::Sighup,
        keep,
    );
    GucRegistry::define_int_guc(
        c"identity.trial_days",
        c"Length of the trial subscription provision_user creates (0: none).",
        c"",
        &TRIAL_DAYS,
        0,
        3650,
        GucContext::Suset,
        keep,
    );
    GucRegistry::define_int_guc(
        c"identity.jwt_cache_size",
        c"HS256 tokens whose verified signature each backend remembers (0: none).",
        c"verify_jwt then skips the HMAC and the parse for them; every other check still runs.",
        &JWT_CACHE_SIZE,
        0,
        100_000,
        GucContext::Suset,
        keep,
    );
    GucRegistry::define_int_guc(
        c"identity.audit_refusal_window",
        c"Seconds during which repeated refusals of one actor are one audit row with a count.",
        c"The first refusal is written at once; the ones after it in the window are counted and written as one row (details.repeated) when it closes.",
        &AUDIT_REFUSAL_WINDOW,
        1,
        3600,
        GucContext::Suset,
        keep,
    );
    GucRegistry::define_int_guc(
        c"identity.revocation_filter_kb",
        c"Shared memory per revocation filter, in kB (0: none; each database's revoked jtis and sessions get one each).",
        c"16 bits per revoked key: the default holds about a million. Above 1,000 revoked rows verify_jwt asks the filter (a standby copies up to 50,000), and probes the table only for a maybe. Server start only.",
        &REVOCATION_FILTER_KB,
        0,
        1_048_576,
        GucContext::Postmaster,
        GucFlags::UNIT_KB,
    );
    GucRegistry::define_string_guc(
        c"identity.token_prefix",
        c"Prefix of opaque API tokens.",
        c"",
        &TOKEN_PREFIX,
        GucContext::Suset,
        keep,
    );
    // SAFETY: the assign hook is a #[pg_guard] function touching an atomic.
    unsafe {
        GucRegistry::define_string_guc_with_hooks(
            c"request.jwt.claims",
            c"JWT claims of the current request, as PostgREST and Supabase set them.",
            c"Read by identity's RLS helpers when identity.claims_source is request.",
            &REQUEST_CLAIMS,
            GucContext::Userset,
            GucFlags::default(),
            None,
            Some(claims_changed),
            None,
        );
        GucRegistry::define_string_guc_with_hooks(
            c"identity.verified_claims",
            c"Claims pinned by identity.authenticate (internal).",
            c"",
            &VERIFIED_CLAIMS,
            GucContext::Suset,
            // RESET ALL (which resets even superuser-only settings, for any
            // role) must not lift a pin, a failed authenticate's "nobody"
            // above all; the transaction's end does.
            GucFlags::NO_RESET_ALL,
            None,
            Some(claims_changed),
            None,
        );
    }
    // PG15: refuse placeholders for misspelled identity.* settings from now on.
    // SAFETY: called once from _PG_init with a static NUL-terminated prefix.
    unsafe { pg_sys::MarkGUCPrefixReserved(c"identity".as_ptr()) };
}

fn string(s: &GucSetting<Option<CString>>) -> Option<String> {
    s.get()
        .and_then(|c| c.into_string().ok())
        .filter(|v| !v.is_empty())
}

/// A string setting's value in place, without the copy `get` makes (a
/// third of a verify_jwt's allocations were these), for the length of `f`;
/// None when unset or empty. Postgres frees a setting's string only when the
/// setting is assigned again (SET, set_config, a reload), which nothing
/// inside the callers' `f` does.
fn with_str<R>(s: &GucSetting<Option<CString>>, f: impl FnOnce(Option<&[u8]>) -> R) -> R {
    // SAFETY: the variable Postgres assigns (guc.c), NULL or a C string.
    let p = unsafe { *s.as_ptr() };
    let v = (!p.is_null())
        // SAFETY: p is non-null (checked just above) and points at the setting's NUL-terminated
        // value, which guc.c frees only on the next assignment.
        .then(|| unsafe { std::ffi::CStr::from_ptr(p) }.to_bytes())
        .filter(|v| !v.is_empty());
    f(v)
}

/// `with_str` for the HS256 secret (None when unset: callers answer 55000).
pub fn with_jwt_secret<R>(f: impl FnOnce(Option<&[u8]>) -> R) -> R {
    with_str(&JWT_SECRET, f)
}

/// The audience checked when identity.jwt_audience is empty: an audience is
/// always checked, so `''` never turns the check off (websocket and agent
/// tokens would pass verify_jwt as sign-ins).
pub const DEFAULT_AUDIENCE: &str = "authenticated";

/// identity.jwt_audience and identity.jwt_issuer in place (see `with_str`);
/// a value that is not UTF-8 counts as unset, as in `string`; an unset or
/// empty audience is `DEFAULT_AUDIENCE`.
pub fn with_jwt_audience_issuer<R>(f: impl FnOnce(Option<&str>, Option<&str>) -> R) -> R {
    fn text(v: Option<&[u8]>) -> Option<&str> {
        v.and_then(|b| std::str::from_utf8(b).ok())
    }
    with_str(&JWT_AUDIENCE, |aud| {
        with_str(&JWT_ISSUER, |iss| {
            f(Some(text(aud).unwrap_or(DEFAULT_AUDIENCE)), text(iss))
        })
    })
}

pub fn encryption_key() -> Option<String> {
    string(&ENCRYPTION_KEY)
}

pub fn redact_logs() -> bool {
    REDACT_LOGS.get()
}

/// identity.jwks_allow_private_addresses (server configuration).
pub fn jwks_allow_private() -> bool {
    JWKS_ALLOW_PRIVATE.get()
}

pub fn previous_encryption_keys() -> Option<String> {
    string(&PREVIOUS_ENCRYPTION_KEYS)
}

pub fn jwt_issuer() -> Option<String> {
    string(&JWT_ISSUER)
}

/// identity.jwt_audience, `DEFAULT_AUDIENCE` when unset or empty.
pub fn jwt_audience() -> String {
    string(&JWT_AUDIENCE).unwrap_or_else(|| DEFAULT_AUDIENCE.into())
}

/// identity.audit_refusal_window, in ms.
pub fn audit_refusal_window_ms() -> i64 {
    i64::from(AUDIT_REFUSAL_WINDOW.get().max(1)) * 1000
}

/// identity.revocation_filter_kb (fixed at server start).
pub fn revocation_filter_kb() -> usize {
    REVOCATION_FILTER_KB.get().max(0) as usize
}

pub fn jwt_cache_size() -> usize {
    JWT_CACHE_SIZE.get().max(0) as usize
}

pub fn jwt_leeway() -> i64 {
    JWT_LEEWAY.get() as i64
}

pub fn access_token_ttl() -> i64 {
    ACCESS_TOKEN_TTL.get() as i64
}

pub fn trial_days() -> i32 {
    TRIAL_DAYS.get()
}

pub fn claims_source() -> ClaimsSource {
    CLAIMS_SOURCE.get()
}

/// The claims text the helpers read: pinned verified claims if any, else, in
/// `request` mode, request.jwt.claims.
/// Whether a failed identity.authenticate pinned nobody in this transaction
/// (`core::actor::NOBODY`).
pub fn nobody_pinned() -> bool {
    string(&VERIFIED_CLAIMS).as_deref() == Some(crate::core::actor::NOBODY)
}

/// `current_claims_text`, and whether it is the pin of identity.authenticate
/// (verified with every check in this transaction) rather than
/// request.jwt.claims.
pub fn current_claims_text_pinned() -> (Option<String>, bool) {
    match string(&VERIFIED_CLAIMS) {
        Some(pin) => (Some(pin), true),
        None => (
            match claims_source() {
                ClaimsSource::Request => string(&REQUEST_CLAIMS),
                ClaimsSource::Verified => None,
            },
            false,
        ),
    }
}

pub fn current_claims_text() -> Option<String> {
    string(&VERIFIED_CLAIMS).or_else(|| match claims_source() {
        ClaimsSource::Request => string(&REQUEST_CLAIMS),
        ClaimsSource::Verified => None,
    })
}

/// Pins (Some) or clears (None) the verified claims for the rest of the
/// current transaction, as `SET LOCAL` would (API.md section 8): commit or
/// rollback ends the pin, and so does the rollback of a savepoint it was made
/// in, so no later transaction on a pooled connection can see it. Postgres
/// restores the previous value at that point and runs the assign hook, which
/// bumps the claims generation the helpers' caches compare.
pub fn pin_verified_claims(text: Option<&str>) {
    let value = CString::new(text.unwrap_or("")).expect("claims JSON has no NUL");
    set_local(
        c"identity.verified_claims",
        &value,
        pg_sys::GucContext::PGC_SUSET,
    );
}

/// `set_config(name, value, true)` with the rights of `context`: PGC_SUSET
/// is allowed whatever the calling role (the variable is SUSET, so a session
/// cannot do this with SET); PGC_USERSET runs the setting's own checks
/// (for `role`: the session user must be a member of the role). An error
/// (e.g. 42501 for a role the session may not take) is raised.
fn set_local(name: &std::ffi::CStr, value: &std::ffi::CStr, context: pg_sys::GucContext::Type) {
    // SAFETY: both strings are NUL-terminated and outlive the call, which
    // copies them; elevel ERROR makes a refused value raise instead of
    // returning 0.
    unsafe {
        pg_sys::set_config_option(
            name.as_ptr(),
            value.as_ptr(),
            context,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_LOCAL,
            true,
            pgrx::PgLogLevel::ERROR as i32,
            false,
        );
    }
}

/// `SET LOCAL ROLE role` (what PostgREST does per request): the session
/// user must be a member of `role` (Postgres checks it: 42501 otherwise), and
/// it is refused inside a SECURITY DEFINER function.
pub fn set_local_role(role: &str) -> Result<(), crate::core::error::IdentityError> {
    let value = CString::new(role)
        .map_err(|_| crate::core::error::IdentityError::invalid("role name has a NUL byte"))?;
    set_local(c"role", &value, pg_sys::GucContext::PGC_USERSET);
    Ok(())
}

/// The session user's name (the role that logged in), as the audit trail's
/// actor_role records it.
pub fn session_user_name() -> Option<String> {
    // SAFETY: GetSessionUserId is valid in a backend connected to a
    // database; GetUserNameFromId with noerr returns NULL or a palloc'd name.
    let p = unsafe { pg_sys::GetUserNameFromId(pg_sys::GetSessionUserId(), true) };
    if p.is_null() {
        return None;
    }
    // SAFETY: p is non-null (checked) and a palloc'd NUL-terminated name.
    let name = unsafe { std::ffi::CStr::from_ptr(p) };
    Some(name.to_string_lossy().into_owned())
}

/// Whether the current role (what `SET ROLE` set) is named `role`.
pub fn current_role_is(role: &str) -> bool {
    // SAFETY: GetUserId is always valid in a backend; GetUserNameFromId with
    // noerr returns NULL for a dropped role or a palloc'd name.
    let p = unsafe { pg_sys::GetUserNameFromId(pg_sys::GetUserId(), true) };
    // SAFETY: p is non-null (checked) and a palloc'd NUL-terminated role name.
    !p.is_null() && unsafe { std::ffi::CStr::from_ptr(p) }.to_bytes() == role.as_bytes()
}

/// Whether the current role is a superuser.
pub fn current_role_is_superuser() -> bool {
    // SAFETY: a catalog lookup of the current user id; no pointers.
    unsafe { pg_sys::superuser() }
}

/// Whether this transaction may write: not a hot standby, not read-only.
pub fn transaction_writable() -> bool {
    // SAFETY: plain reads of backend-global state.
    unsafe { !pg_sys::RecoveryInProgress() && !pg_sys::XactReadOnly }
}

/// Whether `role` names an existing role that is a superuser (a request
/// never switches into one, whatever the session user may do).
pub fn role_is_superuser(role: &str) -> bool {
    let Ok(name) = CString::new(role) else {
        return false;
    };
    // SAFETY: a NUL-terminated name; missing_ok gives InvalidOid.
    let oid = unsafe { pg_sys::get_role_oid(name.as_ptr(), true) };
    // SAFETY: a catalog lookup by role oid; no pointer is involved.
    oid != pg_sys::InvalidOid && unsafe { pg_sys::superuser_arg(oid) }
}

/// The current value of a setting this library does not define (for
/// PostgREST's `request.headers`), in place for the length of `f`; None when
/// it does not exist, is unset or empty. As for `with_str`, Postgres frees
/// the string only when the setting is assigned again, which `f` does not do.
pub fn with_placeholder<R>(name: &std::ffi::CStr, f: impl FnOnce(Option<&[u8]>) -> R) -> R {
    // SAFETY: GetConfigOption returns NULL (missing_ok) or the setting's
    // NUL-terminated value, owned by guc.c; restrict_privileged false: the
    // request.* settings are user-set, readable by the session itself.
    let p = unsafe { pg_sys::GetConfigOption(name.as_ptr(), true, false) };
    let v = (!p.is_null())
        // SAFETY: p is non-null (checked just above) and points at the setting's NUL-terminated
        // value, which guc.c frees only on the next assignment.
        .then(|| unsafe { std::ffi::CStr::from_ptr(p) }.to_bytes())
        .filter(|v| !v.is_empty());
    f(v)
}

pub fn token_prefix() -> String {
    string(&TOKEN_PREFIX).unwrap_or_else(|| "idt".to_string())
}
