"""Sliding windows of one model's recent inputs and scores, judged against its model card.

On the request path a monitor only appends: ``deque.extend`` of the request's values
(the window drops its oldest values itself), a few hundred nanoseconds per input. Every
figure is computed by :meth:`ModelQuality.refresh`, on a timer, over whole windows with
numpy: PSI against the card's training deciles or category frequencies, the shares out
of the training range, null, served from the cache or as defaults, stale at the store,
and of categories the model never saw. A figure above its ``warning`` or ``critical``
threshold sets the status (docs/data-quality.md).

An input without a training baseline in its card (a card written before the drift
baselines) is ``no_baseline``: its shares are still shown, it is never judged.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

import numpy as np

from gateway.contracts.card import CardInput, Distribution, ModelCard
from gateway.contracts.distribution import DistributionCheck, UsualValues
from gateway.quality.psi import psi
from gateway.settings.quality import DataQualitySettings, Thresholds

Status = Literal["ok", "warning", "critical", "no_baseline"]
STATUS_LEVEL: dict[str, int] = {"ok": 0, "warning": 1, "critical": 2}
_BY_LEVEL: tuple[Status, ...] = ("ok", "warning", "critical")

# A store value's source, as bits: served from the cache, or as the card's default, and
# whether the store's own value was too old to use (then the cache or default served).
CACHE, DEFAULTS, STALE = 1, 2, 4
_SOURCE_BITS = {"live": 0, "cache": CACHE, "defaults": DEFAULTS}
# The variants whose scores are watched, and whose card holds each one's baseline.
SCORED_VARIANTS = ("primary", "canary", "fallback")


class RowSources(Protocol):
    """Where one row's store features came from (the enrichment's per-row record)."""

    @property
    def sources(self) -> Mapping[str, str]: ...  # feature name -> live | cache | defaults

    @property
    def stale(self) -> Collection[str]: ...  # features whose store value was too old


@dataclass(frozen=True, slots=True)
class Figures:
    """One window judged; a share or PSI is ``None`` where it does not apply (or the
    window holds fewer than ``min_count`` values)."""

    status: Status
    window_count: int
    psi: float | None = None
    out_of_range_share: float | None = None
    null_share: float | None = None
    unseen_category_share: float | None = None
    default_share: float | None = None
    cache_share: float | None = None
    stale_share: float | None = None
    reasons: tuple[str, ...] = ()
    # Critical because of the values themselves (drift, range, nulls, unseen categories),
    # not because of where they came from: what ``on_critical: fallback`` acts on.
    values_critical: bool = False

    def as_dict(self) -> dict[str, Any]:
        figures = asdict(self)
        for key, value in figures.items():
            if isinstance(value, float):
                figures[key] = round(value, 6)
        figures["reasons"] = list(self.reasons)
        del figures["values_critical"]
        return figures


class _Verdict:
    """Collects a window's figures against their thresholds into a status and reasons."""

    __slots__ = ("level", "reasons", "values_critical")

    def __init__(self) -> None:
        self.level = 0
        self.reasons: list[str] = []
        self.values_critical = False

    def weigh(
        self, what: str, figure: float | None, limits: Thresholds, *, of_values: bool
    ) -> None:
        if figure is None:
            return
        if figure > limits.critical:
            level, bound = 2, limits.critical
        elif figure > limits.warning:
            level, bound = 1, limits.warning
        else:
            return
        self.level = max(self.level, level)
        self.values_critical |= of_values and level == 2
        self.reasons.append(f"{what} {figure:.3g} above {bound:g}")

    def status(self) -> Status:
        return _BY_LEVEL[self.level]


class _Binned:
    """A numeric baseline: the card's decile edges and training shares per bin."""

    __slots__ = ("edges", "expected")

    def __init__(self, distribution: Distribution) -> None:
        self.edges = np.asarray(distribution.edges, dtype=np.float64)
        self.expected = np.asarray(distribution.shares, dtype=np.float64)

    def psi(self, values: np.ndarray) -> float | None:
        if values.size == 0:
            return None
        bins = np.searchsorted(self.edges, values, side="right")
        return psi(self.expected, np.bincount(bins, minlength=self.expected.size))


