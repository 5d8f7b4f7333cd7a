"""What the model server needs from a model directory: name, version, platform, artifact.

A model directory holds ``model.onnx`` and ``model-card.json`` (docs/model-card.md). Only
the card's identity fields are read here; the gateway owns the rest of the card. Without
a card the folder name is the model name and the model has no version.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import orjson

from gateway.modelserver.errors import ModelLoadError

CARD_FILE: Final = "model-card.json"
DEFAULT_ARTIFACT: Final = "model.onnx"
DEFAULT_PLATFORM: Final = "onnx_onnxv1"


@dataclass(frozen=True, slots=True)
class ModelIdentity:
    """The served model as OIP clients address it, and the artifact to load."""

    name: str
    version: str | None
    platform: str
    artifact: Path

    def matches(self, name: str, version: str | None) -> bool:
        """True when a request path's model name (and version, if any) is this model."""
        return name == self.name and (version is None or version == self.version)


def load_model_identity(model_dir: Path) -> ModelIdentity:
    """Read the identity of ``model_dir`` and check its artifact.

    Fails whole with every problem found, e.g.
    ``ModelLoadError("models/fraud-v1/model-card.json: version must be a string; ...")``.
    When the card gives ``artifact.sha256`` the artifact must match it, so a stale card
    and a retrained model are never served together.
    """
    if not model_dir.is_dir():
        raise ModelLoadError(f"{model_dir}: not a directory")
    card_path = model_dir / CARD_FILE
    if not card_path.exists():
        return _checked(model_dir, model_dir.name, None, DEFAULT_PLATFORM, DEFAULT_ARTIFACT, None)

    try:
        card = orjson.loads(card_path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ModelLoadError(f"{card_path}: cannot read the model card: {exc}") from exc
    if not isinstance(card, dict):
        raise ModelLoadError(f"{card_path}: the model card must be a JSON object")

    problems: list[str] = []
    name = card.get("name")
    if not isinstance(name, str) or not name or "/" in name:
        problems.append("name must be a non-empty string without '/'")
    version = card.get("version")
    if version is not None and (not isinstance(version, str) or not version or "/" in version):
        problems.append("version must be a non-empty string without '/'")
    platform = card.get("platform", DEFAULT_PLATFORM)
    if not isinstance(platform, str):
        problems.append("platform must be a string")
    artifact = card.get("artifact") or {}
    if not isinstance(artifact, dict):
        problems.append("artifact must be an object")
        artifact = {}
    artifact_path = artifact.get("path", DEFAULT_ARTIFACT)
    if not isinstance(artifact_path, str) or not artifact_path:
        problems.append("artifact.path must be a non-empty string")
    sha256 = artifact.get("sha256")
    if sha256 is not None and not isinstance(sha256, str):
        problems.append("artifact.sha256 must be a string")
    if problems:
        raise ModelLoadError(f"{card_path}: " + "; ".join(problems))
    # Validated above; str() only tells the type checker so.
    return _checked(model_dir, str(name), version, str(platform), str(artifact_path), sha256)


def _checked(
    model_dir: Path,
    name: str,
    version: str | None,
    platform: str,
    artifact_path: str,
    sha256: str | None,
) -> ModelIdentity:
    artifact = model_dir / artifact_path
    if not artifact.is_file():
        raise ModelLoadError(f"{artifact}: the model artifact does not exist")
    if sha256 is not None:
        actual = hashlib.sha256(artifact.read_bytes()).hexdigest()
        if actual != sha256.lower():
            raise ModelLoadError(f"{artifact}: sha256 is {actual} but the model card says {sha256}")
    return ModelIdentity(name=name, version=version, platform=platform, artifact=artifact)
