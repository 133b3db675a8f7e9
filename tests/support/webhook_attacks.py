"""An independent client of the webhook receiver, for tests/test_webhook_receiver.py and bench/webhook_receiver.py.

The receiver runs as `video-pipeline webhooks serve` in its own process, started as the docs say; everything on the
client side is written here and nothing of it comes from the project: requests are bytes on sockets, Standard
Webhooks signatures come from the `standardwebhooks` library and fal's from `cryptography`, fal's JWKS is served by
the standard library's HTTP server, memory is the receiver's VmRSS in /proc. The ledger is opened only to set up
jobs in flight and to count what was stored. Each attack returns its figures; the tests assert on them and the
bench tabulates them.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

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


# --- bytes on a socket ----------------------------------------------------------------------------------------------

@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float

    def json(self):
        return json.loads(self.body)


def request(method: str, path: str, headers: list[tuple[str, str]] = (), body: bytes = b"",
            close: bool = True) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: receiver", *(["Connection: close"] if close else []),
             *(f"{k}: {v}" for k, v in headers)]
    if method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def head_of(raw: bytes) -> bytes:
    """A request's line and headers, without its body."""
    return raw[:raw.index(b"\r\n\r\n") + 4]


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """The status, headers and body of the answer on `sock` (read to its length, or to the connection's end)."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except OSError:
            if b"\r\n\r\n" not in data:
                raise
            break
        if not chunk:
            break
        data += chunk
        head, found, body = data.partition(b"\r\n\r\n")
        length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), None)
        if found and length is not None and len(body) >= length:
            break
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


def delivery(job_id: str, msg_id: str, **extra) -> tuple[bytes, list[tuple[str, str]]]:
    """A signed Replicate delivery for `job_id`."""
    raw = json.dumps({"id": job_id, "status": "processing", **extra}).encode()
    return raw, standard_headers(raw, msg_id)


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

    def health(self, token: str | None = None) -> Answer:
        return exchange(self.port, request("GET", "/healthz", [("authorization", f"Bearer {token}")] if token else []))

    def events(self, job_id: str) -> int:
        with self.ledger.engine.connect() as conn:
            return conn.execute(sa.text("SELECT count(*) FROM job_events WHERE provider_job_id = :j"),
                                {"j": job_id}).scalar_one()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def full_environment(jwks: Jwks) -> dict[str, str]:
    """Every provider configured: both Standard Webhooks secrets, the token, fal's JWKS URL and account."""
    return {"REPLICATE_WEBHOOK_SECRET": SECRET, "GEMINI_WEBHOOK_SECRET": SECRET,
            "VIDEO_PIPELINE_WEBHOOK_TOKEN": TOKEN, "VIDEO_PIPELINE_FAL_JWKS_URL": jwks.url,
            "VIDEO_PIPELINE_FAL_USER_ID": FAL_USER}


#: the receiver as `webhooks serve` runs it, with other limits (the bench's variants); {limits} is a JSON object
WITH_LIMITS = ("import json; from video_pipeline.config import Settings; "
               "from video_pipeline.jobs.ledger import JobLedger; "
               "from video_pipeline.jobs.webhook_server import serve; "
               "from video_pipeline.jobs.webhooks import ReceiverConfig, ReceiverLimits, create_receiver; "
               "s = Settings.from_env(); c = ReceiverConfig.from_settings(s); "
               "c.limits = ReceiverLimits(**json.loads({limits!r})); "
               "serve(create_receiver(JobLedger(s.ledger_url), c), '127.0.0.1', {port}, c.limits)")


@contextmanager
def receiver(tmp: Path, limits: dict | None = None, **variables: str) -> Iterator[Receiver]:
    """`video-pipeline webhooks serve --port P` in its own process (or the same server with other `limits`), in an
    environment of this machine's without any pipeline variable or secret, plus `variables`; yielded once its health
    endpoint answers."""
    tmp.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDEO_PIPELINE_") and k not in SECRET_VARIABLES}
    env.update({"VIDEO_PIPELINE_DATA_DIR": str(tmp / "data"),
                "VIDEO_PIPELINE_LEDGER_URL": f"sqlite:///{tmp / 'ledger.sqlite'}", **variables})
    ledger = JobLedger(env["VIDEO_PIPELINE_LEDGER_URL"])
    port = free_port()
    log = tmp / "receiver.log"
    command = ([sys.executable, "-c", WITH_LIMITS.format(limits=json.dumps(limits), port=port)] if limits else
               [executable("video-pipeline"), "webhooks", "serve", "--port", str(port)])
    try:
        with process(command, log=log, env=env) as proc:
            wait_until(lambda: exchange(port, request("GET", "/healthz"), 2).status == 200, 60,
                       "the receiver answering /healthz", ignore=(OSError,))
            yield Receiver(port, proc.pid, log, ledger)
    finally:
        ledger.dispose()


# --- attacks, each with valid deliveries alongside --------------------------------------------------------------

def valid_deliveries(target: Receiver, count: int, tag: str, gap: float = 0.1) -> list[Answer]:
    """`count` signed deliveries for a job in flight, one every `gap` seconds, each on its own connection."""
    in_flight(target.ledger, "replicate", f"pred-{tag}")
    answers = []
    for i in range(count):
        raw, headers = delivery(f"pred-{tag}", f"msg_{tag}_{i}")
        answers.append(target.post("/webhooks/replicate", raw, headers))
        time.sleep(gap)           # the pace of a provider's deliveries, not a wait for anything
    return answers


class Peak:
    """The receiver's highest RSS while the block runs, sampled every 50 ms."""

    def __init__(self, target: Receiver):
        self.target, self.baseline = target, target.rss()
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample)

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.target.rss())
            self._stop.wait(0.05)

    def __enter__(self) -> "Peak":
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @property
    def grown_mb(self) -> float:
        return (self.peak - self.baseline) / MiB


