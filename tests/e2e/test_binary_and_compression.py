"""Real OIP clients through the gateway: binary tensors (tritonclient's default), gzip.

One model-server process and one gateway (with a fallback, so a failing upstream would
show as a degraded answer and a breaker leaving ``closed``) serve every test here.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import zlib
from collections.abc import Iterator
from typing import Any

import aiohttp
import httpx
import numpy as np
import orjson
import pytest
import tritonclient.http as triton
from ladder_support import FALLBACK_SHA256, TOKEN, admin_status, ladder_config
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from support import MODELS, GatewayThread, ModelServer, model_server_running

from gateway.settings import load_config
from gateway.upstream.client import Upstream, post_infer
from gateway.wire.binary import HEADER_LENGTH

pytestmark = pytest.mark.e2e

CARD = json.loads((MODELS / "fraud-v1" / "model-card.json").read_text())
FALLBACK = f"    fallback: {{card: {MODELS / 'fraud-fallback'}, sha256: {FALLBACK_SHA256}}}\n"
CATEGORIES = ["grocery", "electronics", "travel", "restaurants", "online"]
_NUMPY = {"FP32": np.float32, "INT64": np.int64, "BYTES": np.object_}


def columns(rows: int, seed: int = 7) -> dict[str, np.ndarray[Any, Any]]:
    """Valid fraud-v1 inputs, one ``[rows, 1]`` array per card input."""
    rng = np.random.default_rng(seed)
    values = {
        "avg_amount_30d": rng.uniform(10, 200, rows),
        "txn_count_7d": rng.integers(0, 20, rows),
        "chargeback_rate_90d": rng.uniform(0, 0.1, rows),
        "account_age_days": rng.integers(1, 3000, rows),
        "amount": rng.uniform(0, 500, rows),
        "merchant_category": np.array([CATEGORIES[i % 5] for i in range(rows)], dtype=object),
        "hour": rng.integers(0, 24, rows),
        "is_foreign": rng.integers(0, 2, rows),
    }
    return {
        spec["name"]: values[spec["name"]].astype(_NUMPY[spec["datatype"]]).reshape(rows, 1)
        for spec in CARD["inputs"]
    }


def json_body(data: dict[str, np.ndarray[Any, Any]], **extra: Any) -> dict[str, Any]:
    inputs = [
        {"name": spec["name"], "datatype": spec["datatype"], "shape": list(data[spec["name"]].shape),
         "data": data[spec["name"]].ravel().tolist()}
        for spec in CARD["inputs"]
    ]  # fmt: skip
    return {"inputs": inputs, **extra}


@pytest.fixture(scope="module")
def model_server() -> Iterator[ModelServer]:
    with model_server_running() as server:
        yield server


@pytest.fixture(scope="module")
def gateway(
    model_server: ModelServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayThread]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GATEWAY_ADMIN_TOKEN", TOKEN)
        folder = tmp_path_factory.mktemp("gw")
        config = load_config(ladder_config(folder, model_server.url, FALLBACK))
        with GatewayThread(config, InMemorySpanExporter()) as thread:
            yield thread


def triton_infer(url: str, binary: bool, **options: Any) -> triton.InferResult:
    client = triton.InferenceServerClient(url.removeprefix("http://"))
    try:
        data = columns(32)
        inputs = []
        for spec in CARD["inputs"]:
            tensor = triton.InferInput(spec["name"], [32, 1], spec["datatype"])
            tensor.set_data_from_numpy(data[spec["name"]], binary_data=binary)
            inputs.append(tensor)
        outputs = [triton.InferRequestedOutput(name, binary_data=binary)
                   for name in ("label", "probabilities")]  # fmt: skip
        return client.infer("fraud", inputs, outputs=outputs, **options)
    finally:
        client.close()


@pytest.mark.parametrize(
    "options",
    [{}, {"request_compression_algorithm": "gzip"},
     {"request_compression_algorithm": "deflate", "response_compression_algorithm": "gzip"}],
    ids=["plain", "gzip", "deflate-in-gzip-out"],
)  # fmt: skip
def test_tritonclient_binary_mode_gets_the_model_servers_predictions(
    gateway: GatewayThread, model_server: ModelServer, options: dict[str, Any]
) -> None:
    direct = triton_infer(model_server.url, binary=True)
    through = triton_infer(gateway.url, binary=True, **options)
    assert through.get_response()["parameters"]["gateway_variant"] == "primary"
    for name in ("label", "probabilities"):
        assert through.get_output(name)["parameters"]["binary_data_size"] > 0
        np.testing.assert_array_equal(through.as_numpy(name), direct.as_numpy(name))
    assert through.as_numpy("probabilities").shape == (32, 2)


def test_tritonclient_json_mode_still_works(
    gateway: GatewayThread, model_server: ModelServer
) -> None:
    direct = triton_infer(model_server.url, binary=False)
    through = triton_infer(gateway.url, binary=False)
    assert "binary_data_size" not in through.get_output("label").get("parameters", {})
    for name in ("label", "probabilities"):
        np.testing.assert_array_equal(through.as_numpy(name), direct.as_numpy(name))


def read_binary_answer(response: httpx.Response) -> dict[str, np.ndarray[Any, Any]]:
    """Decoded here with plain numpy, independently of the gateway's codec."""
    length = int(response.headers[HEADER_LENGTH])
    header = orjson.loads(response.content[:length])
    offset, found = length, {}
    for tensor in header["outputs"]:
        dtype = {"FP32": "<f4", "INT64": "<i8"}[tensor["datatype"]]
        if "data" in tensor:
            found[tensor["name"]] = np.array(tensor["data"], dtype=dtype)
            continue
        size = tensor["parameters"]["binary_data_size"]
        array = np.frombuffer(response.content[offset : offset + size], dtype=dtype)
        found[tensor["name"]] = array.reshape(tensor["shape"])
        offset += size
    assert offset == len(response.content)
    return found


