-- src/api/keys.rs: rekey. The next batch of credentials not sealed under
-- the current key (format 1, or another key's id in bytes 2-9), locked so a
-- concurrent change waits (and, re-read, drops out if it re-sealed the row).
select jsonb_build_object('id', id, 'organization_id', organization_id,
                          'ciphertext', pg_catalog.encode(ciphertext, 'base64'))
from identity.credentials
where pg_catalog.get_byte(ciphertext, 0) <> 2 or pg_catalog.substr(ciphertext, 2, 8) <> $1
order by id
limit $2
for update
