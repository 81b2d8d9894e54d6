//! Section 2 of API.md: Supabase Auth's custom access token hook.
//!
//! Read-only and lock-free: the user's row from this backend's copy
//! (`store::cache::user_state`, dropped by the users trigger's invalidation
//! when any column it holds changes) or one probe of identity.users' primary
//! key index, no SQL, no row locks (Supabase Auth holds a lock on
//! the user's auth row while it calls us). It runs with the caller's rights:
//! with no SQL inside there is no name resolution to hijack, so it needs no
//! SECURITY DEFINER and no pinned search_path (which costs a GUC save and
//! restore on every call); EXECUTE on it is granted to the hook level only. It answers bad input
//! with an error
//! object, never an exception, because Supabase shows a raised error as an
//! opaque 500.

use crate::core::claims::{self, HookOutcome};
use crate::core::ids::UserId;
use crate::pg::error::PgResult;
use crate::pg::jsonb::{self, Builder, RawJsonb};
use crate::store::tables;
use pgrx::prelude::*;

/// The same lookup through SQL (SPI, prepared once per backend): the
/// reference the differential test holds `tables::user_by_id` to.
#[cfg(any(test, feature = "pg_test"))]
const USER_BY_ID: &str = "select is_service_user, user_role, organization_id::text, \
     application_id::text, status from identity.users where id = $1::uuid";

#[cfg(any(test, feature = "pg_test"))]
fn lookup(user_id: &str) -> PgResult<Option<claims::UserRow>> {
    use crate::core::claims::{UserRole, UserRow, UserStatus};
    use crate::pg::spi;
    use pgrx::{PgBuiltInOids, PgOid};
    spi::select_cached(
        USER_BY_ID,
        &[PgOid::BuiltIn(PgBuiltInOids::TEXTOID)],
        &[user_id.into()],
        |t| {
            if t.is_empty() {
                return Ok(None);
            }
            let r = t.first();
            Ok(Some(UserRow {
                is_service_user: r.get::<bool>(1)?.unwrap_or(false),
                user_role: UserRole::parse(&r.get::<String>(2)?.unwrap_or_default()),
                organization_id: r.get::<String>(3)?,
                application_id: r.get::<String>(4)?,
                status: UserStatus::parse(&r.get::<String>(5)?.unwrap_or_default()),
            }))
        },
    )
}

/// `{"claims": {...}}` with is_service_user, user_role, organization_id and,
/// for service users, application_id from identity.users; or
/// `{"error": {"http_code", "message"}}`: 400 malformed event, 403 suspended
/// or disabled user.
///
/// jsonb-native: members are read from the binary jsonb and the claims are
/// copied token by token with our keys appended, never through text. The
/// decisions (event checks, schema check, what to add) are core::claims',
/// the same the serde reference path (`core::claims::build`) uses; a
/// differential test holds the two equal.
#[pg_extern(schema = "identity", stable, parallel_safe)]
fn custom_access_token_hook(event: Option<RawJsonb>) -> PgResult<RawJsonb> {
    let outcome = match event {
        None => Err(HookOutcome::bad("event is null")),
        Some(event) => match answer_stored(&event) {
            Some(outcome) => outcome,
            None => answer(&event)?,
        },
    };
    Ok(outcome.unwrap_or_else(|o| match o {
        HookOutcome::Error { http_code, message } => jsonb::error_object(http_code, &message),
        HookOutcome::Claims(_) => unreachable!("answer() returns claims as jsonb"),
    }))
}

/// The answer from the event's bytes (`core::hook`, no jsonb FFI), on a
/// major whose jsonb layout it was checked against; None: not taken (the
/// Postgres path `answer` then runs).
fn answer_stored(event: &RawJsonb) -> Option<Result<RawJsonb, HookOutcome>> {
    if !jsonb::stored_layout_checked() {
        return None;
    }
    crate::core::hook::answer(event.bytes(), |id| {
        crate::store::cache::user_state(id).map(|u| u.row)
    })
    .map(|r| r.map(|bytes| RawJsonb::copy_of(&bytes)))
}

