-- src/api/supabase.rs, link_supabase_auth: identity follows auth.users.
-- A new auth user is read when the transaction that inserted it commits
-- (deferred: Supabase's admin API writes app_metadata by an UPDATE after
-- the INSERT); changes and deletes are followed at once, in the statement
-- that makes them (an email confirmed late makes the user then). Only the
-- columns identity follows wake the update trigger (banned_until: also any
-- row whose ban may have run out).
drop trigger if exists identity_follow_insert on auth.users;
drop trigger if exists identity_follow_update on auth.users;
drop trigger if exists identity_follow_delete on auth.users;
create constraint trigger identity_follow_insert after insert on auth.users
    deferrable initially deferred
    for each row execute function identity.supabase_auth_follow();
create trigger identity_follow_update after update on auth.users
    for each row
    when (old.email is distinct from new.email
          or old.email_confirmed_at is distinct from new.email_confirmed_at
          or old.phone is distinct from new.phone
          or old.banned_until is distinct from new.banned_until
          or new.banned_until is not null
          or old.deleted_at is distinct from new.deleted_at)
    execute function identity.supabase_auth_follow();
create trigger identity_follow_delete after delete on auth.users
    for each row execute function identity.supabase_auth_follow();
