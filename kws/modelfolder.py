"""The model folder: a trained model that describes itself.

A model folder holds::

    model.keras      the Keras model (architecture and weights)
    card.json        the typed :class:`ModelCard`: task, labels, sample rate, input length,
                     architecture, data summary, recipe, metrics, thresholds and exports
    curves.png       training curves
    model.tflite     the LiteRT export (``model-int8.tflite`` for int8)

Everything a consumer needs to turn a file into a label is in ``card.json``; reading the
card does not import TensorFlow or Keras. :func:`read_card` validates every field and names
the one that is wrong, so a damaged card is one line of error, never a traceback.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
import os
import sys
import zipfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from kws import files
from kws.audio import MAX_RATE, MIN_RATE
from kws.errors import KwsError, UsageError

KERAS_FILE = "model.keras"
CARD_FILE = "card.json"
CURVES_FILE = "curves.png"
TFLITE_FILE = "model.tflite"
TFLITE_INT8_FILE = "model-int8.tflite"
#: Version 2 moved export records out of ``metrics`` into ``exports`` and added
#: ``thresholds``; version-1 cards are read and upgraded.
CARD_VERSION = 2


class Task(str, enum.Enum):
    """What a model folder's model does."""

    CLASSIFIER = "classifier"
    VAE = "vae"
    PHONES = "phones"

    def __str__(self) -> str:
        return self.value


@dataclass
class ExportRecord:
    """One exported file, tied to the ``model.keras`` it was made from by its SHA-256."""

    keras_sha256: str
    quantization: str
    bytes: int
    top1_agreement: float | None = None
    parity_clips: int = 0
    calibration_clips: int = 0
    max_probability_difference: float | None = None
    rejected: list[str] = field(default_factory=list)
    #: Largest absolute difference between the exported and the Keras model's outputs
    #: (for models whose outputs are not probabilities, such as a VAE's decoder).
    max_output_difference: float | None = None


@dataclass
class ModelCard:
    """What a model folder says about its model (the contents of ``card.json``)."""

    labels: list[str]
    sample_rate: int
    input_length: int
    arch: str
    task: Task = Task.CLASSIFIER
    #: What the model was trained on (folders, counts per split and label, notes).
    data: dict[str, Any] = field(default_factory=dict)
    #: How it was trained (the run's configuration and the command line).
    recipe: dict[str, Any] = field(default_factory=dict)
    #: What was measured (accuracies, history, timings).
    metrics: dict[str, Any] = field(default_factory=dict)
    #: Exported files by name (``model.tflite``, ``model-int8.tflite``).
    exports: dict[str, ExportRecord] = field(default_factory=dict)
    #: Detection threshold per keyword, chosen by calibration.
    thresholds: dict[str, float] = field(default_factory=dict)
    parameters: int | None = None
    multiply_adds: int | None = None
    version: int = CARD_VERSION

    def to_json(self) -> str:
        values = asdict(self)
        values["task"] = self.task.value
        values["version"] = CARD_VERSION
        return json.dumps(values, indent=2, sort_keys=False, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, raw: Any, source: str = CARD_FILE) -> ModelCard:
        """A card from parsed JSON, validated field by field (upgrading version 1)."""
        return _parse_card(raw, source)


