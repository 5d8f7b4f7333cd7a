"""``gateway rollout status|set-weight|promote|rollback|start|pause|resume|abort MODEL``.

Each change edits the routing YAML in place (comments and order kept), is validated as a
whole config before it is written, is written atomically, and is appended to the audit
log. A running gateway picks the change up through its config reload. ``start``, ``pause``,
``resume`` and ``abort`` drive the automated rollout (:mod:`gateway.rollout.runs`); a
manual ``set-weight``, ``promote`` or ``rollback`` during one pauses or ends it, and says so.
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

from gateway.rollout import audit, runs
from gateway.rollout.tree import RolloutError, apply, canary_of, promote_tree, tidy
from gateway.settings.loader import ConfigError, load_config
from gateway.settings.schema import CanarySettings

__all__ = ["RolloutError", "promote", "rollback", "set_weight", "status"]
# Applies to each phase (connect, read, ...), as urllib's socket timeout did to each
# socket operation.
_LIVE_TIMEOUT_SECONDS = 2.0


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
        canary = canary_of(tree, model)
        seen["before"] = canary.get("weight", 0)
        canary["weight"] = tidy(weight)
        seen["run"] = runs.interrupt(tree, model, "set-weight", f"{weight:g}%")

    apply(config, change)
    return audit.record(
        log, "set-weight", model, {"weight": seen["before"]}, {"weight": tidy(weight)},
        extra=_run_note(seen),
    )  # fmt: skip


def _run_note(seen: dict[str, Any]) -> dict[str, Any] | None:
    """The audit record's ``run`` field: what the command did to an automated rollout."""
    return {"run": seen["run"]} if seen.get("run") else None


def rollback(config: Path, model: str, log: Path) -> dict[str, Any]:
    """Weight 0; the canary stays configured for inspection."""
    seen: dict[str, Any] = {}

    def change(tree: Any) -> None:
        canary = canary_of(tree, model)
        seen["before"] = canary.get("weight", 0)
        canary["weight"] = 0
        seen["run"] = runs.interrupt(tree, model, "rollback", "weight 0")

    apply(config, change)
    return audit.record(
        log, "rollback", model, {"weight": seen["before"]}, {"weight": 0}, extra=_run_note(seen)
    )


def promote(config: Path, model: str, log: Path) -> dict[str, Any]:
    """The canary becomes the primary at weight 0; the old primary stays as the canary.

    Every endpoint field (url, replicas, timeouts, ...) moves with its upstream; a field
    set on one side only is removed from it and set on the other.

    Keeping the old primary as a zero-weight canary makes undoing a promotion one more
    ``promote``.
    """
    seen: dict[str, Any] = {}

    def change(tree: Any) -> None:
        seen["before"], seen["after"] = promote_tree(tree, model)
        seen["run"] = runs.interrupt(tree, model, "promote", "")

    apply(config, change)
    return audit.record(log, "promote", model, seen["before"], seen["after"], extra=_run_note(seen))


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
    lines.extend(_run_lines(settings.canary))
    if gateway_url:
        lines.append(_live(gateway_url, model))
    return "\n".join(lines)


def _run_lines(canary: CanarySettings | None) -> list[str]:
    """The automated rollout as the file has it: state, step, weight, failed checks, reason."""
    analysis = canary.analysis if canary is not None else None
    if canary is None or analysis is None:
        return ["  rollout  (no canary.analysis: manual rollout only)"]
    steps = ", ".join(f"{s:g}" for s in analysis.steps)
    step = f"step {analysis.step} of {len(analysis.steps)}" if analysis.step else "no step"
    lines = [
        f"  rollout  {analysis.state}  {step}  weight {canary.weight:g}%  steps [{steps}]  "
        f"failed checks {analysis.failed_checks} of {analysis.max_failed_checks}  "
        f"every {analysis.interval_seconds:g} s, at least {analysis.min_requests} requests"
    ]
    if analysis.reason:
        lines.append(f"  reason   {analysis.reason}")
    return lines


def _check_lines(section: dict[str, Any]) -> list[str]:
    """The last checks the gateway judged (value, bound, ok), from its live status."""
    rollout = section.get("rollout") if isinstance(section, dict) else None
    if not isinstance(rollout, dict):
        return []
    lines = []
    if rollout.get("waiting"):
        lines.append(f"  waiting  {rollout['waiting']}")
    for check in rollout.get("last_checks") or []:
        verdict = "ok    " if check.get("ok") else "FAILED"
        value = check.get("value")
        shown = check.get("error") if value is None else f"{value:.6g}"
        lines.append(
            f"  check    {verdict} {check.get('name'):<22} {shown}  bound {check.get('bound')}"
        )
    return lines


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
    checks = _check_lines(section)
    return "\n".join([*checks, "  live     " + orjson.dumps(
        section, option=orjson.OPT_INDENT_2
    ).decode().replace("\n", "\n           ")])  # fmt: skip


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
    for action, text in (
        ("start", "begin the automated rollout of canary.analysis: step 1 at its weight"),
        ("pause", "hold the automated rollout at its step and weight"),
        ("resume", "go on with a paused automated rollout"),
        ("abort", "end the automated rollout: canary weight 0, state rolled_back"),
    ):
        actions.add_parser(action, help=text).add_argument("model")


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
        elif args.action == "rollback":
            entry = rollback(config, args.model, log)
        else:
            entry = _RUN_ACTIONS[args.action](config, args.model, log)
    except RolloutError as exc:
        print(f"gateway rollout {args.action}: {exc}", file=sys.stderr)
        return 1
    print(f"{args.action} {args.model}: {entry['before']} -> {entry['after']} (logged to {log})")
    if entry.get("run"):
        print(f"note: {entry['run']}")
    return 0


_RUN_ACTIONS = {
    "start": runs.start,
    "pause": runs.pause,
    "resume": runs.resume,
    "abort": runs.abort,
}
