-- src/api/flags.rs: subscription
select jsonb_build_object('plan', plan, 'status', status, 'trial_ends_at', trial_ends_at,
    'current_period_end', current_period_end,
    'trial_end', extract(epoch from trial_ends_at)::float8,
    'period_end', extract(epoch from current_period_end)::float8,
    'now', extract(epoch from now())::float8)
    from identity.subscriptions where user_id = $1
