-- src/api/issuers.rs: a user.updated webhook: the profile fields the event
-- carries (NULL: unchanged for the email, cleared for the names, as Clerk
-- sends the whole user). Returns the fields that changed.
with old as (
    select u.email, u.first_name, u.last_name from identity.users u where u.id = $1 for update
), upd as (
    update identity.users u
    set email = coalesce($2, u.email), first_name = $3, last_name = $4, updated_at = pg_catalog.now()
    from old
    where u.id = $1
      and (old.email is distinct from coalesce($2, old.email)
           or old.first_name is distinct from $3 or old.last_name is distinct from $4)
    returning old.email is distinct from u.email as email,
              old.first_name is distinct from u.first_name as first_name,
              old.last_name is distinct from u.last_name as last_name
)
select coalesce((select pg_catalog.jsonb_build_object('email', email, 'first_name', first_name, 'last_name', last_name) from upd), '{}')
