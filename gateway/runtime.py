"""The runtime state derived from one loaded config: built whole, then swapped whole.

Everything a request needs that can be computed from config is computed here, once:
upstream URLs, compiled input checkers, v1 decoders, score readers, metadata bodies.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

import orjson

from gateway import __version__
from gateway.contracts.card import ModelCard
from gateway.contracts.oip import InferChecker
from gateway.contracts.outputs import ScoreReader
from gateway.contracts.v1 import InstanceDecoder
from gateway.errors import ModelNotFound
from gateway.settings.loader import LoadedConfig
from gateway.upstream.client import Upstream


@dataclass(frozen=True, slots=True)
class ModelRuntime:
    """One served model and its compiled contract."""

    name: str
    card: ModelCard
    primary: Upstream
    checker: InferChecker
    decoder: InstanceDecoder
    scores: ScoreReader
    metadata_body: bytes

    def check_version(self, version: str | None) -> None:
        if version is not None and version != self.card.version:
            raise ModelNotFound(
                f"model {self.name!r} has no version {version!r}; it has [{self.card.version!r}]"
            )


@dataclass(frozen=True, slots=True)
class Runtime:
    config: LoadedConfig
    models: MappingProxyType[str, ModelRuntime]
    server_metadata_body: bytes

    def model(self, name: str) -> ModelRuntime:
        runtime = self.models.get(name)
        if runtime is None:
            raise ModelNotFound(f"unknown model {name!r}; the gateway serves {sorted(self.models)}")
        return runtime


def build_runtime(config: LoadedConfig) -> Runtime:
    """Derive every request-time object from ``config``."""
    models = {}
    for name, settings in config.settings.models.items():
        card = config.cards[name]
        models[name] = ModelRuntime(
            name=name,
            card=card,
            primary=Upstream.from_settings(settings.primary, default_model=name),
            checker=InferChecker.compile(card, settings.max_batch_size),
            decoder=InstanceDecoder.compile(card, settings.max_batch_size),
            scores=ScoreReader.compile(card),
            metadata_body=_model_metadata(name, card),
        )
    server = orjson.dumps({"name": "gateway", "version": __version__, "extensions": []})
    return Runtime(config, MappingProxyType(models), server)


def _model_metadata(name: str, card: ModelCard) -> bytes:
    return orjson.dumps(
        {
            "name": name,
            "versions": [card.version],
            "platform": card.platform,
            "inputs": [
                {"name": i.name, "datatype": i.datatype, "shape": list(i.shape)}
                for i in card.inputs
            ],
            "outputs": [
                {"name": o.name, "datatype": o.datatype, "shape": list(o.shape)}
                for o in card.outputs
            ],
        }
    )
