"""``wrk`` runs for the bench: one fixed POST, or a rotation through several, figures parsed.

A rotation formats every request once in ``init`` and hands them out in turn from
``request()``, so the Lua cost per request is a table lookup and wrk stays far from being
the bottleneck on its core.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from loadtest.processes import pinned

_HEADER = 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests_per_second: float
    requests: int  # answers wrk read in the run
    non_2xx: int
    socket_errors: int  # connect + read + write + timeout


def lua_string(data: bytes) -> str:
    """``data`` as a Lua double-quoted literal; bytes outside printable ASCII as ``\\ddd``."""
    out = ['"']
    for byte in data:
        if byte in (0x22, 0x5C):  # " and \
            out.append("\\" + chr(byte))
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\{byte:03d}")
    out.append('"')
    return "".join(out)


def script(requests: Sequence[tuple[str, bytes]]) -> str:
    """A wrk script POSTing JSON: one fixed body (to the URL's path), or each (path, body)
    of ``requests`` in turn, over and over."""
    if not requests:
        raise ValueError("wrk needs at least one request")
    if len(requests) == 1:
        return _HEADER + f"wrk.body = {lua_string(requests[0][1])}\n"
    rows = "\n".join(
        f"  {{{lua_string(path.encode())}, {lua_string(body)}}}," for path, body in requests
    )
    return (
        _HEADER
        + f"local requests = {{\n{rows}\n}}\n"
        + "local formatted = {}\nlocal turn = 0\n"
        + "function init(args)\n"
        + "  for i, r in ipairs(requests) do formatted[i] = wrk.format(nil, r[1], nil, r[2]) end\n"
        + "end\n"
        + "function request()\n"
        + "  turn = turn % #formatted + 1\n"
        + "  return formatted[turn]\n"
        + "end\n"
    )


def parse(output: str) -> WrkResult:
    """The figures of wrk's text report."""
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    count = re.search(r"(\d+) requests in ", output)
    if not rate or not count:
        raise RuntimeError(f"cannot read wrk's output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    return WrkResult(
        requests_per_second=float(rate.group(1)),
        requests=int(count.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in sockets.groups()) if sockets else 0,
    )


def run(
    url: str,
    requests: Sequence[tuple[str, bytes]],
    connections: int,
    seconds: float,
    script_path: Path,
    core: int | None,
) -> WrkResult:
    """One wrk run (one thread, pinned to ``core``); raises when any answer was not 2xx."""
    script_path.write_text(script(requests))
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "-s", str(script_path), url]
    out = subprocess.run(pinned(command, core), capture_output=True, text=True, check=True).stdout
    result = parse(out)
    if result.non_2xx:
        raise RuntimeError(f"{url}: {result.non_2xx} error answers under wrk:\n{out}")
    return result
