"""Rollout commands: in-place, comment-preserving, validated, atomic, audited."""

from __future__ import annotations

import difflib
import json
import threading
from pathlib import Path

import pytest
from support import MODELS

from gateway.cli import main
from gateway.rollout import commands
from gateway.settings import parse_config

CONFIG = f"""# Routing for the fraud model.
server:
  port: 8080   # the gateway's port

models:
  fraud:
    card: {MODELS / "fraud-v1"}
    # The primary serves everything not in the canary cohort.
    primary:
      name: fraud-v1
      url: http://127.0.0.1:8001
      timeout_ms: 1000
    canary:
      name: fraud-v2          # retrained variant
      url: http://127.0.0.1:8002
      weight: 0               # percent
    shadows:
      - name: fraud-v3
        url: http://127.0.0.1:8003
        sample_percent: 0
  plain:
    card: {MODELS / "fraud-v1"}
    primary: {{name: plain-v1, url: "http://127.0.0.1:8011"}}
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(CONFIG)
    return path


def changed_lines(before: str, after: str) -> list[str]:
    return [
        line
        for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def audit_entries(config: Path) -> list[dict[str, object]]:
    log = config.with_name("gateway.yaml.audit.jsonl")
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_set_weight_changes_only_that_value(config: Path) -> None:
    assert main(["rollout", "--config", str(config), "set-weight", "fraud", "12.5"]) == 0
    assert changed_lines(CONFIG, config.read_text()) == [
        "-      weight: 0               # percent",
        "+      weight: 12.5            # percent",
    ]
    assert parse_config(config.read_text(), config).settings.models["fraud"].canary.weight == 12.5  # type: ignore[union-attr]
    [entry] = audit_entries(config)
    assert entry["command"] == "set-weight" and entry["model"] == "fraud"
    assert entry["before"] == {"weight": 0} and entry["after"] == {"weight": 12.5}
    assert entry["who"] and entry["at"]


def test_whole_weights_are_written_without_a_fraction(config: Path) -> None:
    commands.set_weight(config, "fraud", 25.0, config.with_name("audit.jsonl"))
    assert "weight: 25 " in config.read_text()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["set-weight", "fraud", "101"], "weight 101 is out of range"),
        (["set-weight", "fraud", "-1"], "weight -1 is out of range"),
        (["set-weight", "fraud", "ten"], "weight 'ten' is not a number"),
        (["set-weight", "fraud", "nan"], "out of range"),
        (["set-weight", "nope", "5"], "unknown model 'nope'"),
        (["set-weight", "plain", "5"], "model 'plain' has no canary"),
        (["promote", "plain"], "model 'plain' has no canary"),
        (["rollback", "nope"], "unknown model 'nope'"),
        (["status", "nope", "--gateway-url", ""], "unknown model 'nope'"),
    ],
)
def test_refusals_exit_1_and_change_nothing(
    config: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(["rollout", "--config", str(config), *argv]) == 1
    assert message in capsys.readouterr().err
    assert config.read_text() == CONFIG
    assert audit_entries(config) == []


def test_a_change_is_validated_as_a_whole_config_before_writing(config: Path) -> None:
    broken = CONFIG.replace("  port: 8080", "  port: 8080\n  colour: blue")
    config.write_text(broken)
    with pytest.raises(commands.RolloutError, match=r"server.colour: unknown key"):
        commands.set_weight(config, "fraud", 5.0, config.with_name("audit.jsonl"))
    assert config.read_text() == broken


def test_promote_swaps_primary_and_canary_and_keeps_comments(config: Path) -> None:
    commands.set_weight(config, "fraud", 30.0, config.with_name("a.jsonl"))
    assert main(["rollout", "--config", str(config), "promote", "fraud"]) == 0
    settings = parse_config(config.read_text(), config).settings.models["fraud"]
    assert (settings.primary.name, settings.primary.url) == ("fraud-v2", "http://127.0.0.1:8002")
    assert settings.canary is not None
    assert (settings.canary.name, settings.canary.weight) == ("fraud-v1", 0)
    assert settings.primary.timeout_ms == 1000 and settings.canary.timeout_ms == 1000
    text = config.read_text()
    assert "# The primary serves everything not in the canary cohort." in text
    assert "# retrained variant" in text
    assert audit_entries(config)[-1]["after"] == {"primary": "fraud-v2", "canary": "fraud-v1"}


REPLICATED = CONFIG.replace(
    """      timeout_ms: 1000
    canary:
""",
    """      timeout_ms: 1000
      # rack b runs the same model
      replicas:               # round-robined with the url
        - http://127.0.0.1:8101   # spare
        - http://127.0.0.1:8102
    # The canary takes its share by weight.
    canary:
