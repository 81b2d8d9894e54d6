-- delete_user: lock every row that deleting user $1 removes, without
-- waiting (SKIP LOCKED), and say whether all of them were free. A row that
-- another transaction holds (the user's own open transaction after a
-- credential change or an API token's last_used_at, an insert's foreign-key
-- share lock on the user's row) is skipped, and the answer is false: the
-- delete would wait for that transaction, so delete_user disables the user
-- at once instead and leaves the rows to the next delete_user call.
select pg_catalog.bool_and(free) from (
    select (select pg_catalog.count(*) from identity.users where id operator(pg_catalog.=) $1)
         operator(pg_catalog.=) (select pg_catalog.count(*) from (
             select 1 from identity.users where id operator(pg_catalog.=) $1 for update skip locked) l) as free
    union all
    select (select pg_catalog.count(*) from identity.api_tokens where user_id operator(pg_catalog.=) $1)
         operator(pg_catalog.=) (select pg_catalog.count(*) from (
             select 1 from identity.api_tokens where user_id operator(pg_catalog.=) $1 for update skip locked) l)
    union all
    select (select pg_catalog.count(*) from identity.credentials where user_id operator(pg_catalog.=) $1)
         operator(pg_catalog.=) (select pg_catalog.count(*) from (
             select 1 from identity.credentials where user_id operator(pg_catalog.=) $1 for update skip locked) l)
    union all
    select (select pg_catalog.count(*) from identity.subscriptions where user_id operator(pg_catalog.=) $1)
         operator(pg_catalog.=) (select pg_catalog.count(*) from (
             select 1 from identity.subscriptions where user_id operator(pg_catalog.=) $1 for update skip locked) l)
    union all
    select (select pg_catalog.count(*) from identity.feature_flag_overrides where user_id operator(pg_catalog.=) $1)
         operator(pg_catalog.=) (select pg_catalog.count(*) from (
             select 1 from identity.feature_flag_overrides where user_id operator(pg_catalog.=) $1 for update skip locked) l)
) t
