"""Which rung of the degradation ladder served a prediction, said the same way everywhere."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Variant = Literal["primary", "canary", "fallback", "default"]
# The variants an upstream serves: the router picks one of them for each request.
RoutedVariant = Literal["primary", "canary"]
FeatureSource = Literal["live", "cache", "defaults", "none"]


@dataclass(frozen=True, slots=True)
class Provenance:
    """Told on every prediction: headers, the v2 ``parameters`` and the v1 body."""

    variant: Variant
    served_by: str
    degraded: bool
    feature_source: FeatureSource
    # Inputs with values the model never saw in training (out of distribution), by name.
    input_warnings: tuple[str, ...] = ()

    def with_features(self, source: FeatureSource) -> Provenance:
        """This provenance with the request's feature ``source``; cache or defaults degrade it."""
        if source == self.feature_source:
            return self
        degraded = self.degraded or source in ("cache", "defaults")
        return Provenance(self.variant, self.served_by, degraded, source, self.input_warnings)

    def with_warnings(self, inputs: tuple[str, ...]) -> Provenance:
        """This provenance flagging ``inputs`` as out of distribution."""
        if inputs == self.input_warnings:
            return self
        return Provenance(self.variant, self.served_by, self.degraded, self.feature_source, inputs)

    def headers(self) -> dict[str, str]:
        headers = {
            "x-gateway-variant": self.variant,
            "x-gateway-served-by": self.served_by,
            "x-gateway-degraded": "true" if self.degraded else "false",
            "x-gateway-feature-source": self.feature_source,
        }
        if self.input_warnings:  # absent when there is nothing to warn about
            headers["x-gateway-input-warnings"] = ",".join(self.input_warnings)
        return headers

    def v2_parameters(self) -> dict[str, Any]:
        """For the OIP answer's ``parameters`` (values must be string, number or bool)."""
        parameters: dict[str, Any] = {
            "gateway_variant": self.variant,
            "gateway_served_by": self.served_by,
            "gateway_degraded": self.degraded,
            "gateway_feature_source": self.feature_source,
        }
        if self.input_warnings:
            parameters["gateway_input_warnings"] = ",".join(self.input_warnings)
        return parameters

    def v1_body(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "served_by": self.served_by,
            "degraded": self.degraded,
            "feature_source": self.feature_source,
            "input_warnings": list(self.input_warnings),
        }
