//! Every request runs as its signed-in caller, in one transaction of its own
//! (the pooling rules of the project: nothing outlives the transaction that
//! authorised it, so a pooled connection, or a server connection shared
//! through pgbouncer in transaction mode, never carries one caller's
//! identity to the next):
//!
//! 1. `BEGIN`;
//! 2. `SET LOCAL ROLE` to the role the console's login role may become
//!    (`authenticated`, which holds the extension's `user` level; the login
//!    role itself holds nothing);
//! 3. `identity.authenticate(token)`, which verifies the token and pins its
//!    claims for this transaction only;
//! 4. the extension's functions, and reads of its tables under their RLS
//!    policies, as that caller;
//! 5. `COMMIT` (or, on any error, rollback when the transaction is dropped).
//!
//! The console never connects as anything that could bypass the extension.

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Transaction};
use serde::de::DeserializeOwned;
use tokio_postgres::types::ToSql;
use tokio_postgres::NoTls;

/// What went wrong, as the console shows it: the extension's own message
/// and hint (its errors never carry a secret), or a generic sentence for
/// everything that is not the extension speaking. Never a stack trace.
#[derive(Debug, Clone)]
pub enum DbError {
    /// The token no longer authenticates (expired, revoked, suspended user).
    SignedOut(String),
    /// An error the extension (or Postgres) raised: SQLSTATE, message, hint.
    Refused {
        code: String,
        message: String,
        hint: Option<String>,
    },
    /// The database cannot be reached, or answered something unexpected.
    Unavailable,
}

impl DbError {
    pub fn message(&self) -> String {
        match self {
            DbError::SignedOut(m) => m.clone(),
            DbError::Refused { message, .. } => message.clone(),
            DbError::Unavailable => "the database is unavailable; try again".into(),
        }
    }
    pub fn hint(&self) -> Option<String> {
        match self {
            DbError::Refused { hint, .. } => hint.clone(),
            _ => None,
        }
    }
    pub fn code(&self) -> Option<&str> {
        match self {
            DbError::Refused { code, .. } => Some(code),
            _ => None,
        }
    }
}

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) => DbError::Refused {
                code: db.code().code().to_string(),
                message: db.message().to_string(),
                hint: db.hint().map(str::to_string),
            },
            None => {
                // Not the server speaking (connection lost, a type the
                // console did not expect): logged without parameters, which
                // tokio-postgres never puts in its errors.
                eprintln!("console: database error: {e}");
                DbError::Unavailable
            }
        }
    }
}

impl From<deadpool_postgres::PoolError> for DbError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        eprintln!("console: pool: {e}");
        DbError::Unavailable
    }
}

pub type DbResult<T> = Result<T, DbError>;

pub fn pool(conninfo: &str, size: usize) -> Result<Pool, String> {
    let config: tokio_postgres::Config = conninfo.parse().map_err(|e| format!("{e}"))?;
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            // A recycled connection is checked with a round trip; nothing
            // session-level is ever set on it (only SET LOCAL).
            recycling_method: RecyclingMethod::Verified,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .build()
        .map_err(|e| format!("{e}"))
}

/// `role` must be a plain identifier (checked at start-up); it is quoted.
pub fn checked_role(role: &str) -> Result<String, String> {
    let ok = !role.is_empty()
        && role.len() <= 63
        && role
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !role.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(format!("\"{role}\""))
    } else {
        Err(format!(
            "role {role:?} is not a plain lower-case identifier"
        ))
    }
}

/// Who the signed-in caller is, read in their own transaction through RLS
/// (their own row of identity.users, and their organization).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Me {
    pub email: String,
    pub user_role: String,
    pub organization_id: Option<uuid::Uuid>,
    pub organization_name: Option<String>,
}

impl Me {
    pub fn is_org_admin(&self) -> bool {
        self.user_role == "admin" && self.organization_id.is_some()
    }
}

/// One request's transaction, as the caller.
pub struct Caller<'a> {
    pub tx: Transaction<'a>,
    pub me: Me,
}

/// Steps 1 to 3 above, then who the caller is.
pub async fn begin<'a>(client: &'a mut Object, role: &str, token: &str) -> DbResult<Caller<'a>> {
    let tx = client.transaction().await?;
    // The role is a checked, quoted identifier from the console's own
    // configuration, never from a request.
    tx.batch_execute(&format!(
        "set local role {role}; set local timezone = 'UTC'; set local statement_timeout = '10s'"
    ))
    .await?;
    let claims: Option<serde_json::Value> = tx
        .query_one("select identity.authenticate($1)::jsonb", &[&token])
        .await?
        .get(0);
    if claims.is_none() {
        return Err(DbError::SignedOut(
            "your token no longer authenticates (expired, revoked, or the user is suspended); sign in again"
                .into(),
        ));
    }
    let me: Option<Me> = json_one(&tx, include_str!("../sql/me.sql"), &[]).await?;
    let me = me.ok_or_else(|| {
        DbError::SignedOut("the token names no user this console can see; sign in again".into())
    })?;
    Ok(Caller { tx, me })
}

/// A query whose one column is jsonb (or NULL), decoded.
pub async fn json_one<T: DeserializeOwned>(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> DbResult<Option<T>> {
    let row = tx.query_opt(sql, params).await?;
    let Some(row) = row else { return Ok(None) };
    let value: Option<serde_json::Value> = row.get(0);
    match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v).map(Some).map_err(|e| {
            eprintln!("console: unexpected answer shape: {e}");
            DbError::Unavailable
        }),
    }
}

/// A query whose one column is jsonb, decoded, with an empty default.
pub async fn json_list<T: DeserializeOwned>(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> DbResult<Vec<T>> {
    Ok(json_one::<Vec<T>>(tx, sql, params)
        .await?
        .unwrap_or_default())
}
