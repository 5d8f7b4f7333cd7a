"""Config of the data-quality monitors (``models.<name>.data_quality``).

Per model, every input and the served score are compared with the training distribution
in the model card over a sliding window (see docs/data-quality.md). Thresholds come as
``{warning, critical}`` pairs; a pair out of order is refused with its key path.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Thresholds(_Section):
    """A figure above ``warning`` is a warning, above ``critical`` critical (so 0 means
    any at all)."""

    warning: float = Field(ge=0)
    critical: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if self.warning > self.critical:
            raise ValueError(f"warning {self.warning} is above critical {self.critical}")
        return self


class ShareThresholds(Thresholds):
    """Thresholds on a share of the window's values, in [0, 1]."""

    warning: float = Field(ge=0, le=1)
    critical: float = Field(ge=0, le=1)


DEFAULT_MIN_COUNT = 500


class DataQualitySettings(_Section):
    """The monitors of one model; every key optional."""

    enabled: bool = True
    # Values kept per input (and scores per variant): the most recent ones.
    window: int = Field(default=1000, ge=10, le=1_000_000)
    # PSI, shares and statuses are recomputed on this timer, never per request.
    refresh_seconds: float = Field(default=1.0, gt=0, le=3600)
    # A window with fewer values is not judged yet (status ok, psi null). The PSI of a
    # sample from the training distribution itself is about (bins - 1) / n: 0.09 for 100
    # values over ten deciles, as high as the warning threshold; 0.018 for 500. Unset: 500,
    # or the whole window when that is smaller.
    min_count: int = Field(default=DEFAULT_MIN_COUNT, ge=1)
    # The population stability index against the card's training distribution
    # (0.1 and 0.25, as is customary).
    psi: Thresholds = Thresholds(warning=0.1, critical=0.25)
    out_of_range_share: ShareThresholds = ShareThresholds(warning=0.05, critical=0.25)
    null_share: ShareThresholds = ShareThresholds(warning=0.05, critical=0.25)
    default_share: ShareThresholds = ShareThresholds(warning=0.05, critical=0.25)
    cache_share: ShareThresholds = ShareThresholds(warning=0.25, critical=0.75)
    # Store values too old to use (then the cache or the default served instead).
    stale_share: ShareThresholds = ShareThresholds(warning=0.05, critical=0.25)
    unseen_category_share: ShareThresholds = ShareThresholds(warning=0.02, critical=0.1)
    # flag: report only. fallback: while one of the model's store features is critical by
    # its values (drift, range, nulls; not by cache or default shares, which the ladder
    # already handles), its requests are served by the fallback model, labelled degraded,
    # the reason in /admin/status; they return when the feature is ok again.
    on_critical: Literal["flag", "fallback"] = "flag"

    @model_validator(mode="after")
    def _fits(self) -> DataQualitySettings:
        if "min_count" not in self.model_fields_set:
            # Settings are frozen; the default follows a small window.
            object.__setattr__(self, "min_count", min(DEFAULT_MIN_COUNT, self.window))
        if self.min_count > self.window:
            raise ValueError(f"min_count {self.min_count} is larger than window {self.window}")
        return self
