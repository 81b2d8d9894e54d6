-- src/api/flags.rs: set_feature_flag
insert into identity.feature_flags (key, enabled, rollout_percent, description) values ($1, $2, $3, $4)
    on conflict (key) do update set enabled = excluded.enabled, rollout_percent = excluded.rollout_percent,
    description = coalesce(excluded.description, identity.feature_flags.description), updated_at = now()
