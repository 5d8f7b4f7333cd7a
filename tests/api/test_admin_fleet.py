"""``/admin/status`` and ``/admin/reload`` say which worker of a fleet answered."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from modelserver.support import TestClient
from support import write_config

from gateway.app import create_app
from gateway.settings import load_config
from gateway.settings.fleet import Fleet

TOKEN = "fleet-test-token"
ADMIN = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture(autouse=True)
def token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_ADMIN_TOKEN", TOKEN)


def test_a_lone_process_says_it_is_the_only_worker(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, "http://127.0.0.1:9"))
    with TestClient(create_app(config)) as client:
        status = client.get("/admin/status", headers=ADMIN).json()
        assert status["worker"] == {"pid": os.getpid(), "index": None, "workers": 1}
        reload = client.post("/admin/reload", headers=ADMIN).json()
        assert reload["applied"] and "fleet" not in reload


def test_a_worker_names_itself_and_says_whether_the_others_were_asked(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, "http://127.0.0.1:9"))
    # No supervisor is this process's parent: the worker cannot pass the reload on.
    fleet = Fleet(workers=2, index=1, supervisor_pid=None)
    with TestClient(create_app(config, fleet=fleet)) as client:
        status = client.get("/admin/status", headers=ADMIN).json()
        assert status["worker"] == {"pid": os.getpid(), "index": 1, "workers": 2}
        reload = client.post("/admin/reload", headers=ADMIN).json()
        assert reload["applied"]
        assert reload["fleet"]["worker"] == status["worker"]
        assert reload["fleet"]["every_worker_asked_to_reload"] is False
        assert reload["fleet"]["note"].startswith("only this worker")