class InputMonitor:
    """The window of one input's recent values (and, for a store input, their sources)."""

    __slots__ = ("_binned", "_frequencies", "_usual", "kind", "name", "sources", "values")

    def __init__(self, spec: CardInput, usual: UsualValues | None, window: int) -> None:
        self.name = spec.name
        self.kind = spec.kind
        self.values: deque[Any] = deque(maxlen=window)
        self.sources: deque[int] | None = deque(maxlen=window) if spec.source == "feature" else None
        self._usual = usual
        stats = spec.stats
        self._binned = (
            _Binned(stats.distribution) if stats is not None and stats.distribution else None
        )
        self._frequencies = stats.frequencies if stats is not None else None

    @property
    def has_baseline(self) -> bool:
        if self.kind in ("float", "int"):
            return self._binned is not None
        return bool(self._frequencies)

    def judge(self, settings: DataQualitySettings) -> Figures:
        count = len(self.values)
        sourced = self._source_shares(settings)
        if count < settings.min_count:
            status: Status = "ok" if self.has_baseline else "no_baseline"
            return Figures(status, count)
        if self.kind in ("float", "int"):
            figures = self._numeric(count)
        else:
            figures = self._categorical(count)
        verdict = _Verdict()
        for key, limits, of_values in (
            ("psi", settings.psi, True),
            ("out_of_range_share", settings.out_of_range_share, True),
            ("null_share", settings.null_share, True),
            ("unseen_category_share", settings.unseen_category_share, True),
            ("default_share", settings.default_share, False),
            ("cache_share", settings.cache_share, False),
            ("stale_share", settings.stale_share, False),
        ):
            figure = figures.get(key, sourced.get(key))
            verdict.weigh(key.replace("_", " "), figure, limits, of_values=of_values)
        status = verdict.status() if self.has_baseline else "no_baseline"
        return Figures(
            status,
            count,
            reasons=tuple(verdict.reasons),
            values_critical=verdict.values_critical and self.has_baseline,
            **figures,
            **sourced,
        )

    def _numeric(self, count: int) -> dict[str, float | None]:
        values = np.array(self.values, dtype=np.float64)  # None becomes NaN
        nulls = np.isnan(values)
        valid = values[~nulls]
        usual = self._usual
        outside = None
        if usual is not None:
            outside = float(np.count_nonzero((valid < usual.lo) | (valid > usual.hi))) / count
        return {
            "psi": self._binned.psi(valid) if self._binned is not None else None,
            "out_of_range_share": outside,
            "null_share": float(np.count_nonzero(nulls)) / count,
            "unseen_category_share": None,
        }

    def _categorical(self, count: int) -> dict[str, float | None]:
        if self.kind == "bool":  # true/false, or 1.0/0.0 in an FP32 tensor
            tally = Counter(None if v is None else ("true" if v else "false") for v in self.values)
        else:
            tally = Counter(None if v is None else str(v) for v in self.values)
        nulls = tally.pop(None, 0)
        frequencies = self._frequencies or {}
        unseen = sum(n for value, n in tally.items() if value not in frequencies)
        drift = None
        # PSI over the known values only: unseen ones have their own share and threshold
        # (an empty training bin would make their PSI term explode and count them twice).
        if frequencies and count > nulls + unseen:
            expected = np.array(list(frequencies.values()))
            drift = psi(expected, np.array([tally.get(value, 0) for value in frequencies]))
        return {
            "psi": drift,
            "out_of_range_share": None,
            "null_share": nulls / count,
            "unseen_category_share": (
                unseen / count if self.kind == "category" and frequencies else None
            ),
        }

    def _source_shares(self, settings: DataQualitySettings) -> dict[str, float | None]:
        if self.sources is None or len(self.sources) < settings.min_count:
            return {}
        codes = np.array(self.sources, dtype=np.uint8)
        return {
            "default_share": float(np.count_nonzero(codes & DEFAULTS)) / codes.size,
            "cache_share": float(np.count_nonzero(codes & CACHE)) / codes.size,
            "stale_share": float(np.count_nonzero(codes & STALE)) / codes.size,
        }


class ScoreMonitor:
    """The window of one variant's served scores, against its card's training scores."""

    __slots__ = ("_binned", "values")

    def __init__(self, distribution: Distribution | None, window: int) -> None:
        self.values: deque[float] = deque(maxlen=window)
        self._binned = _Binned(distribution) if distribution is not None else None

    def judge(self, settings: DataQualitySettings) -> Figures:
        count = len(self.values)
        if self._binned is None:
            return Figures("no_baseline", count)
        if count < settings.min_count:
            return Figures("ok", count)
        drift = self._binned.psi(np.array(self.values, dtype=np.float64))
        verdict = _Verdict()
        verdict.weigh("psi", drift, settings.psi, of_values=True)
        return Figures(verdict.status(), count, psi=drift, reasons=tuple(verdict.reasons))