/// The answer through Postgres' jsonb functions (`Container`, `Builder`):
/// for a major `core::hook` was not checked on, and the reference the
/// differential test holds `answer_stored` to, byte for byte.
fn answer(event: &RawJsonb) -> PgResult<Result<RawJsonb, HookOutcome>> {
    if let Err(o) = claims::check_size(event.size()) {
        return Ok(Err(o));
    }
    if !event.is_object() {
        return Ok(Err(HookOutcome::bad("event must be a JSON object")));
    }
    let root = event.container();
    let user_id_v = root.get("user_id");
    let claims_v = root.get("claims");
    let checked = claims::check_event(
        user_id_v
            .as_ref()
            .map(|v| (jsonb::shape(v), jsonb::as_str(v))),
        root.get("metadata").as_ref().map(jsonb::shape),
        root.get("authentication_method").as_ref().map(jsonb::shape),
        claims_v.as_ref().map(jsonb::shape),
    );
    let user_id = match checked {
        Ok(u) => u,
        Err(o) => return Ok(Err(o)),
    };
    // check_event accepted claims only as an object container.
    let claims_c = root.object_member("claims").expect("checked: an object");
    let user = tables::user_by_id(UserId(
        claims::uuid_bytes(&user_id).expect("canonical uuid"),
    ));
    let add = match claims::additions(user.as_ref()) {
        Ok(a) => a,
        Err(o) => return Ok(Err(o)),
    };
    // One pass over the claims: copy every member but ours into the answer,
    // merging ours in at their place in jsonb key order (so jsonb's final key
    // sort finds the object already sorted), and note the shape of each
    // claim the schema check looks at.
    let ours = add.in_jsonb_order();
    let mut next_ours = 0;
    let mut shapes: [Option<claims::Shape>; claims::SCHEMA_KEYS.len()] =
        [None; claims::SCHEMA_KEYS.len()];
    let mut aal: Option<String> = None;
    let mut b = Builder::new();
    let push_ours = |b: &mut Builder, (k, v): &(&str, claims::AddedValue)| {
        b.key(k);
        match v {
            claims::AddedValue::Bool(x) => b.bool(*x),
            claims::AddedValue::Str(x) => b.string(x),
            claims::AddedValue::Null => b.null(),
        }
    };
    b.begin_object();
    b.key("claims");
    b.begin_object();
    claims_c.for_each_member(|k, v| {
        let key = jsonb::as_bytes(k).unwrap_or_default();
        if claims::is_our_key(key) {
            return;
        }
        while next_ours < ours.len()
            && claims::jsonb_key_order(ours[next_ours].0.as_bytes(), key).is_lt()
        {
            push_ours(&mut b, &ours[next_ours]);
            next_ours += 1;
        }
        if let Some(i) = claims::schema_index(key) {
            shapes[i] = Some(jsonb::shape(v));
            if i == 8 {
                aal = jsonb::as_str(v).map(str::to_owned);
            }
        }
        b.key_value(k);
        b.value(v);
    });
    for o in &ours[next_ours..] {
        push_ours(&mut b, o);
    }
    let shape = |k: &str| claims::schema_index(k.as_bytes()).and_then(|i| shapes[i]);
    if let Err(why) = claims::check_shapes(shape, aal.as_deref()) {
        return Ok(Err(claims::schema_error(why)));
    }
    b.end_object();
    b.end_object();
    Ok(Ok(b.finish()))
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;
    use pgrx::JsonB;
    use serde_json::{json, Value};

    fn hook(ev: Value) -> Value {
        Spi::get_one_with_args::<JsonB>(
            "select identity.custom_access_token_hook($1)",
            &[JsonB(ev).into()],
        )
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
        assert_eq!(
            svc["claims"]["application_id"],
            "00000000-0000-0000-0000-0000000000bb"
        );
        assert_eq!(
            svc["claims"]["organization_id"],
            "00000000-0000-0000-0000-00000000000a"
        );
        assert_eq!(svc["claims"]["role"], "authenticated");
        let sus = hook(event("00000000-0000-0000-0000-000000000003"));
        assert_eq!(sus["error"]["http_code"], 403);
        let none = hook(event("00000000-0000-0000-0000-000000000009"));
        assert_eq!(
            none["claims"]["is_service_user"], false,
            "user_metadata must be ignored"
        );
        assert_eq!(none["claims"]["user_role"], "user");
    }

    /// A value of a random JSON type, biased toward what the schema expects.
    fn random_value(rng: &mut rand::rngs::StdRng, key: &str) -> Value {
        use rand::Rng;
        match rng.gen_range(0..12) {
            0 => Value::Null,
            1 => json!(rng.gen_bool(0.5)),
            2 => json!(rng.gen_range(-5i64..2_000_000_000)),
            3 => json!(1.5),
            4 => json!(1.0),
            5 => json!("aal2"),
            6 => json!(["authenticated", "api"]),
            7 => json!([{"method": "otp", "timestamp": 1}, "password"]),
            8 => json!([{"timestamp": 1}]),
            9 => json!({"nested": {"deep": [1, {"x": "ü\"\n"}]}}),
            10 => json!(format!("{key}-välue")),
            _ => json!([]),
        }
    }

    fn valid_claims(uid: &str) -> serde_json::Map<String, Value> {
        event(uid)["claims"].as_object().unwrap().clone()
    }

    /// The jsonb-native SQL function and the serde reference implementation
    /// (`core::claims::build`) answer every event identically.
    #[pg_test]
    fn native_hook_equals_the_reference_implementation() {
        use crate::core::claims;
        use rand::{Rng, SeedableRng};
        Spi::run(
            "insert into identity.organizations (id, name) values ('00000000-0000-0000-0000-00000000000a', 'Acme');
             insert into identity.users (id, email, organization_id, user_role, is_service_user, application_id, status) values
             ('00000000-0000-0000-0000-000000000001', 'u@x.test', null, 'user', false, null, 'active'),
             ('00000000-0000-0000-0000-000000000002', 's@x.test', '00000000-0000-0000-0000-00000000000a', 'user', true,
              '00000000-0000-0000-0000-0000000000bb', 'active'),
             ('00000000-0000-0000-0000-000000000003', 'n@x.test', '00000000-0000-0000-0000-00000000000a', 'user', true, null, 'active'),
             ('00000000-0000-0000-0000-000000000004', 'a@x.test', '00000000-0000-0000-0000-00000000000a', 'admin', false, null, 'active'),
             ('00000000-0000-0000-0000-000000000005', 'd@x.test', null, 'user', false, null, 'disabled');",
        )
        .unwrap();
        let uids = [
            "00000000-0000-0000-0000-000000000001",
            "00000000-0000-0000-0000-000000000002",
            "00000000-0000-0000-0000-000000000003",
            "00000000-0000-0000-0000-000000000004",
            "00000000-0000-0000-0000-000000000005",
            "00000000-0000-0000-0000-0000000000ff",
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(42);
        let mut events = vec![
            json!(null),
            json!([1]),
            json!("x"),
            json!({}),
            json!({"user_id": uids[0]}),
        ];
        for i in 0..600 {
            let uid = uids[i % uids.len()];
            let mut c = valid_claims(uid);
            // Break or perturb up to three claims, schema keys and ours alike.
            for _ in 0..rng.gen_range(0..4) {
                let keys: Vec<&str> = claims::SCHEMA_KEYS
                    .iter()
                    .chain(claims::OUR_KEYS.iter())
                    .copied()
                    .collect();
                let k = keys[rng.gen_range(0..keys.len())];
                if rng.gen_bool(0.2) {
                    c.remove(k);
                } else {
                    c.insert(k.to_string(), random_value(&mut rng, k));
                }
            }
            let mut ev = json!({"user_id": uid.to_uppercase(), "claims": c});
            match rng.gen_range(0..6) {
                0 => {
                    ev["metadata"] = json!({"name": "customize-access-token"});
                }
                1 => {
                    ev["metadata"] = json!("x");
                }
                2 => {
                    ev["authentication_method"] = json!("password");
                }
                3 => {
                    ev["authentication_method"] = json!(7);
                }
                4 => {
                    ev["user_id"] = json!(uid.replace('-', ""));
                }
                _ => {}
            }
            events.push(ev);
        }
        // Numbers with and without a fraction where the schema wants an
        // integer (1.0 is one; numerics keep its scale, serde does not).
        for (k, v) in [
            ("exp", json!(1.5)),
            ("iat", json!(2.25)),
            ("exp", json!(1.0)),
            ("nbf", json!(-0.5)),
            ("amr", json!([{"method": "otp", "timestamp": 1.5}])),
            ("amr", json!([{"method": "otp", "timestamp": 100.0}])),
        ] {
            let mut c = valid_claims(uids[0]);
            c.insert(k.to_string(), v);
            events.push(json!({"user_id": uids[0], "claims": c}));
        }
        let mut mismatches = Vec::new();
        let mut stored = 0;
        for ev in events {
            // The bytes of the answer from the event's bytes and of the
            // answer through Postgres' jsonb functions are the same, and
            // jsonb_in would make them from the answer's text.
            let raw = crate::pg::jsonb::RawJsonb::parse_text(ev.to_string().as_bytes()).unwrap();
            // Both under a snapshot that sees the users inserted above (the
            // statement's own predates them; a call from SQL gets a new one).
            let both = crate::pg::probe::with_latest_snapshot(|s| {
                s.while_active(|| {
                    super::answer_stored(&raw).map(|fast| (fast, super::answer(&raw).unwrap()))
                })
            });
            if let Some(pair) = both {
                stored += 1;
                match pair {
                    (Ok(fast), Ok(reference)) => {
                        if fast.bytes() != reference.bytes() {
                            mismatches
                                .push(format!("event {ev}\n  bytes differ from Postgres' path"));
                        }
                        let again =
                            crate::pg::jsonb::RawJsonb::parse_text(fast.to_text().as_bytes())
                                .unwrap();
                        if again.bytes() != fast.bytes() {
                            mismatches.push(format!("event {ev}\n  bytes differ from jsonb_in's"));
                        }
                    }
                    (Err(a), Err(b)) if a == b => {}
                    (a, b) => mismatches.push(format!(
                        "event {ev}\n  stored {:?}\n  postgres {:?}",
                        a.map(|j| j.to_text()),
                        b.map(|j| j.to_text())
                    )),
                }
            }
            let got = Spi::get_one_with_args::<JsonB>(
                "select identity.custom_access_token_hook($1)",
                &[JsonB(ev.clone()).into()],
            )
            .unwrap()
            .map(|j| j.0);
            // JSON null is a jsonb value, not SQL NULL: "not an object".
            let len = ev.to_string().len();
            let want = match claims::parse_event(ev.clone(), len) {
                Err(o) => o,
                Ok(e) => {
                    let user = super::lookup(&e.user_id).unwrap();
                    claims::build(e, user.as_ref())
                }
            }
            .into_json();
            if got.as_ref() != Some(&want) {
                mismatches.push(format!(
                    "event {ev}\n  native    {got:?}\n  reference {want}"
                ));
            }
        }
        // Every object event takes the stored path (the first three are not
        // objects; they get their 400 there too).
        assert_eq!(stored, 611, "events answered from their bytes");
        assert!(
            mismatches.is_empty(),
            "{} mismatches, first: {}",
            mismatches.len(),
            mismatches[0]
        );
    }

    #[pg_test]
    fn hook_answers_bad_input_without_raising() {
        let v = Spi::get_one::<JsonB>("select identity.custom_access_token_hook(null)")
            .unwrap()
            .unwrap()
            .0;
        assert_eq!(v["error"]["http_code"], 400);
        let v = hook(json!([1]));
        assert_eq!(v["error"]["http_code"], 400);
        let v = hook(json!({"user_id": "x", "claims": {}}));
        assert_eq!(v["error"]["http_code"], 400);
    }
}
