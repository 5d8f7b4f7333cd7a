"""The ``auth:`` section and its keys file: valid keys load, every bad one names its path."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from support import write_card

from gateway.cli import main
from gateway.settings import ConfigError, parse_config

HASH_A = hashlib.sha256(b"key-a").hexdigest()
HASH_B = hashlib.sha256(b"key-b").hexdigest()
BASE = """
models:
  toy:
    card: toy-model
    primary: {name: toy-v1, url: "http://127.0.0.1:9001"}
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    write_card(tmp_path / "toy-model")
    return tmp_path


def with_keys(*entries: str, extra: str = "") -> str:
    listed = "".join(f"\n    - {entry}" for entry in entries)
    return f"{BASE}auth:{extra}\n  api_keys:{listed or ' []'}\n"


def problems(text: str, folder: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, folder / "gateway.yaml")
    return [str(p) for p in caught.value.problems]


def test_no_auth_section_means_no_keys(folder: Path) -> None:
    loaded = parse_config(BASE, folder / "gateway.yaml")
    assert loaded.auth is None
    assert loaded.watched_files == ()


def test_keys_load_with_their_limits_and_models(folder: Path) -> None:
    text = with_keys(
        f"{{name: checkout, sha256: {HASH_A.upper()}, rate_per_second: 50, burst: 80, models: [toy]}}",
        f"{{name: batch, sha256: {HASH_B}, rate_per_second: 2.5}}",
        f"{{name: internal, sha256: {hashlib.sha256(b'k').hexdigest()}}}",
    )
    loaded = parse_config(text, folder / "gateway.yaml")
    assert loaded.auth is not None
    checkout, batch, internal = loaded.auth.keys
    assert checkout.sha256 == HASH_A  # stored lower-case
    assert (checkout.rate_per_second, checkout.bucket_size, checkout.models) == (50, 80, ("toy",))
    assert batch.bucket_size == 3  # default burst: one second's worth, rounded up
    assert batch.models is None  # every model
    assert internal.bucket_size is None  # not limited
    assert loaded.auth.protect_metadata is False


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (f"{{name: a, sha256: {HASH_A[:63]}}}", "auth.api_keys.0.sha256: must be the key's SHA-256 as 64 hex characters"),
        (f"{{name: a, sha256: {HASH_A[:63]}g}}", "auth.api_keys.0.sha256: must be the key's SHA-256 as 64 hex characters"),
        (f"{{name: a, sha256: '{HASH_A} '}}", "auth.api_keys.0.sha256: must be the key's SHA-256 as 64 hex characters"),
        (f"{{name: a, sha256: {HASH_A}, rate_per_second: 0}}", "auth.api_keys.0.rate_per_second: Input should be greater than 0"),
        (f"{{name: a, sha256: {HASH_A}, rate_per_second: -5}}", "auth.api_keys.0.rate_per_second: Input should be greater than 0"),
        (f"{{name: a, sha256: {HASH_A}, rate_per_second: 5, burst: 0}}", "auth.api_keys.0.burst: Input should be greater than or equal to 1"),
        (f"{{name: a, sha256: {HASH_A}, burst: 5}}", "auth.api_keys.0: burst needs rate_per_second"),
        (f"{{name: 'a b', sha256: {HASH_A}}}", "auth.api_keys.0.name: String should match pattern"),
        (f"{{name: a, sha256: {HASH_A}, colour: blue}}", "auth.api_keys.0.colour: unknown key"),
        (f"{{name: a, key: secret, sha256: {HASH_A}}}", "auth.api_keys.0.key: unknown key"),
        (f"{{name: a, sha256: {HASH_A}, models: [toy, nope]}}", "auth.api_keys.0.models: unknown model(s) ['nope']; the gateway serves ['toy']"),
    ],
)  # fmt: skip
def test_a_bad_key_is_refused_with_its_path(folder: Path, entry: str, expected: str) -> None:
    found = problems(with_keys(entry), folder)
    assert any(p.startswith(expected) for p in found), found


