-- src/api/credentials.rs: credential_usage
select jsonb_build_object(
    'calls', (select count(*) from identity.credential_usage where credential_id = c.id),
    'total_amount', c.usage_total,
    'total_tokens', (select coalesce(sum(tokens), 0) from identity.credential_usage where credential_id = c.id),
    'remaining', greatest(c.credit_limit - c.usage_total, 0),
    'recent', coalesce((select jsonb_agg(jsonb_build_object('at', r.at, 'amount', r.amount, 'tokens', r.tokens)
    order by r.at desc, r.id desc)
    from (select * from identity.credential_usage where credential_id = c.id
    order by at desc, id desc limit 20) r), '[]'))
    from identity.credentials c where c.id = $1
