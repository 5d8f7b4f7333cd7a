"""The schema of ``config/gateway.yaml``: frozen pydantic models, unknown keys refused.

Only the shape and value rules live here; checks that need the file system (model cards)
are done by :mod:`gateway.settings.loader`, which reports both kinds of error together.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gateway.settings.analysis import AnalysisSettings
from gateway.settings.auth import AuthSettings
from gateway.settings.quality import DataQualitySettings
from gateway.settings.resilience import (
    BulkheadSettings,
    DefaultResponseSettings,
    FallbackSettings,
    RetrySettings,
    TimeoutSettings,
    UpstreamBreakerSettings,
)

Exporter = Literal["otlp", "console", "none"]


def http_base_url(value: str) -> str:
    """``value`` without a trailing slash, or ValueError unless it is an http(s) base URL."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if parts.query or parts.fragment:
        raise ValueError("must not have a query or fragment")
    return value.rstrip("/")


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ReloadSettings(_Section):
    """Live reload of this file: watched by polling, and on SIGHUP or POST /admin/reload."""

    watch: bool = True
    interval_ms: int = Field(default=1000, ge=50, le=60_000)


class ShadowQueueSettings(_Section):
    """Shadow copies wait in one bounded queue; when it is full they are dropped and counted."""

    max_queue: int = Field(default=256, ge=1)
    concurrency: int = Field(default=4, ge=1, le=256)


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    graceful_shutdown_seconds: float = Field(default=10.0, gt=0)
    # Deepest JSON nesting accepted in a prediction body (a v2 body's tensors need 4 + rank).
    max_json_depth: int = Field(default=32, ge=8, le=128)
    reload: ReloadSettings = ReloadSettings()
    shadow_queue: ShadowQueueSettings = ShadowQueueSettings()


class TelemetrySettings(_Section):
    """Tracing; the standard ``OTEL_*`` variables, when set, take precedence."""

    service_name: str = "gateway"
    # Parent-based: a sampled caller's trace is always continued.
    sampling_ratio: float = Field(default=0.1, ge=0.0, le=1.0)
    exporter: Exporter = "none"


class UpstreamSettings(_Section):
    """One OIP v2 model server."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    url: str
    # The model's name and version on the upstream; default: the gateway's model name
    # and no version segment in the path.
    model_name: str | None = None
    model_version: str | None = None
    timeout_ms: int = Field(default=1000, ge=1, le=600_000)
    # More base URLs serving the same model; a retry goes to the next replica. Each has
    # its own breaker, named `<name>#2`, `<name>#3`, ... (docs/resilience.md).
    replicas: tuple[str, ...] = ()

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_base_url(value)

    @field_validator("replicas")
    @classmethod
    def _replica_urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(http_base_url(url) for url in value)


class CanarySettings(UpstreamSettings):
    # Percent of traffic (fractions allowed, e.g. 0.5), assigned sticky by the model's key.
    weight: float = Field(default=0.0, ge=0.0, le=100.0)
    # The automated rollout and its run (gateway/settings/analysis.py, docs/traffic.md).
    analysis: AnalysisSettings | None = None


class RoutingSettings(_Section):
    """How a request's canary cohort is chosen; see gateway/routing/sticky.py."""

    # The v1 field, v2 request parameter or v2 input (first element) whose value keeps a
    # caller on one variant; default: the card's entity key (customer_id in the demo).
    sticky_key: str | None = None
    # A header that carries the key instead (checked first when set).
    sticky_header: str | None = None
    # Honour `x-gateway-variant: primary|canary` from clients (tests, debugging).
    allow_variant_override: bool = False


class ShadowSettings(UpstreamSettings):
    # Percent of served requests copied to this shadow, off the response path.
    sample_percent: float = Field(default=0.0, ge=0.0, le=100.0)


