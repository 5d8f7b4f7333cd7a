"""Model directories that cannot be served, and the command-line entry points."""

from __future__ import annotations

import argparse
import json
import shutil
import socket
from pathlib import Path
from typing import Any

import pytest

from gateway.modelserver import FaultConfig, ModelLoadError, add_arguments, run_from_args
from gateway.modelserver.card import load_model_identity

from .tiny_model import write_card


@pytest.fixture
def model_copy(model_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(model_dir, copy)
    return copy


def _card(model_dir: Path) -> dict[str, Any]:
    card: dict[str, Any] = json.loads((model_dir / "model-card.json").read_text())
    return card


def test_the_card_gives_name_version_platform_and_artifact(model_dir: Path) -> None:
    identity = load_model_identity(model_dir)
    assert (identity.name, identity.version, identity.platform) == ("fraud", "1", "onnx_onnxv1")
    assert identity.artifact == model_dir / "model.onnx"


def test_a_card_without_version_serves_an_unversioned_model(model_copy: Path) -> None:
    card = _card(model_copy)
    del card["version"]
    write_card(model_copy, card)
    assert load_model_identity(model_copy).version is None


def test_the_artifact_path_comes_from_the_card(model_copy: Path) -> None:
    (model_copy / "model.onnx").rename(model_copy / "scorer.onnx")
    card = _card(model_copy)
    card["artifact"]["path"] = "scorer.onnx"
    write_card(model_copy, card)
    assert load_model_identity(model_copy).artifact.name == "scorer.onnx"


def test_every_card_problem_is_reported_at_once(model_copy: Path) -> None:
    card = _card(model_copy)
    card.update(name="", version=1, platform=7, artifact={"path": "", "sha256": 5})
    write_card(model_copy, card)
    with pytest.raises(ModelLoadError) as caught:
        load_model_identity(model_copy)
    message = str(caught.value)
    for problem in (
        "name must be",
        "version must be",
        "platform must be",
        "artifact.path",
        "artifact.sha256",
    ):
        assert problem in message


def test_a_stale_sha256_refuses_to_serve(model_copy: Path) -> None:
    card = _card(model_copy)
    card["artifact"]["sha256"] = "0" * 64
    write_card(model_copy, card)
    with pytest.raises(ModelLoadError, match=r"sha256 is [0-9a-f]{64} but the model card says 0+"):
        load_model_identity(model_copy)


@pytest.mark.parametrize(
    ("break_dir", "message"),
    [
        (lambda d: (d / "model.onnx").unlink(), "the model artifact does not exist"),
        (lambda d: (d / "model-card.json").write_text("{"), "cannot read the model card"),
        (lambda d: (d / "model-card.json").write_text("[]"), "must be a JSON object"),
        (lambda d: shutil.rmtree(d), "not a directory"),
    ],
)
def test_unservable_directories_raise_model_load_error(
    model_copy: Path, break_dir: Any, message: str
) -> None:
    break_dir(model_copy)
    with pytest.raises(ModelLoadError, match=message):
        load_model_identity(model_copy)


def test_a_corrupt_onnx_file_fails_with_model_load_error(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"not onnx")
    from gateway.modelserver.model import create_session

    with pytest.raises(ModelLoadError, match="onnxruntime cannot load the model"):
        create_session(tmp_path / "model.onnx")


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_arguments_and_their_defaults() -> None:
    args = _parse("models/fraud-v1")
    assert (args.model_dir, args.host, args.port) == (Path("models/fraud-v1"), "127.0.0.1", 8000)
    assert (args.fault_mode, args.fault_delay_ms, args.fault_rate, args.fault_seed) == (
        "normal", 0.0, 1.0, 0,
    )  # fmt: skip
    assert args.no_debug_endpoints is False


def test_fault_flags() -> None:
    args = _parse(
        "m", "--port", "8001", "--fault-mode", "slow", "--fault-delay-ms", "150",
        "--fault-rate", "0.5", "--fault-seed", "3",
    )  # fmt: skip
    assert args.port == 8001
    assert FaultConfig(args.fault_mode, args.fault_delay_ms, args.fault_rate, args.fault_seed) == (
        FaultConfig(mode="slow", delay_ms=150.0, rate=0.5, seed=3)
    )


def test_an_unknown_fault_mode_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as caught:
        _parse("m", "--fault-mode", "flaky")
    assert caught.value.code == 2


def test_run_from_args_reports_a_bad_fault_rate(
    model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_from_args(_parse(str(model_dir), "--fault-rate", "2")) == 2
    assert "rate must be a number in [0, 1]" in capsys.readouterr().err


def test_run_from_args_reports_an_unservable_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_from_args(_parse(str(tmp_path / "missing"))) == 1
    assert "not a directory" in capsys.readouterr().err


def test_run_from_args_reports_a_model_onnxruntime_cannot_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "model.onnx").write_bytes(b"not onnx")
    assert run_from_args(_parse(str(tmp_path), "--port", "0")) == 1
    assert "onnxruntime cannot load the model" in capsys.readouterr().err


def test_run_from_args_reports_a_port_in_use(
    model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert run_from_args(_parse(str(model_dir), "--port", str(port))) == 1
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
