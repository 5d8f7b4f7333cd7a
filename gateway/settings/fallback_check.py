"""Config-load checks of a model's fallback model: found, verified, and able to stand in.

A fallback is refused (the whole config is) when its card cannot be read, its artifact's
sha256 differs from the card's or the config's, or it could not answer in the served
model's place: every fallback input must be a request-time input of the model (so both
APIs' requests carry it), and the score must live at the same output and index.
"""

from __future__ import annotations

from pathlib import Path

from gateway.contracts.card import CardError, ModelCard, load_card
from gateway.settings.resilience import FallbackSettings


def fallback_problems(
    settings: FallbackSettings, model_card: ModelCard, config_dir: Path
) -> tuple[list[tuple[str, str]], Path | None]:
    """``(problems as (key under fallback, message), the fallback dir when usable)``."""
    model_dir = (config_dir / settings.card).resolve()
    try:
        card = load_card(model_dir, verify_artifact=True)
    except CardError as exc:
        return [("card", f"{model_dir}: {where + ': ' if where else ''}{msg}")
                for where, msg in exc.problems], None  # fmt: skip
    problems: list[tuple[str, str]] = []
    if card.artifact.sha256 != settings.sha256:
        problems.append(
            (
                "sha256",
                f"{model_dir / card.artifact.path} has sha256 {card.artifact.sha256}, "
                f"the config says {settings.sha256}",
            )
        )
    if card.role != "fallback":
        problems.append(("card", f"{model_dir} has role {card.role!r}, not 'fallback'"))
    request_inputs = {i.name for i in model_card.inputs if i.source == "request"}
    foreign = [i.name for i in card.inputs if i.name not in request_inputs]
    if foreign:
        problems.append(
            (
                "card",
                f"inputs {foreign} are not request-time inputs of the served model "
                f"({sorted(request_inputs)})",
            )
        )
    if (card.score.output, card.score.index) != (model_card.score.output, model_card.score.index):
        problems.append(
            (
                "card",
                f"its score is {card.score.output}[{card.score.index}], the served "
                f"model's {model_card.score.output}[{model_card.score.index}]",
            )
        )
    return problems, None if problems else model_dir
