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
    """One wrk run as its report gives it. ``requests`` counts every answer wrk read,
    errors included, and so does wrk's own ``requests_per_second``."""

    requests_per_second: float
    requests: int  # answers wrk read in the run
    non_2xx: int  # answers with a status of 400 or more (wrk's "Non-2xx or 3xx responses")
    connect: int = 0  # socket errors, by kind
    read: int = 0
    write: int = 0
    timeout: int = 0  # requests unanswered after wrk's timeout (2 s)
    seconds: float = 0.0  # the run's length as wrk measured it

    @property
    def socket_errors(self) -> int:
        return self.connect + self.read + self.write + self.timeout

    @property
    def failures(self) -> int:
        """Every request the client saw fail: error answers and socket errors."""
        return self.non_2xx + self.socket_errors

    @property
    def ok(self) -> int:
        return self.requests - self.non_2xx

    @property
    def ok_per_second(self) -> float:
        """Successful answers per second: an error answer is not throughput."""
        if self.seconds > 0:
            return self.ok / self.seconds
        if self.requests == 0:
            return 0.0
        return self.requests_per_second * self.ok / self.requests


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


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse(output: str) -> WrkResult:
    """The figures of wrk's text report (the error lines appear only when non-zero)."""
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    count = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h)\b", output)
    if not rate or not count:
        raise RuntimeError(f"cannot read wrk's output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    connect, read, write, timeout = (int(n) for n in sockets.groups()) if sockets else (0,) * 4
    return WrkResult(
        requests_per_second=float(rate.group(1)),
        requests=int(count.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        connect=connect,
        read=read,
        write=write,
        timeout=timeout,
        seconds=float(count.group(2)) * _UNITS[count.group(3)],
    )


def run(
    url: str,
    requests: Sequence[tuple[str, bytes]],
    connections: int,
    seconds: float,
    script_path: Path,
    core: int | None,
) -> WrkResult:
    """One wrk run (one thread, pinned to ``core``). Failures are counted, not raised: the
    bench's verdicts judge them (:mod:`loadtest.bench_failures`)."""
    script_path.write_text(script(requests))
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "-s", str(script_path), url]
    done = subprocess.run(pinned(command, core), capture_output=True, text=True, check=False)
    if done.returncode:  # e.g. nothing listens: wrk refuses to start, no figure at all
        raise RuntimeError(f"wrk {url} exited {done.returncode}: {done.stderr or done.stdout}")
    return parse(done.stdout)
