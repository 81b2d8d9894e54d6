-- Least privilege: nothing in schema identity is usable by PUBLIC.
-- identity.grant_access(role, level) hands out exactly what a level needs.
revoke all on schema identity from public;
revoke all on all tables in schema identity from public;
revoke all on all sequences in schema identity from public;
revoke all on all functions in schema identity from public;
