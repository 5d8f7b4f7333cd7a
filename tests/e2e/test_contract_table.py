"""Malformed requests, v1 and v2, through a real gateway in front of a real model server.

Each case asserts the status, that the error names the field, the row and the rule, and
that the model server received nothing (its ``/_debug/stats`` ``infer_requests``).

Invalid is not unusual: only a value outside an input's domain (the card's ``domain`` or
``contract.ranges``) or outside a configured category set is refused. A valid value the
model never saw in training is served and flagged (``UNUSUAL`` below).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from contract_samples import INDEX, V1, V2, v1, v2_doc
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from support import GatewayThread, ModelServer, write_config

from gateway.settings import load_config

pytestmark = pytest.mark.e2e

CONTRACT = """    max_batch_size: 8
    contract:
      ranges: {hour: {min: 0, max: 23}}
      max_string_length: 32
"""


def v2(change: Callable[[dict[str, Any]], Any]) -> bytes:
    doc = v2_doc()
    change(doc)
    return orjson.dumps(doc)


def tensor(name: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda doc: doc["inputs"][INDEX[name]]


def set_in(name: str, /, **fields: Any) -> Callable[[dict[str, Any]], Any]:
    return lambda doc: tensor(name)(doc).update(fields)


def value(name: str, row: int, new: Any) -> Callable[[dict[str, Any]], Any]:
    return lambda doc: tensor(name)(doc)["data"].__setitem__(row, new)


def deep(levels: int) -> Any:
    nested: Any = 1
    for _ in range(levels):
        nested = [nested]
    return nested


# (id, path, body, status, substrings the error must contain)
CASES: list[tuple[str, str, bytes, int, list[str]]] = [
    # --- v2: limits and the envelope
    ("v2-not-json", V2, b"{nope", 400, ["body: not valid JSON", "(rule: json)"]),
    ("v2-body-not-object", V2, b"[1, 2]", 400, ["body: must be a JSON object", "(rule: body)"]),
    ("v2-too-large", V2, b" " * 70_000, 413, ["body: 70000 bytes exceeds the limit of 65536 bytes"]),
    ("v2-no-inputs", V2, b'{"id": "x"}', 400, ["inputs: required, a non-empty list", "(rule: inputs)"]),
    ("v2-inputs-not-list", V2, b'{"inputs": {"amount": 1}}', 400, ["inputs: required", "(rule: inputs)"]),
    ("v2-json-depth", V2, v2(lambda d: d.update(extra=deep(40))), 400, ["body.extra: nested deeper than the limit of 32", "(rule: json_depth)"]),
    ("v2-id-not-string", V2, v2(lambda d: d.update(id=7)), 400, ["id: must be a string of at most 32 characters", "(rule: id)"]),
    ("v2-id-too-long", V2, v2(lambda d: d.update(id="x" * 33)), 400, ["id: must be a string", "(rule: id)"]),
    ("v2-parameters-not-object", V2, v2(lambda d: d.update(parameters=[1])), 400, ["body.parameters: must be an object of string, number or boolean values", "(rule: parameters)"]),
    ("v2-parameters-nested", V2, v2(lambda d: d.update(parameters={"a": {"b": 1}})), 400, ["(rule: parameters)"]),
    ("v2-tensor-parameters", V2, v2(set_in("amount", parameters={"x": [1]})), 400, ["inputs[4] 'amount'.parameters", "(rule: parameters)"]),
    ("v2-outputs-not-list", V2, v2(lambda d: d.update(outputs="label")), 400, ["outputs: must be a list", "(rule: outputs)"]),
    ("v2-unknown-output", V2, v2(lambda d: d.update(outputs=[{"name": "logits"}])), 400, ["outputs[0]: 'logits' is not an output of the model; it has ['label', 'probabilities']", "(rule: unknown_output)"]),
    # --- v2: tensors
    ("v2-tensor-not-object", V2, v2(lambda d: d["inputs"].__setitem__(0, 5)), 400, ["inputs[0]: must be an object", "(rule: tensor)"]),
    ("v2-name-missing", V2, v2(lambda d: tensor("amount")(d).pop("name")), 400, ["inputs[4].name: required, a string", "(rule: name)"]),
    ("v2-unknown-input", V2, v2(set_in("amount", name="amount_usd")), 400, ["inputs[4] 'amount_usd': unknown input", "(rule: unknown_input)"]),
    ("v2-duplicate-input", V2, v2(lambda d: d["inputs"].append(copy.deepcopy(d["inputs"][0]))), 400, ["inputs[8] 'avg_amount_30d': given more than once", "(rule: duplicate_input)"]),
    ("v2-missing-input", V2, v2(lambda d: d["inputs"].pop()), 400, ["inputs: missing ['is_foreign']", "(rule: missing_input)"]),
    ("v2-not-an-oip-datatype", V2, v2(set_in("amount", datatype="FLOAT")), 400, ["inputs[4] 'amount'.datatype: 'FLOAT' is not an OIP datatype", "(rule: datatype)"]),
    ("v2-datatype-mismatch", V2, v2(set_in("amount", datatype="FP64")), 400, ["'FP64' does not match the model's 'FP32'", "(rule: datatype_mismatch)"]),
    ("v2-shape-not-list", V2, v2(set_in("hour", shape="2x1")), 400, ["inputs[6] 'hour'.shape: must be a non-empty list of non-negative integers", "(rule: shape)"]),
    ("v2-shape-wrong-rank", V2, v2(set_in("hour", shape=[2])), 400, ["inputs[6] 'hour'.shape: [2] does not fit the model's [-1, 1]", "(rule: shape)"]),
    ("v2-shape-negative", V2, v2(set_in("hour", shape=[-1, 1])), 400, ["'hour'.shape: must be a non-empty list of non-negative integers", "(rule: shape)"]),
    ("v2-element-count", V2, v2(set_in("hour", data=[14])), 400, ["inputs[6] 'hour'.data: holds 1 elements, shape [2, 1] needs 2", "(rule: element_count)"]),
    ("v2-ragged", V2, v2(set_in("hour", data=[[14], [14, 15]])), 400, ["'hour'.data: nested lists are not rectangular", "(rule: ragged)"]),
    ("v2-data-not-list", V2, v2(set_in("hour", data=14)), 400, ["inputs[6] 'hour'.data: required, a list", "(rule: tensor)"]),
    ("v2-batch-mismatch", V2, v2(set_in("hour", shape=[3, 1], data=[1, 2, 3])), 400, ["inputs[6]: batch size 3 differs from the first input's 2", "(rule: batch_mismatch)"]),
    ("v2-batch-too-large", V2, orjson.dumps(v2_doc(9)), 400, ["inputs: batch size 9 exceeds the maximum 8", "(rule: max_batch_size)"]),
    # --- v2: element types
    ("v2-string-in-fp32", V2, v2(value("amount", 1, "12.5")), 400, ["inputs[4] 'amount' row 1: '12.5' is not a number (datatype FP32)", "(rule: element_type)"]),
    ("v2-bool-in-int64", V2, v2(value("hour", 0, True)), 400, ["inputs[6] 'hour' row 0: True is not an integer", "(rule: element_type)"]),
    ("v2-float-in-int64", V2, v2(value("hour", 1, 14.5)), 400, ["inputs[6] 'hour' row 1: 14.5 is not an integer", "(rule: element_type)"]),
    ("v2-int64-overflow", V2, v2(value("txn_count_7d", 0, 2**63)), 400, ["'txn_count_7d' row 0: 9223372036854775808 does not fit INT64", "(rule: element_type)"]),
    ("v2-number-in-bytes", V2, v2(value("merchant_category", 1, 3)), 400, ["inputs[5] 'merchant_category' row 1: 3 is not a string", "(rule: element_type)"]),
    # --- v2: values
    ("v2-nan", V2, v2(value("amount", 1, None)), 400, ["inputs[4] 'amount' row 1: null (NaN) is not allowed", "(rule: nan)"]),
    ("v2-range-negative", V2, v2(value("chargeback_rate_90d", 0, -0.5)), 400, ["inputs[2] 'chargeback_rate_90d' row 0: -0.5 is outside the allowed range [0, 1]", "(rule: range)"]),
    ("v2-range-rate-above-one", V2, v2(value("chargeback_rate_90d", 1, 1.5)), 400, ["inputs[2] 'chargeback_rate_90d' row 1: 1.5 is outside the allowed range [0, 1]", "(rule: range)"]),
    ("v2-range-amount-negative", V2, v2(value("amount", 0, -1.0)), 400, ["inputs[4] 'amount' row 0: -1.0 is outside the allowed range [0, inf]", "(rule: range)"]),
    ("v2-range-count-negative", V2, v2(value("txn_count_7d", 0, -1)), 400, ["inputs[1] 'txn_count_7d' row 0: -1 is outside the allowed range [0,", "(rule: range)"]),
    ("v2-range-configured", V2, v2(value("hour", 1, 24)), 400, ["inputs[6] 'hour' row 1: 24 is outside the allowed range [0, 23]", "(rule: range)"]),
    ("v2-bool-value", V2, v2(value("is_foreign", 1, 0.5)), 400, ["inputs[7] 'is_foreign' row 1: 0.5 is not a boolean; allowed: 0 or 1", "(rule: bool)"]),
    ("v2-several", V2, v2(lambda d: (value("amount", 0, -1.0)(d), value("chargeback_rate_90d", 1, 1.5)(d))), 400, ["inputs[4] 'amount' row 0", "inputs[2] 'chargeback_rate_90d' row 1", "(rule: range)"]),
    # --- v1
    ("v1-not-json", V1, b"instances=1", 400, ["body: not valid JSON", "(rule: json)"]),
    ("v1-too-large", V1, b"[" * 70_000, 413, ["exceeds the limit of 65536 bytes"]),
    ("v1-no-instances", V1, b'{"inputs": []}', 400, ["instances: required, a non-empty list of objects", "(rule: instances)"]),
    ("v1-instances-not-list", V1, b'{"instances": {"amount": 1}}', 400, ["instances: required", "(rule: instances)"]),
    ("v1-too-many", V1, v1(rows=9), 400, ["instances: 9 given, the maximum is 8", "(rule: max_batch_size)"]),
    ("v1-instance-not-object", V1, b'{"instances": [[1, 2]]}', 400, ["instances[0]: must be an object of named fields", "(rule: instance)"]),
    ("v1-unknown-field", V1, v1({}, {"colour": "red"}), 400, ["instances[1]: unknown field(s) ['colour']", "(rule: unknown_field)"]),
    ("v1-missing-field", V1, v1(drop="hour"), 400, ["instances[1].hour: required field is missing", "(rule: missing_field)"]),
    ("v1-string-for-number", V1, v1({"amount": "a lot"}), 400, ["instances[0].amount: must be a number, got 'a lot'", "(rule: field_type)"]),
    ("v1-float-for-int", V1, v1({}, {"txn_count_7d": 2.5}), 400, ["instances[1].txn_count_7d: must be an integer, got 2.5", "(rule: field_type)"]),
    ("v1-number-for-bool", V1, v1({"is_foreign": 1}), 400, ["instances[0].is_foreign: must be true or false, got 1", "(rule: field_type)"]),
    ("v1-number-for-category", V1, v1({"merchant_category": 7}), 400, ["instances[0].merchant_category: must be a string, got 7", "(rule: field_type)"]),
    ("v1-null", V1, v1({}, {"hour": None}), 400, ["instances[1].hour: null is not allowed; the field is not nullable", "(rule: null)"]),
    ("v1-range", V1, v1({}, {"hour": 30}), 400, ["instances[1].hour: 30 is outside the allowed range [0, 23]", "(rule: range)"]),
    ("v1-range-amount-negative", V1, v1({"amount": -1.0}), 400, ["instances[0].amount: -1.0 is outside the allowed range [0, inf]", "(rule: range)"]),
    ("v1-range-rate-above-one", V1, v1({}, {"chargeback_rate_90d": 1.5}), 400, ["instances[1].chargeback_rate_90d: 1.5 is outside the allowed range [0, 1]", "(rule: range)"]),
    ("v1-range-count-negative", V1, v1({}, {"txn_count_7d": -1}), 400, ["instances[1].txn_count_7d: -1 is outside the allowed range [0,", "(rule: range)"]),
    ("v1-several-rows", V1, v1({"hour": -1}, {"amount": -3.0}), 400, ["instances[0].hour", "instances[1].amount", "(rule: range)"]),
]  # fmt: skip


# Training saw merchant categories beyond these two; with `reject`, unusual values are refused.
REJECTING = """    contract:
      categories: {merchant_category: [grocery, travel]}
      out_of_distribution: reject