def test_duplicate_names_and_hashes_are_refused(folder: Path) -> None:
    text = with_keys(
        f"{{name: a, sha256: {HASH_A}}}",
        f"{{name: a, sha256: {HASH_B}}}",
        f"{{name: c, sha256: {HASH_A.upper()}}}",  # the same key, whatever the case
    )
    assert problems(text, folder) == [
        "auth.api_keys.1.name: duplicate key name 'a' (also auth.api_keys.0)",
        "auth.api_keys.2.sha256: duplicate key hash (also auth.api_keys.0)",
    ]


def test_every_problem_of_a_table_is_listed_at_once(folder: Path) -> None:
    text = with_keys(
        f"{{name: a, sha256: {HASH_A}, models: [x]}}", f"{{name: a, sha256: {HASH_B}, models: [y]}}"
    )
    assert len(problems(text, folder)) == 3


def test_an_unknown_auth_key_is_refused(folder: Path) -> None:
    assert "auth.protect: unknown key" in problems(BASE + "auth: {protect: true}\n", folder)


def test_the_keys_file_is_read_relative_to_the_config(folder: Path) -> None:
    secrets = folder / "secrets"
    secrets.mkdir()
    (secrets / "api-keys.yaml").write_text(
        f"api_keys:\n  - {{name: from-file, sha256: {HASH_B}, rate_per_second: 1}}\n"
    )
    text = with_keys(
        f"{{name: inline, sha256: {HASH_A}}}",
        extra="\n  api_keys_file: secrets/api-keys.yaml\n  protect_metadata: true",
    )
    loaded = parse_config(text, folder / "gateway.yaml")
    assert loaded.auth is not None
    assert [k.name for k in loaded.auth.keys] == ["inline", "from-file"]
    assert loaded.auth.protect_metadata is True
    assert loaded.watched_files == ((secrets / "api-keys.yaml").absolute(),)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "cannot read: No such file or directory"),
        ("api_keys: [", "not valid YAML: line 1"),
        ("- {name: a}\n", "Input should be a valid dictionary"),
        (f"api_keys:\n  - {{name: a, sha256: {HASH_B[:10]}}}\n", "api_keys.0.sha256: must be the key's SHA-256"),
        (f"api_keys:\n  - {{name: b, sha256: {HASH_B}, rate_per_second: 0}}\n", "api_keys.0.rate_per_second: Input should be greater than 0"),
        (f"api_keys:\n  - {{name: inline, sha256: {HASH_B}}}\n", "api_keys.0.name: duplicate key name 'inline' (also auth.api_keys.0)"),
        (f"api_keys:\n  - {{name: b, sha256: {HASH_A}}}\n", "api_keys.0.sha256: duplicate key hash (also auth.api_keys.0)"),
        (f"api_keys:\n  - {{name: b, sha256: {HASH_B}, models: [fraud]}}\n", "api_keys.0.models: unknown model(s) ['fraud']"),
        ("keys: []\n", "keys: unknown key"),
    ],
)  # fmt: skip
def test_a_bad_keys_file_is_refused_naming_the_file_and_the_path_inside(
    folder: Path, content: str | None, expected: str
) -> None:
    keys_file = folder / "keys.yaml"
    if content is not None:
        keys_file.write_text(content)
    text = with_keys(f"{{name: inline, sha256: {HASH_A}}}", extra="\n  api_keys_file: keys.yaml")
    found = problems(text, folder)
    prefix = f"auth.api_keys_file: {keys_file}: "
    assert any(p.startswith(prefix) and expected in p for p in found), found


def test_an_empty_keys_file_is_an_empty_table(folder: Path) -> None:
    (folder / "keys.yaml").write_text("")
    loaded = parse_config(with_keys(extra="\n  api_keys_file: keys.yaml"), folder / "gateway.yaml")
    assert loaded.auth is not None
    assert loaded.auth.keys == ()


def test_check_config_reports_auth_problems(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = folder / "gateway.yaml"
    path.write_text(with_keys(f"{{name: a, sha256: {HASH_A}, models: [nope]}}"))
    assert main(["check-config", str(path)]) == 1
    assert "auth.api_keys.0.models: unknown model(s) ['nope']" in capsys.readouterr().err


def test_hash_key_prints_the_sha256_of_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"key-a\n")))
    assert main(["auth", "hash-key"]) == 0
    assert capsys.readouterr().out.strip() == HASH_A
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"\n")))
    assert main(["auth", "hash-key"]) == 1
