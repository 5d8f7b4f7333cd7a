"""OIP v2 requests that name their entities in ``parameters`` for feature enrichment.

An OIP client may leave out the model's ``source: feature`` tensors and name the entity of
each row in the request's ``parameters``, under the model's entity key::

    {"parameters": {"customer_id": "c-0042,c-0043"},
     "inputs": [{"name": "amount", "shape": [2, 1], "datatype": "FP32", "data": [...]}, ...]}

One id per row, comma-separated (OIP parameter values are strings, numbers or booleans; a
JSON list of strings is accepted too). The request is then checked like a v1 request: its
request-time tensors against the card, the ids against the same limits as v1 entity keys
(at most ``max_batch_size`` ids, each at most ``max_string_length`` characters), all before
the feature store is asked. A feature tensor sent alongside named entities is refused: the
store's values are the ones the model trusts.

    >>> rule = EntityParameter("customer_id", frozenset({"avg_amount_30d"}), max_ids=4, max_length=8)
    >>> rule.read({"parameters": {"customer_id": "c-1, c-2"}, "inputs": []})
    ['c-1', 'c-2']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.contracts.oip import InferChecker
from gateway.contracts.problems import ContractViolation, Problem, violation


@dataclass(frozen=True, slots=True)
class EntityParameter:
    """The entity-list rule of one model and the checks of its request-time tensors,
    compiled at config load."""

    entity_key: str
    store_inputs: frozenset[str]  # the card's inputs the store supplies
    max_ids: int  # the model's max_batch_size
    max_length: int  # the contract's max_string_length
    # The card's request-time inputs only: the store's tensors join after the check.
    checker: InferChecker | None = None

    def read(self, doc: Any) -> list[str] | None:
        """The ids ``doc`` names (one per row), or ``None`` when it names none.

        Raises :class:`ContractViolation` for an unusable list, too many or too long ids,
        or feature tensors sent along with the ids.
        """
        parameters = doc.get("parameters") if type(doc) is dict else None
        if type(parameters) is not dict or self.entity_key not in parameters:
            return None
        where = f"parameters.{self.entity_key}"
        named = parameters[self.entity_key]
        if isinstance(named, str):
            # Counted before splitting: a huge list is refused without building it.
            count = named.count(",") + 1
            ids = None if count > self.max_ids else [part.strip() for part in named.split(",")]
        elif isinstance(named, list) and all(isinstance(v, str) for v in named):
            count = len(named)
            ids = None if count > self.max_ids else [v.strip() for v in named]
        else:
            raise ContractViolation([self._unusable(where)])
        if ids is None:
            raise ContractViolation([violation(where, "parameters", "max_batch_size",
                                               f"names {count} entities; the maximum is {self.max_ids}")])  # fmt: skip
        if not ids or not all(ids):
            raise ContractViolation([self._unusable(where)])
        problems = [
            violation(f"{where}[{row}]", "parameters", "max_string_length",
                      f"entity id of {len(entity)} characters; the maximum is {self.max_length}", row)
            for row, entity in enumerate(ids)
            if len(entity) > self.max_length
        ]  # fmt: skip
        problems.extend(self._clashes(doc.get("inputs")))
        if problems:
            raise ContractViolation(problems)
        return ids

    def _unusable(self, where: str) -> Problem:
        return violation(where, "parameters", "parameters",
                         "must name one non-empty entity id per row, comma-separated")  # fmt: skip

    def _clashes(self, inputs: Any) -> list[Problem]:
        if type(inputs) is not list:
            return []  # the tensor checks report it
        sent = [t.get("name") for t in inputs if type(t) is dict]
        clashes = [name for name in sent if name in self.store_inputs]
        if not clashes:
            return []
        return [violation(f"inputs {clashes}", "inputs", "inputs",
                          f"come from the feature store when parameters name the "
                          f"{self.entity_key}; leave them out")]  # fmt: skip


def rows_named(ids: list[str], batch: int, entity_key: str) -> None:
    """Raise :class:`ContractViolation` unless ``ids`` names exactly one entity per row."""
    if len(ids) != batch:
        raise ContractViolation([violation(f"parameters.{entity_key}", "parameters", "batch_mismatch",
                                           f"names {len(ids)} entities for a batch of {batch} rows")])  # fmt: skip