"""

# (id, gateway fixture, path, body, status, expected). A 200 is served by the model and
# `expected` are exactly the inputs flagged as out of distribution (x-gateway-input-warnings,
# v2 parameters.gateway_input_warnings, v1 provenance.input_warnings); a 400 reaches no model
# and its error contains every `expected` substring. `gateway` has no `contract:` section.
UNUSUAL: list[tuple[str, str, str, bytes, int, list[str]]] = [
    # --- the default contract: valid but never seen in training is served and flagged
    ("default-v1-usual", "gateway", V1, v1(), 200, []),
    ("default-v1-amount-50000", "gateway", V1, v1({"amount": 50000.0}), 200, ["amount"]),
    ("default-v1-rate-0.6", "gateway", V1, v1({"chargeback_rate_90d": 0.6}), 200, ["chargeback_rate_90d"]),
    ("default-v1-unseen-category", "gateway", V1, v1({}, {"merchant_category": "casino"}), 200, ["merchant_category"]),
    ("default-v2-amount-50000", "gateway", V2, v2(value("amount", 0, 50000.0)), 200, ["amount"]),
    ("default-v2-unseen-category", "gateway", V2, v2(value("merchant_category", 1, "casino")), 200, ["merchant_category"]),
    # ... and outside the card's domain is refused, naming the field and the rule
    ("default-v1-hour-30", "gateway", V1, v1({"hour": 30}), 400, ["instances[0].hour: 30 is outside the allowed range [0, 23]", "(rule: range)"]),
    ("default-v1-amount-negative", "gateway", V1, v1({"amount": -1}), 400, ["instances[0].amount: -1.0 is outside the allowed range [0, inf]", "(rule: range)"]),
    ("default-v1-rate-1.5", "gateway", V1, v1({"chargeback_rate_90d": 1.5}), 400, ["instances[0].chargeback_rate_90d: 1.5 is outside the allowed range [0, 1]", "(rule: range)"]),
    ("default-v2-hour-30", "gateway", V2, v2(value("hour", 1, 30)), 400, ["inputs[6] 'hour' row 1: 30 is outside the allowed range [0, 23]", "(rule: range)"]),
    # --- the strict contract of the table above: what used to be refused is now served
    ("v2-unusual-amount-high", "strict_gateway", V2, v2(value("amount", 1, 1e9)), 200, ["amount"]),
    ("v2-unusual-category", "strict_gateway", V2, v2(value("merchant_category", 0, "casino")), 200, ["merchant_category"]),
    ("v2-unusual-several", "strict_gateway", V2, v2(lambda d: (value("amount", 0, 50000.0)(d), value("account_age_days", 1, 10000)(d))), 200, ["amount", "account_age_days"]),
    ("v1-unusual-amount", "strict_gateway", V1, v1({"amount": 20000.0}), 200, ["amount"]),
    ("v1-unusual-category", "strict_gateway", V1, v1({}, {"merchant_category": "casino"}), 200, ["merchant_category"]),
    ("v1-unusual-several", "strict_gateway", V1, v1({"amount": 50000.0, "merchant_category": "casino"}, {"chargeback_rate_90d": 0.6}), 200, ["amount", "merchant_category", "chargeback_rate_90d"]),
    # --- a configured category set and `out_of_distribution: reject`
    ("reject-v1-usual", "rejecting_gateway", V1, v1(), 200, []),
    ("reject-v1-category", "rejecting_gateway", V1, v1({}, {"merchant_category": "casino"}), 400, ["instances[1].merchant_category: 'casino' is not one of ['grocery', 'travel']", "(rule: category)"]),
    ("reject-v1-seen-but-not-configured", "rejecting_gateway", V1, v1({"merchant_category": "electronics"}), 400, ["instances[0].merchant_category: 'electronics' is not one of ['grocery', 'travel']", "(rule: category)"]),
    ("reject-v2-category", "rejecting_gateway", V2, v2(value("merchant_category", 0, "casino")), 400, ["inputs[5] 'merchant_category' row 0: 'casino' is not one of ['grocery', 'travel']", "(rule: category)"]),
    ("reject-v1-amount-50000", "rejecting_gateway", V1, v1({"amount": 50000.0}), 400, ["amount: outside the training range", "(rule: out_of_distribution)"]),
    ("reject-v2-rate-0.6", "rejecting_gateway", V2, v2(value("chargeback_rate_90d", 1, 0.6)), 400, ["chargeback_rate_90d: outside the training range", "(rule: out_of_distribution)"]),
    ("reject-v1-hour-30", "rejecting_gateway", V1, v1({"hour": 30}), 400, ["instances[0].hour: 30 is outside the allowed range [0, 23]", "(rule: range)"]),
]  # fmt: skip


@pytest.fixture(scope="module")
def strict_gateway(
    model_server: ModelServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayThread]:
    folder: Path = tmp_path_factory.mktemp("contract")
    config = load_config(write_config(folder, model_server.url, CONTRACT))
    with GatewayThread(config, InMemorySpanExporter()) as thread:
        yield thread


@pytest.fixture(scope="module")
def rejecting_gateway(
    model_server: ModelServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayThread]:
    folder: Path = tmp_path_factory.mktemp("rejecting")
    config = load_config(write_config(folder, model_server.url, REJECTING))
    with GatewayThread(config, InMemorySpanExporter()) as thread:
        yield thread


def infer_requests(server: ModelServer) -> int:
    count: int = httpx.get(f"{server.url}/_debug/stats").json()["infer_requests"]
    return count


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 40
    ids = [case[0] for case in CASES] + [case[0] for case in UNUSUAL]
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize(("path", "body", "status", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_a_malformed_request_is_refused_before_any_upstream(
    strict_gateway: GatewayThread,
    model_server: ModelServer,
    path: str,
    body: bytes,
    status: int,
    expected: list[str],
) -> None:
    before = infer_requests(model_server)
    response = httpx.post(
        strict_gateway.url + path, content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == status, response.text
    error = response.json()["error"]
    for text in expected:
        assert text in error
    assert infer_requests(model_server) == before


def test_valid_requests_still_pass(
    strict_gateway: GatewayThread, model_server: ModelServer
) -> None:
    before = infer_requests(model_server)
    assert httpx.post(strict_gateway.url + V2, content=orjson.dumps(v2_doc())).status_code == 200
    assert httpx.post(strict_gateway.url + V1, content=v1()).status_code == 200
    assert infer_requests(model_server) == before + 2


def test_rejections_are_counted_per_field_and_rule_and_named_on_the_span(
    strict_gateway: GatewayThread,
) -> None:
    strict_gateway.exporter.clear()
    httpx.post(strict_gateway.url + V1, content=v1({}, {"hour": 30, "colour": "red"}))
    text = httpx.get(f"{strict_gateway.url}/metrics").text
    assert 'gateway_rejections_total{field="hour",model="fraud",rule="range"}' in text
    assert 'gateway_rejections_total{field="instances",model="fraud",rule="unknown_field"}' in text
    assert 'gateway_rejections_total{field="body",model="fraud",rule="max_body_bytes"}' in text
    span = next(
        s for s in strict_gateway.exporter.get_finished_spans() if s.name.startswith("POST /v1")
    )
    assert span.attributes is not None
    assert set(span.attributes["gateway.rejection.rules"]) == {"range", "unknown_field"}  # type: ignore[arg-type]


def input_warnings(response: httpx.Response, path: str) -> list[str]:
    """The flagged inputs, after checking the header and the body agree on them."""
    header = response.headers.get("x-gateway-input-warnings")
    assert header != "", "the header is absent when nothing is unusual, never empty"
    names = header.split(",") if header is not None else []
    body = response.json()
    if path == V1:
        assert body["provenance"]["input_warnings"] == names, body
    else:  # absent when there is nothing to flag, like the header
        assert body["parameters"].get("gateway_input_warnings") == header, body
    assert len(set(names)) == len(names), header
    return names


@pytest.mark.parametrize(("served_by", "path", "body", "status", "expected"),
                         [c[1:] for c in UNUSUAL], ids=[c[0] for c in UNUSUAL])  # fmt: skip
def test_unusual_is_served_and_flagged_invalid_is_refused(
    request: pytest.FixtureRequest,
    model_server: ModelServer,
    served_by: str,
    path: str,
    body: bytes,
    status: int,
    expected: list[str],
) -> None:
    gateway: GatewayThread = request.getfixturevalue(served_by)
    before = infer_requests(model_server)
    response = httpx.post(
        gateway.url + path, content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == status, response.text
    if status == 200:
        assert sorted(input_warnings(response, path)) == sorted(expected)
        assert infer_requests(model_server) == before + 1
        return
    assert "x-gateway-input-warnings" not in response.headers
    error = response.json()["error"]
    for text in expected:
        assert text in error
    assert infer_requests(model_server) == before


def test_an_invalid_value_is_refused_without_naming_an_unusual_one_beside_it(
    strict_gateway: GatewayThread, model_server: ModelServer
) -> None:
    before = infer_requests(model_server)
    body = v2(lambda d: (value("amount", 0, -1.0)(d), value("merchant_category", 1, "casino")(d)))
    response = httpx.post(strict_gateway.url + V2, content=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert "inputs[4] 'amount' row 0: -1.0 is outside the allowed range [0, inf]" in error
    assert error.count("(rule: ") == 1 and "(rule: range)" in error
    assert "merchant_category" not in error
    assert infer_requests(model_server) == before
