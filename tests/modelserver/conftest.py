"""Fixtures: tiny model directories and in-process clients of the model server."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

# onnxruntime may write a cache under $XDG_CACHE_HOME on import; keep it out of $HOME.
os.environ["XDG_CACHE_HOME"] = os.path.join(tempfile.gettempdir(), "gateway-modelserver-tests")

import pytest

from gateway.modelserver import create_app

from .support import TestClient
from .tiny_model import write_echo_model, write_scoring_model


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The scoring model with a card: name ``fraud``, version ``1``."""
    return write_scoring_model(tmp_path_factory.mktemp("models") / "fraud-v1")


@pytest.fixture(scope="session")
def bare_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The scoring model without a card: named after its folder, no version."""
    return write_scoring_model(tmp_path_factory.mktemp("models") / "plain", card=False)


@pytest.fixture(scope="session")
def echo_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_echo_model(tmp_path_factory.mktemp("models") / "echo")


@pytest.fixture
def client(model_dir: Path) -> Iterator[TestClient]:
    """A client of a started (ready) server for the scoring model."""
    with TestClient(create_app(model_dir)) as test_client:
        yield test_client


@pytest.fixture
def echo_client(echo_model_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(echo_model_dir)) as test_client:
        yield test_client
