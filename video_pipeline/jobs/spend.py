"""What campaigns cost, read from the job ledger: estimated, reserved, actually billed and uncertain, per model.

Each provider job is one ledger row, paid by whichever run submitted it, so a campaign's figures count every paid
job once: a rerun that reuses clips adds nothing, two concurrent runs of one campaign add up to what was paid.
Jobs the local renderer made are priced as the providers would bill them and reported as "would cost".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from video_pipeline.jobs.ledger import IN_FLIGHT, JobLedger, JobRow, LedgerState

LOCAL = "local"


@dataclass
class SpendLine:
    """One campaign × model × provider."""

    campaign: str
    model: str
    provider: str
    jobs: int = 0
    estimated_usd: float = 0.0      # the catalog's estimate for every job sent (retries and fallbacks included)
    reserved_usd: float = 0.0       # held now by jobs in flight (their bill is not known yet)
    actual_usd: float = 0.0         # billed: the provider's figure where it gives one, else its billing rule
    uncertain_usd: float = 0.0      # reservations of jobs that may have been created: counted as spent
    uncertain_jobs: int = 0
    would_cost: bool = False        # made offline by the local renderer: nothing was spent

    def add(self, row: JobRow) -> None:
        self.jobs += 1
        self.estimated_usd += row.estimated_usd or 0.0
        if row.cost_usd is not None:
            self.actual_usd += row.cost_usd
        elif row.state in IN_FLIGHT:
            self.reserved_usd += row.reserved_usd or 0.0
        elif row.state == LedgerState.UNCERTAIN or (row.resolution or "").startswith("operator"):
            # unknown or let go by an operator: the provider may have billed it
            self.uncertain_usd += row.reserved_usd or 0.0
            self.uncertain_jobs += row.state == LedgerState.UNCERTAIN


@dataclass
class CampaignSpend:
    campaign: str
    budget_usd: float | None
    lines: list[SpendLine] = field(default_factory=list)

    def total(self, name: str) -> float:
        return round(float(sum(getattr(line, name) for line in self.lines)), 4)   # 0.0, not 0, with no lines

    @property
    def would_cost(self) -> bool:
        return bool(self.lines) and all(line.would_cost for line in self.lines)

    def as_dict(self) -> dict:
        return {"campaign": self.campaign, "budget_usd": self.budget_usd, "would_cost": self.would_cost,
                "estimated_usd": self.total("estimated_usd"), "reserved_usd": self.total("reserved_usd"),
                "actual_usd": self.total("actual_usd"), "uncertain_usd": self.total("uncertain_usd"),
                "uncertain_jobs": int(self.total("uncertain_jobs")), "jobs": int(self.total("jobs")),
                "by_model": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(line).items()
                              if k != "campaign"} for line in self.lines]}


def campaign_spend(ledger: JobLedger, campaign: str) -> CampaignSpend:
    """The campaign's figures from every run that sent jobs for it."""
    lines: dict[tuple[str, str], SpendLine] = {}
    for row in ledger.campaign_rows(campaign):
        line = lines.setdefault((row.model, row.provider), SpendLine(campaign, row.model, row.provider,
                                                                     would_cost=row.provider == LOCAL))
        line.add(row)
    for line in lines.values():
        for name in ("estimated_usd", "reserved_usd", "actual_usd", "uncertain_usd"):
            setattr(line, name, round(getattr(line, name), 4))
    return CampaignSpend(campaign, ledger.budget(campaign), sorted(lines.values(), key=lambda l: (l.model, l.provider)))


def spent_words(spend: CampaignSpend) -> str:
    """"$1.62 spent" for provider jobs, "would cost $1.62" for offline renders, uncertain jobs named."""
    actual = spend.total("actual_usd")
    words = f"would cost ${actual:.2f}" if spend.would_cost else f"${actual:.2f} spent"
    if spend.total("uncertain_jobs"):
        words += (f", {int(spend.total('uncertain_jobs'))} uncertain job(s) (up to "
                  f"${spend.total('uncertain_usd'):.2f} more; `video-pipeline resolve`)")
    return words
