-- src/api/credentials.rs: record_credential_usage
update identity.credentials set usage_total = usage_total + $2,
    exhausted_at = case when credit_limit is not null and usage_total + $2 >= credit_limit
    then coalesce(exhausted_at, now()) else exhausted_at end,
    updated_at = now()
    where id = $1 and (credit_limit is null or usage_total + $2 <= credit_limit) returning true
