-- src/api/users.rs: delete_user
select jsonb_build_object(
    'api_tokens', (select count(*) from identity.api_tokens where user_id = $1),
    'credentials', (select count(*) from identity.credentials where user_id = $1))
