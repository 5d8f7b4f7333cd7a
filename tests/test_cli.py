"""The ``gateway`` console script's commands that need no server."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import ROOT, write_card

from gateway.cli import main


def test_check_config_accepts_the_demo_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(ROOT / "config" / "gateway.yaml")]) == 0
    assert "ok (1 model(s): fraud)" in capsys.readouterr().out


def test_check_config_lists_every_error_with_its_key_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_card(tmp_path / "toy")
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "server: {port: 0}\nmodels:\n  toy:\n    card: toy\n    primary: {name: a, url: nope}\n"
    )
    assert main(["check-config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "2 error(s)" in err
    assert "server.port: Input should be greater than or equal to 1" in err
    assert "models.toy.primary.url: must be an http:// or https:// URL" in err


def test_serve_refuses_an_invalid_config_before_binding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: {}\n")
    assert main(["serve", "--config", str(bad)]) == 1
    assert "models: Dictionary should have at least 1 item" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["serve", "demo", "model-server", "check-config"])
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    assert "usage: gateway" in capsys.readouterr().out
