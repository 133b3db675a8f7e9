"""The webhook receiver as an attacker on the network meets it: `video-pipeline webhooks serve` started as the docs
say (its own process), spoken to over raw sockets by a client written here, with nothing from the project on the
client side: requests are bytes, Standard Webhooks signatures come from the `standardwebhooks` library and fal's
from `cryptography`, memory is the receiver's VmRSS in /proc.

Cases (docs/RELIABILITY.md, "Webhook receiver under abuse", has the figures): a repeated signature header stores
nothing; a 32 MiB header is refused at once while valid deliveries go on; a sender at one byte a second is
disconnected; 300 connections holding ~1 MB unfinished bodies leave memory and valid deliveries alone; signed bodies
that are not objects, or are 150,000 characters long, never get a 5xx; fal keys rotate and foreign accounts are
refused; the health endpoint tells only an authenticated caller what is configured.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import socket
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.support.services import free_port, wait_until
from tests.support.webhook_attacks import (
    SECRET,
    TOKEN,
    Jwks,
    MiB,
    Receiver,
    big_header,
    delivery,
    fal_headers,
    full_environment,
    head_of,
    held_bodies,
    half_open,
    jwk,
    read_answer,
    receiver,
    request,
    slow_senders,
    standard_headers,
)
from tests.support.webhooks import in_flight


@pytest.fixture(scope="module")
def fal_key():
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def jwks(fal_key):
    server = Jwks([jwk(fal_key)])
    yield server
    server.close()


@pytest.fixture(scope="module")
def hooks(tmp_path_factory, jwks) -> Iterator[Receiver]:
    """One receiver with every provider configured, shared by the quick cases of this file."""
    with receiver(tmp_path_factory.mktemp("receiver"), **full_environment(jwks)) as running:
        yield running


# --- replays, ids and headers ------------------------------------------------------------------------------------------

def test_a_delivery_replayed_with_a_repeated_signature_header_stores_nothing(hooks, fal_key):
    in_flight(hooks.ledger, "replicate", "pred-dup")
    raw, headers = delivery("pred-dup", "msg_dup_1")
    assert hooks.post("/webhooks/replicate", raw, headers).status == 200
    assert hooks.post("/webhooks/replicate", raw, headers).status == 409       # the plain replay
    for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        value = "msg_attacker" if name == "webhook-id" else dict(headers)[name]
        first = hooks.post("/webhooks/replicate", raw, [(name, value), *headers])   # the captured issue's attack
        last = hooks.post("/webhooks/replicate", raw, [*headers, (name, value)])
        assert (first.status, last.status) == (400, 400), (name, first.body, last.body)
        assert b"repeated" in first.body
    assert hooks.events("pred-dup") == 1

    in_flight(hooks.ledger, "fal", "fal-ai/veo3.1/requests/req-dup")
    raw = json.dumps({"request_id": "req-dup", "status": "OK"}).encode()
    headers = fal_headers(fal_key, raw, "req-dup")
    assert hooks.post("/webhooks/fal", raw, headers).status == 200
    for name, _ in headers[:4]:
        assert hooks.post("/webhooks/fal", raw, [(name, "other"), *headers]).status == 400
    assert hooks.events("req-dup") == 1

    kling = json.dumps({"data": {"task_id": "k-dup", "task_status": "processing"}}).encode()
    answer = hooks.post(f"/webhooks/kling?token=x&token={TOKEN}", kling, [("content-type", "application/json")])
    assert answer.status == 400


def test_overlong_ids_and_headers_get_400_never_500(hooks):
    in_flight(hooks.ledger, "replicate", "pred-long")
    raw, headers = delivery("pred-long", "m" * 300)          # signed, but an id over the limit
    assert hooks.post("/webhooks/replicate", raw, headers).status == 400
    raw, headers = delivery("p" * 5000, "msg_long_job")         # a job id no provider uses
    assert hooks.post("/webhooks/replicate", raw, headers).status == 400
    raw, headers = delivery("pred-long", "msg_long_sig")
    long_signature = [(k, v + " v1," + "A" * 2000) if k == "webhook-signature" else (k, v) for k, v in headers]
    assert hooks.post("/webhooks/replicate", raw, long_signature).status == 400
    answer = hooks.post("/webhooks/replicate", raw, [*headers, ("x-padding", "a" * 20_000)])   # head over 16 KiB
    assert answer.status == 431
    assert hooks.events("pred-long") == 0


def test_cheap_checks_answer_before_the_body_is_sent(hooks):
    """A stale, unsigned, mistyped or oversized delivery is refused on its head alone: the client sends no byte of
    the body it declares, and the answer comes anyway."""
    raw = b"x" * MiB
    stale = standard_headers(raw, "msg_stale", dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=10))
    cases = [("/webhooks/replicate", stale, MiB, 401), ("/webhooks/replicate", [], MiB, 401),
             ("/webhooks/kling?token=wrong", [], MiB, 401),
             ("/webhooks/replicate", [("content-type", "text/plain")], MiB, 415),
             ("/webhooks/replicate", standard_headers(raw, "msg_over_cap"), 2 * MiB, 413)]
    for path, headers, declared, status in cases:
        head = head_of(request("POST", path, headers, b"x" * declared))
        with socket.create_connection(("127.0.0.1", hooks.port), timeout=5) as sock:
            sock.sendall(head)
            assert read_answer(sock)[0] == status, (path, status)


def test_deliveries_for_jobs_the_ledger_does_not_wait_on_are_acknowledged_and_counted_not_stored(hooks):
    raw, headers = delivery("pred-stranger", "msg_stranger")
    answer = hooks.post("/webhooks/replicate", raw, headers)
    assert answer.status == 200 and answer.json() == {"ok": True, "stored": False}
    assert hooks.events("pred-stranger") == 0
    health = hooks.health(TOKEN).json()
    assert health["deliveries"]["not waited for"] >= 1


# --- bodies -------------------------------------------------------------------------------------------------------------

def test_signed_bodies_that_are_not_objects_or_are_150000_characters_never_get_a_5xx(hooks, fal_key):
    in_flight(hooks.ledger, "replicate", "pred-big-logs")
    bodies = [b"[]", b'"a string"', b"12", b"null", b"true", b"\xff\xfe not utf-8", b"{", b'{"id": ["x"]}',
              b'{"id": {"a": 1}}', b'{"id": true}', b'{"id": "pred-x", "status": ["x"]}',
              b'{"type": "video.generated", "data": []}', b'{"data": {"operation": "op"}}',
              b'{"data": {"operation": {"name": "op", "done": true, "response": []}}}',
              b'{"data": "x"}', b'{"data": {"task_id": ["k"]}}']
    answers = []
    for i, raw in enumerate(bodies):
        for provider in ("replicate", "gemini"):
            answers.append(hooks.post(f"/webhooks/{provider}", raw, standard_headers(raw, f"msg_shape_{provider}_{i}")))
        answers.append(hooks.post("/webhooks/fal", raw, fal_headers(fal_key, raw, f"req-shape-{i}")))
        for provider in ("kling", "minimax"):
            answers.append(hooks.post(f"/webhooks/{provider}?token={TOKEN}", raw,
                                      [("content-type", "application/json")]))
    assert all(400 <= a.status < 500 or 200 <= a.status < 300 for a in answers), [a.status for a in answers]
    assert sum(a.status == 400 for a in answers) >= len(bodies) * 4

    logs = "0123456789" * 15_000                                       # a long prediction log, under the 1 MB cap
    raw = json.dumps({"id": "pred-big-logs", "status": "succeeded", "logs": logs}).encode()
    assert len(raw) > 150_000
    answer = hooks.post("/webhooks/replicate", raw, standard_headers(raw, "msg_big_logs"))
    assert answer.status == 200 and answer.json()["stored"] is True
    state, payload = hooks.ledger.latest_event("replicate", "pred-big-logs")
    assert (state, payload) == ("succeeded", {})                      # kept as its event, the body not cut


def test_a_client_that_drops_mid_body_costs_one_log_line_and_no_traceback(hooks):
    before = hooks.output().count("closed the connection")
    raw = b'{"id": "pred-drop", "status": "processing", "logs": "' + b"x" * 100_000 + b'"}'
    for i in range(20):
        headers = standard_headers(raw, f"msg_drop_{i}")
        with socket.create_connection(("127.0.0.1", hooks.port), timeout=5) as sock:
            sock.sendall(request("POST", "/webhooks/replicate", headers, raw)[:-50_000])
    wait_until(lambda: hooks.output().count("closed the connection") - before == 20, 10,
               "one log line per dropped delivery")
    text = hooks.output()
    assert "Traceback" not in text
    assert SECRET not in text and TOKEN not in text


# --- fal's keys and accounts, start-up without them, health -------------------------------------------------------

def test_a_fal_key_added_to_the_jwks_after_start_up_is_accepted_and_forgeries_do_not_hammer_it(hooks, jwks):
    in_flight(hooks.ledger, "fal", "fal-ai/veo3.1/requests/req-rotated")
    rotated = Ed25519PrivateKey.generate()
    jwks.keys.append(jwk(rotated))
    raw = json.dumps({"request_id": "req-rotated", "status": "OK"}).encode()
    assert hooks.post("/webhooks/fal", raw, fal_headers(rotated, raw, "req-rotated")).status == 200
    assert hooks.events("req-rotated") == 1
    fetched = jwks.fetches
    for _ in range(10):                                   # signatures no key verifies: at most one fetch per 30 s
        forged = fal_headers(Ed25519PrivateKey.generate(), raw, "req-rotated")
        assert hooks.post("/webhooks/fal", raw, forged).status == 401
    assert jwks.fetches - fetched <= 1


def test_a_fal_delivery_for_another_account_is_refused(hooks, fal_key):
    in_flight(hooks.ledger, "fal", "fal-ai/veo3.1/requests/req-foreign")
    raw = json.dumps({"request_id": "req-foreign", "status": "OK"}).encode()
    answer = hooks.post("/webhooks/fal", raw, fal_headers(fal_key, raw, "req-foreign", user="someone-else"))
    assert answer.status == 401 and b"another fal account" in answer.body
    assert hooks.events("req-foreign") == 0


def test_health_says_what_is_configured_only_to_an_authenticated_caller(hooks):
    anonymous = hooks.health()
    assert anonymous.status == 200 and anonymous.json() == {"ok": True}
    assert hooks.health("nope").json() == {"ok": True}
    told = hooks.health(TOKEN).json()
    assert told["providers"] == {"replicate": True, "gemini": True, "fal": True, "minimax": True, "kling": True}
    assert told["fal_keys"]["keys"] >= 1 and told["fal_keys"]["error"] is None


def test_start_up_without_a_reachable_jwks_works_says_so_and_unconfigured_providers_look_forged(tmp_path):
    nowhere = f"http://127.0.0.1:{free_port()}/.well-known/jwks.json"
    with receiver(tmp_path, VIDEO_PIPELINE_WEBHOOK_TOKEN=TOKEN, VIDEO_PIPELINE_FAL_JWKS_URL=nowhere) as running:
        assert "not reachable now" in running.output()
        raw, headers = delivery("pred-x", "msg_unconfigured")
        unconfigured = running.post("/webhooks/replicate", raw, headers)     # no Replicate secret on this one
        wrong_headers = standard_headers(raw, "msg_forged")
        wrong_headers[2] = ("webhook-signature", "v1," + base64.b64encode(b"f" * 32).decode())
        forged = running.post("/webhooks/replicate", raw, wrong_headers)
        assert (unconfigured.status, unconfigured.body) == (forged.status, forged.body) == (
            401, b'{"error":"signature rejected: No matching signature found"}')
        told = running.health(TOKEN).json()
        assert told["providers"]["replicate"] is False and told["providers"]["kling"] is True
        assert told["fal_keys"]["error"]


# --- abuse ----------------------------------------------------------------------------------------------------------------

def test_a_32_mib_header_is_refused_at_once_while_valid_deliveries_are_answered(hooks):
    figures = big_header(hooks, 32 * MiB)
    seconds, seen = figures.attacker
    assert seconds < 5, figures.attacker
    assert seen in (400, "ConnectionResetError", "BrokenPipeError"), figures.attacker
    assert figures.statuses == {200} and len(figures.answers) == 10
    assert figures.slowest < 1.0, [round(a.seconds, 3) for a in figures.answers]


@pytest.mark.slow
def test_a_sender_at_one_byte_a_second_is_disconnected_within_30_seconds(hooks):
    figures = slow_senders(hooks)
    assert set(figures.attacker) == {"in the head", "in the body", "after a refusal"}
    assert all(seconds is not None and seconds < 30 for seconds in figures.attacker.values()), figures.attacker
    assert figures.statuses == {200}


@pytest.mark.slow
@pytest.mark.parametrize("framing", ["declared", "chunked"])
def test_300_connections_holding_1_mb_unfinished_bodies_cost_under_100_mb_and_valid_deliveries_go_on(
        tmp_path, jwks, framing):
    with receiver(tmp_path, **full_environment(jwks)) as target:
        figures = held_bodies(target, framing, 300)
    print(f"{framing}: RSS {figures.baseline_mb:.0f} MB, peak {figures.peak_mb:.0f} MB (+{figures.grown_mb:.0f}), "
          f"{figures.attacker:.0f} MB while held; {len(figures.answers)} deliveries, slowest {figures.slowest:.3f} s")
    assert figures.grown_mb < 100
    assert figures.statuses == {200}
    assert figures.slowest < 1.0, sorted(round(a.seconds, 3) for a in figures.answers)[-5:]


def test_1100_half_open_connections_leave_valid_deliveries_answered(hooks):
    """The issue's 1,100 half-open connections (past a common `ulimit -n` of 1024): the receiver raises its
    open-file limit and caps connections above that, so deliveries still get through."""
    figures = half_open(hooks, 1100)
    assert figures.statuses == {200}
    assert figures.grown_mb < 50
