"""Per-model routing: which variant (primary or canary) a request goes to.

Compiled once per config load, around the model's guarded upstreams (built and carried
over a reload by the runtime): :meth:`Router.route` returns the one to call. The sticky
key is read from, in order: the configured header, then the request (a v1 instance's
field, a v2 ``parameters`` entry, or the first element of a v2 input of that name). A
request without a key is split at random by weight. ``x-gateway-variant: primary|canary``
forces a variant when the model allows it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.errors import InvalidInput
from gateway.provenance import RoutedVariant
from gateway.resilience.guards import GuardedUpstream
from gateway.routing.sticky import CanarySplit
from gateway.settings.schema import ModelSettings

OVERRIDE_HEADER = "x-gateway-variant"


@dataclass(frozen=True, slots=True)
class Router:
    model: str
    primary: GuardedUpstream
    canary: GuardedUpstream | None
    split: CanarySplit
    sticky_key: str | None
    sticky_header: str | None
    allow_override: bool

    @classmethod
    def compile(
        cls,
        model: str,
        settings: ModelSettings,
        entity_key: str | None,
        primary: GuardedUpstream,
        canary: GuardedUpstream | None,
    ) -> Router:
        weight = settings.canary.weight if settings.canary else 0.0
        return cls(
            model=model,
            primary=primary,
            canary=canary,
            split=CanarySplit(model, weight if canary else 0.0),
            sticky_key=settings.routing.sticky_key or entity_key,
            sticky_header=(settings.routing.sticky_header or "").lower() or None,
            allow_override=settings.routing.allow_variant_override,
        )

    @property
    def splits(self) -> bool:
        """True when some traffic may go to the canary (reading a key is worth it)."""
        return self.canary is not None and (self.split.weight > 0 or self.allow_override)

    def route(
        self, headers: Mapping[str, str], key: str | None
    ) -> tuple[RoutedVariant, GuardedUpstream]:
        """The variant and upstream for a request with these headers and request key."""
        if self.canary is None:
            return "primary", self.primary
        forced = headers.get(OVERRIDE_HEADER) if self.allow_override else None
        if forced is not None:
            if forced not in ("primary", "canary"):
                raise InvalidInput(
                    f"{OVERRIDE_HEADER}: must be 'primary' or 'canary', got {forced!r}"
                )
            variant: RoutedVariant = forced  # type: ignore[assignment]
        else:
            if self.sticky_header is not None:
                key = headers.get(self.sticky_header) or key
            variant = self.split.choose(key)
        return (variant, self.canary) if variant == "canary" else (variant, self.primary)

    def v1_key(self, doc: Any) -> str | None:
        """The first instance's sticky field, as a string."""
        if self.sticky_key is None or not isinstance(doc, dict):
            return None
        instances = doc.get("instances")
        if isinstance(instances, list) and instances and isinstance(instances[0], dict):
            return _as_key(instances[0].get(self.sticky_key))
        return None

    def v2_key(self, doc: Any) -> str | None:
        """A ``parameters`` entry named like the sticky key, else a same-named input's first value."""
        if self.sticky_key is None or not isinstance(doc, dict):
            return None
        parameters = doc.get("parameters")
        if isinstance(parameters, dict) and self.sticky_key in parameters:
            value = parameters[self.sticky_key]
            if isinstance(value, str):
                value = value.split(",", 1)[0].strip()  # entity lists are comma-separated
            elif isinstance(value, list) and value:
                value = value[0]
            return _as_key(value)
        for tensor in doc.get("inputs") or ():
            if isinstance(tensor, dict) and tensor.get("name") == self.sticky_key:
                data = tensor.get("data")
                while isinstance(data, list) and data:
                    data = data[0]
                return _as_key(data)
        return None


def _as_key(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        return value or None
    if isinstance(value, int):
        return str(value)
    return None
