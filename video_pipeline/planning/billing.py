"""How a provider bills one job: per second, per fixed-length clip or per request, and what a failed job costs."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

#: what a finished job came to, as a provider bills it
OUTCOMES = ("succeeded", "failed", "failed-policy", "canceled")
Outcome = Literal["succeeded", "failed", "failed-policy", "canceled"]
FailurePolicy = Literal["never", "policy", "always"]

# a float product such as 0.15 * 7 / 0.01 lands a hair above a whole credit; never bill a credit for that hair
_CREDIT_SLACK = 1e-6


class FieldProblem(ValueError):
    """A validation error that names the field at fault (below the object that raised it)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class BillingRule(BaseModel):
    """One model's billing: the unit billed, the seconds counted, and whether failed or canceled jobs are charged."""

    # field order matters: each validator sees only the fields above it, so `unit` comes first
    model_config = ConfigDict(extra="forbid", frozen=True)

    unit: Literal["second", "clip", "request"] = "second"
    billed_seconds: Literal["requested", "output"] = "requested"
    minimum_seconds: float | None = Field(default=None, gt=0, validate_default=True)
    clip_lengths: list[int] | None = Field(default=None, validate_default=True)
    clip_prices: dict[str, dict[int, float]] | None = Field(default=None, validate_default=True)
    price_per_request: dict[str, float] | None = Field(default=None, validate_default=True)
    charged_on_failure: FailurePolicy = "never"
    #: where one provider serving the model bills failures differently (Runway charges moderated generations)
    provider_failure: dict[str, FailurePolicy] = {}
    credit_usd: float | None = Field(default=None, gt=0)
    currency_note: str | None = None
    source: str = Field(default="default: per second of requested output; failed jobs not charged", min_length=1)

    @field_validator("minimum_seconds")
    @classmethod
    def _minimum_per_second_only(cls, value, info: ValidationInfo):
        if value is not None and info.data.get("unit", "second") != "second":
            raise ValueError("minimum_seconds applies to unit: second only (a clip's length is its minimum)")
        return value

    @field_validator("clip_lengths")
    @classmethod
    def _clip_lengths(cls, value, info: ValidationInfo):
        unit = info.data.get("unit", "second")
        if unit == "clip" and not value:
            raise ValueError("unit: clip needs clip_lengths, the clip lengths in seconds the provider bills")
        if value is not None and unit != "clip":
            raise ValueError("clip_lengths applies to unit: clip only")
        if value is not None and (value[0] <= 0 or sorted(set(value)) != value):
            raise ValueError("clip_lengths must be positive and listed in increasing order")
        return value

    @field_validator("clip_prices")
    @classmethod
    def _clip_prices(cls, value, info: ValidationInfo):
        if value is None:
            return value
        if info.data.get("unit", "second") != "clip":
            raise ValueError("clip_prices applies to unit: clip only")
        lengths = set(info.data.get("clip_lengths") or [])
        for resolution, prices in value.items():
            if lengths and set(prices) != lengths:
                raise ValueError(f"{resolution}: give a price for each clip length ({sorted(lengths)}), "
                                 f"not {sorted(prices)}")
            if any(p < 0 for p in prices.values()):
                raise ValueError(f"{resolution}: prices must be >= 0")
        return value

    @field_validator("price_per_request")
    @classmethod
    def _price_per_request(cls, value, info: ValidationInfo):
        unit = info.data.get("unit", "second")
        if unit == "request" and not value:
            raise ValueError("unit: request needs price_per_request, a price per resolution")
        if value is not None and unit != "request":
            raise ValueError("price_per_request applies to unit: request only")
        if value is not None and any(p < 0 for p in value.values()):
            raise ValueError("prices must be >= 0")
        return value

    def check_against(self, resolutions: list[str], durations: list[int], providers: set[str]) -> None:
        """Raise FieldProblem when the rule cannot bill what its model makes (a resolution, a duration, a route)."""
        if self.unit == "clip" and self.clip_lengths and durations and durations[-1] > self.clip_lengths[-1]:
            raise FieldProblem("billing.clip_lengths", f"the model makes {durations[-1]} s clips but the longest "
                                                       f"billed clip is {self.clip_lengths[-1]} s")
        if self.unit == "request":
            missing = [r for r in resolutions if r not in (self.price_per_request or {})]
            if missing:
                raise FieldProblem("billing.price_per_request", f"no price for resolution(s) {', '.join(missing)}")
        unknown = [r for r in (self.clip_prices or {}) if r not in resolutions]
        if unknown:
            raise FieldProblem("billing.clip_prices", f"resolution(s) {', '.join(unknown)} are not the model's")
        strangers = sorted(set(self.provider_failure) - providers)
        if strangers:
            raise FieldProblem("billing.provider_failure", f"no route to provider(s) {', '.join(strangers)}")

    def clip_for(self, seconds: float) -> int:
        """The billed clip for a job of `seconds`: the shortest listed length that holds it."""
        for length in self.clip_lengths or []:
            if seconds <= length + 1e-9:
                return length
        raise ValueError(f"{seconds:g} s is longer than the longest billed clip ({(self.clip_lengths or [0])[-1]} s)")

    def amount(self, price_per_second: Mapping[str, float], seconds: float, resolution: str) -> float:
        """What a job of `seconds` at `resolution` costs when it is charged, in USD rounded to 4 decimals."""
        if seconds < 0 or not math.isfinite(seconds):
            raise ValueError(f"seconds must be a finite number >= 0, not {seconds!r}")
        try:
            if self.unit == "request":
                raw = (self.price_per_request or {})[resolution]
            elif self.unit == "clip":
                length = self.clip_for(seconds)
                prices = (self.clip_prices or {}).get(resolution)
                raw = prices[length] if prices else price_per_second[resolution] * length
            else:
                raw = price_per_second[resolution] * max(seconds, self.minimum_seconds or 0.0)
        except KeyError:
            raise ValueError(f"no price for resolution {resolution!r}") from None
        if self.credit_usd:
            # the provider debits whole credits
            raw = math.ceil(raw / self.credit_usd - _CREDIT_SLACK) * self.credit_usd
        return round(raw, 4)

    def charges(self, outcome: str, provider: str | None = None) -> bool:
        """Whether a job that ended in `outcome` is billed (on `provider`, when one bills differently)."""
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}; expected one of {', '.join(OUTCOMES)}")
        if outcome == "succeeded":
            return True
        policy = self.provider_failure.get(provider or "", self.charged_on_failure)
        if policy == "always":
            return True
        return policy == "policy" and outcome == "failed-policy"

    def credits(self, usd: float) -> int | None:
        """`usd` in the provider's credits, for providers that bill in credits; None for the others."""
        return None if not self.credit_usd else round(usd / self.credit_usd)
