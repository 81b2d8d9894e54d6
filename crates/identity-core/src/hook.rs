//! The custom access token hook over the event's stored jsonb bytes: the
//! decisions of `claims` (event checks, the user's additions, Supabase's
//! schema), read from and written to Postgres' binary jsonb by
//! `jsonb::stored`, so the glue makes no jsonb FFI call at all.
//!
//! A `#[pg_test]` holds this path to the serde reference (`claims::build`)
//! over hundreds of generated events, and its bytes to jsonb_in's.

use crate::claims::{self, AddedValue, HookOutcome, Shape, UserRow};
use crate::ids::UserId;
use crate::jsonb::stored::{self, Container, Value};

/// The hook's answer to `event` (a whole jsonb varlena): `Some(Ok(bytes))`
/// the `{"claims": ...}` answer as a jsonb varlena, `Some(Err(outcome))` an
/// error answer, `None` when the bytes are not a jsonb this reader accepts
/// (the caller then answers through Postgres' own jsonb functions).
/// `user` looks up identity.users (None: no row).
pub fn answer(
    event: &[u8],
    user: impl FnOnce(UserId) -> Option<UserRow>,
) -> Option<Result<Vec<u8>, HookOutcome>> {
    if let Err(o) = claims::check_size(event.len()) {
        return Some(Err(o));
    }
    let root = Container::root(event)?;
    if !root.is_object() {
        return Some(Err(HookOutcome::bad("event must be a JSON object")));
    }
    let member = |k: &[u8]| root.get(k);
    let user_id_v = member(b"user_id");
    let claims_v = member(b"claims");
    let checked = claims::check_event(
        user_id_v.map(|v| (shape(v), as_str(v))),
        member(b"metadata").map(shape),
        member(b"authentication_method").map(shape),
        claims_v.map(shape),
    );
    let user_id = match checked {
        Ok(u) => u,
        Err(o) => return Some(Err(o)),
    };
    let Some(Value::Container(claims_c)) = claims_v else {
        unreachable!("check_event accepted claims only as an object")
    };
    let user = user(UserId(
        claims::uuid_bytes(&user_id).expect("canonical uuid"),
    ));
    let add = match claims::additions(user.as_ref()) {
        Ok(a) => a,
        Err(o) => return Some(Err(o)),
    };
    // One pass over the claims, as the glue's Postgres path: every member
    // but ours, ours merged in at their place in key order, and the shape
    // of each claim the schema check looks at.
    let ours = add.in_jsonb_order();
    let ours: Vec<(&[u8], Value)> = ours
        .iter()
        .map(|(k, v)| {
            (
                k.as_bytes(),
                match v {
                    AddedValue::Bool(b) => Value::Bool(*b),
                    AddedValue::Str(s) => Value::String(s.as_bytes()),
                    AddedValue::Null => Value::Null,
                },
            )
        })
        .collect();
    let mut next = 0;
    let mut shapes: [Option<Shape>; claims::SCHEMA_KEYS.len()] = [None; claims::SCHEMA_KEYS.len()];
    let mut aal: Option<&str> = None;
    let mut members: Vec<(&[u8], Value)> = Vec::with_capacity(claims_c.len() + ours.len());
    claims_c.for_each_member(|k, v| {
        if claims::is_our_key(k) {
            return;
        }
        while next < ours.len() && claims::jsonb_key_order(ours[next].0, k).is_lt() {
            members.push(ours[next]);
            next += 1;
        }
        if let Some(i) = claims::schema_index(k) {
            shapes[i] = Some(shape(v));
            if i == 8 {
                aal = as_str(v);
            }
        }
        members.push((k, v));
    })?;
    members.extend_from_slice(&ours[next..]);
    let shape_of = |k: &str| claims::schema_index(k.as_bytes()).and_then(|i| shapes[i]);
    if let Err(why) = claims::check_shapes(shape_of, aal) {
        return Some(Err(claims::schema_error(why)));
    }
    stored::wrapped_object(b"claims", &members, event.len()).map(Ok)
}