@dataclass
class Figures:
    """What an attack did: how the attacker fared, the valid deliveries sent meanwhile, the receiver's memory."""

    attacker: object
    answers: list[Answer]
    baseline_mb: float
    peak_mb: float

    @property
    def statuses(self) -> set[int]:
        return {a.status for a in self.answers}

    @property
    def slowest(self) -> float:
        return max(a.seconds for a in self.answers)

    @property
    def grown_mb(self) -> float:
        return self.peak_mb - self.baseline_mb


def alongside(target: Receiver, attack, tag: str, count: int = 10, gap: float = 0.1) -> Figures:
    """Run `attack()` in a thread while `count` valid deliveries go, then return both sides' figures."""
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.setdefault("attacker", attack()))
    with Peak(target) as peak:
        thread.start()
        answers = valid_deliveries(target, count, tag, gap)
        thread.join(120)
    return Figures(outcome.get("attacker"), answers, peak.baseline / MiB, peak.peak / MiB)


def big_header(target: Receiver, size: int = 32 * MiB) -> Figures:
    """One header of `size` bytes; the attacker's figure is (seconds until refused or cut off, what it saw)."""

    def attack():
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", target.port), timeout=10) as sock:
            try:
                sock.sendall(b"POST /webhooks/replicate HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * size + b"\r\n\r\n")
                seen = read_answer(sock)[0]
            except OSError as exc:           # the receiver closed while the header was still coming
                seen = type(exc).__name__
        return time.monotonic() - started, seen

    return alongside(target, attack, "big-header")


def slow_senders(target: Receiver) -> Figures:
    """Three senders at one byte a second: in the head, in the body, and after the receiver refused the request.
    The attacker's figure: seconds until each was disconnected (None: still connected after 60 s)."""
    raw, headers = delivery("pred-slow", "msg_slow")
    whole = request("POST", "/webhooks/replicate", headers, raw, close=False)
    refused = request("POST", "/webhooks/replicate", [], b"x" * 100, close=False)    # no signature: 401 on its head
    senders = {"in the head": (b"", whole), "in the body": (head_of(whole), whole[len(head_of(whole)):]),
               "after a refusal": (head_of(refused), b"x" * 100)}

    def trickle(at_once: bytes, slowly: bytes) -> float | None:
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", target.port), timeout=5) as sock:
            sock.sendall(at_once)
            for byte in slowly:
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    return time.monotonic() - started
                if closed_by_server(sock, 1.0) is not None:
                    return time.monotonic() - started
                if time.monotonic() - started > 60:
                    break
        return None

    def attack():
        closed: dict[str, float | None] = {}
        threads = [threading.Thread(target=lambda n=name, p=parts: closed.__setitem__(n, trickle(*p)))
                   for name, parts in senders.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        return closed

    return alongside(target, attack, "while-slow", count=5, gap=1.0)


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
    receiver's machine nothing, here it shares the cores with it."""
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


def held_bodies(target: Receiver, framing: str, connections: int = 300) -> Figures:
    """`connections` unfinished ~1 MB bodies from another process, valid deliveries all through the attack and on
    while it holds them (at least 20). The attacker's figure: the receiver's RSS in MB while they are held."""
    import multiprocessing

    valid_deliveries(target, 3, f"warm-{framing}", gap=0)          # every code path loaded once
    spawn = multiprocessing.get_context("spawn")
    sent, stop = spawn.Event(), spawn.Event()
    attacker = spawn.Process(target=hold_unfinished, args=(target.port, framing, connections, sent, stop))
    answers: list[Answer] = []
    with Peak(target) as peak:
        attacker.start()
        try:
            started = time.monotonic()
            while not sent.is_set() or len(answers) < 20:
                answers += valid_deliveries(target, 1, f"held-{framing}-{len(answers)}")
                if time.monotonic() - started > 120:
                    raise TimeoutError("the attacker never finished sending")
            held = target.rss() / MiB
        finally:
            stop.set()
            attacker.join(30)
    return Figures(held, answers, peak.baseline / MiB, peak.peak / MiB)


def half_open(target: Receiver, connections: int, head_bytes: int = 0) -> Figures:
    """`connections` that send `head_bytes` of a head and nothing more, held while valid deliveries go."""
    sockets = []
    with Peak(target) as peak:
        for _ in range(connections):
            sock = socket.create_connection(("127.0.0.1", target.port), timeout=10)
            sock.sendall(b"POST /webhooks/replicate HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * head_bytes)
            sockets.append(sock)
        answers = valid_deliveries(target, 10, f"half-open-{connections}-{head_bytes}")
    for sock in sockets:
        sock.close()
    return Figures(connections, answers, peak.baseline / MiB, peak.peak / MiB)


def oversize(target: Receiver, size: int) -> Figures:
    """One signed delivery declaring and sending `size` bytes, its answer read while it sends (as curl does).
    The attacker's figure: (status, seconds to the answer)."""

    def attack():
        raw = b'{"id": "pred-huge", "logs": "' + b"x" * (size - 40) + b'"}'
        whole = request("POST", "/webhooks/replicate", standard_headers(raw, "msg_huge"), raw)
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", target.port), timeout=10) as sock:
            sender = threading.Thread(target=lambda: _send_quietly(sock, whole))
            sender.start()
            status = read_answer(sock)[0]
            seconds = time.monotonic() - started
            try:
                sock.shutdown(socket.SHUT_RDWR)      # stops the sender
            except OSError:
                pass                                 # the receiver closed it already
            sender.join(30)
        return status, seconds

    return alongside(target, attack, f"oversize-{size}", count=5)


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    try:
        sock.sendall(data)
    except OSError:
        pass