class BoundsSettings(_Section):
    """An allowed value range; an omitted side is unbounded."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> BoundsSettings:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self


class ConstantOutputSettings(_Section):
    """Flag a model whose recent answers are identical across many distinct inputs."""

    enabled: bool = False
    # Answers compared: the last `window` rows answered for distinct input rows.
    window: int = Field(default=200, ge=2, le=100_000)
    # When true a constant model's answers are refused (502) instead of only flagged.
    reject: bool = False


class ContractSettings(_Section):
    """Tightens (or relaxes) the contract compiled from the model card; see docs/contracts.md."""

    # Invalid (400): outside the card's `domain`, or outside `ranges` where configured, which
    # replace it; a category outside `categories` where configured.
    ranges: dict[str, BoundsSettings] = Field(default_factory=dict)
    categories: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    # Unusual (out of distribution): valid, but outside the card's training range widened by
    # this fraction of its span on each side, or a category the model never saw.
    range_margin: float = Field(default=0.0, ge=0.0, le=100.0)
    # What an unusual value does: serve (flagged and counted), fallback (the request is
    # served by the fallback model), reject (400 for a value the client sent; an unusual
    # feature-store value is never the client's fault and is only flagged).
    out_of_distribution: Literal["serve", "fallback", "reject"] = "serve"
    # NaN (JSON null in a float tensor) passes the gateway only when allowed.
    allow_nan: bool = False
    # Fields whose value may be null: v1 imputes the card's default, v2 forwards the null.
    nullable: tuple[str, ...] = ()
    unknown_fields: Literal["reject", "ignore"] = "reject"
    max_string_length: int = Field(default=256, ge=1, le=1_000_000)
    # strict: the tensor's datatype must be the model's; safe: a narrower integer or float
    # type that converts exactly (INT32 -> INT64, FP32 -> FP64, INT16 -> FP32, ...) is
    # relabelled to the model's datatype before forwarding.
    datatype_conversion: Literal["strict", "safe"] = "strict"
    # Per output name: allowed values of every element of that output's tensor.
    output_ranges: dict[str, BoundsSettings] = Field(default_factory=dict)
    constant_output: ConstantOutputSettings = ConstantOutputSettings()


class StoreBreakerSettings(_Section):
    """The feature store's breaker. It opens when at least ``failure_rate_percent`` of the
    lookups of the last ``window_seconds`` failed (once the window holds ``minimum_calls``),
    or after ``fail_max`` consecutive failures when that is set: a store that is down trips
    it within a second at any real traffic, a blip of a few hundred milliseconds (a worker
    recycle, a GC pause) does not. Open, it tries one lookup after ``reset_timeout_seconds``,
    doubled after each failed trial up to ``max_reset_timeout_seconds``."""

    failure_rate_percent: float = Field(default=50.0, gt=0, le=100)
    window_seconds: float = Field(default=1.0, gt=0, le=600)
    minimum_calls: int = Field(default=5, ge=1)
    fail_max: int = Field(default=0, ge=0)  # consecutive failures; 0: this rule is off
    reset_timeout_seconds: float = Field(default=0.5, gt=0)
    max_reset_timeout_seconds: float = Field(default=10.0, gt=0)
    # Trial calls let through at once while half-open; the others are refused.
    half_open_max_calls: int = Field(default=1, ge=1)
    # While open, the store's GET /health is asked at most this often (when lookups
    # arrive); a 200 lets the next lookup through as the trial. null: wait out the interval.
    probe_interval_ms: float | None = Field(default=250.0, gt=0, le=60_000)

    @model_validator(mode="after")
    def _ordered(self) -> StoreBreakerSettings:
        if "max_reset_timeout_seconds" not in self.model_fields_set:
            # Settings are frozen; an unset bound follows a longer first interval.
            bound = max(self.max_reset_timeout_seconds, self.reset_timeout_seconds)
            object.__setattr__(self, "max_reset_timeout_seconds", bound)
        if self.max_reset_timeout_seconds < self.reset_timeout_seconds:
            raise ValueError(
                f"max_reset_timeout_seconds {self.max_reset_timeout_seconds:g} is below "
                f"reset_timeout_seconds {self.reset_timeout_seconds:g}"
            )
        return self


class CoalesceSettings(_Section):
    """Concurrent requests' lookups in one store call: the first lookup goes out at once
    when no call is in flight; while one is, lookups gather for up to ``window_ms`` or
    ``max_entities`` entities. An entity already being fetched is not asked for twice.
    With ``max_calls_in_flight`` calls out, a batch waits for one to end (null: never)."""

    enabled: bool = True
    window_ms: float = Field(default=1.0, ge=0, le=100)
    max_entities: int = Field(default=64, ge=1, le=10_000)
    max_calls_in_flight: int | None = Field(default=4, ge=1, le=10_000)


class CacheSnapshotSettings(_Section):
    """A file copy of the cache, written on an interval and on shutdown, loaded at start
    (``gateway/features/snapshot.py``); relative paths are relative to the config file."""

    path: str = Field(min_length=1)
    interval_seconds: float = Field(default=60.0, gt=0, le=86_400)


class FeatureCacheSettings(_Section):
    """The last-known-good feature cache (one entry per entity and feature)."""

    max_entries: int = Field(default=100_000, ge=1)
    snapshot: CacheSnapshotSettings | None = None  # off unless set


class FeatureStoreSettings(_Section):
    """The Feast feature server the v1 API (and v2 with entity parameters) enriches from."""

    url: str
    timeout_ms: int = Field(default=200, ge=1, le=60_000)
    # One more try, within the request's budget, of a lookup whose connection was refused,
    # reset or closed before any answer (a store worker restarting): Feast never saw it.
    retry_dropped_connections: bool = True
    # A second identical lookup when the first has not answered after this long, on another
    # connection (another store worker); the first answer wins. null: never.
    hedge_after_ms: float | None = Field(default=50.0, gt=0, le=60_000)
    # Hedges are at most this share of lookups (plus a reserve of hedge_budget_min): when
    # every lookup is slow, hedging them all doubles the load on a store already behind.
    hedge_budget_percent: float = Field(default=10.0, ge=0, le=100)
    hedge_budget_min: int = Field(default=3, ge=0, le=1_000)
    breaker: StoreBreakerSettings = StoreBreakerSettings()
    coalesce: CoalesceSettings = CoalesceSettings()
    cache: FeatureCacheSettings = FeatureCacheSettings()

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_base_url(value)


OnMissing = Literal["defaults", "unavailable"]


class ModelFeatureSettings(_Section):
    """How one model's ``source: feature`` inputs are fetched and judged.

    Keys of ``max_age_overrides`` name an input (``txn_count_7d``), a feature ref
    (``customer_stats:txn_count_7d``) or a feature view (``customer_stats``); the most
    specific wins. ``feature_refs`` maps an input name to the ref fetched for it instead
    of the card's ``feature_ref``.
    """

    # Default: on when a feature_store is configured.
    enabled: bool | None = None
    entity_key: str | None = None  # default: the card's entity_key
    feature_refs: dict[str, str] = Field(default_factory=dict)
    max_age_seconds: float = Field(default=86_400.0, gt=0)
    max_age_overrides: dict[str, float] = Field(default_factory=dict)
    # Read-through freshness, keyed like max_age_overrides (most often by view): a value
    # the store gave this gateway less than that many seconds ago is served from memory,
    # as `live`, without a store call. Off unless set; never longer than the max age.
    refresh_after_seconds: dict[str, float] = Field(default_factory=dict)
    # A value with no live or fresh cached copy: `defaults` uses the card's default (its
    # training median or mode) where the card has one; `unavailable` never does.
    on_missing: OnMissing = "defaults"
    # Inputs never replaced by their default, whatever on_missing says.
    no_defaults: tuple[str, ...] = ()

    @field_validator("max_age_overrides", "refresh_after_seconds")
    @classmethod
    def _positive_ages(cls, value: dict[str, float]) -> dict[str, float]:
        bad = sorted(k for k, age in value.items() if age <= 0)
        if bad:
            raise ValueError(f"ages must be greater than 0: {bad}")
        return value

    @field_validator("feature_refs")
    @classmethod
    def _refs(cls, value: dict[str, str]) -> dict[str, str]:
        bad = sorted(
            ref for ref in value.values() if ref.count(":") != 1 or ":" in (ref[0], ref[-1])
        )
        if bad:
            raise ValueError(f"feature refs must look like 'view:feature': {bad}")
        return value


class ModelSettings(_Section):
    """One model the gateway serves under its own name."""

    # Model directory holding model-card.json, relative to the config file.
    card: str
    primary: UpstreamSettings
    canary: CanarySettings | None = None
    shadows: tuple[ShadowSettings, ...] = ()
    max_batch_size: int = Field(default=256, ge=1)
    routing: RoutingSettings = RoutingSettings()
    contract: ContractSettings = ContractSettings()
    features: ModelFeatureSettings = ModelFeatureSettings()
    # The degradation ladder (gateway/settings/resilience.py, docs/resilience.md).
    breaker: UpstreamBreakerSettings = UpstreamBreakerSettings()
    timeouts: TimeoutSettings = TimeoutSettings()
    retries: RetrySettings = RetrySettings()
    bulkhead: BulkheadSettings = BulkheadSettings()
    fallback: FallbackSettings | None = None
    default_response: DefaultResponseSettings | None = None
    # Drift and data-quality monitors (gateway/settings/quality.py, docs/data-quality.md).
    data_quality: DataQualitySettings = DataQualitySettings()

    @model_validator(mode="after")
    def _unique_upstream_names(self) -> ModelSettings:
        names = [self.primary.name]
        if self.canary:
            names.append(self.canary.name)
        names.extend(s.name for s in self.shadows)
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"upstream names must be unique within a model: {duplicates}")
        return self


class GatewaySettings(_Section):
    """The whole ``gateway.yaml``."""

    server: ServerSettings = ServerSettings()
    telemetry: TelemetrySettings = TelemetrySettings()
    feature_store: FeatureStoreSettings | None = None
    models: dict[str, ModelSettings] = Field(min_length=1)
    # Predict API keys (gateway/settings/auth.py, docs/auth.md); None: no keys needed.
    auth: AuthSettings | None = None

    @field_validator("models")
    @classmethod
    def _model_names(cls, value: dict[str, ModelSettings]) -> dict[str, ModelSettings]:
        for name in value:
            if not name or any(c in name for c in "/: "):
                raise ValueError(
                    f"model name {name!r} must be non-empty without '/', ':' or spaces"
                )
        return value