fn as_str(v: Value<'_>) -> Option<&str> {
    match v {
        Value::String(b) => std::str::from_utf8(b).ok(),
        _ => None,
    }
}

/// `Shape` of a stored value, as the glue's Postgres path judges one.
fn shape(v: Value) -> Shape {
    match v {
        Value::Null => Shape::Null,
        Value::Bool(_) => Shape::Bool,
        Value::String(_) => Shape::String,
        Value::Numeric(b) => integer_or_number(b),
        Value::Container(c) if c.is_object() => Shape::Object,
        Value::Container(c) => array_shape(c),
        Value::Array(elems) => {
            let mut a = ArrayShape::default();
            elems.iter().for_each(|e| a.add(*e));
            a.shape()
        }
    }
}

fn integer_or_number(b: &[u8]) -> Shape {
    if stored::numeric_is_integer(b) == Some(true) {
        Shape::Integer
    } else {
        Shape::Number
    }
}

/// What the schema asks of an array's elements, gathered one by one.
struct ArrayShape {
    strings: bool,
    amr: bool,
}

impl Default for ArrayShape {
    fn default() -> Self {
        ArrayShape {
            strings: true,
            amr: true,
        }
    }
}

impl ArrayShape {
    fn add(&mut self, e: Value) {
        if let Value::String(_) = e {
            return;
        }
        self.strings = false;
        self.amr &= match e {
            Value::Container(o) if o.is_object() => {
                matches!(o.get(b"method"), Some(Value::String(_)))
                    && match o.get(b"timestamp") {
                        None => true,
                        Some(Value::Numeric(n)) => integer_or_number(n) == Shape::Integer,
                        Some(_) => false,
                    }
            }
            _ => false,
        };
    }

    fn shape(self) -> Shape {
        Shape::Array {
            strings: self.strings,
            amr: self.amr,
        }
    }
}