def _bad(source: str, name: str, problem: str) -> KwsError:
    return KwsError(f"{source}: field {name!r} {problem}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_mapping(source: str, name: str, value: Any) -> dict:
    if not isinstance(value, dict):
        raise _bad(source, name, f"must be an object, not {type(value).__name__}")
    return value


def _parse_labels(source: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise _bad(source, "labels", "must be a non-empty list of strings")
    if len(set(value)) != len(value):
        raise _bad(source, "labels", "has a label twice")
    return list(value)


def _parse_int(source: str, name: str, value: Any, low: int, high: int | None = None) -> int:
    if not _is_int(value) or value < low or (high is not None and value > high):
        limit = f"{low}..{high}" if high is not None else f"at least {low}"
        raise _bad(source, name, f"must be a whole number ({limit}), not {value!r}")
    return value


def _parse_exports(source: str, value: Any) -> dict[str, ExportRecord]:
    exports = {}
    known = {f.name for f in fields(ExportRecord)}
    for name, record in _check_mapping(source, "exports", value).items():
        where = f"exports.{name}"
        _check_mapping(source, where, record)
        if not isinstance(record.get("keras_sha256"), str):
            raise _bad(source, f"{where}.keras_sha256", "must be a string")
        if not isinstance(record.get("quantization", ""), str):
            raise _bad(source, f"{where}.quantization", "must be a string")
        if not _is_int(record.get("bytes", 0)):
            raise _bad(source, f"{where}.bytes", "must be a whole number")
        kept = {key: item for key, item in record.items() if key in known}
        kept.setdefault("quantization", "")
        kept.setdefault("bytes", 0)
        try:
            exports[name] = ExportRecord(**kept)
        except TypeError as error:
            raise _bad(source, where, f"is malformed ({error})") from None
    return exports


def _parse_thresholds(source: str, value: Any) -> dict[str, float]:
    thresholds = {}
    for word, threshold in _check_mapping(source, "thresholds", value).items():
        if (isinstance(threshold, bool) or not isinstance(threshold, int | float)
                or not 0.0 <= threshold <= 1.0):
            raise _bad(source, f"thresholds.{word}", f"must be a number in 0..1, not {threshold!r}")
        thresholds[word] = float(threshold)
    return thresholds


def _parse_card(raw: Any, source: str) -> ModelCard:
    if not isinstance(raw, dict):
        raise KwsError(f"{source}: not a model card (a JSON object is expected, not "
                       f"{type(raw).__name__})")
    for required in ("labels", "sample_rate", "input_length", "arch"):
        if required not in raw:
            raise _bad(source, required, "is missing")
    sections = {name: _check_mapping(source, name, {} if raw.get(name) is None else raw[name])
                for name in ("data", "recipe", "metrics")}
    metrics = dict(sections["metrics"])
    exports = raw.get("exports")
    if exports is None:
        exports = metrics.pop("export", None) or {}
    try:
        task = Task(raw.get("task", Task.CLASSIFIER.value))
    except ValueError:
        known = ", ".join(task.value for task in Task)
        raise _bad(source, "task", f"must be one of {known}, not {raw.get('task')!r}") from None
    if not isinstance(raw["arch"], str) or not raw["arch"]:
        raise _bad(source, "arch", "must be a non-empty string")
    optional = {}
    for name in ("parameters", "multiply_adds"):
        if raw.get(name) is not None:
            optional[name] = _parse_int(source, name, raw[name], 0)
    return ModelCard(
        labels=_parse_labels(source, raw["labels"]),
        sample_rate=_parse_int(source, "sample_rate", raw["sample_rate"], MIN_RATE, MAX_RATE),
        input_length=_parse_int(source, "input_length", raw["input_length"], 1, 10**8),
        arch=raw["arch"],
        task=task,
        data=sections["data"],
        recipe=sections["recipe"],
        metrics=metrics,
        exports=_parse_exports(source, exports),
        thresholds=_parse_thresholds(source, {} if raw.get("thresholds") is None
                                     else raw["thresholds"]),
        **optional,
    )


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


def resolve_model_dir(model: str | os.PathLike | None) -> Path:
    """The model folder to use: ``model``, or the shipped default with a helpful error."""
    if model is not None:
        return Path(model)
    folder = default_model_dir()
    if not (folder / CARD_FILE).is_file():
        raise KwsError(
            f"no default model at {folder}: train one with `kws train` or pass --model FOLDER"
        )
    return folder


def read_card(folder: str | os.PathLike, task: Task | None = None) -> ModelCard:
    """Read and validate ``card.json`` of a model folder; one-line errors when it is not one.

    With ``task``, a folder holding another task's model is refused too.
    """
    folder = Path(folder)
    card_path = folder / CARD_FILE
    if not folder.is_dir():
        raise UsageError(f"{folder}: no such model folder")
    if not card_path.is_file():
        raise KwsError(f"{folder}: not a kws model folder (no {CARD_FILE})")
    try:
        raw = json.loads(card_path.read_text(encoding="utf-8"), parse_constant=_no_constant)
    except (OSError, ValueError) as error:
        raise KwsError(f"{card_path}: unreadable model card ({error})") from None
    card = ModelCard.from_json(raw, str(card_path))
    if task is not None and card.task != task:
        raise KwsError(f"{folder}: a {card.task} model, not a {task} model")
    return card


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a valid JSON number")


def write_card(folder: str | os.PathLike, card: ModelCard) -> Path:
    """Write ``card.json`` atomically; return its path."""
    _check_finite(card.metrics, "metrics")
    return files.write_text(Path(folder) / CARD_FILE, card.to_json())


def _check_finite(value: Any, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise KwsError(f"model card: {where} is {value} (not a finite number)")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_finite(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_finite(item, f"{where}[{index}]")


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file (ties an exported file to the ``model.keras`` it came from)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def export_is_current(folder: str | os.PathLike, card: ModelCard, file: str) -> tuple[bool, str]:
    """Whether an exported file was made from the folder's current ``model.keras``.

    Returns ``(current, reason)``; a file without a record, or with another model's, is
    stale (for instance after retraining).
    """
    folder = Path(folder)
    record = card.exports.get(file)
    keras_path = folder / KERAS_FILE
    if record is None:
        return False, f"{file} has no export record in {folder}/{CARD_FILE} (re-run kws export)"
    if keras_path.is_file() and record.keras_sha256 != file_sha256(keras_path):
        return False, f"{file} was exported from an older {KERAS_FILE} (re-run kws export)"
    return True, ""


def load_keras_model(folder: str | os.PathLike):
    """Load the Keras model of a model folder (imports Keras and the kws layers).

    A missing, empty or non-zip file is named before Keras is imported (Keras says "File
    not found" for an empty one); every other failure is one line too.
    """
    path = Path(folder) / KERAS_FILE
    if not path.is_file():
        raise KwsError(f"{folder}: model folder has no {KERAS_FILE}")
    try:
        size = path.stat().st_size
        is_zip = zipfile.is_zipfile(path)
    except OSError as error:
        raise KwsError(f"{path}: cannot read ({error.strerror or error})") from None
    if size == 0:
        raise KwsError(f"{path}: cannot load Keras model (empty file)")
    if not is_zip:
        raise KwsError(f"{path}: cannot load Keras model (not a .keras file: not a zip archive)")
    from kws.runtime import import_keras

    keras = import_keras()
    import kws.models  # noqa: F401  (registers the custom layers for deserialization)

    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as error:  # noqa: BLE001  (a damaged zip raises many kinds of errors)
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise KwsError(f"{path}: cannot load Keras model ({reason[:200]})") from None


def save_keras_model(folder: str | os.PathLike, model) -> Path:
    """Save a Keras model into a folder atomically; return its path."""
    path = Path(folder) / KERAS_FILE
    with files.atomic_write(path, suffix=".keras") as temporary:
        model.save(temporary)
    return path
