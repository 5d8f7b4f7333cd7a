"""Cost of the input contract per request: the v2 check and the v1 decode, 1 and 64 rows.

    python -m loadtest.bench_validation [--model-dir models/fraud-v1] [--repeat 5]

Compiles the model's checker and decoder once (as a config load does), then times
``InferChecker.check`` on a parsed OIP body and ``InstanceDecoder.decode`` on a parsed v1
body of typical rows (every value valid, so the whole contract runs), and the output check
of a matching answer. Prints microseconds per request (best of ``--repeat`` runs) as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import timeit
from pathlib import Path
from typing import Any

from gateway.contracts.card import load_card
from gateway.contracts.oip import InferChecker
from gateway.contracts.output_check import OutputChecker
from gateway.contracts.samples import sample_infer_request, typical_value
from gateway.contracts.v1 import InstanceDecoder
from gateway.settings.schema import BoundsSettings, ContractSettings

ROOT = Path(__file__).resolve().parents[1]


def _v2_body(card: Any, rows: int) -> dict[str, Any]:
    doc = sample_infer_request(card, request_id="bench")
    for tensor in doc["inputs"]:
        tensor["shape"] = [rows, 1]
        tensor["data"] = tensor["data"] * rows
    return doc


def _answer(rows: int) -> dict[str, Any]:
    return {
        "outputs": [
            {"name": "label", "datatype": "INT64", "shape": [rows], "data": [0] * rows},
            {"name": "probabilities", "datatype": "FP32", "shape": [rows, 2],
             "data": [0.9, 0.1] * rows},
        ]
    }  # fmt: skip


def _per_call_us(call: Any, repeat: int) -> float:
    number, _ = timeit.Timer(call).autorange()
    best = min(timeit.Timer(call).repeat(repeat=repeat, number=number))
    return round(best / number * 1e6, 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", type=Path, default=ROOT / "models" / "fraud-v1")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    card = load_card(args.model_dir)
    contract = ContractSettings(ranges={"hour": BoundsSettings(min=0, max=23)})
    checker = InferChecker.compile(card, max_batch=256, contract=contract)
    decoder = InstanceDecoder.compile(card, max_instances=256, contract=contract)
    outputs = OutputChecker.compile(card, contract)
    instance = {spec.name: typical_value(spec) for spec in card.inputs}
    if card.entity_key:
        instance[card.entity_key] = "c-0042"
    report: dict[str, Any] = {"model": card.name, "unit": "microseconds per request"}
    for rows in (1, 64):
        v2 = _v2_body(card, rows)
        v1 = {"instances": [dict(instance) for _ in range(rows)]}
        answer = _answer(rows)
        checker.check(v2)
        decoder.decode(v1)
        outputs.check("bench", answer, rows)
        report[f"{rows}_row"] = {
            "v2_check": _per_call_us(lambda v2=v2: checker.check(v2), args.repeat),
            "v1_decode": _per_call_us(lambda v1=v1: decoder.decode(v1), args.repeat),
            "output_check": _per_call_us(
                lambda a=answer, r=rows: outputs.check("bench", a, r), args.repeat
            ),
        }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
