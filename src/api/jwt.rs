//! Section 3 of API.md: JWTs.

use crate::core::jwt;
use crate::error::PgResult;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{json, Value};

/// `{header, payload}` of a token, without verifying anything: for debugging.
/// NULL in, NULL out; malformed or oversized input is 22023.
#[pg_extern(schema = "identity", immutable, parallel_safe, strict)]
fn decode_jwt(token: &str) -> PgResult<JsonB> {
    let d = jwt::decode(token)?;
    Ok(JsonB(json!({ "header": Value::Object(d.header), "payload": Value::Object(d.payload) })))
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;
    use pgrx::JsonB;

    const HS256: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.\
        eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.\
        SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";

    #[pg_test]
    fn decode_jwt_returns_header_and_payload() {
        let v = Spi::get_one_with_args::<JsonB>("select identity.decode_jwt($1)", &[HS256.into()])
            .unwrap()
            .unwrap()
            .0;
        assert_eq!(v["header"]["alg"], "HS256");
        assert_eq!(v["payload"]["sub"], "1234567890");
        assert_eq!(v["payload"]["iat"], 1516239022);
    }

    #[pg_test]
    fn decode_jwt_null_is_null() {
        let v = Spi::get_one::<JsonB>("select identity.decode_jwt(null)").unwrap();
        assert!(v.is_none());
    }

    #[pg_test(error = "token is malformed")]
    fn decode_jwt_two_parts_is_an_error() {
        Spi::run("select identity.decode_jwt('abc.def')").unwrap();
    }
}
