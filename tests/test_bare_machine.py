"""The production tests need no PostgreSQL or Redis of the machine's: they start their own.

Proof on any machine, whatever runs on it: the production tests of PostgreSQL (the ledger's money races) and of
Redis (a run's steps on a Celery worker, with Dagster's storage in PostgreSQL and clips in moto's S3) run in a new
network namespace, where only a fresh loopback exists. The machine's services are not there (port 5432 and 6379
refuse), so anything that still reached for them would fail.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from video_pipeline.config import PROJECT_ROOT

pytestmark = [pytest.mark.production, pytest.mark.slow]

# run inside the namespace: bring its loopback up (no `ip` needed), show the system's ports are closed, then pytest
INSIDE = r"""
import fcntl, socket, struct, sys
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
with socket.socket() as s:
    flags = struct.unpack("16sH", fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack("16sH", b"lo", 0)))[1]
    fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | IFF_UP))
from tests.support.services import answers
for port in (5432, 6379):
    print(f"port {port}:", "answers" if answers(port) else "refused")
import pytest
sys.exit(pytest.main(sys.argv[1:]))
"""


def test_the_production_tests_pass_where_the_systems_postgresql_and_redis_cannot_be_reached(tmp_path):
    isolate = ["unshare", "--net"] if os.geteuid() == 0 else ["unshare", "--net", "--map-current-user"]
    tests = ["tests/production/test_ledger_money.py", "tests/production/test_celery_worker.py"]
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home")}
    (tmp_path / "home").mkdir()
    done = subprocess.run([*isolate, sys.executable, "-c", INSIDE, "-q", "-p", "no:cacheprovider", *tests],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600)
    out = done.stdout + done.stderr
    assert "port 5432: refused" in out and "port 6379: refused" in out, out[-3000:]
    assert done.returncode == 0, out[-5000:]
    summary = out.strip().splitlines()[-1]
    # every test ran and passed: none skipped for a missing service, none deselected
    assert re.fullmatch(r"\d+ passed in .*", summary), out[-3000:]
