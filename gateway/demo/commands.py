"""`gateway demo` and its subcommands `fault` and `status`, which talk to a running demo."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gateway.demo.control import ControlError, DemoNotRunning, request, socket_path
from gateway.demo.ports import MODEL_PORTS, DemoPorts

PARTS = ("feast", *MODEL_PORTS, "gateway")

_FAULT_HELP = """\
Inject a fault into a part of the running demo (started with `gateway demo` in another
terminal, with the same --workdir). The supervisor signals the part's whole process group:

  kill   SIGKILL: the part dies; the demo reports it and restarts it after a pause
         (1 s, doubling up to 30 s while it keeps dying soon after a start)
  stall  SIGSTOP: the part's port still accepts connections but nothing answers, so
         callers time out (a hung server, the harder failure)
  heal   SIGCONT a stalled part; restart a dead one now

Meanwhile the gateway keeps answering and says how it degraded: with Feast down,
x-gateway-feature-source: cache (last-known-good values) and x-gateway-degraded: true;
with fraud-v1 (the primary) down, x-gateway-variant: fallback (the in-process model).

examples:
  gateway demo fault kill feast
  gateway demo fault stall fraud-v1
  gateway demo fault heal fraud-v1
"""


def add_arguments(demo: argparse.ArgumentParser) -> None:
    """The demo's own options and its `fault` and `status` subcommands."""
    demo.add_argument(
        "--workdir",
        default=".demo",
        help="folder for the feature repo, logs and the control socket (default: .demo)",
    )
    demo.add_argument(
        "--host", default="127.0.0.1", help="address every process binds (default: 127.0.0.1)"
    )
    demo.add_argument(
        "--port-offset",
        type=int,
        default=0,
        metavar="N",
        help="move every port by N (e.g. 1000: Feast 7566, models 9001-9003, gateway 9080), "
        "to run beside another demo; the gateway then runs on a copy of the config with "
        "the moved ports, written to the work folder (default: 0)",
    )
    actions = demo.add_subparsers(
        dest="demo_command", metavar="ACTION", title="actions (none: run the stack)"
    )
    # SUPPRESS: an unset --workdir here must not overwrite `gateway demo --workdir X`.
    workdir = argparse.ArgumentParser(add_help=False)
    workdir.add_argument(
        "--workdir",
        default=argparse.SUPPRESS,
        help="the running demo's work folder (default: .demo)",
    )
    fault = actions.add_parser(
        "fault",
        parents=[workdir],
        help="kill, stall or heal a part of the running demo",
        description=_FAULT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fault.add_argument("fault", choices=["kill", "stall", "heal"], help="what to do")
    fault.add_argument("part", choices=PARTS, metavar="PART", help=f"one of: {', '.join(PARTS)}")
    actions.add_parser(
        "status",
        parents=[workdir],
        help="show every part of the running demo",
        description="Show each part of the running demo: state (running, stalled, down, "
        "starting), pid (its process group) and how often it was restarted.",
    )


def run_from_args(args: argparse.Namespace) -> int:
    command: str | None = args.demo_command
    workdir = Path(args.workdir)
    if command is None:
        try:
            DemoPorts.shifted(args.port_offset)
        except ValueError as exc:
            print(f"gateway demo: {exc}", file=sys.stderr)
            return 2
        from gateway.demo.supervisor import run_demo

        return run_demo(workdir=workdir, host=args.host, port_offset=args.port_offset)
    message = (
        {"action": "status"} if command == "status" else {"action": args.fault, "part": args.part}
    )
    try:
        reply = request(socket_path(workdir.resolve()), message)
    except DemoNotRunning:
        print(
            f"gateway demo {command}: no demo is running in {workdir} (nothing listens on "
            f"{socket_path(workdir)}); start one with `gateway demo` in another terminal "
            "(it answers once it has printed its sample requests), or pass its --workdir",
            file=sys.stderr,
        )
        return 1
    except ControlError as exc:
        print(f"gateway demo {command}: {exc}", file=sys.stderr)
        return 1
    if not reply.get("ok"):
        print(f"gateway demo {command}: {reply.get('error')}", file=sys.stderr)
        return 1
    if command == "status":
        for part in reply.get("parts", []):
            restart = part.get("restart_in_seconds")
            pending = "" if restart is None else f"  (restart in {restart:g} s)"
            print(
                f"{part['part']:<9} {part['state']:<9} pid {part['pid']!s:<8} "
                f"restarts {part['restarts']}{pending}"
            )
    else:
        print(reply.get("message"))
    return 0
