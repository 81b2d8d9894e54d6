-- src/api/flags.rs: evaluate
select jsonb_build_array(f.key, f.enabled, f.rollout_percent,
    (select o.enabled from identity.feature_flag_overrides o where o.key = f.key and o.user_id = $1))
    from identity.feature_flags f order by f.key
