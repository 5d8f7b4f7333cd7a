"""A request's deadline on the monotonic clock, and the client's way to shorten it.

The gateway's budget for a request is the model's ``timeouts.total_ms``, counted from the
request's arrival; a client may ask for less (never more) with the
``x-request-timeout-ms`` header or, on OIP v2, the ``timeout_ms`` request parameter. Each
step takes what remains: the feature lookup and the upstream rung all but the reserve
kept for the in-process rungs (``fallback_reserve_ms``), each attempt at most
``per_try_ms`` of that.

    >>> d = Deadline.after(0.5, clock=lambda: 10.0, reserve=0.05)
    >>> d.remaining(), round(d.usable(), 3)
    (0.5, 0.45)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.contracts.problems import ContractViolation, violation

TIMEOUT_HEADER = "x-request-timeout-ms"
TIMEOUT_PARAMETER = "timeout_ms"


@dataclass(frozen=True, slots=True)
class Deadline:
    expires_at: float
    clock: Callable[[], float]
    # Seconds kept back at the end for the in-process rungs (0 when there are none).
    reserve: float = 0.0

    @classmethod
    def after(cls, seconds: float, clock: Callable[[], float], reserve: float = 0.0) -> Deadline:
        return cls(clock() + seconds, clock, reserve)

    def remaining(self) -> float:
        """Seconds until the deadline."""
        return self.expires_at - self.clock()

    def usable(self) -> float:
        """Seconds left for the steps before the reserve (the lookup, upstream attempts)."""
        return self.expires_at - self.reserve - self.clock()


def client_timeout_ms(headers: Mapping[str, str], doc: Any = None) -> float | None:
    """The deadline a client asked for, in ms (header first, then OIP ``parameters``)."""
    raw: Any = headers.get(TIMEOUT_HEADER)
    where = "header " + TIMEOUT_HEADER
    if raw is None:
        parameters = doc.get("parameters") if type(doc) is dict else None
        if type(parameters) is not dict or TIMEOUT_PARAMETER not in parameters:
            return None
        raw = parameters[TIMEOUT_PARAMETER]
        where = "parameters." + TIMEOUT_PARAMETER
    if raw is None:
        return None
    try:
        value = float(raw) if not isinstance(raw, bool) else float("nan")
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise ContractViolation(
            [
                violation(
                    where, "parameters", "parameters", f"must be a positive number, got {raw!r}"
                )
            ]
        )
    return value
