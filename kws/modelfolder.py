"""The model folder: a trained model that describes itself.

A model folder holds::

    model.keras      the Keras model (architecture and weights)
    card.json        labels, sample rate, input length, architecture, data summary,
                     training recipe and measured metrics
    curves.png       training curves (written by ``kws train``)
    model.tflite     optional, written by ``kws export`` (``model-int8.tflite`` for int8)

Everything a consumer needs to turn a file into a label is in ``card.json``; reading the
card does not import TensorFlow or Keras.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kws.errors import KwsError

KERAS_FILE = "model.keras"
CARD_FILE = "card.json"
CURVES_FILE = "curves.png"
TFLITE_FILE = "model.tflite"
TFLITE_INT8_FILE = "model-int8.tflite"
CARD_VERSION = 1


@dataclass
class ModelCard:
    """What a model folder says about its model (the contents of ``card.json``)."""

    labels: list[str]
    sample_rate: int
    input_length: int
    arch: str
    task: str = "classifier"
    data: dict[str, Any] = field(default_factory=dict)
    recipe: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    parameters: int | None = None
    multiply_adds: int | None = None
    version: int = CARD_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=False) + "\n"


def default_model_dir() -> Path:
    """The shipped default model folder.

    ``$KWS_DEFAULT_MODEL`` if set; else ``models/default`` of the project checkout kws
    runs from; else the copy ``pip install`` puts in ``<prefix>/share/kws/models/default``.
    """
    if os.environ.get("KWS_DEFAULT_MODEL"):
        return Path(os.environ["KWS_DEFAULT_MODEL"])
    checkout = Path(__file__).resolve().parent.parent / "models" / "default"
    installed = Path(sys.prefix) / "share" / "kws" / "models" / "default"
    return checkout if checkout.is_dir() or not installed.is_dir() else installed


def read_card(folder: str | os.PathLike) -> ModelCard:
    """Read ``card.json`` of a model folder, with a one-line error when it is not one."""
    folder = Path(folder)
    card_path = folder / CARD_FILE
    if not folder.is_dir():
        raise KwsError(f"{folder}: no such model folder")
    if not card_path.is_file():
        raise KwsError(f"{folder}: not a kws model folder (no {CARD_FILE})")
    try:
        raw = json.loads(card_path.read_text(encoding="utf-8"))
        known = ModelCard.__dataclass_fields__
        return ModelCard(**{key: value for key, value in raw.items() if key in known})
    except (ValueError, TypeError) as error:
        raise KwsError(f"{card_path}: unreadable model card ({error})") from None


def write_card(folder: str | os.PathLike, card: ModelCard) -> Path:
    """Write ``card.json`` atomically; return its path."""
    return write_text_atomic(Path(folder) / CARD_FILE, card.to_json())


def load_keras_model(folder: str | os.PathLike):
    """Load the Keras model of a model folder (imports Keras and the kws layers)."""
    import keras

    import kws.models  # noqa: F401  (registers the custom layers for deserialization)

    path = Path(folder) / KERAS_FILE
    if not path.is_file():
        raise KwsError(f"{folder}: model folder has no {KERAS_FILE}")
    try:
        return keras.saving.load_model(path, compile=False)
    except (ValueError, OSError, TypeError) as error:
        raise KwsError(f"{path}: cannot load Keras model ({error})") from None


def save_keras_model(folder: str | os.PathLike, model) -> Path:
    """Save a Keras model into a folder atomically; return its path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / KERAS_FILE
    tmp = folder / f".{KERAS_FILE}.{os.getpid()}.tmp.keras"
    try:
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text_atomic(path: Path, text: str) -> Path:
    """Write a text file through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
