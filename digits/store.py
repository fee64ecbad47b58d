"""The folder of trained models: naming, versions and metadata (no TensorFlow here).

A model is two files side by side: ``<name>@<version>.keras`` and
``<name>@<version>.json`` with its metadata (architecture, data seen,
preprocessing version, held-out accuracies, date, file hash).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

MODEL_SUFFIX = ".keras"
"""File ending of a saved Keras model."""

_FILE_NAME = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+)@(?P<version>\d+)\.keras$")


class ModelNotFound(LookupError):
    """No model in the store matches what was asked for."""


@dataclass(frozen=True)
class ModelRef:
    """One saved model version."""

    name: str
    version: int
    path: Path

    @property
    def label(self) -> str:
        """``name@version``, as written in the CSV's ``model`` column."""
        return f"{self.name}@{self.version}"

    @property
    def metadata_path(self) -> Path:
        return self.path.with_suffix(".json")

    def metadata(self) -> dict:
        """The model's metadata, or an empty dict when it has none."""
        if not self.metadata_path.exists():
            return {}
        return json.loads(self.metadata_path.read_text())


def list_models(store: Path) -> list[ModelRef]:
    """Every model in the store, sorted by name then version."""
    found = []
    for path in Path(store).glob(f"*@*{MODEL_SUFFIX}"):
        match = _FILE_NAME.match(path.name)
        if match:
            found.append(ModelRef(match["name"], int(match["version"]), path))
    return sorted(found, key=lambda ref: (ref.name, ref.version))


def resolve(spec: str, store: Path) -> ModelRef:
    """Find a model by ``name`` (its newest version), ``name@version`` or a file path."""
    path = Path(spec)
    if path.suffix == MODEL_SUFFIX and path.exists():
        match = _FILE_NAME.match(path.name)
        if match:
            return ModelRef(match["name"], int(match["version"]), path)
        return ModelRef(path.stem, 0, path)
    name, _, version = spec.partition("@")
    candidates = [ref for ref in list_models(store) if ref.name == name]
    if version:
        candidates = [ref for ref in candidates if str(ref.version) == version]
    if not candidates:
        known = ", ".join(ref.label for ref in list_models(store)) or "none"
        raise ModelNotFound(
            f"no model {spec!r} in {store} (models there: {known}); "
            "run `digits train` or set DIGITS_MODEL to one of them"
        )
    return candidates[-1]


def resolve_members(specs: str, store: Path) -> list[ModelRef]:
    """Resolve a comma-separated list of models, the members of an ensemble (often just one)."""
    members = [resolve(spec.strip(), store) for spec in specs.split(",") if spec.strip()]
    if not members:
        raise ModelNotFound(f"no model named in {specs!r}")
    return members


def next_version(name: str, store: Path) -> int:
    """The version number a newly trained model called ``name`` gets."""
    versions = [ref.version for ref in list_models(store) if ref.name == name]
    return max(versions, default=0) + 1
