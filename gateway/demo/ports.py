"""The demo's ports, shifted as a whole by ``gateway demo --port-offset N``.

Feast 6566, fraud v1/v2/v3 8001-8003 and the gateway 8080 by default, as the default
config names them. With an offset every port moves by N, and the demo runs the gateway
on a copy of the config (``<workdir>/gateway.yaml``) whose upstream and feature-store URLs
name the moved ports and whose relative paths are made absolute; so a second demo, or the
tests, run beside a demo on the default ports.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ruamel.yaml import YAML

FEAST_PORT = 6566
MODEL_PORTS = {"fraud-v1": 8001, "fraud-v2": 8002, "fraud-v3": 8003}
GATEWAY_PORT = 8080
MAX_OFFSET = 65535 - max(FEAST_PORT, GATEWAY_PORT, *MODEL_PORTS.values())


@dataclass(frozen=True)
class DemoPorts:
    feast: int
    models: dict[str, int]
    gateway: int

    @classmethod
    def shifted(cls, offset: int) -> DemoPorts:
        if not -min(FEAST_PORT, *MODEL_PORTS.values()) < offset <= MAX_OFFSET:
            raise ValueError(f"port offset {offset} moves a demo port outside 1-65535")
        models = {name: port + offset for name, port in MODEL_PORTS.items()}
        return cls(FEAST_PORT + offset, models, GATEWAY_PORT + offset)

    def all(self) -> tuple[int, ...]:
        return (self.feast, *self.models.values(), self.gateway)


def shifted_config(config: Path, dest: Path, offset: int) -> Path:
    """Write ``config`` to ``dest`` with every default demo port moved by ``offset``."""
    moved = {
        old: new
        for old, new in zip(
            DemoPorts.shifted(0).all(), DemoPorts.shifted(offset).all(), strict=True
        )
    }
    yaml = YAML()
    tree: Any = yaml.load(config.read_text())
    base = config.resolve().parent
    tree.yaml_set_start_comment(
        f"Written by `gateway demo --port-offset {offset}` from {config.resolve()};\n"
        "an edit here (e.g. `gateway rollout --config` this file) reaches this demo only.\n"
    )

    def url(value: str) -> str:
        parts = urlsplit(value)
        if parts.port not in moved or parts.hostname is None:
            return value
        return urlunsplit(parts._replace(netloc=f"{parts.hostname}:{moved[parts.port]}"))

    def absolute(section: Any, key: str) -> None:
        if section is not None and isinstance(section.get(key), str):
            section[key] = str((base / section[key]).resolve())

    server = tree.get("server")
    if server is not None and server.get("port") in moved:
        server["port"] = moved[server["port"]]
    store = tree.get("feature_store")
    if store is not None:
        store["url"] = url(store["url"])
        absolute((store.get("cache") or {}).get("snapshot"), "path")
    for model in (tree.get("models") or {}).values():
        absolute(model, "card")
        absolute(model.get("fallback"), "card")
        for role in ("primary", "canary"):
            upstream = model.get(role)
            if upstream is not None:
                upstream["url"] = url(upstream["url"])
                if "replicas" in upstream:
                    upstream["replicas"] = [url(u) for u in upstream["replicas"]]
        for shadow in model.get("shadows") or ():
            shadow["url"] = url(shadow["url"])
    dest.parent.mkdir(parents=True, exist_ok=True)
    with dest.open("w") as out:
        yaml.dump(tree, out)
    return dest
