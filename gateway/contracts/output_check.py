"""The output contract: catch a model server that answers 200 with something wrong.

Compiled once per config load from the card's ``outputs`` (and ``contract.output_ranges``).
Every answer is checked before it is served: every output it holds, requested or not, is
one of the card's, with the card's datatype, a shape of the card's rank whose fixed
dimensions match, a batch dimension equal to the request's, ``product(shape)`` numeric
elements; probability outputs are finite and within [0, 1], and their rows sum to 1 when
the card says so; configured ranges hold; every requested output (all by default) is
there. A violation raises :class:`OutputViolation` (an ``UpstreamBadResponse``, so it
counts as the upstream failing).

Servers disagree on the shape of a 1-D output: the card's ``[-1]`` comes as ``[N]`` from
some and as ``[N, 1]`` from MLServer's NumpyCodec. So a card shape ``[-1]`` also accepts
``[N, 1]``, and a card shape ending in 1 (``[-1, 1]``) also accepts it without that last
dimension; the card's ``client_shape`` says whether the client gets the card's form
(``"card"``, the default: the tensor is reshaped in place) or the server's.
Outputs the client did not ask for are checked, then dropped from the answer.

Rules: ``output_missing``, ``output_unknown``, ``output_datatype``, ``output_shape``,
``output_batch``, ``element_type``, ``nan``, ``probability``, ``probability_sum``,
``output_range`` and, when enabled, ``constant_output``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import chain
from math import prod
from typing import TYPE_CHECKING, Any, Final

from gateway.contracts.card import ModelCard
from gateway.contracts.problems import OutputViolation, shown, violation
from gateway.contracts.values import default_contract

if TYPE_CHECKING:
    from gateway.settings.schema import ContractSettings

log = logging.getLogger("gateway.contracts")

_NUMBER_TYPES: Final = frozenset({int, float})
_INT_TYPES: Final = frozenset({int})
_INT_SET: Final = {int}
_LIST_SET: Final = {list}
SUM_TOLERANCE: Final = 1e-3
_NO_FIT: Final = 0
_CARD_FORM: Final = 1
_OTHER_FORM: Final = 2


@dataclass(frozen=True, slots=True)
class _OutputSpec:
    name: str
    datatype: str
    shape: tuple[int, ...]
    lo: float | None
    hi: float | None
    range_rule: str
    rows_sum_to_one: bool
    types: frozenset[type]
    fixed: tuple[tuple[int, int], ...]  # (dimension, size) of every dimension that is not -1
    # The other form of the same tensor ([-1] <-> [-1, 1]), None when there is none.
    other_rank: int | None = None
    other_fixed: tuple[tuple[int, int], ...] = ()
    to_card_shape: bool = True  # reshape an answer in the other form to the card's

    def check(self, tensor: dict[str, Any], batch: int) -> list[str]:
        """The violations of ``tensor`` (empty when it keeps the contract); a tensor in the
        other accepted form is reshaped to the card's when ``to_card_shape``."""
        datatype, shape, data = tensor.get("datatype"), tensor.get("shape"), tensor.get("data")
        if datatype != self.datatype:
            return [
                violation(
                    self.where,
                    self.name,
                    "output_datatype",
                    f"datatype {shown(datatype)}, the card declares {self.datatype!r}",
                )
            ]
        form = self._form(shape)
        if form == _NO_FIT or not isinstance(shape, list):  # (the second narrows the type)
            return [
                violation(
                    self.where,
                    self.name,
                    "output_shape",
                    f"shape {shown(shape)} does not fit the card's {list(self.shape)}",
                )
            ]
        if shape[0] != batch:
            return [
                violation(
                    self.where,
                    self.name,
                    "output_batch",
                    f"batch dimension {shape[0]}, the request has {batch} rows",
                )
            ]
        if not isinstance(data, list):
            return [violation(self.where, self.name, "output_shape", "has no data list")]
        if data and isinstance(data[0], list):
            data = _flatten(data, len(shape))
        if len(data) != prod(shape):
            return [
                violation(
                    self.where,
                    self.name,
                    "output_shape",
                    f"holds {len(data)} elements, shape {shape} needs {prod(shape)}",
                )
            ]
        if data and not self._passes(data, batch):
            return self._explain(data, self.where, len(data) // batch if batch else 1)
        if form == _OTHER_FORM and self.to_card_shape:
            rank = len(self.shape)
            tensor["shape"] = shape[:rank] if len(shape) > rank else [*shape, 1]
            tensor["data"] = data  # flat, row-major: valid for any shape
        return []

    @property
    def where(self) -> str:
        return f"output {self.name!r}"

    def _form(self, shape: Any) -> int:
        """``_CARD_FORM``, ``_OTHER_FORM`` or ``_NO_FIT``: does ``shape`` fit the card?"""
        if type(shape) is not list or not shape:
            return _NO_FIT
        rank = len(shape)
        if rank == len(self.shape):
            form, fixed = _CARD_FORM, self.fixed
        elif rank == self.other_rank:
            form, fixed = _OTHER_FORM, self.other_fixed
        else:
            return _NO_FIT
        if set(map(type, shape)) != _INT_SET or min(shape) < 0:
            return _NO_FIT
        for dimension, size in fixed:
            if shape[dimension] != size:
                return _NO_FIT
        return form

    def _passes(self, data: list[Any], batch: int) -> bool:
        if not set(map(type, data)) <= self.types:
            return False
        if self.types is _INT_TYPES and self.lo is None and self.hi is None:
            return True
        low, high = min(data), max(data)
        if (self.lo is not None and low < self.lo) or (self.hi is not None and high > self.hi):
            return False
        total = sum(data)
        if total - total != 0:
            return False
        if self.rows_sum_to_one:
            width = len(data) // batch
            sums = list(map(sum, zip(*(data[k::width] for k in range(width)), strict=True)))
            return min(sums) >= 1 - SUM_TOLERANCE and max(sums) <= 1 + SUM_TOLERANCE
        return True

    def _explain(self, data: list[Any], where: str, width: int) -> list[str]:
        problems: list[str] = []
        for index, value in enumerate(data):
            row = index // width
            at = f"{where}[{row}]"
            if value is None:
                problems.append(violation(at, self.name, "nan", "NaN (null) in the answer", row))
            elif type(value) not in self.types:
                problems.append(
                    violation(
                        at,
                        self.name,
                        "element_type",
                        f"{shown(value)} is not a {self.datatype} element",
                        row,
                    )
                )
            elif value != value or value - value != 0:
                problems.append(violation(at, self.name, "nan", f"{value} is not finite", row))
            elif (self.lo is not None and value < self.lo) or (
                self.hi is not None and value > self.hi
            ):
                allowed = f"[{_g(self.lo, '-inf')}, {_g(self.hi, 'inf')}]"
                message = f"{value} is outside {allowed}"
                problems.append(violation(at, self.name, self.range_rule, message, row))
            if len(problems) >= 3:
                return problems
        if self.rows_sum_to_one and not problems:
            for row in range(len(data) // width):
                total = sum(data[row * width : (row + 1) * width])
                if abs(total - 1) > SUM_TOLERANCE:
                    problems.append(
                        violation(
                            f"{where}[{row}]",
                            self.name,
                            "probability_sum",
                            f"row sums to {total:.6g}, not 1",
                            row,
                        )
                    )
                    if len(problems) >= 3:
                        break
        return problems


@dataclass(slots=True)
class ConstantOutputMonitor:
    """Flags a model whose answers stay identical while its inputs keep changing.

    Counts rows answered with exactly the previous answer's first row for requests whose
    bodies differ from the previous request's; any different answer resets the count.
    ``window`` such rows in a row make the model *constant*.
    """

    output: str
    window: int
    reject: bool
    streak: int = 0
    flagged: bool = False
    _last_input: int = 0
    _last_row: list[Any] = field(default_factory=list)

    def observe(self, body_hash: int, data: list[Any], batch: int) -> bool:
        """Record an answer; True when the model has just been, or still is, constant."""
        if not data or batch <= 0:
            return False
        width = len(data) // batch
        row = data[:width]
        if row == self._last_row and data == row * batch and body_hash != self._last_input:
            self.streak += batch
        else:
            self.streak = 0
            self.flagged = False
            self._last_row = row
        self._last_input = body_hash
        if self.streak >= self.window:
            if not self.flagged:
                log.warning(
                    "output %r has been %r for %d rows of distinct inputs",
                    self.output,
                    row,
                    self.streak,
                )
            self.flagged = True
        return self.flagged


@dataclass(frozen=True, slots=True)
class OutputChecker:
    """The output contract of one model; :meth:`check` raises :class:`OutputViolation`."""

    specs: dict[str, _OutputSpec]
    all_outputs: tuple[str, ...]
    constant: ConstantOutputMonitor | None

    @classmethod
    def compile(cls, card: ModelCard, contract: ContractSettings | None = None) -> OutputChecker:
        contract = contract or default_contract()
        specs = {}
        for out in card.outputs:
            configured = contract.output_ranges.get(out.name)
            floats = out.datatype.startswith("FP")
            probabilities = floats and (out.probabilities or out.name == card.score.output)
            lo, hi, rule = None, None, "output_range"
            if probabilities:
                lo, hi, rule = 0.0, 1.0, "probability"
            if configured is not None:
                lo = configured.min if configured.min is not None else lo
                hi = configured.max if configured.max is not None else hi
                rule = "output_range"
            other = _other_form(out.shape)
            specs[out.name] = _OutputSpec(
                name=out.name,
                datatype=out.datatype,
                shape=out.shape,
                lo=lo,
                hi=hi,
                range_rule=rule,
                rows_sum_to_one=probabilities and out.rows_sum_to_one and len(out.shape) == 2,
                types=_NUMBER_TYPES if floats else _INT_TYPES,
                fixed=_fixed(out.shape),
                other_rank=None if other is None else len(other),
                other_fixed=() if other is None else _fixed(other),
                to_card_shape=out.client_shape == "card",
            )
        settings = contract.constant_output
        monitor = (
            ConstantOutputMonitor(card.score.output, settings.window, settings.reject)
            if settings.enabled
            else None
        )
        return cls(specs, tuple(specs), monitor)

    def check(
        self,
        upstream: str,
        doc: dict[str, Any],
        batch: int,
        requested: Iterable[str] | None = None,
        body_hash: int | None = None,
    ) -> bool:
        """Raise :class:`OutputViolation` unless ``doc`` keeps the contract for ``batch`` rows.

        Every output in ``doc`` is checked; ``requested`` names the outputs the request
        asked for (default: all), which must be there, and the others are then dropped
        from ``doc``. Tensors in the other accepted shape are reshaped in place as the
        card's ``client_shape`` says. Returns True when the constant-output monitor flags
        the model (and does not reject it).
        """
        expected = tuple(requested) if requested is not None else self.all_outputs
        found: dict[str, dict[str, Any]] = {}
        problems: list[str] = []
        for tensor in doc["outputs"]:
            name = tensor.get("name") if isinstance(tensor, dict) else None
            spec = self.specs.get(name) if isinstance(name, str) else None
            if spec is None:
                problems.append(
                    violation(
                        "outputs",
                        "outputs",
                        "output_unknown",
                        f"{shown(name)} is not an output of the model",
                    )
                )
                continue
            found[spec.name] = tensor
            problems.extend(spec.check(tensor, batch))
        for name in expected:
            if name not in found:
                problems.append(
                    violation(f"output {name!r}", name, "output_missing", "missing from the answer")
                )
        if problems:
            raise OutputViolation(upstream, problems)
        if len(found) > len(expected):  # the server sent outputs nobody asked for
            doc["outputs"] = [t for t in doc["outputs"] if t["name"] in expected]
        monitor = self.constant
        if monitor is None or body_hash is None or monitor.output not in found:
            return False
        data = found[monitor.output]["data"]
        if data and isinstance(data[0], list):
            data = _flatten(data, len(self.specs[monitor.output].shape))
        if monitor.observe(body_hash, data, batch):
            if monitor.reject:
                raise OutputViolation(
                    upstream,
                    [
                        violation(
                            f"output {monitor.output!r}",
                            monitor.output,
                            "constant_output",
                            f"identical for the last {monitor.streak} rows of distinct inputs",
                        )
                    ],
                )
            return True
        return False


def _flatten(data: list[Any], rank: int) -> list[Any]:
    """Row-major elements of ``data`` nested up to ``rank`` deep, one level at a time
    (no recursion); anything nested deeper, or ragged, is left for the element check."""
    while data and type(data[0]) is list and rank > 1:
        if set(map(type, data)) != _LIST_SET:
            break
        data = list(chain.from_iterable(data))
        rank -= 1
    return data


def _fixed(shape: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """(dimension, size) of every dimension of ``shape`` that is not -1."""
    return tuple((i, n) for i, n in enumerate(shape) if n != -1)


def _other_form(shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """The other shape servers send for the same tensor: ``[-1]`` <-> ``[-1, 1]``."""
    if len(shape) == 1:
        return (*shape, 1)
    if len(shape) >= 2 and shape[-1] == 1:
        return shape[:-1]
    return None


def _g(bound: float | None, missing: str) -> str:
    return missing if bound is None else f"{bound:g}"
