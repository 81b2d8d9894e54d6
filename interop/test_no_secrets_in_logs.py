"""No function leaks a secret into an error, a NOTICE/WARNING or the server
log at log_min_messages = debug5. The cluster for this file is started by
interop/run.sh with debug5 logging; every call passes secrets as bound
parameters (as drivers do), and the log is grepped afterwards for each."""
import base64
import os

import psycopg
import pytest
from conftest import fresh_database

SECRET = os.environ["IDENTITY_TEST_JWT_SECRET"]
ENC_KEY = os.environ["IDENTITY_TEST_ENCRYPTION_KEY"]
LOG = os.environ["IDENTITY_SERVER_LOG"]


@pytest.fixture(scope="module")
def conn():
    with fresh_database("nolog", "set log_min_messages = debug5", "set client_min_messages = debug5") as c:
        yield c


def test_secrets_never_reach_messages_or_the_log(conn):
    notices = []
    conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    conn.execute("insert into identity.users (id, email) values ('00000000-0000-0000-0000-00000000f001', 'log@example.com')")
    (token,) = conn.execute("select token from identity.create_api_token('00000000-0000-0000-0000-00000000f001', 'log test')").fetchone()
    (jwt,) = conn.execute("select identity.sign_jwt('{\"sub\": \"00000000-0000-0000-0000-00000000f001\"}')").fetchone()
    (kid,) = conn.execute("select identity.generate_signing_key('EdDSA')").fetchone()
    conn.execute("select identity.activate_signing_key(%s)", [kid])
    credential_secret = "sk-or-v1-log-test-5be0c2d7e91f"
    (cred,) = conn.execute("select identity.create_system_credential('00000000-0000-0000-0000-00000000f001', "
                           "'openrouter', %s)", [credential_secret]).fetchone()
    secrets = {"jwt secret": SECRET, "encryption key": ENC_KEY, "api token": token,
               "api token body": token[4:], "jwt signature": jwt.rsplit(".", 1)[1],
               "credential secret": credential_secret, "rotated credential secret": credential_secret + "-2"}
    errors = []
    # Successful and failing paths, secrets always bound as parameters.
    calls = [
        ("select identity.verify_api_token(%s)", [token]),
        ("select identity.verify_api_token(%s)", [token[:-1] + ("x" if token[-1] != "x" else "y")]),
        ("select identity.exchange_api_token(%s)", [token]),
        ("select identity.verify_jwt(%s)", [jwt]),
        ("select identity.verify_jwt(%s)", [jwt[:-2]]),
        ("select identity.verify_jwt(%s, 'websocket')", [jwt]),
        ("select identity.explain_jwt(%s)", [jwt[:-2]]),
        ("select identity.authenticate(%s)", [jwt[:-2]]),
        ("select identity.authenticate(%s)", [token[:-1] + "0"]),
        ("select identity.decode_jwt(%s)", [jwt + "x.y"]),
        ("select identity.rotate_api_token((select id from identity.api_tokens limit 1))", []),
        ("select identity.reveal_credential_secret(%s)", [cred["id"]]),
        ("select identity.update_credential(%s, %s)", [cred["id"], '{"secret": "' + credential_secret + '-2"}']),
        ("select identity.update_credential(%s, %s)", [cred["id"], '{"secret": "' + credential_secret + '\\n"}']),
        ("select identity.create_system_credential('00000000-0000-0000-0000-00000000f001', 'Bad Provider', %s)",
         [credential_secret]),
    ]
    for sql, args in calls:
        try:
            with conn.transaction():
                conn.execute(sql, args)
        except psycopg.Error as e:
            errors.append(" ".join(filter(None, [e.diag.message_primary, e.diag.message_detail, e.diag.message_hint])))
    # The encryption key and the JWT secret: wrong and missing settings.
    for setting in ["identity.encryption_key", "identity.jwt_secret"]:
        for value in ["", "not-base64-" + SECRET[:8]]:
            try:
                with conn.transaction():
                    conn.execute(f"set local {setting} = %s".replace("%s", "'" + value + "'"))
                    conn.execute("select identity.reveal_credential_secret(%s)", [cred["id"]])
                    conn.execute("select identity.generate_signing_key()")
                    conn.execute("select identity.sign_jwt('{}')")
            except psycopg.Error as e:
                errors.append(e.diag.message_primary or "")
    assert errors, "the failing calls must have failed"
    conn.execute("select pg_sleep(0.2)")
    log = open(LOG, encoding="utf-8", errors="replace").read()
    for name, value in secrets.items():
        assert value not in log, f"{name} found in the server log"
        for text in errors + notices:
            assert value not in text, f"{name} found in a message: {text}"
    # The private key: its DER never appears in clear (base64 of its ciphertext aside).
    (sealed,) = conn.execute("select private_key_ciphertext from identity.signing_keys where kid = %s", [kid]).fetchone()
    assert bytes(sealed)[0] == 2  # format 2: version, key id, nonce, ciphertext
    assert base64.b64encode(bytes(sealed)[33:49]).decode() not in log
    assert "DEBUG" in log, "the log must really be at debug level"