fn array_shape(c: Container) -> Shape {
    let mut a = ArrayShape::default();
    if c.for_each_element(|e| a.add(e)).is_none() {
        // Unreadable elements: no array shape the schema accepts.
        return Shape::Array {
            strings: false,
            amr: false,
        };
    }
    a.shape()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::{UserRole, UserStatus};
    use crate::jsonb::encode_object;
    use serde_json::{json, Value as Json};

    fn event(uid: &str, claims: Json) -> Json {
        json!({"user_id": uid, "authentication_method": "password", "claims": claims})
    }

    fn good_claims(uid: &str) -> Json {
        json!({"aud": "authenticated", "exp": 2000000000, "iat": 1999996400, "sub": uid,
               "email": "a@example.com", "phone": "", "role": "authenticated", "aal": "aal1",
               "amr": [{"method": "password", "timestamp": 1999996400}],
               "session_id": "4b938a09-5372-4177-a314-cfa292099ea2", "is_anonymous": false,
               "user_metadata": {"is_service_user": true}, "user_role": "admin"})
    }

    const UID: &str = "00000000-0000-0000-0000-000000000002";

    fn service_user() -> UserRow {
        UserRow {
            is_service_user: true,
            user_role: UserRole::parse("user"),
            organization_id: Some("00000000-0000-0000-0000-00000000000a".into()),
            application_id: None,
            status: UserStatus::parse("active"),
        }
    }

    /// The stored path's answer, and the serde reference's, as jsonb bytes
    /// made by the encoder (itself held to jsonb_in by a #[pg_test]).
    fn both(ev: &Json, user: Option<UserRow>) -> (Result<Vec<u8>, HookOutcome>, Json) {
        let bytes = encode_object(ev.to_string().as_bytes()).expect("encodable");
        let got = answer(&bytes, |id| {
            assert_eq!(id.0, claims::uuid_bytes(UID).unwrap());
            user.clone()
        })
        .expect("readable");
        let want = match claims::parse_event(ev.clone(), ev.to_string().len()) {
            Err(o) => o,
            Ok(e) => claims::build(e, user.as_ref()),
        }
        .into_json();
        (got, want)
    }

    #[test]
    fn answers_as_the_reference_does_byte_for_byte() {
        let (got, want) = both(&event(UID, good_claims(UID)), Some(service_user()));
        let want_bytes = encode_object(want.to_string().as_bytes()).unwrap();
        assert_eq!(got.unwrap(), want_bytes);
        assert_eq!(want["claims"]["is_service_user"], true);
        assert_eq!(want["claims"]["user_role"], "user");
        assert_eq!(want["claims"]["application_id"], Json::Null);
        // No row: the defaults, and ours are still overwritten.
        let (got, want) = both(&event(UID, good_claims(UID)), None);
        assert_eq!(
            got.unwrap(),
            encode_object(want.to_string().as_bytes()).unwrap()
        );
    }

    #[test]
    fn refusals_are_the_reference_refusals() {
        let mut suspended = service_user();
        suspended.status = UserStatus::parse("suspended");
        let (got, want) = both(&event(UID, good_claims(UID)), Some(suspended));
        assert_eq!(got.unwrap_err().into_json(), want);
        for (k, v) in [
            ("exp", json!("soon")),
            ("aud", json!([1])),
            ("amr", json!([{"timestamp": 1}])),
            ("amr", json!([{"method": "otp", "timestamp": "x"}])),
            ("aal", json!("aal9")),
        ] {
            let mut c = good_claims(UID);
            c[k] = v;
            let (got, want) = both(&event(UID, c), None);
            assert_eq!(got.unwrap_err().into_json(), want, "{k}");
        }
        for ev in [
            json!({"claims": {}}),
            json!({"user_id": 5, "claims": {}}),
            json!({"user_id": "nope", "claims": {}}),
            json!({"user_id": UID, "claims": []}),
            json!({"user_id": UID, "metadata": "x", "claims": {}}),
            json!({"user_id": UID}),
        ] {
            let bytes = encode_object(ev.to_string().as_bytes()).unwrap();
            let got = answer(&bytes, |_| None).unwrap().unwrap_err();
            let want = match claims::parse_event(ev.clone(), ev.to_string().len()) {
                Err(o) => o,
                Ok(_) => panic!("{ev} should be refused"),
            };
            assert_eq!(got, want, "{ev}");
        }
    }

    /// A numeric varlena of base-10000 `digits` and `weight` (short form).
    fn numeric(digits: &[i16], weight: u16) -> Vec<u8> {
        let mut v = ((6 + 2 * digits.len() as u32) << 2).to_ne_bytes().to_vec();
        v.extend_from_slice(&(0x8000u16 | weight).to_ne_bytes());
        for d in digits {
            v.extend_from_slice(&d.to_ne_bytes());
        }
        v
    }

    #[test]
    fn numbers_with_a_fraction_are_not_integers() {
        // 1.5, and 1 with a zero fractional digit (1.0 counts as integer).
        assert_eq!(
            shape(Value::Numeric(&numeric(&[1, 5000], 0))),
            Shape::Number
        );
        assert_eq!(shape(Value::Numeric(&numeric(&[1, 0], 0))), Shape::Integer);
        assert_eq!(shape(Value::Numeric(&numeric(&[1], 0))), Shape::Integer);
    }

    #[test]
    fn not_an_object_and_unreadable_bytes() {
        // A raw scalar and an array: stored as (scalar) arrays.
        let mut scalar = super::super::jsonb::encode_object(b"{\"a\": 1}").unwrap();
        // Turn the root into an array header of the same size: not an object.
        let h = u32::from_ne_bytes(scalar[4..8].try_into().unwrap());
        scalar[4..8].copy_from_slice(&((h & 0x0FFF_FFFF) | 0x4000_0000).to_ne_bytes());
        assert_eq!(
            answer(&scalar, |_| None).unwrap().unwrap_err(),
            HookOutcome::bad("event must be a JSON object")
        );
        assert!(answer(&[1, 2, 3], |_| None).is_none());
    }
}
