//! Section 2 of API.md: Supabase Auth's custom access token hook.
//!
//! Read-only and lock-free: one index probe on identity.users through a plan
//! prepared once per backend, no row locks (Supabase Auth holds a lock on the
//! user's auth row while it calls us). It answers bad input with an error
//! object, never an exception, because Supabase shows a raised error as an
//! opaque 500.

use crate::core::claims::{self, HookOutcome, UserRow};
use crate::error::PgResult;
use crate::spi;
use pgrx::prelude::*;
use pgrx::{JsonB, PgBuiltInOids, PgOid};

const USER_BY_ID: &str = "select is_service_user, user_role, organization_id::text, \
     application_id::text, status from identity.users where id = $1::uuid";

fn lookup(user_id: &str) -> PgResult<Option<UserRow>> {
    spi::select_cached(USER_BY_ID, &[PgOid::BuiltIn(PgBuiltInOids::TEXTOID)], &[user_id.into()], |t| {
        if t.is_empty() {
            return Ok(None);
        }
        let r = t.first();
        Ok(Some(UserRow {
            is_service_user: r.get::<bool>(1)?.unwrap_or(false),
            user_role: r.get::<String>(2)?.unwrap_or_default(),
            organization_id: r.get::<String>(3)?,
            application_id: r.get::<String>(4)?,
            status: r.get::<String>(5)?.unwrap_or_default(),
        }))
    })
}

/// `{"claims": {...}}` with is_service_user, user_role, organization_id and,
/// for service users, application_id from identity.users; or
/// `{"error": {"http_code", "message"}}`: 400 malformed event, 403 suspended
/// or disabled user.
#[pg_extern(schema = "identity", stable, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn custom_access_token_hook(event: Option<JsonB>) -> PgResult<JsonB> {
    let Some(JsonB(event)) = event else {
        return Ok(JsonB(HookOutcome::Error { http_code: 400, message: "event is null".into() }.into_json()));
    };
    let size = claims::approx_json_size(&event);
    let outcome = match claims::parse_event(event, size) {
        Err(o) => o,
        // A failing lookup is our fault, not the caller's: it raises.
        Ok(ev) => {
            let user = lookup(&ev.user_id)?;
            claims::build(ev, user.as_ref())
        }
    };
    Ok(JsonB(outcome.into_json()))
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;
    use pgrx::JsonB;
    use serde_json::{json, Value};

    fn hook(ev: Value) -> Value {
        Spi::get_one_with_args::<JsonB>("select identity.custom_access_token_hook($1)", &[JsonB(ev).into()])
            .unwrap()
            .unwrap()
            .0
    }

    fn event(uid: &str) -> Value {
        json!({"user_id": uid, "authentication_method": "password", "claims": {
            "aud": "authenticated", "exp": 2000000000, "iat": 1999996400, "sub": uid,
            "email": "a@example.com", "phone": "", "role": "authenticated", "aal": "aal1",
            "session_id": "4b938a09-5372-4177-a314-cfa292099ea2", "is_anonymous": false,
            "user_metadata": {"is_service_user": true}}})
    }

    #[pg_test]
    fn hook_reads_identity_users() {
        Spi::run(
            "insert into identity.organizations (id, name) values ('00000000-0000-0000-0000-00000000000a', 'Acme');
             insert into identity.users (id, email, organization_id, user_role, is_service_user, application_id)
             values ('00000000-0000-0000-0000-000000000002', 'svc@example.com', '00000000-0000-0000-0000-00000000000a',
                     'user', true, '00000000-0000-0000-0000-0000000000bb'),
                    ('00000000-0000-0000-0000-000000000003', 'sus@example.com', null, 'admin', false, null);
             update identity.users set status = 'suspended' where id = '00000000-0000-0000-0000-000000000003';",
        )
        .unwrap();
        let svc = hook(event("00000000-0000-0000-0000-000000000002"));
        assert_eq!(svc["claims"]["is_service_user"], true);
        assert_eq!(svc["claims"]["application_id"], "00000000-0000-0000-0000-0000000000bb");
        assert_eq!(svc["claims"]["organization_id"], "00000000-0000-0000-0000-00000000000a");
        assert_eq!(svc["claims"]["role"], "authenticated");
        let sus = hook(event("00000000-0000-0000-0000-000000000003"));
        assert_eq!(sus["error"]["http_code"], 403);
        let none = hook(event("00000000-0000-0000-0000-000000000009"));
        assert_eq!(none["claims"]["is_service_user"], false, "user_metadata must be ignored");
        assert_eq!(none["claims"]["user_role"], "user");
    }

    #[pg_test]
    fn hook_answers_bad_input_without_raising() {
        let v = Spi::get_one::<JsonB>("select identity.custom_access_token_hook(null)").unwrap().unwrap().0;
        assert_eq!(v["error"]["http_code"], 400);
        let v = hook(json!([1]));
        assert_eq!(v["error"]["http_code"], 400);
        let v = hook(json!({"user_id": "x", "claims": {}}));
        assert_eq!(v["error"]["http_code"], 400);
    }
}
