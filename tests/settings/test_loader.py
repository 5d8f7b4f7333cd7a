"""Config loading: valid files load whole; every invalid case names its key path."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import ROOT, write_card

from gateway.settings import ConfigError, load_config, parse_config

VALID = """
models:
  toy:
    card: toy-model
    primary: {name: toy-v1, url: "http://127.0.0.1:9001"}
"""


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    write_card(tmp_path / "toy-model")
    return tmp_path


def problems(text: str, folder: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, folder / "gateway.yaml")
    return [str(p) for p in caught.value.problems]


def test_valid_config_loads_with_defaults(config_dir: Path) -> None:
    loaded = parse_config(VALID, config_dir / "gateway.yaml")
    assert loaded.settings.server.port == 8080
    assert loaded.settings.telemetry.sampling_ratio == 0.1
    assert loaded.cards["toy"].name == "toy"
    assert loaded.model_dirs["toy"] == (config_dir / "toy-model").resolve()


def test_the_shipped_demo_config_is_valid() -> None:
    loaded = load_config(ROOT / "config" / "gateway.yaml")
    assert list(loaded.settings.models) == ["fraud"]
    assert loaded.settings.models["fraud"].primary.url == "http://127.0.0.1:8001"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("models: [", "<root>: not valid YAML: line 1"),
        ("- a\n- b\n", "<root>: must be a mapping at the top level"),
        ("server: {port: 8080}\n", "models: Field required"),
        ("models: {}\n", "models: Dictionary should have at least 1 item"),
        (VALID + "colour: blue\n", "colour: unknown key"),
        (VALID.replace("card: toy-model", "card: toy-model\n    cards: x"), "models.toy.cards: unknown key"),
        (VALID.replace('"http://127.0.0.1:9001"', "ftp://x"), "models.toy.primary.url: must be an http:// or https:// URL"),
        (VALID.replace('"http://127.0.0.1:9001"', '"http://h:1/?q=1"'), "models.toy.primary.url: must not have a query"),
        (VALID.replace("name: toy-v1", "name: 'bad name'"), "models.toy.primary.name: String should match pattern"),
        (VALID + "server: {port: 70000}\n", "server.port: Input should be less than or equal to 65535"),
        (VALID + "server: {port: eighty}\n", "server.port: Input should be a valid integer"),
        (VALID + "server: {max_body_bytes: 10}\n", "server.max_body_bytes: Input should be greater than or equal to 1024"),
        (VALID + "telemetry: {sampling_ratio: 1.5}\n", "telemetry.sampling_ratio: Input should be less than or equal to 1"),
        (VALID + "telemetry: {exporter: zipkin}\n", "telemetry.exporter: Input should be 'otlp', 'console' or 'none'"),
        (VALID.replace("card: toy-model", "card: missing-dir"), "models.toy.card: "),
        (VALID + "    canary: {name: toy-v2, url: 'http://h:2', weight: 100.5}\n", "models.toy.canary.weight: Input should be less than or equal to 100"),
        (VALID + "    canary: {name: toy-v2, url: 'http://h:2', weight: -1}\n", "models.toy.canary.weight: Input should be greater than or equal to 0"),
        (VALID + "    routing: {sticky: customer_id}\n", "models.toy.routing.sticky: unknown key"),
        (VALID + "    canary: {name: toy-v1, url: 'http://h:2'}\n", "models.toy: upstream names must be unique"),
        (VALID + "    shadows: [{name: s, url: 'http://h:3', sample_percent: 101}]\n", "models.toy.shadows.0.sample_percent: Input should be less than or equal to 100"),
        (VALID + "    max_batch_size: 0\n", "models.toy.max_batch_size: Input should be greater than or equal to 1"),
        (VALID.replace("toy:", "'a/b':"), "models: model name 'a/b' must be non-empty"),
    ],
)  # fmt: skip
def test_each_invalid_case_names_its_key_path(config_dir: Path, text: str, expected: str) -> None:
    found = problems(text, config_dir)
    assert any(p.startswith(expected) for p in found), found


def test_every_problem_is_reported_together(config_dir: Path) -> None:
    text = VALID.replace('"http://127.0.0.1:9001"', "nope") + "server: {port: 0}\ncolour: x\n"
    found = problems(text, config_dir)
    assert {p.split(":")[0] for p in found} >= {"models.toy.primary.url", "server.port", "colour"}


def test_a_broken_card_is_reported_under_the_model(config_dir: Path) -> None:
    write_card(config_dir / "toy-model", score={"output": "nope", "index": 1})
    found = problems(VALID, config_dir)
    assert found == ["models.toy.card: " + str((config_dir / "toy-model").resolve())
                     + ": score.output: names no output of the model: 'nope'"]  # fmt: skip


def test_a_fallback_card_cannot_be_a_served_model(config_dir: Path) -> None:
    write_card(config_dir / "toy-model", role="fallback")
    assert "is a fallback model card" in problems(VALID, config_dir)[0]


def test_an_unreadable_file_is_one_clear_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "absent.yaml")
    assert "cannot read" in str(caught.value.problems[0])
