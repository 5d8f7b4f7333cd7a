"""The silent ``skew`` fault: valid probabilities, agreeing labels, shifted scores."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from gateway.modelserver import FaultConfig, create_app
from gateway.modelserver.faults import SKEW_FACTOR, skew

from .support import TestClient, scoring_request
from .test_faults import _outputs


def test_skew_keeps_valid_probabilities_and_labels_but_moves_the_scores(model_dir: Path) -> None:
    with TestClient(create_app(model_dir)) as client:
        healthy = _outputs(client)
    with TestClient(create_app(model_dir, FaultConfig(mode="skew"))) as client:
        skewed = _outputs(client)
        assert client.post("/v2/models/fraud/infer", json=scoring_request()).status_code == 200
    assert skewed["label"] == healthy["label"]
    rows = np.array(skewed["probabilities"]["data"]).reshape(-1, 2)
    before = np.array(healthy["probabilities"]["data"]).reshape(-1, 2)
    assert np.allclose(rows.sum(axis=1), 1.0, atol=1e-5)
    assert ((rows >= 0) & (rows <= 1)).all()
    for p, q in zip(before[:, 1], rows[:, 1], strict=True):
        logit = math.log(p / (1 - p))
        assert math.isclose(math.log(q / (1 - q)), SKEW_FACTOR * logit, rel_tol=1e-3, abs_tol=1e-4)
    assert not np.allclose(rows, before)  # the scores did move


def test_skew_leaves_integer_outputs_alone() -> None:
    labels = np.array([0, 1, 1], dtype=np.int64)
    from gateway.modelserver.faults import corrupt

    assert corrupt("skew", labels) is labels
    assert float(skew(np.array([0.5]))[0]) == 0.5
