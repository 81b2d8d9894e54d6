-- src/api/keys.rs: rekey. The next batch of private signing keys not sealed
-- under the current key, locked as for credentials.
select jsonb_build_object('kid', kid, 'ciphertext', pg_catalog.encode(private_key_ciphertext, 'base64'))
from identity.signing_keys
where pg_catalog.get_byte(private_key_ciphertext, 0) <> 2
   or pg_catalog.substr(private_key_ciphertext, 2, 8) <> $1
order by kid
limit $2
for update
