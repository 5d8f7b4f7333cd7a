"""Load ``gateway.yaml`` whole or not at all.

A load returns a :class:`LoadedConfig` (the validated settings plus every model card it
names), or raises :class:`ConfigError` listing every problem with its key path, e.g.
``models.fraud.primary.url: must be an http:// or https:// URL with a host``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml
from pydantic import ValidationError

from gateway.contracts.card import CardError, ModelCard, load_card
from gateway.contracts.feature_plan import PlanError, compile_plan
from gateway.contracts.tightening import contract_problems
from gateway.settings.auth import ResolvedAuth, resolve_auth
from gateway.settings.fallback_check import fallback_problems
from gateway.settings.schema import GatewaySettings, ModelSettings


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path or '<root>'}: {self.message}"


class ConfigError(Exception):
    """A config that was refused; ``problems`` holds every reason found."""

    def __init__(self, source: str, problems: list[ConfigProblem]) -> None:
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"invalid config {source}:\n{lines}")
        self.source = source
        self.problems = problems


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """Validated settings and the cards of their models; immutable once built."""

    source: Path
    settings: GatewaySettings
    cards: MappingProxyType[str, ModelCard]
    model_dirs: MappingProxyType[str, Path]
    # Verified fallback model directories, by served model name (see gateway.fallback).
    fallback_dirs: MappingProxyType[str, Path] = field(default_factory=lambda: MappingProxyType({}))
    # The ``auth:`` section with its keys file read (None: no API keys are needed).
    auth: ResolvedAuth | None = None

    @property
    def watched_files(self) -> tuple[Path, ...]:
        """Files besides ``source`` whose change a live reload must pick up."""
        keys_file = self.auth.keys_file if self.auth is not None else None
        return (keys_file,) if keys_file is not None else ()


def load_config(path: Path) -> LoadedConfig:
    """Parse, validate and resolve the config at ``path``; raise :class:`ConfigError`."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            source, [ConfigProblem("", f"cannot read: {exc.strerror or exc}")]
        ) from exc
    return parse_config(text, path)


def parse_config(text: str, path: Path) -> LoadedConfig:
    """Validate YAML ``text`` as if read from ``path`` (card paths resolve against its folder)."""
    source = str(path)
    raw = _parse_yaml(text, source)
    try:
        settings = GatewaySettings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(source, [_problem(err) for err in exc.errors()]) from exc

    problems: list[ConfigProblem] = []
    cards: dict[str, ModelCard] = {}
    dirs: dict[str, Path] = {}
    fallback_dirs: dict[str, Path] = {}
    for name, model in settings.models.items():
        model_dir = (path.parent / model.card).resolve()
        try:
            card = load_card(model_dir)
        except CardError as exc:
            problems.extend(
                ConfigProblem(
                    f"models.{name}.card", f"{model_dir}: {where + ': ' if where else ''}{msg}"
                )
                for where, msg in exc.problems
            )
            continue
        if card.role == "fallback":
            problems.append(
                ConfigProblem(
                    f"models.{name}.card",
                    f"{model_dir} is a fallback model card; "
                    "a served model needs one with entity and request inputs",
                )
            )
        cards[name] = card
        dirs[name] = model_dir
        problems.extend(
            ConfigProblem(f"models.{name}.contract.{where}", message)
            for where, message in contract_problems(card, model.contract)
        )
        try:
            compile_plan(name, model, card, store_configured=settings.feature_store is not None)
        except PlanError as exc:
            problems.extend(ConfigProblem(where, message) for where, message in exc.problems)
        problems.extend(_lower_rung_problems(name, model))
        if model.fallback is not None:
            found, fallback_dir = fallback_problems(model.fallback, card, path.parent)
            problems.extend(
                ConfigProblem(f"models.{name}.fallback.{where}", message)
                for where, message in found
            )
            if fallback_dir is not None:
                fallback_dirs[name] = fallback_dir
    auth, auth_problems = resolve_auth(settings.auth, path.parent, settings.models)
    problems.extend(ConfigProblem(where, message) for where, message in auth_problems)
    if problems:
        raise ConfigError(source, problems)
    return LoadedConfig(
        path,
        settings,
        MappingProxyType(cards),
        MappingProxyType(dirs),
        MappingProxyType(fallback_dirs),
        auth,
    )


def _lower_rung_problems(name: str, model: ModelSettings) -> list[ConfigProblem]:
    """Policies that send requests down the ladder need a rung there to serve them."""
    if model.fallback is not None or model.default_response is not None:
        return []
    wanted = {
        f"models.{name}.contract.out_of_distribution": model.contract.out_of_distribution,
        f"models.{name}.data_quality.on_critical": model.data_quality.on_critical,
    }
    return [
        ConfigProblem(path, "'fallback' needs a fallback model or a default_response")
        for path, value in wanted.items()
        if value == "fallback"
    ]


def _parse_yaml(text: str, source: str) -> Any:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(source, [ConfigProblem("", f"not valid YAML: {where}{problem}")]) from exc
    if not isinstance(raw, dict):
        raise ConfigError(source, [ConfigProblem("", "must be a mapping at the top level")])
    return raw


def _problem(err: Any) -> ConfigProblem:
    path = ".".join(str(part) for part in err["loc"])
    message = err["msg"]
    if err["type"] == "extra_forbidden":
        message = "unknown key"
    elif message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    return ConfigProblem(path, message)
