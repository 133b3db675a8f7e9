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
import hashlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from standardwebhooks import Webhook

from tests.support.services import executable, free_port, process, wait_until
from tests.support.webhooks import in_flight
from video_pipeline.config import SECRET_VARIABLES
from video_pipeline.jobs.ledger import JobLedger

SECRET = "whsec_" + base64.b64encode(b"receiver-test-secret-0123456789a").decode()
TOKEN = "receiver-test-token-0123456789"
FAL_USER = "user-7f3a"
MiB = 1024 * 1024


# --- the client: bytes on a socket --------------------------------------------------------------------------------

@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float

    def json(self):
        return json.loads(self.body)


def request(method: str, path: str, headers: list[tuple[str, str]] = (), body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: receiver", "Connection: close",
             *(f"{k}: {v}" for k, v in headers)]
    if method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)}
    return int(status_line.split()[1]), headers, body


def exchange(port: int, raw: bytes, timeout: float = 10.0) -> Answer:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(raw)
        status, headers, body = read_answer(sock)
    return Answer(status, headers, body, time.monotonic() - started)


def standard_headers(raw: bytes, msg_id: str, when: dt.datetime | None = None) -> list[tuple[str, str]]:
    when = when or dt.datetime.now(dt.timezone.utc)
    return [("webhook-id", msg_id), ("webhook-timestamp", str(int(when.timestamp()))),
            ("webhook-signature", Webhook(SECRET).sign(msg_id, when, raw)), ("content-type", "application/json")]


def fal_headers(key: Ed25519PrivateKey, raw: bytes, request_id: str, user: str = FAL_USER) -> list[tuple[str, str]]:
    ts = str(int(time.time()))
    message = "\n".join([request_id, user, ts, hashlib.sha256(raw).hexdigest()]).encode()
    return [("x-fal-webhook-request-id", request_id), ("x-fal-webhook-user-id", user),
            ("x-fal-webhook-timestamp", ts), ("x-fal-webhook-signature", key.sign(message).hex()),
            ("content-type", "application/json")]


def jwk(key: Ed25519PrivateKey) -> dict:
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": base64.urlsafe_b64encode(raw).rstrip(b"=").decode()}


def closed_by_server(sock: socket.socket, seconds: float) -> float | None:
    """Seconds until the server closed `sock` (an EOF or a reset; an answer before it is read and dropped), or None
    when it is still open after `seconds`."""
    started = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - started < seconds:
        try:
            if not sock.recv(65536):
                return time.monotonic() - started
        except socket.timeout:
            continue
        except OSError:
            return time.monotonic() - started
    return None


# --- the receiver, as the docs start it -----------------------------------------------------------------------------

