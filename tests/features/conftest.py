"""Real Feast for the enrichment tests: one prepared repo and one server for the session.

Tests that kill the store start their own ``feast serve`` over the same repo (~7 s), so the
session's server stays healthy.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from feast_support import Feast, serve_feast, warm_up
from support import ModelServer, free_port, model_server_running

from gateway.demo.feature_repo import prepare_feature_repo


@pytest.fixture(scope="session")
def feast_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare_feature_repo(tmp_path_factory.mktemp("feast") / "feature_repo")


@pytest.fixture(scope="session")
def feast(feast_repo: Path) -> Iterator[Feast]:
    with serve_feast(feast_repo, free_port()) as server:
        warm_up(server)
        yield server


@pytest.fixture(scope="module")
def model_server() -> Iterator[ModelServer]:
    with model_server_running() as server:
        yield server
