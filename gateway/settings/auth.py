"""The optional ``auth:`` section: predict API keys, stored as SHA-256 hashes, with limits.

::

    auth:
      protect_metadata: false            # true: metadata endpoints need a key too
      api_keys_file: secrets/api-keys.yaml   # optional; relative to the config file
      api_keys:
        - name: checkout-service         # what metrics, spans and logs show; never the key
          sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
          rate_per_second: 50            # token bucket refill; omitted: not limited
          burst: 50                      # bucket size; default: one second's worth
          models: [fraud]                # omitted: every model

The keys file (a Kubernetes Secret mounted as a file) holds the same shape as the
section's list, under the same key: ``api_keys: [{name, sha256, ...}, ...]``. Keys from
both places are one table: names and hashes must be unique across them, and every model
a key names must be served. :func:`resolve_auth` reads the file and makes those checks,
reporting each problem with its key path (``auth.api_keys.1.models``, or
``auth.api_keys_file`` with the path inside the file).
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

_SHA256_HEX = re.compile(r"[0-9A-Fa-f]{64}")


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ApiKeySettings(_Section):
    """One client's key: its name, the SHA-256 of the key, its limit and its models."""

    # A metric label and span attribute: short, printable, no spaces.
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    sha256: str
    # Requests per second the key's token bucket refills; None: the key is not limited.
    rate_per_second: float | None = Field(default=None, gt=0)
    # Requests the bucket holds (a burst after a quiet spell); default: one second's worth.
    burst: int | None = Field(default=None, ge=1)
    # Models the key may call; None: every model.
    models: tuple[str, ...] | None = None

    @field_validator("sha256")
    @classmethod
    def _hex_digest(cls, value: str) -> str:
        if not _SHA256_HEX.fullmatch(value):
            raise ValueError(
                "must be the key's SHA-256 as 64 hex characters (gateway auth hash-key)"
            )
        return value.lower()

    @model_validator(mode="after")
    def _burst_needs_a_rate(self) -> ApiKeySettings:
        if self.burst is not None and self.rate_per_second is None:
            raise ValueError("burst needs rate_per_second")
        return self

    @property
    def bucket_size(self) -> int | None:
        """The token bucket's size, or None when the key is not limited."""
        if self.rate_per_second is None:
            return None
        return self.burst if self.burst is not None else max(1, math.ceil(self.rate_per_second))


class ApiKeysFile(_Section):
    """The keys file's shape: the same list as ``auth.api_keys``."""

    api_keys: tuple[ApiKeySettings, ...] = ()


class AuthSettings(_Section):
    """Predict API keys; without this section every request is served as before."""

    api_keys: tuple[ApiKeySettings, ...] = ()
    api_keys_file: str | None = Field(default=None, min_length=1)
    # Health (live, ready) and /metrics stay open whatever this says: probes and scrapers
    # carry no key. True: server and model metadata, model ready and /openapi.json need one.
    protect_metadata: bool = False


@dataclass(frozen=True, slots=True)
class ResolvedAuth:
    """The auth section with the keys file read: every key, checked as one table."""

    keys: tuple[ApiKeySettings, ...]
    protect_metadata: bool
    keys_file: Path | None  # watched for changes beside the config file


def resolve_auth(
    auth: AuthSettings | None, folder: Path, models: Collection[str]
) -> tuple[ResolvedAuth | None, list[tuple[str, str]]]:
    """Read the keys file (relative to ``folder``) and check all keys together.

    Returns the resolved section (None without an ``auth:`` section) and the problems as
    ``(key path, message)``; with any problem the section must not be used.
    """
    if auth is None:
        return None, []
    problems: list[tuple[str, str]] = []
    entries: list[tuple[str, ApiKeySettings]] = [
        (f"auth.api_keys.{i}", key) for i, key in enumerate(auth.api_keys)
    ]
    keys_file = None
    if auth.api_keys_file is not None:
        keys_file = (folder / auth.api_keys_file).absolute()
        from_file, file_problems = _read_keys_file(keys_file)
        problems += file_problems
        entries += [(f"auth.api_keys_file: {keys_file}: api_keys.{i}", k) for i, k in from_file]
    problems += _table_problems(entries, models)
    keys = tuple(key for _, key in entries)
    return ResolvedAuth(keys, auth.protect_metadata, keys_file), problems


def _read_keys_file(path: Path) -> tuple[list[tuple[int, ApiKeySettings]], list[tuple[str, str]]]:
    where = "auth.api_keys_file"
    try:
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        return [], [(where, f"{path}: cannot read: {exc.strerror or exc}")]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        return [], [(where, f"{path}: not valid YAML: {at}{getattr(exc, 'problem', exc)}")]
    if raw is None:
        raw = {}
    try:
        parsed = ApiKeysFile.model_validate(raw)
    except ValidationError as exc:
        return [], [(where, f"{path}: {_located(err)}") for err in exc.errors()]
    return list(enumerate(parsed.api_keys)), []


def _located(err: Any) -> str:
    """A pydantic error inside the keys file as ``api_keys.0.sha256: message``."""
    inner = ".".join(str(part) for part in err["loc"])
    message = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
    message = message.removeprefix("Value error, ")
    return f"{inner}: {message}" if inner else message


def _table_problems(
    entries: Sequence[tuple[str, ApiKeySettings]], models: Collection[str]
) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    names: dict[str, str] = {}
    hashes: dict[str, str] = {}
    for where, key in entries:
        first = names.setdefault(key.name, where)
        if first != where:
            problems.append((f"{where}.name", f"duplicate key name {key.name!r} (also {first})"))
        first = hashes.setdefault(key.sha256, where)
        if first != where:
            problems.append((f"{where}.sha256", f"duplicate key hash (also {first})"))
        unknown = [m for m in key.models or () if m not in models]
        if unknown:
            served = sorted(models)
            message = f"unknown model(s) {unknown}; the gateway serves {served}"
            problems.append((f"{where}.models", message))
    return problems
