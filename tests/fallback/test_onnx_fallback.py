"""The fallback ONNX model and the static default, in process; config refusals at load."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ladder_support import FALLBACK_SHA256, ladder_config
from support import MODELS

from gateway.contracts.card import CardError, load_card
from gateway.contracts.problems import OutputViolation
from gateway.errors import FallbackFailed
from gateway.fallback.default import DefaultAnswer
from gateway.fallback.onnx_model import FallbackModel, columns_from_v2
from gateway.settings import ConfigError, load_config

FALLBACK_DIR = MODELS / "fraud-fallback"
ROWS = {
    "amount": [12.5, 4800.0],
    "merchant_category": ["grocery", "electronics"],
    "hour": [14, 3],
    "is_foreign": [0.0, 1.0],
}


@pytest.fixture(scope="module")
def fallback() -> FallbackModel:
    return FallbackModel.load(FALLBACK_DIR, run_in_thread=False)


def test_it_answers_with_the_card_outputs_for_every_row(fallback: FallbackModel) -> None:
    answer = fallback.predict(ROWS, batch=2)
    assert answer["model_version"] == "fallback"
    outputs = {o["name"]: o for o in answer["outputs"]}
    assert outputs["label"]["datatype"] == "INT64" and outputs["label"]["shape"] == [2]
    probabilities = outputs["probabilities"]
    assert probabilities["shape"] == [2, 2]
    low, high = probabilities["data"][1], probabilities["data"][3]
    assert 0 <= low < high <= 1  # a big foreign night-time electronics buy scores higher


def test_it_answers_only_the_requested_outputs(fallback: FallbackModel) -> None:
    answer = fallback.predict(ROWS, batch=2, requested=("probabilities",))
    assert [o["name"] for o in answer["outputs"]] == ["probabilities"]


def test_a_missing_or_short_input_is_refused(fallback: FallbackModel) -> None:
    with pytest.raises(FallbackFailed, match="'hour'"):
        fallback.predict({k: v for k, v in ROWS.items() if k != "hour"}, batch=2)
    with pytest.raises(FallbackFailed, match="1 values for 2 rows"):
        fallback.predict(ROWS | {"amount": [1.0]}, batch=2)


class NanSession:
    """An onnxruntime session stand-in whose probabilities are NaN."""

    def run(self, names: list[str], feeds: dict[str, Any]) -> list[Any]:
        batch = len(feeds["amount"])
        arrays = {"label": np.zeros(batch, np.int64), "probabilities": np.full((batch, 2), np.nan)}
        return [arrays[n].astype(np.float32 if n == "probabilities" else np.int64) for n in names]


def test_a_broken_answer_is_never_served() -> None:
    card = load_card(FALLBACK_DIR)
    broken = FallbackModel(card, NanSession(), run_in_thread=False)  # type: ignore[arg-type]
    with pytest.raises(OutputViolation, match="probabilit"):
        broken.predict(ROWS, batch=2)


def test_columns_come_out_of_v2_tensors_by_name() -> None:
    doc = {
        "inputs": [
            {"name": "hour", "datatype": "INT64", "shape": [2, 1], "data": [[14], [3]]},
            {"name": "amount", "datatype": "FP32", "shape": [2, 1], "data": [12.5, 4800.0]},
        ]
    }
    assert columns_from_v2(doc, ["amount", "hour"]) == {"amount": [12.5, 4800.0], "hour": [14, 3]}
    with pytest.raises(FallbackFailed, match="is_foreign"):
        columns_from_v2(doc, ["is_foreign"])


def test_the_default_answer_is_shaped_like_the_model() -> None:
    card = load_card(MODELS / "fraud-v1")
    default = DefaultAnswer.compile(card, 0.05)
    assert default.label == "legit"
    answer = default.answer(2)
    outputs = {o["name"]: o for o in answer["outputs"]}
    assert outputs["probabilities"]["data"] == [0.95, 0.05, 0.95, 0.05]
    assert outputs["probabilities"]["shape"] == [2, 2]
    assert outputs["label"]["data"] == [0, 0]
    assert DefaultAnswer.compile(card, 0.9).label == "fraud"


def _extra(card: Path, sha256: str) -> str:
    return f"""
    fallback: {{card: {card}, sha256: {sha256}}}
    default_response: {{score: 0.05}}
"""


def test_a_config_with_a_verified_fallback_loads(tmp_path: Path) -> None:
    config = load_config(
        ladder_config(tmp_path, "http://127.0.0.1:9", _extra(FALLBACK_DIR, FALLBACK_SHA256))
    )
    assert config.fallback_dirs["fraud"] == FALLBACK_DIR.resolve()


def test_a_sha256_mismatch_refuses_the_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(ladder_config(tmp_path, "http://127.0.0.1:9", _extra(FALLBACK_DIR, "a" * 64)))
    assert [p.path for p in caught.value.problems] == ["models.fraud.fallback.sha256"]


def test_a_tampered_artifact_refuses_the_config(tmp_path: Path) -> None:
    copy = tmp_path / "fallback"
    shutil.copytree(FALLBACK_DIR, copy)
    with (copy / "model.onnx").open("ab") as artifact:
        artifact.write(b"\0")
    with pytest.raises(CardError, match="sha256"):
        load_card(copy, verify_artifact=True)
    with pytest.raises(ConfigError) as caught:
        load_config(ladder_config(tmp_path, "http://127.0.0.1:9", _extra(copy, FALLBACK_SHA256)))
    assert caught.value.problems[0].path == "models.fraud.fallback.card"
    assert "sha256" in caught.value.problems[0].message


def test_a_fallback_needing_store_features_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "fallback"
    shutil.copytree(FALLBACK_DIR, copy)
    card = json.loads((copy / "model-card.json").read_text())
    card["inputs"][0]["name"] = "avg_amount_30d"
    (copy / "model-card.json").write_text(json.dumps(card))
    with pytest.raises(ConfigError, match="not request-time inputs"):
        load_config(ladder_config(tmp_path, "http://127.0.0.1:9", _extra(copy, FALLBACK_SHA256)))


@pytest.mark.parametrize(
    ("extra", "path"),
    [
        ("    breaker: {consecutive_failures: 0}\n", "models.fraud.breaker"),
        ("    timeouts: {total_ms: 100, fallback_reserve_ms: 100}\n", "models.fraud.timeouts"),
        ("    retries: {retry_on_statuses: [404]}\n", "models.fraud.retries"),
        ("    bulkhead: {when_full: queue}\n", "models.fraud.bulkhead.when_full"),
        ("    default_response: {score: 1.5}\n", "models.fraud.default_response.score"),
    ],
)
def test_ladder_settings_are_validated_with_their_key_path(
    tmp_path: Path, extra: str, path: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(ladder_config(tmp_path, "http://127.0.0.1:9", extra))
    assert [p.path for p in caught.value.problems] == [path]