class Jwks:
    """fal's JWKS endpoint, played by a stdlib HTTP server: its keys can change, and it counts the fetches."""

    def __init__(self, keys: list[dict]):
        self.keys, self.fetches = list(keys), 0
        jwks = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                jwks.fetches += 1
                body = json.dumps({"keys": jwks.keys}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Receiver:
    port: int
    pid: int
    log: Path
    ledger: JobLedger

    def rss(self) -> int:
        """The receiver's resident memory in bytes (VmRSS)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def post(self, path: str, raw: bytes, headers: list[tuple[str, str]], timeout: float = 10.0) -> Answer:
        return exchange(self.port, request("POST", path, headers, raw), timeout)

    def events(self, job_id: str) -> int:
        with self.ledger.engine.connect() as conn:
            return conn.execute(sa.text("SELECT count(*) FROM job_events WHERE provider_job_id = :j"),
                                {"j": job_id}).scalar_one()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def receiver_environment(tmp: Path, **variables: str) -> dict[str, str]:
    """This machine's environment without any of the pipeline's variables or secrets, plus `variables`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDEO_PIPELINE_") and k not in SECRET_VARIABLES}
    env.update({"VIDEO_PIPELINE_DATA_DIR": str(tmp / "data"),
                "VIDEO_PIPELINE_LEDGER_URL": f"sqlite:///{tmp / 'ledger.sqlite'}", **variables})
    return env


@contextmanager
def receiver(tmp: Path, **variables: str) -> Iterator[Receiver]:
    """`video-pipeline webhooks serve --port P` in its own process, once its health endpoint answers."""
    tmp.mkdir(parents=True, exist_ok=True)
    env = receiver_environment(tmp, **variables)
    ledger = JobLedger(env["VIDEO_PIPELINE_LEDGER_URL"])
    port = free_port()
    log = tmp / "receiver.log"
    try:
        with process([executable("video-pipeline"), "webhooks", "serve", "--port", str(port)], log=log,
                     env=env) as proc:
            wait_until(lambda: exchange(port, request("GET", "/healthz"), 2).status == 200, 60,
                       "the receiver answering /healthz", ignore=(OSError,))
            yield Receiver(port, proc.pid, log, ledger)
    finally:
        ledger.dispose()


def full_environment(jwks: Jwks) -> dict[str, str]:
    return {"REPLICATE_WEBHOOK_SECRET": SECRET, "GEMINI_WEBHOOK_SECRET": SECRET,
            "VIDEO_PIPELINE_WEBHOOK_TOKEN": TOKEN, "VIDEO_PIPELINE_FAL_JWKS_URL": jwks.url,
            "VIDEO_PIPELINE_FAL_USER_ID": FAL_USER}


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


def delivery(job_id: str, msg_id: str, **extra) -> tuple[bytes, list[tuple[str, str]]]:
    raw = json.dumps({"id": job_id, "status": "processing", **extra}).encode()
    return raw, standard_headers(raw, msg_id)


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
        head = request("POST", path, headers, b"x" * declared).split(b"\r\n\r\n")[0] + b"\r\n\r\n"
        with socket.create_connection(("127.0.0.1", hooks.port), timeout=5) as sock:
            sock.sendall(head)
            assert read_answer(sock)[0] == status, (path, status)


def test_deliveries_for_jobs_the_ledger_does_not_wait_on_are_acknowledged_and_counted_not_stored(hooks):
    raw, headers = delivery("pred-stranger", "msg_stranger")
    answer = hooks.post("/webhooks/replicate", raw, headers)
    assert answer.status == 200 and answer.json() == {"ok": True, "stored": False}
    assert hooks.events("pred-stranger") == 0
    health = exchange(hooks.port, request("GET", "/healthz", [("authorization", f"Bearer {TOKEN}")])).json()
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
    anonymous = exchange(hooks.port, request("GET", "/healthz"))
    assert anonymous.status == 200 and anonymous.json() == {"ok": True}
    wrong = exchange(hooks.port, request("GET", "/healthz", [("authorization", "Bearer nope")]))
    assert wrong.json() == {"ok": True}
    told = exchange(hooks.port, request("GET", "/healthz", [("authorization", f"Bearer {TOKEN}")])).json()
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
        told = exchange(running.port, request("GET", "/healthz", [("authorization", f"Bearer {TOKEN}")])).json()
        assert told["providers"]["replicate"] is False and told["providers"]["kling"] is True
        assert told["fal_keys"]["error"]


# --- abuse ----------------------------------------------------------------------------------------------------------------

def valid_deliveries(target: Receiver, count: int, tag: str, gap: float = 0.1) -> list[Answer]:
    """`count` signed deliveries for a job in flight, one every `gap` seconds, each on its own connection."""
    in_flight(target.ledger, "replicate", f"pred-{tag}")
    answers = []
    for i in range(count):
        raw, headers = delivery(f"pred-{tag}", f"msg_{tag}_{i}")
        answers.append(target.post("/webhooks/replicate", raw, headers))
        time.sleep(gap)           # the pace of a provider's deliveries, not a wait for anything
    return answers


def test_a_32_mib_header_is_refused_at_once_while_valid_deliveries_are_answered(hooks):
    outcome = {}

    def attack():
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", hooks.port), timeout=10) as sock:
            try:
                sock.sendall(b"POST /webhooks/replicate HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (32 * MiB)
                             + b"\r\n\r\n")
                outcome["answer"] = read_answer(sock)[0]
            except OSError as exc:           # the receiver closed while the header was still coming
                outcome["answer"] = type(exc).__name__
        outcome["seconds"] = time.monotonic() - started

    attacker = threading.Thread(target=attack)
    attacker.start()
    answers = valid_deliveries(hooks, 10, "big-header")
    attacker.join(30)
    assert outcome["seconds"] < 5, outcome
    assert outcome["answer"] in (400, "ConnectionResetError", "BrokenPipeError"), outcome
    assert [a.status for a in answers] == [200] * 10
    assert max(a.seconds for a in answers) < 1.0, [round(a.seconds, 3) for a in answers]


@pytest.mark.slow
def test_a_sender_at_one_byte_a_second_is_disconnected_within_30_seconds(hooks):
    raw, headers = delivery("pred-slow", "msg_slow")
    whole = request("POST", "/webhooks/replicate", headers, raw)
    head_end = whole.index(b"\r\n\r\n") + 4
    senders = {
        "in the head": (b"", whole),                                   # every byte of the request trickles
        "in the body": (whole[:head_end], whole[head_end:]),          # the head at once, then the body trickles
        "after a refusal": (request("POST", "/webhooks/replicate", [], b"x" * 100)[:-100], b"x" * 100),
    }
    closed: dict[str, float | None] = {}

    def trickle(name: str, at_once: bytes, slowly: bytes):
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", hooks.port), timeout=5) as sock:
            sock.sendall(at_once)
            for byte in slowly:
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    break
                if closed_by_server(sock, 1.0) is not None:
                    break
            else:
                closed[name] = None
                return
        closed[name] = time.monotonic() - started

    threads = [threading.Thread(target=trickle, args=(name, *parts)) for name, parts in senders.items()]
    for t in threads:
        t.start()
    answers = valid_deliveries(hooks, 5, "while-slow", gap=1.0)
    for t in threads:
        t.join(60)
    assert all(seconds is not None and seconds < 30 for seconds in closed.values()), closed
    assert [a.status for a in answers] == [200] * 5


def unfinished_delivery(framing: str, msg_id: str) -> bytes:
    """A delivery's head and ~1 MB of its body, never the end, on a connection it wants kept open: with a 1 MiB
    length declared, or chunked."""
    raw, headers = delivery("pred-hold", msg_id)
    body = b"x" * (MiB - 1024)
    framing_header = f"Content-Length: {MiB}" if framing == "declared" else "Transfer-Encoding: chunked"
    head = "\r\n".join(["POST /webhooks/replicate HTTP/1.1", "Host: receiver", framing_header,
                         *(f"{k}: {v}" for k, v in headers)]) + "\r\n\r\n"
    if framing == "chunked":
        body = b"".join(b"%x\r\n%s\r\n" % (len(body[j:j + 65536]), body[j:j + 65536])
                        for j in range(0, len(body), 65536))
    return head.encode() + body


def hold_unfinished(port: int, framing: str, connections: int, sent, stop) -> None:
    """The attacker, in a process of its own (another machine, as far as the receiver can tell): open
    `connections`, send each a delivery's head and ~1 MB of body from ten threads, set `sent`, and hold them all
    open until `stop`. It runs at the lowest CPU priority: on another machine its sending would cost the
    receiver's machine nothing, here it shares two cores with it."""
    os.nice(19)
    sockets = [socket.create_connection(("127.0.0.1", port), timeout=20) for _ in range(connections)]

    def send(share: list[int]):
        for i in share:
            try:
                sockets[i].sendall(unfinished_delivery(framing, f"msg_hold_{i}"))
            except OSError:
                pass                       # refused and closed before its megabyte went: as good

    threads = [threading.Thread(target=send, args=(list(range(k, connections, 10)),)) for k in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sent.set()
    stop.wait(120)


@pytest.mark.slow
@pytest.mark.parametrize("framing", ["declared", "chunked"])
def test_300_connections_holding_1_mb_unfinished_bodies_cost_under_100_mb_and_valid_deliveries_go_on(
        tmp_path, jwks, framing):
    import multiprocessing

    with receiver(tmp_path, **full_environment(jwks)) as target:
        valid_deliveries(target, 3, f"warm-{framing}", gap=0)          # every code path loaded once
        baseline = target.rss()
        peak = [baseline]
        sampling = threading.Event()

        def sample():
            while not sampling.is_set():
                peak[0] = max(peak[0], target.rss())
                sampling.wait(0.05)

        sampler = threading.Thread(target=sample)
        sampler.start()
        spawn = multiprocessing.get_context("spawn")
        sent, stop = spawn.Event(), spawn.Event()
        attacker = spawn.Process(target=hold_unfinished, args=(target.port, framing, 300, sent, stop))
        attacker.start()
        answers: list[Answer] = []
        try:
            started = time.monotonic()
            # deliveries all through the attack, and on while the attacker holds its connections
            while not sent.is_set() or len(answers) < 20:
                answers += valid_deliveries(target, 1, f"held-{framing}-{len(answers)}")
                assert time.monotonic() - started < 120, "the attacker never finished sending"
            held_rss = target.rss()
        finally:
            stop.set()
            attacker.join(30)
            sampling.set()
            sampler.join()
        grown = (peak[0] - baseline) / MiB
        slowest = max(a.seconds for a in answers)
        print(f"{framing}: RSS {baseline / MiB:.0f} MB, peak {peak[0] / MiB:.0f} MB (+{grown:.0f} MB), "
              f"{held_rss / MiB:.0f} MB while held; {len(answers)} deliveries, slowest {slowest:.3f} s")
        assert grown < 100
        assert {a.status for a in answers} == {200}
        assert slowest < 1.0, sorted(round(a.seconds, 3) for a in answers)[-5:]
