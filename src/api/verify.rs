//! verify_jwt and try_verify_jwt (API.md 3): our tokens (`api::jwt`'s
//! verification), and, on its refusal path only, Supabase Auth's own
//! tokens through a registered issuer with `subject_is_user_id`
//! (`api::issuers`, API.md 13). Apart from `api::jwt` because the issuers
//! (which provision users, who get tokens) sit above it.

use crate::api::jwt::{refuse, verify_jsonb};
use crate::core::error::IdentityError;
use crate::core::jwt;
use crate::pg::error::PgResult;
use crate::pg::error::{Pg, PgError};
use crate::pg::jsonb::RawJsonb;
use pgrx::prelude::*;
use serde_json::Value;

/// The verified claims, or 28000 with the reason in DETAIL. NULL token: NULL.
#[pg_extern(schema = "identity", stable, parallel_safe)]
fn verify_jwt(
    token: Option<&str>,
    audience: default!(Option<&str>, "NULL"),
) -> PgResult<Option<RawJsonb>> {
    let Some(token) = token else { return Ok(None) };
    let (checks, claims) = verify_jsonb(token, audience).pg()?;
    match claims {
        Some(c) => Ok(Some(c.jsonb)),
        None => match external_user_id_token(token, audience)? {
            Some(Ok(c)) => Ok(Some(c)),
            Some(Err(e)) => Err(e.pg_error()),
            None => Err(refuse(&checks).pg_error()),
        },
    }
}

/// A token our keys refused that a registered issuer with
/// `subject_is_user_id` (Supabase Auth's own tokens) vouches for
/// (`issuers::verify_user_id_token`); None: not such a token, our refusal
/// stands. Only on the refusal path: our own tokens never pay for it.
fn external_user_id_token(
    token: &str,
    audience: Option<&str>,
) -> PgResult<Option<Result<RawJsonb, IdentityError>>> {
    Ok(
        match crate::api::issuers::verify_user_id_token(token, audience)? {
            Some(Ok(claims)) => {
                let text = serde_json::to_vec(&Value::Object(claims)).expect("serialisable");
                Some(
                    RawJsonb::parse_text(&text)
                        .map_err(|_| IdentityError::unauthenticated("JWT is malformed")),
                )
            }
            Some(Err(e)) => Some(Err(e)),
            None => None,
        },
    )
}

/// One row of try_verify_jwt: valid, claims, reason, and the refusal's
/// reason code (NULL when valid).
type TryRow = (bool, Option<RawJsonb>, Option<String>, Option<&'static str>);

fn try_verify_row(token: Option<&str>, audience: Option<&str>) -> PgResult<TryRow> {
    use crate::core::reason::Reason;
    Ok(match token {
        None => (
            false,
            None,
            Some("token is null".to_string()),
            Some(Reason::MissingToken.as_str()),
        ),
        Some(t) => match verify_jsonb(t, audience).pg()? {
            (_, Some(c)) => (true, Some(c.jsonb), None, None),
            (checks, None) => match external_user_id_token(t, audience)? {
                Some(Ok(c)) => (true, Some(c), None, None),
                Some(Err(e)) => (
                    false,
                    None,
                    Some(e.detail.clone().unwrap_or_else(|| e.message.to_string())),
                    Some(e.code().as_str()),
                ),
                None => {
                    let r = jwt::first_refusal(&checks);
                    let code = r.as_ref().map(|r| r.code.as_str());
                    (false, None, r.map(|r| r.reason), code)
                }
            },
        },
    })
}

/// verify_jwt without the exception: one row (valid, claims, reason, code:
/// the refusal's reason code, NULL when valid). Its symbol is new in 0.2.0
/// (the SQL name is 0.1.0's): 0.1.0's three-column definition keeps calling
/// `try_verify_jwt_wrapper` below until ALTER EXTENSION UPDATE.
#[pg_extern(schema = "identity", name = "try_verify_jwt", stable, parallel_safe)]
fn try_verify_jwt_coded(
    token: Option<&str>,
    audience: default!(Option<&str>, "NULL"),
) -> Result<
    TableIterator<
        'static,
        (
            name!(valid, bool),
            name!(claims, Option<RawJsonb>),
            name!(reason, Option<String>),
            name!(code, Option<&'static str>),
        ),
    >,
    crate::pg::error::ErrorReport,
> {
    Ok(TableIterator::once(try_verify_row(token, audience)?))
}

/// 0.1.0's try_verify_jwt (valid, claims, reason), for a database whose
/// library is upgraded before its SQL (README "Upgrades"); no SQL of its own.
#[pg_extern(sql = false, stable, parallel_safe)]
fn try_verify_jwt(
    token: Option<&str>,
    audience: default!(Option<&str>, "NULL"),
) -> Result<
    TableIterator<
        'static,
        (
            name!(valid, bool),
            name!(claims, Option<RawJsonb>),
            name!(reason, Option<String>),
        ),
    >,
    crate::pg::error::ErrorReport,
> {
    let (valid, claims, reason, _) = try_verify_row(token, audience)?;
    Ok(TableIterator::once((valid, claims, reason)))
}
