"""Feature enrichment for OIP v2 infer requests that name their entities in ``parameters``.

An OIP client may leave out the model's ``source: feature`` tensors and name the entity of
each row in the request's ``parameters``, under the model's entity key::

    {"parameters": {"customer_id": "c-0042,c-0043"},
     "inputs": [{"name": "amount", "shape": [2, 1], "datatype": "FP32", "data": [...]}, ...]}

One id per row, comma-separated (OIP parameter values are strings, numbers or booleans; a
JSON list of strings is accepted too). The gateway then looks the features up exactly as
for v1 and adds their tensors before checking the request against the card. Without the
parameter, a v2 request carries every tensor itself and the store is not used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry.trace import Span

from gateway.contracts.problems import ContractViolation, violation
from gateway.features.enrichment import Enricher, Enrichment
from gateway.runtime import ModelRuntime


def entity_ids(doc: Any, entity_key: str) -> list[str] | None:
    """The entity ids named in ``doc['parameters'][entity_key]``; ``None`` when not named."""
    parameters = doc.get("parameters") if isinstance(doc, dict) else None
    if not isinstance(parameters, dict) or entity_key not in parameters:
        return None
    named = parameters[entity_key]
    if isinstance(named, str):
        ids = [part.strip() for part in named.split(",")]
    elif isinstance(named, list) and all(isinstance(v, str) for v in named):
        ids = [v.strip() for v in named]
    else:
        ids = []
    if not ids or not all(ids):
        raise ContractViolation(
            [
                violation(
                    f"parameters.{entity_key}",
                    "parameters",
                    "parameters",
                    "must name one non-empty entity id per row, comma-separated",
                )
            ]
        )
    return ids


async def enrich_infer_request(
    model: ModelRuntime, doc: Any, enricher: Callable[[], Enricher], parent: Span
) -> Enrichment | None:
    """Add the store's feature tensors to ``doc['inputs']`` when its parameters name entities.

    Returns the enrichment (for provenance), or ``None`` when the request does not use the
    store; ``enricher`` is called only when it does. A feature tensor sent alongside named entities is refused: the store's values
    are the ones the model trusts.
    """
    plan = model.features
    if plan is None:
        return None
    ids = entity_ids(doc, plan.entity_key)
    if ids is None:
        return None
    inputs = doc.get("inputs")
    if isinstance(inputs, list):
        planned = {f.name for f in plan.features}
        sent = [t.get("name") for t in inputs if isinstance(t, dict)]
        clashes = [name for name in sent if name in planned]
        if clashes:
            raise ContractViolation(
                [
                    violation(
                        f"inputs {clashes}",
                        "inputs",
                        "inputs",
                        f"come from the feature store when parameters name the "
                        f"{plan.entity_key}; leave them out",
                    )
                ]
            )
    enrichment = await enricher().enrich(plan, ids, parent)
    if isinstance(inputs, list):
        inputs.extend(model.decoder.store_tensors(enrichment.columns, len(ids)))
    return enrichment
