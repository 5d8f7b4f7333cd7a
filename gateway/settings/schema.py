"""The schema of ``config/gateway.yaml``: frozen pydantic models, unknown keys refused.

Only the shape and value rules live here; checks that need the file system (model cards)
are done by :mod:`gateway.settings.loader`, which reports both kinds of error together.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Exporter = Literal["otlp", "console", "none"]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    graceful_shutdown_seconds: float = Field(default=10.0, gt=0)


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

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        if parts.query or parts.fragment:
            raise ValueError("must not have a query or fragment")
        return value.rstrip("/")


class CanarySettings(UpstreamSettings):
    weight: float = Field(default=0.0, ge=0.0, le=100.0)

    @field_validator("weight")
    @classmethod
    def _routing_not_built(cls, value: float) -> float:
        # Declared so the demo stack can name its canary; until weighted routing exists a
        # non-zero weight would silently send nothing to the canary, so refuse it.
        if value != 0:
            raise ValueError("canary routing is not available in this version; weight must be 0")
        return value


class ShadowSettings(UpstreamSettings):
    sample_percent: float = Field(default=0.0, ge=0.0, le=100.0)

    @field_validator("sample_percent")
    @classmethod
    def _shadowing_not_built(cls, value: float) -> float:
        if value != 0:
            raise ValueError(
                "shadow traffic is not available in this version; sample_percent must be 0"
            )
        return value


class ModelSettings(_Section):
    """One model the gateway serves under its own name."""

    # Model directory holding model-card.json, relative to the config file.
    card: str
    primary: UpstreamSettings
    canary: CanarySettings | None = None
    shadows: tuple[ShadowSettings, ...] = ()
    max_batch_size: int = Field(default=256, ge=1)

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
    models: dict[str, ModelSettings] = Field(min_length=1)

    @field_validator("models")
    @classmethod
    def _model_names(cls, value: dict[str, ModelSettings]) -> dict[str, ModelSettings]:
        for name in value:
            if not name or any(c in name for c in "/: "):
                raise ValueError(
                    f"model name {name!r} must be non-empty without '/', ':' or spaces"
                )
        return value
