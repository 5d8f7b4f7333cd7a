"""A prediction body decoded and checked, whichever API it came in: the pipeline's first step.

Both APIs decode into :class:`Rows`, the one shape the rest of the pipeline reads: the
batch size, the entities whose features the store supplies (``None`` when it does not),
the requested outputs, the client's deadline and request id, the routing key, the OIP
body for the upstream once the store's features are known, and the request-time columns
for the fallback model. Everything is checked here, before any feature is looked up.

- v1 (``{"instances": [...]}``): instances are checked and decoded by the model's
  :class:`~gateway.contracts.v1.InstanceDecoder`; the upstream body is built from them.
- v2 (OIP): tensors are checked by the model's :class:`~gateway.contracts.oip.InferChecker`;
  when ``parameters`` name the entities, the request-time tensors and the ids are checked
  first and the store's tensors added afterwards. A body that needs no change is
  forwarded as it came, byte for byte.
- v2 with binary tensors (``Inference-Header-Content-Length``): the binary part is
  decoded into flat numpy arrays in the tensors' ``data`` (:mod:`gateway.wire.binary`),
  checked as arrays, and sent upstream as JSON. The client's binary-output choices are
  taken out of the upstream body (every upstream answers JSON) and kept in
  ``output_forms`` for the answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol

import numpy as np
import orjson

from gateway.contracts.oip_entities import rows_named
from gateway.contracts.problems import ContractViolation, Problem
from gateway.fallback.onnx_model import columns_from_v2
from gateway.resilience.deadline import client_timeout_ms
from gateway.routing.router import Router
from gateway.service.runtime import ModelRuntime
from gateway.wire.binary import (
    HEADER_LENGTH,
    BinaryDataError,
    OutputForms,
    attach_binary_data,
    header_length,
    split_body,
    take_output_forms,
)

Api = Literal["v1", "v2"]
Columns = Mapping[str, Sequence[Any]]
Features = Mapping[str, list[Any]]  # feature name -> one value per row (JSON types)
_DUMPS = orjson.OPT_SERIALIZE_NUMPY  # binary tensors' arrays go upstream as JSON numbers


class Rows(Protocol):
    """A checked request, in the forms the pipeline needs."""

    batch: int
    entity_ids: list[str] | None  # one per row when the store supplies features
    requested: tuple[str, ...] | None  # output names; None: all
    request_id: str | None  # the OIP ``id``, echoed in the answer
    client_timeout_ms: float | None
    output_forms: OutputForms | None  # the outputs the client wants as binary; None: none

    def routing_key(self, router: Router) -> str | None:
        """The sticky key the router reads from the body."""
        ...

    def upstream_body(self, features: Features | None) -> bytes:
        """The OIP body for the upstream, with the store's ``features`` when there are."""
        ...

    def columns(self) -> Columns:
        """Every model input the request carried, by name, one value per row (computed
        once): the contract's distribution check, the monitors and the fallback read it."""
        ...


def decode(
    api: Api, model: ModelRuntime, body: bytes, headers: Mapping[str, str]
) -> V1Rows | V2Rows:
    """Check ``body`` against ``model``'s contract; raise :class:`ContractViolation`."""
    length = headers.get(HEADER_LENGTH)
    if length is None or api == "v1":
        doc = parse_json(body)
        if api == "v1":
            return V1Rows(model, doc, headers)
        return V2Rows(model, body, doc, headers)
    return V2Rows(model, body, parse_binary(body, length), headers, binary=True)


def parse_binary(body: bytes, length: str) -> Any:
    """The JSON part of a binary-extension body, its binary tensors decoded into ``data``."""
    try:
        header, blob = split_body(body, header_length(length))
        doc = parse_json(header)
        if type(doc) is dict:
            attach_binary_data(doc.get("inputs"), blob, "inputs")
    except BinaryDataError as exc:
        raise ContractViolation(
            [Problem(f"body: {exc} (rule: binary_data)", "body", "binary_data")]
        ) from exc
    return doc


def parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ContractViolation(
            [Problem(f"body: not valid JSON: {exc} (rule: json)", "body", "json")]
        ) from exc


class V1Rows:
    """``{"instances": [{field: value, ...}, ...]}``, decoded by the model's v1 decoder."""

    __slots__ = (
        "_decoded",
        "_doc",
        "_model",
        "batch",
        "client_timeout_ms",
        "entity_ids",
        "output_forms",
        "request_id",
        "requested",
    )

    def __init__(self, model: ModelRuntime, doc: Any, headers: Mapping[str, str]) -> None:
        decoded = model.decoder.decode_instances(doc)
        self._model = model
        self._doc = doc
        self._decoded = decoded
        self.batch = decoded.batch
        self.entity_ids = decoded.entity_ids if model.features is not None else None
        self.requested: tuple[str, ...] | None = None
        self.request_id: str | None = None
        self.client_timeout_ms = client_timeout_ms(headers)
        self.output_forms: OutputForms | None = None

    def routing_key(self, router: Router) -> str | None:
        return router.v1_key(self._doc)

    def upstream_body(self, features: Features | None) -> bytes:
        return orjson.dumps({"inputs": self._model.decoder.tensors(self._decoded, features or {})})

    def columns(self) -> Columns:
        return self._decoded.columns


class V2Rows:
    """An OIP infer request; with entities named in ``parameters``, without store tensors."""

    __slots__ = (
        "_binary",
        "_body",
        "_columns",
        "_doc",
        "_inputs",
        "_model",
        "batch",
        "client_timeout_ms",
        "entity_ids",
        "output_forms",
        "request_id",
        "requested",
    )

    def __init__(
        self,
        model: ModelRuntime,
        body: bytes,
        doc: Any,
        headers: Mapping[str, str],
        *,
        binary: bool = False,
    ) -> None:
        entities = model.entities
        ids = entities.read(doc) if entities is not None else None
        checker = model.checker
        if entities is not None and ids is not None and entities.checker is not None:
            checker = entities.checker
        batch, relabelled = checker.check_converting(doc)
        if entities is not None and ids is not None:
            rows_named(ids, batch, entities.entity_key)
        self._inputs = tuple(checker.inputs)  # the inputs this request carries
        self._columns: Columns | None = None
        self._model = model
        self._doc: dict[str, Any] = doc
        self.output_forms = take_output_forms(doc)
        self._binary = binary
        # The client's bytes go upstream unchanged unless a tensor was relabelled, or
        # binary tensors or binary-output choices were taken out.
        self._body = None if relabelled or binary or self.output_forms else body
        self.batch = batch
        self.entity_ids = ids
        outputs = doc.get("outputs")
        self.requested: tuple[str, ...] | None = (
            tuple(o["name"] for o in outputs) if outputs else None
        )
        self.request_id: str | None = doc.get("id")
        self.client_timeout_ms = client_timeout_ms(headers, doc)

    def routing_key(self, router: Router) -> str | None:
        return router.v2_key(self._doc)

    def upstream_body(self, features: Features | None) -> bytes:
        if features:
            store = self._model.decoder.store_tensors(features, self.batch)
            doc = {**self._doc, "inputs": [*self._doc["inputs"], *store]}
            return orjson.dumps(doc, option=_DUMPS)
        return self._body if self._body is not None else orjson.dumps(self._doc, option=_DUMPS)

    def columns(self) -> Columns:
        if self._columns is None:
            doc = self._doc
            if self._binary:  # the monitors and the fallback read one Python value per row
                doc = {"inputs": [_listed(t) for t in doc["inputs"]]}
            self._columns = columns_from_v2(doc, self._inputs)
        return self._columns


def _listed(tensor: dict[str, Any]) -> dict[str, Any]:
    data = tensor.get("data")
    return {**tensor, "data": data.tolist()} if isinstance(data, np.ndarray) else tensor
