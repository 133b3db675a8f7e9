"""Webhook tests' one ledger helper: a job the ledger waits on, as the receiver needs before it stores a delivery."""

from __future__ import annotations

import uuid

from video_pipeline.jobs.ledger import JobLedger


def in_flight(ledger: JobLedger, provider: str, job_id: str, model: str = "m") -> int:
    """A job in flight at `provider` under `job_id`, as the engine leaves it once the provider accepted it (the
    receiver stores deliveries only for such jobs); returns its ledger row id."""
    row = ledger.try_begin(job_key=uuid.uuid4().hex, campaign="c", video_id="v", segment_index=0, model=model,
                           provider=provider, attempt=1, limit=1_000_000)
    ledger.submitted(row, job_id)
    return row
