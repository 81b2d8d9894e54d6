-- src/api/issuers.rs: the user an issuer's ($2) subject $1 links to through
-- users.external_id (match_external_id): a user of that issuer, or one of
-- no issuer (provision_user's), which becomes the issuer's; never another
-- issuer's user.
with m as (
    select u.id, u.external_issuer is null as unclaimed
    from identity.users u
    where u.external_id = $1 and (u.external_issuer = $2 or u.external_issuer is null)
    for update
), claimed as (
    update identity.users u set external_issuer = $2
    from m where u.id = m.id and m.unclaimed
    returning u.id
)
select m.id from m
