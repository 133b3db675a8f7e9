"""Fake provider servers: ASGI apps that speak each provider's wire protocol on loopback, with faults.

Each module builds a Starlette app over a shared `JobBook` (job lifecycle, fault plan, submission counts,
real MP4 bytes from the local renderer). `FakeServer` runs an app on 127.0.0.1 in a background thread.
"""

from video_pipeline.providers.fakes.jobs import FakeJob, FaultPlan, JobBook
from video_pipeline.providers.fakes.server import FakeServer

__all__ = ["FaultPlan", "FakeJob", "JobBook", "FakeServer"]