""",
)


def comments(text: str) -> list[str]:
    return sorted(line[line.index("#") :] for line in text.splitlines() if "#" in line)


def test_promote_moves_the_replicas_with_their_upstream(config: Path) -> None:
    config.write_text(REPLICATED)
    assert main(["rollout", "--config", str(config), "promote", "fraud"]) == 0
    text = config.read_text()
    settings = parse_config(text, config).settings.models["fraud"]
    assert (settings.primary.name, settings.primary.replicas) == ("fraud-v2", ())
    assert settings.canary is not None
    assert settings.canary.name == "fraud-v1"
    assert settings.canary.replicas == ("http://127.0.0.1:8101", "http://127.0.0.1:8102")
    assert comments(text) == comments(REPLICATED)
    # The replicas' comments travel with them; the line above `canary:` stays above it.
    assert "      # rack b runs the same model\n      replicas:  " in text
    assert "    # The canary takes its share by weight.\n    canary:\n" in text
    [entry] = audit_entries(config)
    assert entry["command"] == "promote" and entry["model"] == "fraud"
    assert entry["before"] == {"primary": "fraud-v1", "canary": "fraud-v2"}
    assert entry["after"] == {"primary": "fraud-v2", "canary": "fraud-v1"}
    # Undoing a promotion is one more promote, byte for byte.
    assert main(["rollout", "--config", str(config), "promote", "fraud"]) == 0
    assert config.read_text() == REPLICATED


@pytest.mark.parametrize(
    "text",
    [
        # Fields only on the canary, one of them the canary's last before weight.
        CONFIG.replace(
            "      url: http://127.0.0.1:8002\n",
            "      url: http://127.0.0.1:8002\n"
            "      model_name: fraud   # as the server names it\n"
            "\n"
            "      # one more host\n"
            "      replicas: [http://127.0.0.1:8202]   # flow style\n",
        ),
        # A flow-style primary (its URLs quoted, as a plain one would be once in it).
        CONFIG.replace(
            """    primary:
      name: fraud-v1
      url: http://127.0.0.1:8001
      timeout_ms: 1000
""",
            """    primary: {name: fraud-v1, url: "http://127.0.0.1:8001", replicas: ["http://127.0.0.1:8101"]}
""",
        ).replace("url: http://127.0.0.1:8002", 'url: "http://127.0.0.1:8002"'),
    ],
    ids=["canary-only-fields", "flow-style"],
)
def test_promote_twice_gives_back_the_same_file(config: Path, text: str) -> None:
    config.write_text(text)
    before = parse_config(text, config).settings.models["fraud"]
    commands.promote(config, "fraud", config.with_name("a.jsonl"))
    promoted = config.read_text()
    after = parse_config(promoted, config).settings.models["fraud"]
    assert after.canary is not None and before.canary is not None
    # Every endpoint field moved across, whichever side had it.
    assert after.primary.model_dump() == before.canary.model_dump(exclude={"weight", "analysis"})
    assert after.canary.model_dump(exclude={"weight", "analysis"}) == before.primary.model_dump()
    assert comments(promoted) == comments(text)
    commands.promote(config, "fraud", config.with_name("a.jsonl"))
    assert config.read_text() == text


def test_rollback_sets_weight_zero_and_keeps_the_canary(config: Path) -> None:
    commands.set_weight(config, "fraud", 40.0, config.with_name("a.jsonl"))
    assert main(["rollout", "--config", str(config), "rollback", "fraud"]) == 0
    settings = parse_config(config.read_text(), config).settings.models["fraud"]
    assert settings.canary is not None and settings.canary.weight == 0
    assert settings.canary.name == "fraud-v2"


def test_status_shows_variants_and_weights(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    commands.set_weight(config, "fraud", 2.5, config.with_name("a.jsonl"))
    assert (
        main(
            [
                "rollout",
                "--config",
                str(config),
                "status",
                "fraud",
                "--gateway-url",
                "http://127.0.0.1:9",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "primary  fraud-v1" in out and "97.5%" in out
    assert "canary   fraud-v2" in out and "2.5%" in out
    assert "shadow   fraud-v3" in out
    assert "live     not available from http://127.0.0.1:9" in out


def test_a_concurrent_reader_never_sees_a_half_written_file(config: Path) -> None:
    stop = threading.Event()
    seen: list[float] = []
    failures: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                loaded = parse_config(config.read_text(), config)
                canary = loaded.settings.models["fraud"].canary
                assert canary is not None
                seen.append(canary.weight)
            except Exception as exc:  # any torn read fails the test
                failures.append(repr(exc))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for step in range(60):
            commands.set_weight(config, "fraud", float(step % 50), config.with_name("a.jsonl"))
    finally:
        stop.set()
        thread.join()
    assert failures == []
    assert len(seen) > 10
