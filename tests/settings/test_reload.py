"""Live reload: changes detected by edit, rename-save and symlink swap; bad files refused."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from support import write_card

from gateway.settings.loader import LoadedConfig
from gateway.settings.reload import ConfigReloader, fingerprint

CONFIG = """models:
  toy:
    card: toy-model
    primary: {{name: toy-v1, url: "http://127.0.0.1:{port}"}}
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    write_card(tmp_path / "toy-model")
    (tmp_path / "gateway.yaml").write_text(CONFIG.format(port=9001))
    return tmp_path


def ports(applied: list[LoadedConfig]) -> list[str]:
    return [c.settings.models["toy"].primary.url.rsplit(":", 1)[1] for c in applied]


async def watch_until(reloader: ConfigReloader, applied: list[LoadedConfig], count: int) -> None:
    async with reloader.running():
        for _ in range(200):
            if len(applied) + reloader.status.rejected >= count:
                return
            await asyncio.sleep(0.01)
    raise AssertionError(f"no reload seen; status {reloader.status.as_dict()}")


def test_an_in_place_edit_is_applied(folder: Path) -> None:
    applied: list[LoadedConfig] = []
    reloader = ConfigReloader(folder / "gateway.yaml", applied.append, interval=0.01)

    async def scenario() -> None:
        # Same size, so only the modification time tells the change apart.
        (folder / "gateway.yaml").write_text(CONFIG.format(port=9005))
        await watch_until(reloader, applied, 1)

    asyncio.run(scenario())
    assert ports(applied) == ["9005"]
    assert reloader.status.applied == 1 and reloader.status.rejected == 0


def test_save_by_rename_is_applied(folder: Path) -> None:
    applied: list[LoadedConfig] = []
    path = folder / "gateway.yaml"
    reloader = ConfigReloader(path, applied.append, interval=0.01)

    async def scenario() -> None:
        temp = folder / ".gateway.yaml.swp"
        temp.write_text(CONFIG.format(port=9002))
        os.replace(temp, path)
        await watch_until(reloader, applied, 1)

    asyncio.run(scenario())
    assert ports(applied) == ["9002"]
    assert reloader.status.applied == 1 and reloader.status.last_trigger == "watch"


def test_a_configmap_style_symlink_swap_is_applied(tmp_path: Path) -> None:
    write_card(tmp_path / "toy-model")
    for version, port in (("v1", 9001), ("v2", 9003)):
        (tmp_path / version).mkdir()
        (tmp_path / version / "gateway.yaml").write_text(CONFIG.format(port=port))
    (tmp_path / "..data").symlink_to("v1")
    (tmp_path / "gateway.yaml").symlink_to("..data/gateway.yaml")
    # Card paths resolve against the config's folder as named, so put the card beside it.
    applied: list[LoadedConfig] = []
    reloader = ConfigReloader(tmp_path / "gateway.yaml", applied.append, interval=0.01)
    before = fingerprint(tmp_path / "gateway.yaml")

    async def scenario() -> None:
        (tmp_path / "..data_tmp").symlink_to("v2")
        os.replace(tmp_path / "..data_tmp", tmp_path / "..data")
        await watch_until(reloader, applied, 1)

    asyncio.run(scenario())
    assert fingerprint(tmp_path / "gateway.yaml") != before
    assert ports(applied) == ["9003"]


@pytest.mark.parametrize(
    "text",
    [
        "models: [",
        CONFIG.format(port=9001) + "colour: red\n",
        CONFIG.format(port=9001).replace("toy-model", "no-such-model"),
        CONFIG.format(port=9001) + "    canary: {name: c, url: 'http://h:1', weight: 140}\n",
    ],
    ids=["invalid-yaml", "unknown-key", "missing-model-files", "bad-weight"],
)
def test_an_invalid_file_is_refused_and_nothing_is_applied(folder: Path, text: str) -> None:
    applied: list[LoadedConfig] = []
    reloader = ConfigReloader(folder / "gateway.yaml", applied.append, interval=0.01)
    (folder / "gateway.yaml").write_text(text)
    assert asyncio.run(reloader.reload("admin")) is False
    assert applied == []
    assert reloader.status.rejected == 1 and reloader.status.last_error
    # A valid file afterwards clears the error.
    (folder / "gateway.yaml").write_text(CONFIG.format(port=9009))
    assert asyncio.run(reloader.reload("signal")) is True
    assert ports(applied) == ["9009"] and reloader.status.last_error is None


def test_a_missing_file_keeps_the_running_config(folder: Path) -> None:
    applied: list[LoadedConfig] = []
    reloader = ConfigReloader(folder / "gateway.yaml", applied.append, interval=0.01)
    (folder / "gateway.yaml").unlink()

    async def scenario() -> None:
        async with reloader.running():
            await asyncio.sleep(0.1)

    asyncio.run(scenario())
    assert applied == [] and reloader.status.rejected == 0