def breaker_states(status: Any) -> list[str]:
    if isinstance(status, dict):
        own = [status["breaker"]["state"]] if isinstance(status.get("breaker"), dict) else []
        return own + [s for value in status.values() for s in breaker_states(value)]
    if isinstance(status, list):
        return [s for value in status for s in breaker_states(value)]
    return []


def test_six_requests_for_binary_outputs_leave_every_breaker_closed(
    gateway: GatewayThread,
) -> None:
    body = json_body(columns(8), parameters={"binary_data_output": True})
    with httpx.Client(timeout=10) as client:
        plain = client.post(f"{gateway.url}/v2/models/fraud/infer", json=json_body(columns(8)))
        answers = [
            client.post(f"{gateway.url}/v2/models/fraud/infer", content=orjson.dumps(body))
            for _ in range(6)
        ]
    assert [a.status_code for a in answers] == [200] * 6, answers[-1].text
    assert {a.headers["x-gateway-variant"] for a in answers} == {"primary"}
    expected = {o["name"]: o["data"] for o in plain.json()["outputs"]}
    for answer in answers:
        decoded = read_binary_answer(answer)
        assert decoded["label"].tolist() == expected["label"]
        np.testing.assert_allclose(decoded["probabilities"].ravel(), expected["probabilities"])
    states = breaker_states(admin_status(gateway.url))
    assert states and set(states) == {"closed"}


def test_per_output_binary_data_wins_over_the_request_default(gateway: GatewayThread) -> None:
    body = json_body(columns(3), parameters={"binary_data_output": True},
                     outputs=[{"name": "label", "parameters": {"binary_data": False}},
                              {"name": "probabilities"}])  # fmt: skip
    response = httpx.post(f"{gateway.url}/v2/models/fraud/infer", json=body)
    assert response.status_code == 200, response.text
    header = orjson.loads(response.content[: int(response.headers[HEADER_LENGTH])])
    label, probabilities = header["outputs"]
    assert "data" in label and "binary_data_size" not in label.get("parameters", {})
    assert probabilities["parameters"]["binary_data_size"] == 3 * 2 * 4
    assert read_binary_answer(response)["probabilities"].shape == (3, 2)


