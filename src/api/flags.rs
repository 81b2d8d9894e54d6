//! Section 9 of API.md: feature flags (rollout by a stable hash, per-user
//! overrides) and subscription status. Flags are set by system only; a
//! user reads their own answers, an org admin those of their organization's
//! users. Evaluation and status are `core::users`.

use crate::api::actor;
use crate::api::actor::relation_to;
use crate::core::authz::{self, Subject};
use crate::core::claims::uuid_text;
use crate::core::error::{required, IdentityError};
use crate::core::ids::UserId;
use crate::core::users as rules;
use crate::pg::error::PgResult;
use crate::pg::error::{Pg, PgError};
use crate::pg::ids::{FromUuid, ToUuid};
use crate::pg::spi;
use pgrx::prelude::*;
use pgrx::{JsonB, Uuid};
use serde_json::{json, Map, Value};

/// Every flag's answer for `user` (None: without a user, only 100% rollouts).
pub fn evaluate(user: Option<UserId>) -> PgResult<Map<String, Value>> {
    let rows = spi::privileged(|| {
        spi::column::<JsonB>(
            include_str!("../../sql/queries/flags_evaluate.sql"),
            &[user.map(|u| u.uuid()).into()],
        )
    })?;
    let mut out = Map::new();
    for JsonB(r) in rows {
        let key = r[0].as_str().unwrap_or_default().to_owned();
        let on = rules::flag_enabled(
            r[1].as_bool().unwrap_or(false),
            r[2].as_i64().unwrap_or(0) as i32,
            &key,
            user.as_ref().map(UserId::bytes),
            r[3].as_bool(),
        );
        out.insert(key, Value::Bool(on));
    }
    Ok(out)
}

/// subscription_status's answer for `user`.
pub fn subscription(user: UserId) -> PgResult<Value> {
    let row = spi::privileged(|| {
        spi::one::<JsonB>(
            include_str!("../../sql/queries/flags_subscription.sql"),
            &[user.uuid().into()],
        )
    })?;
    let Some(JsonB(r)) = row else {
        return Ok(
            json!({"status": "none", "plan": null, "trial_ends_at": null, "current_period_end": null}),
        );
    };
    let secs = |k: &str| r[k].as_f64().map(|f| f.floor() as i64);
    let status = rules::subscription_status(
        r["status"].as_str().unwrap_or_default(),
        secs("trial_end"),
        secs("period_end"),
        secs("now").unwrap_or(0),
    );
    Ok(
        json!({"status": status, "plan": r["plan"], "trial_ends_at": r["trial_ends_at"], "current_period_end": r["current_period_end"]}),
    )
}

/// The user a read is about: `user_id`, or the actor's own. None for system
/// without a user_id.
fn subject_user(s: &Subject, user_id: Option<Uuid>) -> PgResult<Option<UserId>> {
    // A user's flags and subscription are theirs as their row is: a scoped
    // token needs users:read, as the table policies ask (checked before the
    // lookup, so the answer is the same for any id).
    authz::require_scope(s, "users:read").pg()?;
    let Some(id) = user_id.map(|u| u.user_id()).or(s.id()) else {
        return Ok(None);
    };
    let (rel, _) = relation_to(s, id)?;
    authz::may_read_user(rel).pg()?;
    Ok(Some(id))
}

/// Creates or changes a flag (system only). Audited.
#[pg_extern(schema = "identity", volatile)]
fn set_feature_flag(
    key: Option<&str>,
    enabled: Option<bool>,
    rollout_percent: default!(Option<i32>, "100"),
    description: default!(Option<&str>, "NULL"),
) -> PgResult<()> {
    let s = actor::subject()?;
    authz::require_system(&s, "only system may set feature flags").pg()?;
    let key = required(key, "key is required").pg()?;
    rules::check_flag_key(key).pg()?;
    let enabled = required(enabled, "enabled is required").pg()?;
    let pct = rollout_percent.unwrap_or(100);
    if !(0..=100).contains(&pct) {
        return Err(IdentityError::invalid("rollout_percent must be 0 to 100").pg_error());
    }
    rules::check_name(
        description,
        "description must be 1 to 1000 characters",
        1000,
    )
    .pg()?;
    spi::privileged(|| {
        spi::run(
            include_str!("../../sql/queries/flags_set_feature_flag.sql"),
            &[key.into(), enabled.into(), pct.into(), description.into()],
        )?;
        actor::audit(
            &s,
            None,
            "feature_flag.set",
            "feature_flag",
            Some(key),
            json!({"enabled": enabled, "rollout_percent": pct}),
        )
    })
}

/// Forces a flag on or off for one user (NULL `enabled` removes the
/// override). System only. Audited.
#[pg_extern(schema = "identity", volatile)]
fn set_feature_flag_override(
    key: Option<&str>,
    user_id: Option<Uuid>,
    enabled: Option<bool>,
) -> PgResult<()> {
    let s = actor::subject()?;
    authz::require_system(&s, "only system may set feature flag overrides").pg()?;
    let key = required(key, "key is required").pg()?;
    rules::check_flag_key(key).pg()?;
    let user = required(user_id, "user_id is required").pg()?;
    relation_to(&s, user.user_id())?;
    spi::privileged(|| {
        if spi::one::<bool>(
            "select true from identity.feature_flags where key = $1",
            &[key.into()],
        )?
        .is_none()
        {
            return Err(authz::not_found("feature flag does not exist")
                .hint("create it with identity.set_feature_flag")
                .pg_error());
        }
        match enabled {
            Some(on) => spi::run(
                "insert into identity.feature_flag_overrides (key, user_id, enabled) values ($1, $2, $3) \
                 on conflict (key, user_id) do update set enabled = excluded.enabled",
                &[key.into(), user.into(), on.into()],
            )?,
            None => spi::run(
                "delete from identity.feature_flag_overrides where key = $1 and user_id = $2",
                &[key.into(), user.into()],
            )?,
        }
        actor::audit(
            &s,
            None,
            "feature_flag.override_set",
            "feature_flag",
            Some(key),
            json!({"user_id": uuid_text(user.as_bytes()), "enabled": enabled}),
        )
    })
}

/// `{key: bool}` for the actor (or `user_id`, if the actor may see them).
/// The answer for a user never flaps: rollout is a hash of key and user.
#[pg_extern(schema = "identity", stable)]
fn feature_flags(user_id: default!(Option<Uuid>, "NULL")) -> PgResult<JsonB> {
    let s = actor::subject()?;
    let user = subject_user(&s, user_id)?;
    Ok(JsonB(Value::Object(evaluate(user)?)))
}

/// `{status, plan, trial_ends_at, current_period_end}` for the actor (or
/// `user_id`); status is trialing, active, expired, canceled, or none.
#[pg_extern(schema = "identity", stable)]
fn subscription_status(user_id: default!(Option<Uuid>, "NULL")) -> PgResult<JsonB> {
    let s = actor::subject()?;
    let user = subject_user(&s, user_id)?
        .ok_or_else(|| {
            IdentityError::invalid(
                "user_id is required when there is no user in the request claims",
            )
        })
        .pg()?;
    subscription(user).map(JsonB)
}
