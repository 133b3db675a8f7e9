"""The webhook receiver under abuse: the figures behind its limits (docs/RELIABILITY.md, "Webhook receiver under abuse").

Each attack of tests/support/webhook_attacks.py runs against a fresh `video-pipeline webhooks serve` (its own
process, loopback, SQLite ledger) with valid signed deliveries sent alongside, then the limits that were chosen by
measurement are varied one at a time. Prints markdown tables. Run from the project root:

    .venv/bin/python bench/webhook_receiver.py
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.webhook_attacks import (  # noqa: E402
    MiB,
    Jwks,
    big_header,
    full_environment,
    half_open,
    held_bodies,
    oversize,
    receiver,
    slow_senders,
)
from video_pipeline.jobs.webhooks import ReceiverLimits  # noqa: E402

DEFAULTS = asdict(ReceiverLimits())


def deliveries(figures) -> str:
    statuses = ", ".join(f"{s}" for s in sorted(figures.statuses))
    return f"{len(figures.answers)} answered {statuses}, slowest {figures.slowest:.2f} s"


def memory(figures) -> str:
    return f"{figures.baseline_mb:.0f} → {figures.peak_mb:.0f} MB (+{figures.grown_mb:.0f})"


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="vp-webhook-bench-"))
    jwks = Jwks([])
    env = full_environment(jwks)
    runs = iter(range(1000))

    def fresh(limits: dict | None = None):
        return receiver(work / f"r{next(runs)}", limits=limits, **env)

    load = os.getloadavg()[0]
    print(f"Load average at the start: {load:.1f} on {os.cpu_count()} cores.\n")
    print("| attack | what the attacker saw | valid deliveries meanwhile | receiver RSS |")
    print("|---|---|---|---|")
    with fresh() as target:
        figures = big_header(target, 32 * MiB)
        seconds, seen = figures.attacker
        print(f"| one 32 MiB header | {seen} after {seconds:.2f} s | {deliveries(figures)} | {memory(figures)} |")
        figures = slow_senders(target)
        closed = ", ".join(f"{name}: {s:.1f} s" if s is not None else f"{name}: still open"
                           for name, s in figures.attacker.items())
        print(f"| one byte a second | disconnected {closed} | {deliveries(figures)} | {memory(figures)} |")
        for size in (10 * MiB, 200 * MiB):
            figures = oversize(target, size)
            status, seconds = figures.attacker
            print(f"| a {size // MiB} MB body | {status} after {seconds:.2f} s | {deliveries(figures)} | "
                  f"{memory(figures)} |")
    for framing in ("declared", "chunked"):
        with fresh() as target:
            figures = held_bodies(target, framing, 300)
            print(f"| 300 connections holding ~1 MB unfinished bodies ({framing} length) | "
                  f"{figures.attacker:.0f} MB while held | {deliveries(figures)} | {memory(figures)} |")
    with fresh() as target:
        for count, head in ((1100, 0), (4000, 15_000)):
            figures = half_open(target, count, head)
            print(f"| {count:,} half-open connections, {head:,} bytes of head each | held | {deliveries(figures)} | "
                  f"{memory(figures)} |")

    print("\nLimits varied one at a time (the rest as shipped):\n")
    print("| limit | value | attack | valid deliveries meanwhile | receiver RSS |")
    print("|---|---|---|---|---|")
    for budget in (8, 32, 128):
        with fresh({**DEFAULTS, "body_budget_bytes": budget * MiB}) as target:
            figures = held_bodies(target, "declared", 300)
            print(f"| body_budget_bytes | {budget} MiB | 300 × ~1 MB held | {deliveries(figures)} | "
                  f"{memory(figures)} |")
    for connections in (1000, 4096):
        with fresh({**DEFAULTS, "connections": connections}) as target:
            figures = half_open(target, 1100)
            print(f"| connections | {connections} | 1,100 half-open | {deliveries(figures)} | {memory(figures)} |")
    jwks.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
