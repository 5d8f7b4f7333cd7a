"""The demo's control socket and the `gateway demo fault|status` commands, without a stack."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import main
from gateway.demo.control import (
    ControlError,
    ControlServer,
    DemoNotRunning,
    request,
    socket_path,
)
from gateway.demo.ports import DemoPorts, shifted_config
from gateway.settings import load_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def answering(tmp_path: Path) -> Iterator[list[dict[str, Any]]]:
    """A control server in ``tmp_path`` whose owner loop answers like a demo would."""
    seen: list[dict[str, Any]] = []
    stop = threading.Event()

    def handle(message: dict[str, Any]) -> dict[str, Any]:
        seen.append(message)
        if message["action"] == "status":
            return {"ok": True, "parts": [{"part": "feast", "state": "down", "pid": 12,
                                           "restarts": 1, "restart_in_seconds": 0.4}]}  # fmt: skip
        if message["part"] == "fraud-v2":
            return {"ok": False, "error": "fraud-v2 is down already; it restarts in 0.4 s"}
        return {"ok": True, "message": f"{message['part']}: done"}

    with ControlServer(socket_path(tmp_path)) as server:

        def loop() -> None:
            while not stop.is_set():
                server.answer(handle, 0.05)

        owner = threading.Thread(target=loop)
        owner.start()
        try:
            yield seen
        finally:
            stop.set()
            owner.join()
    assert not socket_path(tmp_path).exists()


def test_fault_and_status_reach_the_running_demo(
    tmp_path: Path, answering: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--workdir", str(tmp_path), "fault", "stall", "feast"]) == 0
    assert capsys.readouterr().out == "feast: done\n"
    # --workdir after the subcommand works as well
    assert main(["demo", "fault", "kill", "fraud-v1", "--workdir", str(tmp_path)]) == 0
    assert main(["demo", "--workdir", str(tmp_path), "status"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "feast     down      pid 12       restarts 1  (restart in 0.4 s)"
    )
    assert answering == [
        {"action": "stall", "part": "feast"},
        {"action": "kill", "part": "fraud-v1"},
        {"action": "status"},
    ]


def test_a_refused_fault_exits_1_with_the_reason(
    tmp_path: Path, answering: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--workdir", str(tmp_path), "fault", "kill", "fraud-v2"]) == 1
    assert capsys.readouterr().err == (
        "gateway demo fault: fraud-v2 is down already; it restarts in 0.4 s\n"
    )


def test_no_running_demo_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--workdir", str(tmp_path / "nowhere"), "fault", "heal", "feast"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"gateway demo fault: no demo is running in {tmp_path / 'nowhere'} ")
    assert "start one with `gateway demo`" in err


def test_a_socket_left_by_a_killed_demo_is_replaced_and_a_live_one_refused(
    tmp_path: Path,
) -> None:
    path = socket_path(tmp_path)
    with (
        ControlServer(path),
        pytest.raises(ControlError, match="another demo is running"),
        ControlServer(path),
    ):
        pass
    # A demo killed with SIGKILL leaves the socket file behind, with nobody listening.
    left = socket.socket(socket.AF_UNIX)
    left.bind(str(path))
    left.close()
    with pytest.raises(DemoNotRunning):
        request(path, {"action": "status"})
    with ControlServer(path):
        assert path.exists()


def test_unknown_parts_and_actions_are_refused_with_the_choices(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["demo", "fault", "kill", "redis"])
    assert exited.value.code == 2
    assert "(choose from 'feast', 'fraud-v1', 'fraud-v2', 'fraud-v3', 'gateway')" in (
        capsys.readouterr().err
    )
    with pytest.raises(SystemExit):
        main(["demo", "fault", "explode", "feast"])


@pytest.mark.parametrize("args", [["demo", "fault", "--help"], ["demo", "status", "--help"]])
def test_the_demo_subcommands_have_help(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code == 0
    assert "usage: gateway demo" in capsys.readouterr().out


def test_fault_help_says_what_each_fault_does(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["demo", "fault", "--help"])
    out = capsys.readouterr().out
    for words in ("SIGKILL", "SIGSTOP", "SIGCONT", "x-gateway-feature-source: cache",
                  "gateway demo fault kill feast"):  # fmt: skip
        assert words in out


def test_a_port_offset_moves_every_port_in_a_copy_of_the_config(tmp_path: Path) -> None:
    copy = shifted_config(ROOT / "config" / "gateway.yaml", tmp_path / "gateway.yaml", 1000)
    loaded = load_config(copy)
    settings = loaded.settings
    model = settings.models["fraud"]
    assert settings.server.port == 9080
    assert settings.feature_store is not None
    assert settings.feature_store.url == "http://127.0.0.1:7566"
    assert model.primary.url == "http://127.0.0.1:9001"
    assert model.canary is not None and model.canary.url == "http://127.0.0.1:9002"
    assert [s.url for s in model.shadows] == ["http://127.0.0.1:9003"]
    assert loaded.model_dirs["fraud"] == ROOT / "models" / "fraud-v1"
    assert "# canary" in copy.read_text().lower()  # comments kept for the operator
    assert DemoPorts.shifted(1000).all() == (7566, 9001, 9002, 9003, 9080)
    with pytest.raises(ValueError, match="outside 1-65535"):
        DemoPorts.shifted(60_000)
