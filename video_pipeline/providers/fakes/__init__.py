"""Fake provider servers: ASGI apps that speak each provider's wire protocol on loopback, with faults.

Each module builds a Starlette app over a shared `JobBook` (job lifecycle, fault plan, submission counts,
real MP4 bytes from the local renderer). `FakeServer` runs an app on 127.0.0.1 in a background thread.
"""

from .jobs import FakeJob, FaultPlan, JobBook
from .server import FakeServer

__all__ = ["FaultPlan", "FakeJob", "JobBook", "FakeServer"]
