-- Supabase's own roles and its auth.users, shaped as Supabase's migrations
-- make them (supabase/postgres's roles; supabase/auth's migrations), with
-- the columns identity reads. Idempotent and silent: included by
-- pg_test/sql/supabase_auth.sql, read by interop/test_supabase_auth.py.
do $$ begin create role supabase_admin superuser createdb createrole replication bypassrls login; exception when duplicate_object then null; end $$;
do $$ begin create role authenticator login noinherit; exception when duplicate_object then null; end $$;
do $$ begin create role anon nologin noinherit; exception when duplicate_object then null; end $$;
do $$ begin create role authenticated nologin noinherit; exception when duplicate_object then null; end $$;
do $$ begin create role service_role nologin noinherit bypassrls; exception when duplicate_object then null; end $$;
do $$ begin create role supabase_auth_admin login noinherit createrole; exception when duplicate_object then null; end $$;
alter role supabase_auth_admin login noinherit;
alter role service_role bypassrls;
grant anon, authenticated, service_role to authenticator;
create schema if not exists auth authorization supabase_auth_admin;
grant usage on schema auth to anon, authenticated, service_role;
create table if not exists auth.users (
    instance_id          uuid,
    id                   uuid not null primary key,
    aud                  varchar(255),
    role                 varchar(255),
    email                varchar(255),
    encrypted_password   varchar(255),
    email_confirmed_at   timestamptz,
    invited_at           timestamptz,
    confirmation_token   varchar(255),
    recovery_token       varchar(255),
    email_change         varchar(255),
    last_sign_in_at      timestamptz,
    raw_app_meta_data    jsonb,
    raw_user_meta_data   jsonb,
    is_super_admin       boolean,
    created_at           timestamptz,
    updated_at           timestamptz,
    phone                text unique default null,
    phone_confirmed_at   timestamptz,
    banned_until         timestamptz,
    deleted_at           timestamptz,
    is_sso_user          boolean not null default false,
    is_anonymous         boolean not null default false
);
create unique index if not exists users_email_partial_key on auth.users (email) where is_sso_user = false;
alter table auth.users owner to supabase_auth_admin;
alter table auth.users enable row level security;
