"""The shared audit ring (src/pg/audit_queue.rs) cannot be flooded into
dropping what matters: a reveal is never done without its audit record
queued (55P03 and no secret when it cannot be), each database has its own
share of the ring, and repeated refusals of one actor are one row with a
count per identity.audit_refusal_window."""
import json
import time

import psycopg
import pytest

from conftest import fresh_database, server
from test_audit_outside import wait_for

OWNER = "00000000-0000-0000-0000-0000000e4001"
SHARE = 512 // 8


def with_credential(c, secret):
    c.execute("insert into identity.users (id, email) values (%s, 'owner@ring.test')", [OWNER])
    c.execute("select set_config('request.jwt.claims', %s, false)", [json.dumps({"sub": OWNER, "role": "authenticated"})])
    cred = c.execute("select identity.create_credential('openrouter', 'main', %s)->>'id'", [secret]).fetchone()[0]
    return cred


def wait_state(c, q, want, seconds):
    end = time.time() + seconds
    got = None
    while time.time() < end:
        got = c.execute(q).fetchone()
        if got == want:
            break
        time.sleep(0.05)
    return got


def test_repeated_refusals_are_one_row_with_a_count():
    with fresh_database("audit_ring_repeat") as c:
        c.execute("set identity.audit_refusal_window = 4")
        for _ in range(50):
            with pytest.raises(psycopg.errors.NoDataFound):
                c.execute("select identity.retire_signing_key('ring-nope')")
        # Another kind of refusal by the same actor is its own row.
        with pytest.raises(psycopg.errors.NoDataFound):
            c.execute("select identity.revoke_signing_key('ring-nope')")
        q = ("select count(*)::int, coalesce(sum(coalesce((details->>'repeated')::int, 1)), 0)::int "
             "from identity.audit_log where action = 'signing_key.refused' and target_id = 'ring-nope' "
             "and details->>'operation' = 'retire'")
        # The first is written at once; the other 49 are counted.
        assert wait_state(c, q, (1, 1), 2) == (1, 1)
        # The window closes: one more row, counting the other 49.
        assert wait_state(c, q, (2, 50), 20) == (2, 50)
        (repeated, distinct) = c.execute(
            "select (details->>'repeated')::int, (details->>'distinct_targets')::int from identity.audit_log "
            "where action = 'signing_key.refused' and details ? 'repeated'").fetchone()
        assert (repeated, distinct) == (49, 1)
        # Many targets tried by one actor in a window: one row, and how many.
        c.execute("set identity.audit_refusal_window = 3")
        for i in range(40):
            with pytest.raises(psycopg.errors.NoDataFound):
                c.execute("select identity.retire_signing_key(%s)", [f"ring-probe-{i}"])
        q2 = ("select count(*)::int, max((details->>'distinct_targets')::int) from identity.audit_log "
              "where action = 'signing_key.refused' and target_id like 'ring-probe-%'")
        rows, targets, end = 0, None, time.time() + 20
        while time.time() < end and not (rows == 2 and targets is not None):
            time.sleep(0.1)
            rows, targets = c.execute(q2).fetchone()
        assert rows == 2 and targets is not None and 20 <= targets <= 64, (rows, targets)
        assert c.execute("select count(*) from identity.audit_log where action = 'signing_key.refused' "
                         "and details->>'operation' = 'revoke'").fetchone()[0] == 1
        assert c.execute("select identity.verify_audit_log()->>'valid'").fetchone()[0] == "true"


def test_a_reveal_is_refused_when_its_record_cannot_be_queued_and_databases_keep_their_share():
    with fresh_database("audit_ring_b") as b, fresh_database("audit_ring_a") as a:
        cred_a = with_credential(a, "sk-or-v1-ring-a-0001")
        cred_b = with_credential(b, "sk-or-v1-ring-b-0001")
        # Database a's writer cannot insert while this lock is held: its
        # records stay in the ring (queued or in flight).
        blocker = psycopg.connect(**server("audit_ring_a"))
        blocker.execute("lock table identity.audit_log in access exclusive mode")
        try:
            revealed, refused = 0, None
            for i in range(SHARE + 10):
                try:
                    got = a.execute("select identity.reveal_credential_secret(%s)", [cred_a]).fetchone()[0]
                    assert got == "sk-or-v1-ring-a-0001"
                    revealed += 1
                except psycopg.errors.LockNotAvailable as e:
                    refused = e
                    break
            assert refused is not None, "a reveal went on without its audit record"
            assert "sk-or-v1" not in str(refused) and refused.sqlstate == "55P03"
            assert revealed <= SHARE
            # Database b is untouched by a's backlog: its reveals go through
            # and are written at once.
            for _ in range(5):
                assert b.execute("select identity.reveal_credential_secret(%s)", [cred_b]).fetchone()[0] \
                    == "sk-or-v1-ring-b-0001"
            assert wait_for(b, "select count(*) = 5 from identity.audit_log where action = 'credential.revealed'")
        finally:
            blocker.rollback()
            blocker.close()
        # Every reveal that went through is in a's trail, none more.
        assert wait_for(a, "select count(*) = %s from identity.audit_log where action = 'credential.revealed'",
                        [revealed], seconds=30)
        # And a reveals again once its writer caught up.
        assert a.execute("select identity.reveal_credential_secret(%s)", [cred_a]).fetchone()[0] == "sk-or-v1-ring-a-0001"
