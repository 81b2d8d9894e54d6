-- src/api/supabase.rs: the identity user of a new auth.users row, with the
-- flags of its raw_app_meta_data, and its link.
with u as (
    insert into identity.users
        (id, email, phone, organization_id, user_role, is_service_user, application_id, application_name)
    values ($1, $2, $3, $4, coalesce($5, 'user'), $6, $7, $8)
    returning id
)
insert into identity.supabase_auth_users (user_id) select id from u
returning true
