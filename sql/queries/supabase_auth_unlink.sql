-- src/api/supabase.rs, unlink_supabase_auth.
drop trigger if exists identity_follow_insert on auth.users;
drop trigger if exists identity_follow_update on auth.users;
drop trigger if exists identity_follow_delete on auth.users;
