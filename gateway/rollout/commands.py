"""``gateway rollout status|set-weight|promote|rollback MODEL``.

Each change edits the routing YAML in place (comments and order kept), is validated as a
whole config before it is written, is written atomically, and is appended to the audit
log. A running gateway picks the change up through its config reload.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from pathlib import Path
from typing import Any

import httpx
import orjson

from gateway.rollout import audit
from gateway.rollout.yaml_edit import edit, swap_fields
from gateway.settings.loader import ConfigError, load_config
from gateway.settings.schema import UpstreamSettings

# Every field describing an upstream endpoint moves with it on promote (replicas too: left
# behind, they would round-robin the new primary's traffic to the old model); ``weight``
# is the canary slot's share of traffic, not the endpoint's, and stays put.
_UPSTREAM_KEYS = tuple(key for key in UpstreamSettings.model_fields if key != "weight")
# Applies to each phase (connect, read, ...), as urllib's socket timeout did to each
# socket operation.
_LIVE_TIMEOUT_SECONDS = 2.0


class RolloutError(Exception):
    """A rollout command that cannot be carried out; nothing was written."""


def _model(tree: Any, model: str) -> Any:
    models = tree.get("models") or {}
    if model not in models:
        raise RolloutError(f"unknown model {model!r}; the config has {sorted(models)}")
    return models[model]


def _canary(tree: Any, model: str) -> Any:
    canary = _model(tree, model).get("canary")
    if canary is None:
        raise RolloutError(f"model {model!r} has no canary; add a 'canary:' upstream first")
    return canary


def _tidy(weight: float) -> float | int:
    return int(weight) if float(weight).is_integer() else weight


def parse_weight(text: str) -> float:
    try:
        weight = float(text)
    except ValueError:
        raise RolloutError(f"weight {text!r} is not a number; give a percent in [0, 100]") from None
    if not 0.0 <= weight <= 100.0 or weight != weight:
        raise RolloutError(f"weight {text} is out of range; give a percent in [0, 100]")
    return weight


def set_weight(config: Path, model: str, weight: float, log: Path) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def change(tree: Any) -> None:
        canary = _canary(tree, model)
        seen["before"] = canary.get("weight", 0)
        canary["weight"] = _tidy(weight)

    _apply(config, change)
    return audit.record(
        log, "set-weight", model, {"weight": seen["before"]}, {"weight": _tidy(weight)}
    )


def rollback(config: Path, model: str, log: Path) -> dict[str, Any]:
    """Weight 0; the canary stays configured for inspection."""
    seen: dict[str, Any] = {}

    def change(tree: Any) -> None:
        canary = _canary(tree, model)
        seen["before"] = canary.get("weight", 0)
        canary["weight"] = 0

    _apply(config, change)
    return audit.record(log, "rollback", model, {"weight": seen["before"]}, {"weight": 0})


def promote(config: Path, model: str, log: Path) -> dict[str, Any]:
    """The canary becomes the primary at weight 0; the old primary stays as the canary.

    Every endpoint field (url, replicas, timeouts, ...) moves with its upstream; a field
    set on one side only is removed from it and set on the other.

    Keeping the old primary as a zero-weight canary makes undoing a promotion one more
    ``promote``.
    """
    seen: dict[str, Any] = {}

    def change(tree: Any) -> None:
        entry = _model(tree, model)
        primary, canary = entry["primary"], _canary(tree, model)
        seen["before"] = {"primary": primary.get("name"), "canary": canary.get("name")}
        swap_fields(primary, canary, _UPSTREAM_KEYS)
        canary["weight"] = 0
        seen["after"] = {"primary": primary.get("name"), "canary": canary.get("name")}

    _apply(config, change)
    return audit.record(log, "promote", model, seen["before"], seen["after"])


def _apply(config: Path, change: Any) -> None:
    try:
        edit(config, change)
    except ConfigError as exc:
        problems = "; ".join(str(p) for p in exc.problems)
        raise RolloutError(
            f"the change would make the config invalid, nothing written: {problems}"
        ) from exc
    except OSError as exc:
        raise RolloutError(f"cannot edit {config}: {exc.strerror or exc}") from exc


def status(config: Path, model: str, gateway_url: str | None) -> str:
    """Variants and weights from the file, plus live figures when the gateway answers."""
    try:
        loaded = load_config(config)
    except ConfigError as exc:
        raise RolloutError(str(exc)) from exc
    settings = loaded.settings.models.get(model)
    if settings is None:
        raise RolloutError(
            f"unknown model {model!r}; the config has {sorted(loaded.settings.models)}"
        )
    canary_weight = settings.canary.weight if settings.canary else 0.0
    lines = [f"model {model}  (config {config})"]
    lines.append(
        f"  primary  {settings.primary.name:<16} {settings.primary.url:<28} {100 - canary_weight:g}%"
    )
    if settings.canary:
        lines.append(
            f"  canary   {settings.canary.name:<16} {settings.canary.url:<28} {canary_weight:g}%"
        )
    else:
        lines.append("  canary   (none)")
    for shadow in settings.shadows:
        lines.append(
            f"  shadow   {shadow.name:<16} {shadow.url:<28} sampled {shadow.sample_percent:g}%"
        )
    if gateway_url:
        lines.append(_live(gateway_url, model))
    return "\n".join(lines)


def _live(gateway_url: str, model: str) -> str:
    base = gateway_url.rstrip("/")
    token = os.environ.get("GATEWAY_ADMIN_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        # urllib, used before, sent even loopback requests to $HTTP_PROXY unless $NO_PROXY
        # named the host; a proxy cannot reach this machine's gateway, so the environment
        # is ignored for loopback. A remote gateway may well need the proxy. Redirects are
        # followed as urllib did; httpx drops the token when one leaves the origin.
        with httpx.Client(
            timeout=_LIVE_TIMEOUT_SECONDS, follow_redirects=True, trust_env=not _loopback(base)
        ) as client:
            response = client.get(f"{base}/admin/status", headers=headers)
        if not response.is_success:
            hint = (
                " (set GATEWAY_ADMIN_TOKEN to the gateway's admin token)"
                if response.status_code in (401, 403)
                else ""
            )
            return f"  live     not available from {gateway_url}: HTTP {response.status_code}{hint}"
        doc = orjson.loads(response.content)
    except httpx.TimeoutException:
        return (
            f"  live     not available from {gateway_url}: "
            f"no answer within {_LIVE_TIMEOUT_SECONDS:g} s"
        )
    except httpx.ConnectError as exc:
        return f"  live     not available from {gateway_url}: cannot connect ({exc})"
    except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
        return f"  live     not available from {gateway_url}: {exc}"
    except orjson.JSONDecodeError as exc:
        return f"  live     not available from {gateway_url}: the answer is not JSON ({exc})"
    section = doc.get("models", {}).get(model) if isinstance(doc, dict) else None
    if section is None:
        return f"  live     {gateway_url} reports nothing for {model!r}"
    return "  live     " + orjson.dumps(section, option=orjson.OPT_INDENT_2).decode().replace(
        "\n", "\n           "
    )


def _loopback(url: str) -> bool:
    """Whether ``url``'s host is this machine's loopback (a name or an address)."""
    try:
        host = httpx.URL(url).host
    except httpx.InvalidURL:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default="config/gateway.yaml",
        help="routing YAML (default: config/gateway.yaml)",
    )
    parser.add_argument(
        "--audit-log", help="audit log (default: <config>.audit.jsonl beside the config)"
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser("status", help="variants, weights, shadows and live figures")
    show.add_argument("model")
    show.add_argument(
        "--gateway-url",
        default="http://127.0.0.1:8080",
        help="gateway to ask for live figures (default: http://127.0.0.1:8080; '' to skip)",
    )
    weight = actions.add_parser("set-weight", help="set the canary's share of traffic, in percent")
    weight.add_argument("model")
    weight.add_argument("percent", help="0 to 100; fractions allowed, e.g. 0.5")
    actions.add_parser("promote", help="the canary becomes primary at weight 0").add_argument(
        "model"
    )
    actions.add_parser("rollback", help="canary weight 0, canary kept").add_argument("model")


def run_from_args(args: argparse.Namespace) -> int:
    config = Path(args.config)
    log = Path(args.audit_log) if args.audit_log else audit.default_log_path(config)
    try:
        if args.action == "status":
            print(status(config, args.model, args.gateway_url or None))
            return 0
        if args.action == "set-weight":
            entry = set_weight(config, args.model, parse_weight(args.percent), log)
        elif args.action == "promote":
            entry = promote(config, args.model, log)
        else:
            entry = rollback(config, args.model, log)
    except RolloutError as exc:
        print(f"gateway rollout {args.action}: {exc}", file=sys.stderr)
        return 1
    print(f"{args.action} {args.model}: {entry['before']} -> {entry['after']} (logged to {log})")
    return 0
