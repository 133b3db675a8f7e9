"""Errors a person can act on: each names where the problem is and what was expected."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file: where it is and what was expected."""

    file: str
    field: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}"


class PipelineError(Exception):
    """Base of every error a person can cause and act on (a file, a setting, the catalog, a provider's answer, a
    media file, a spent budget): its message says what is wrong and where. Catch this to report any of them."""


class CampaignError(PipelineError, ValueError):
    """A campaign file is invalid; `problems` lists every problem found, each with file, line and field."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__(self.render())

    def render(self) -> str:
        head = f"{len(self.problems)} problem(s) in campaign file" if len(self.problems) != 1 else "invalid campaign file"
        return head + ":\n" + "\n".join(f"  - {p}" for p in self.problems)


class PlanningError(PipelineError, ValueError):
    """The campaign is valid but cannot be planned (no capable model, over budget)."""


class ProviderError(PipelineError, RuntimeError):
    """A provider job failed. `kind` is retryable, terminal (for this model), fatal (stop the campaign) or
    uncertain (a job-creating request left and its answer was lost: the provider may have created a paid job)."""

    RETRYABLE = "retryable"
    TERMINAL = "terminal"
    FATAL = "fatal"
    UNCERTAIN = "uncertain"

    def __init__(self, message: str, kind: str = "retryable", provider: str = "", job_id: str = "",
                 billed_as: str | None = None):
        self.kind = kind
        self.provider = provider
        self.job_id = job_id
        #: how the provider bills the job this error ended (billing rules): failed, failed-policy or canceled;
        #: None when the error does not say (the engine reads the provider's reason)
        self.billed_as = billed_as
        where = " ".join(x for x in (f"provider={provider}" if provider else "", f"job={job_id}" if job_id else "") if x)
        super().__init__(f"{message} ({where})" if where else message)


class SubmitUncertain(ProviderError):
    """A job-creating request was sent and no usable answer came back (timeout, reset, a proxy's 5xx): whether the
    provider created (and will bill) the job is unknown, so it is never sent again on a guess."""

    def __init__(self, message: str, *, sent_at, failed_at, fingerprint: str, provider: str = ""):
        super().__init__(message, kind=ProviderError.UNCERTAIN, provider=provider)
        self.sent_at = sent_at
        self.failed_at = failed_at
        self.fingerprint = fingerprint


class BudgetExceeded(ProviderError):
    """A submission would take the campaign past its `budget_usd`: refused before anything is sent."""

    def __init__(self, message: str):
        super().__init__(message, kind=ProviderError.FATAL)


class MediaError(PipelineError, RuntimeError):
    """ffmpeg or a probe failed on a media file."""
