"""Contract violations: one :class:`Problem` per broken rule, gathered into one error.

A ``Problem`` is the message text itself (a ``str``, so lists of them join into the
``{"error": ...}`` body unchanged) that also carries the ``field`` it concerns, the
``rule`` it breaks and the offending ``row``. The field and rule label the
``gateway_rejections_total`` counter and the request span, so both are bounded: the
field is an input/field of the model or one of :data:`REQUEST_PARTS`, the rule one of
:data:`RULES`.

    >>> p = violation("instances[3].hour", "hour", "range", "30 is outside [0, 23]", row=3)
    >>> str(p)
    'instances[3].hour: 30 is outside [0, 23] (rule: range)'
"""

from __future__ import annotations

import reprlib
from collections.abc import Iterable
from typing import Final

from gateway.errors import InvalidInput, UpstreamBadResponse

#: Every rule name a rejection (request) or an output violation (answer) may carry.
RULES: Final = frozenset(
    {
        # limits
        "max_body_bytes", "json", "json_depth", "max_batch_size", "max_string_length",
        # OIP v2 structure
        "body", "inputs", "tensor", "name", "unknown_input", "duplicate_input",
        "missing_input", "datatype", "datatype_mismatch", "shape", "element_count",
        "ragged", "element_type", "batch_mismatch", "outputs", "unknown_output", "id",
        "parameters", "binary_data", "content_encoding",
        # v1 structure
        "instances", "instance", "unknown_field", "missing_field", "field_type",
        # values
        "nan", "null", "range", "category", "bool", "out_of_distribution",
        # outputs (answers)
        "output_missing", "output_datatype", "output_shape", "output_batch",
        "probability", "probability_sum", "output_range", "constant_output",
    }
)  # fmt: skip

#: Field labels for problems that concern the request rather than one input.
REQUEST_PARTS: Final = frozenset({"body", "inputs", "outputs", "id", "parameters", "instances"})
UNKNOWN_FIELD: Final = "<unknown>"
_MAX_SHOWN: Final = 20


class Problem(str):
    """One broken rule: the message, with ``field``, ``rule`` and ``row`` attached."""

    field: str
    rule: str
    row: int | None

    def __new__(cls, text: str, field: str, rule: str, row: int | None = None) -> Problem:
        self = super().__new__(cls, text)
        self.field = field
        self.rule = rule
        self.row = row
        return self


def violation(where: str, field: str, rule: str, message: str, row: int | None = None) -> Problem:
    """``"<where>: <message> (rule: <rule>)"`` as a :class:`Problem`."""
    return Problem(f"{where}: {message} (rule: {rule})", field, rule, row)


_REPR = reprlib.Repr()
_REPR.maxlevel = 3  # a 1,000-deep list must not recurse (or echo) all the way down
_REPR.maxstring = 60
_REPR.maxother = 60


def shown(value: object, limit: int = 60) -> str:
    """A bounded ``repr`` of a client's value: echoed briefly, never its megabytes or depth."""
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def join(problems: list[str]) -> str:
    """The problems as one message, capped so a huge bad batch does not echo megabytes."""
    shown = "; ".join(problems[:_MAX_SHOWN])
    more = len(problems) - _MAX_SHOWN
    return f"{shown}; and {more} more" if more > 0 else shown


class ContractViolation(InvalidInput):
    """A request breaking its model's contract (400); ``problems`` lists every rule broken."""

    def __init__(self, problems: Iterable[str]) -> None:
        listed = list(problems)
        super().__init__(join(listed))
        self.problems = listed

    def labels(self, fields: frozenset[str]) -> list[tuple[str, str]]:
        """Distinct bounded ``(field, rule)`` pairs; ``fields`` are the model's own names."""
        pairs: dict[tuple[str, str], None] = {}
        for problem in self.problems:
            if isinstance(problem, Problem):
                if problem.rule == "more":
                    continue
                field = problem.field
                if field not in fields and field not in REQUEST_PARTS:
                    field = UNKNOWN_FIELD
                rule = problem.rule if problem.rule in RULES else "invalid"
            else:
                field, rule = UNKNOWN_FIELD, "invalid"
            pairs[(field, rule)] = None
        return list(pairs)


class OutputViolation(UpstreamBadResponse):
    """An upstream answer breaking the model's output contract (502; an upstream failure)."""

    def __init__(self, upstream: str, problems: list[str]) -> None:
        super().__init__(upstream, f"answer breaks the output contract: {join(problems)}")
        self.problems = problems
        self.rules = sorted({p.rule for p in problems if isinstance(p, Problem)})