def test_a_malformed_binary_body_is_a_400_that_names_the_extension(
    gateway: GatewayThread,
) -> None:
    body = json_body(columns(2))
    body["inputs"][0].pop("data")
    body["inputs"][0]["parameters"] = {"binary_data_size": 8}
    header = orjson.dumps(body)
    response = httpx.post(
        f"{gateway.url}/v2/models/fraud/infer",
        content=header + b"\0" * 4,
        headers={HEADER_LENGTH: str(len(header))},
    )
    assert response.status_code == 400
    assert (
        "binary data runs past the end of the body (rule: binary_data)" in response.json()["error"]
    )


URL = "/v2/models/fraud/infer"


@pytest.mark.parametrize(
    ("encoding", "compress"), [("gzip", gzip.compress), ("deflate", zlib.compress)]
)
def test_compressed_bodies_are_inflated(
    gateway: GatewayThread, encoding: str, compress: Any
) -> None:
    body = orjson.dumps(json_body(columns(4)))
    plain = httpx.post(f"{gateway.url}{URL}", content=body).json()
    response = httpx.post(
        f"{gateway.url}{URL}", content=compress(body), headers={"content-encoding": encoding}
    )
    assert response.status_code == 200, response.text
    assert response.json()["outputs"] == plain["outputs"]


def test_a_small_body_inflating_past_the_limit_is_413(gateway: GatewayThread) -> None:
    # The test config's server.max_body_bytes is 64 KiB; this is ~1 KB on the wire.
    bomb = gzip.compress(b'{"inputs": [' + b" " * 1_000_000 + b"]}")
    assert len(bomb) < 2_000
    response = httpx.post(f"{gateway.url}{URL}", content=bomb, headers={"content-encoding": "gzip"})
    assert response.status_code == 413
    assert "inflates past the limit of 65536 bytes" in response.json()["error"]


def test_unknown_and_broken_encodings_are_refused_clearly(gateway: GatewayThread) -> None:
    unknown = httpx.post(f"{gateway.url}{URL}", content=b"x", headers={"content-encoding": "br"})
    assert unknown.status_code == 415
    assert unknown.json()["error"] == (
        "body: Content-Encoding 'br' is not supported; use one of gzip, deflate, identity"
    )
    broken = httpx.post(
        f"{gateway.url}{URL}", content=b"not gzip", headers={"content-encoding": "gzip"}
    )
    assert broken.status_code == 400
    assert "not valid gzip data" in broken.json()["error"]
    assert "(rule: content_encoding)" in broken.json()["error"]


def test_large_answers_are_gzipped_for_clients_that_accept_it(gateway: GatewayThread) -> None:
    with httpx.Client(headers={"accept-encoding": "gzip"}) as client:
        large = client.post(f"{gateway.url}{URL}", json=json_body(columns(64)))
        small = client.post(f"{gateway.url}{URL}", json=json_body(columns(1)))
    assert large.headers["content-encoding"] == "gzip"
    assert int(large.headers["content-length"]) < len(large.content)  # httpx inflated it
    assert len(large.json()["outputs"][0]["data"]) == 64
    assert large.headers["vary"] == "accept-encoding"
    assert "content-encoding" not in small.headers
    assert small.headers["vary"] == "accept-encoding"
    identity = httpx.post(
        f"{gateway.url}{URL}", json=json_body(columns(64)), headers={"accept-encoding": "identity"}
    )
    assert "content-encoding" not in identity.headers


def test_the_upstream_client_reads_a_binary_answer(model_server: ModelServer) -> None:
    upstream = Upstream("fraud-v1", model_server.url, f"{model_server.url}{URL}",
                        aiohttp.ClientTimeout(total=5))  # fmt: skip
    data = columns(2)

    async def both() -> tuple[bytes, bytes]:
        async with aiohttp.ClientSession() as session:
            as_json = await post_infer(session, upstream, orjson.dumps(json_body(data)))
            binary = await post_infer(
                session,
                upstream,
                orjson.dumps(json_body(data, parameters={"binary_data_output": True})),
            )
        return as_json, binary

    as_json, binary = asyncio.run(both())
    # Read as the JSON answer it stands for: the same outputs, data as JSON lists.
    assert orjson.loads(binary)["outputs"] == orjson.loads(as_json)["outputs"]