class ModelQuality:
    """Every input's and every scored variant's monitor for one model, and their verdicts.

    ``spec`` is what it was built from: a reload keeps the monitors (and their windows)
    while it is unchanged.
    """

    def __init__(
        self,
        model: str,
        settings: DataQualitySettings,
        inputs: Sequence[InputMonitor],
        scores: Mapping[str, ScoreMonitor],
        spec: object,
    ) -> None:
        self.model = model
        self.settings = settings
        self.spec = spec
        self._inputs = tuple(inputs)
        self._by_name = {monitor.name: monitor for monitor in self._inputs}
        self._scores = dict(scores)
        self.out_of_distribution: Counter[str] = Counter()
        self.inputs: dict[str, Figures] = {}
        self.scores: dict[str, Figures] = {}
        # Read on every request: the reason to send requests to the fallback, or None.
        self.fallback_reason: str | None = None
        self.refresh()

    @classmethod
    def build(
        cls,
        model: str,
        card: ModelCard,
        settings: DataQualitySettings,
        usual: DistributionCheck,
        *,
        fallback_card: ModelCard | None = None,
        spec: object = None,
    ) -> ModelQuality:
        ranges = {u.name: u for u in usual.inputs}
        window = settings.window
        inputs = [InputMonitor(spec_, ranges.get(spec_.name), window) for spec_ in card.inputs]
        scores = {
            "primary": ScoreMonitor(card.score.distribution if card.score else None, window),
            # A canary is a new version of the same model: judged against the card's scores.
            "canary": ScoreMonitor(card.score.distribution if card.score else None, window),
        }
        if fallback_card is not None:
            baseline = fallback_card.score.distribution if fallback_card.score else None
            scores["fallback"] = ScoreMonitor(baseline, window)
        return cls(model, settings, inputs, scores, spec)

    # -- the request path: appends only ------------------------------------------------

    def observe(self, columns: Mapping[str, Sequence[Any]]) -> None:
        """Add one request's values (input name -> one value per row)."""
        for monitor in self._inputs:
            values = columns.get(monitor.name)
            if values is not None:
                monitor.values.extend(values)

    def observe_sources(self, rows: Sequence[RowSources]) -> None:
        """Add where each row's store features came from."""
        by_name = self._by_name
        for row in rows:
            stale = row.stale
            for name, source in row.sources.items():
                monitor = by_name.get(name)
                if monitor is not None and monitor.sources is not None:
                    code = _SOURCE_BITS[source]
                    monitor.sources.append(code | STALE if name in stale else code)

    def observe_scores(self, variant: str, scores: Sequence[float]) -> None:
        monitor = self._scores.get(variant)
        if monitor is not None:
            monitor.values.extend(scores)

    def count_out_of_distribution(self, unusual: Mapping[str, int]) -> None:
        self.out_of_distribution.update(unusual)

    # -- the timer ------------------------------------------------------------------------

    def refresh(self) -> None:
        """Judge every window now; set the mitigation for ``on_critical: fallback``."""
        settings = self.settings
        self.inputs = {m.name: m.judge(settings) for m in self._inputs}
        self.scores = {variant: m.judge(settings) for variant, m in self._scores.items()}
        critical = self.critical_store_inputs()
        if critical and settings.on_critical == "fallback":
            self.fallback_reason = "store features critical: " + "; ".join(
                f"{name} ({', '.join(self.inputs[name].reasons)})" for name in critical
            )
        else:
            self.fallback_reason = None

    def critical_store_inputs(self) -> list[str]:
        """The store inputs whose values are critical (by the last refresh)."""
        return [
            name
            for name, figures in self.inputs.items()
            if figures.values_critical and self._by_name[name].sources is not None
        ]

    def status(self) -> dict[str, Any]:
        """``/admin/status`` ``data_quality`` of this model, as of the last refresh."""
        primary = self.scores.get("primary")
        score = primary.as_dict() if primary is not None else {}
        score["out_of_range_share"] = None  # scores have no training range in the card
        score["by_variant"] = {variant: f.as_dict() for variant, f in self.scores.items()}
        return {
            "window": self.settings.window,
            "min_count": self.settings.min_count,
            "on_critical": self.settings.on_critical,
            "mitigation": {
                "active": self.fallback_reason is not None,
                "reason": self.fallback_reason,
            },
            "inputs": {
                name: {
                    **figures.as_dict(),
                    "out_of_distribution_total": self.out_of_distribution[name],
                }
                for name, figures in self.inputs.items()
            },
            "score": score,
        }
