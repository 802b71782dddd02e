"""The model folder: a trained model that describes itself.

A model folder holds::

    model.keras      the Keras model (architecture and weights)
    card.json        the typed :class:`ModelCard`: task, labels, sample rate, input length,
                     architecture, data summary, recipe, metrics, thresholds, exports and
                     (phone models) the false-accept calibration of spotting
    curves.png       training curves
    model.tflite     the LiteRT export (``model-int8.tflite`` for int8)

Everything a consumer needs to turn a file into a label is in ``card.json``; reading the
card does not import TensorFlow or Keras. :func:`read_card` validates every field and names
the one that is wrong, so a damaged card is one line of error, never a traceback.
"""

from __future__ import annotations

import bisect
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


#: False accepts per hour a calibrated phone model spots at without --threshold.
DEFAULT_FA_PER_HOUR = 2.0


@dataclass
class FaGroup:
    """False accepts per keyword per hour of open-vocabulary spotting, as a function of the
    spotting confidence, for keywords of ``min_phones``..``max_phones`` phones (``None``:
    no upper bound), measured on ``words`` random words with a pronunciation that long
    (``kws phones calibrate``).

    ``confidence`` ascends and ``fa_per_hour`` (false accepts per keyword-hour at and above
    each confidence) does not rise; between points the rate is interpolated linearly, so
    the mapping is monotone. ``hours`` and ``held_out_hours`` are keyword-hours (the audio
    searched for each word, summed) of the fitted and the held-out recordings;
    ``thresholds`` and ``held_out_fa_per_hour`` are keyed by target rate (``"0.5"``).
    """

    min_phones: int
    max_phones: int | None
    words: int
    hours: float
    held_out_hours: float
    confidence: list[float]
    fa_per_hour: list[float]
    thresholds: dict[str, float] = field(default_factory=dict)
    held_out_fa_per_hour: dict[str, float] = field(default_factory=dict)

    def covers(self, phones: int) -> bool:
        return self.min_phones <= phones and (self.max_phones is None
                                              or phones <= self.max_phones)

    def fa_per_hour_at(self, confidence: float) -> float:
        """The false accepts per hour at and above ``confidence`` (interpolated; clamped to
        the curve's ends)."""
        xs, ys = self.confidence, self.fa_per_hour
        if confidence <= xs[0]:
            return ys[0]
        if confidence >= xs[-1]:
            return ys[-1]
        i = bisect.bisect_right(xs, confidence)
        x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
        return y0 + (y1 - y0) * (confidence - x0) / (x1 - x0) if x1 > x0 else y1

    def threshold_for(self, target: float) -> float:
        """The lowest confidence (rounded up to 4 decimals) whose rate is at most ``target``
        false accepts per hour; the curve's top (1.0) when none is."""
        xs, ys = self.confidence, self.fa_per_hour
        if ys[0] <= target:
            return _ceil4(xs[0])
        for i in range(1, len(xs)):
            if ys[i] <= target:
                y0, y1 = ys[i - 1], ys[i]
                found = xs[i - 1] + (xs[i] - xs[i - 1]) * (y0 - target) / (y0 - y1)
                return min(xs[i], _ceil4(found))
        return _ceil4(xs[-1])

    @property
    def name(self) -> str:
        """``2-3 phones``, ``8+ phones``."""
        if self.max_phones is None:
            return f"{self.min_phones}+ phones"
        if self.max_phones == self.min_phones:
            return f"{self.min_phones} phones"
        return f"{self.min_phones}-{self.max_phones} phones"


def _ceil4(value: float) -> float:
    return min(1.0, math.ceil(round(value * 10_000, 6)) / 10_000)


@dataclass
class FaCalibration:
    """What ``kws phones calibrate`` measured: a confidence-to-false-accepts-per-hour curve
    per group of keyword lengths (in phones) on negative recordings, fitted on the
    training and validation recordings and checked on the held-out ones.

    ``hours`` and ``recordings`` are those of the negative audio (not keyword-hours);
    ``words`` the calibration words; ``targets`` the rates thresholds were recorded at.
    """

    groups: list[FaGroup]
    targets: list[float] = field(default_factory=list)
    hours: float = 0.0
    held_out_hours: float = 0.0
    recordings: int = 0
    held_out_recordings: int = 0
    words: list[str] = field(default_factory=list)
    seed: int = 0
    folders: list[str] = field(default_factory=list)
    command: str = ""

    def group(self, phones: int) -> FaGroup:
        """The group of keywords of ``phones`` phones (shorter than any group: the first)."""
        for group in self.groups:
            if group.covers(phones):
                return group
        return self.groups[0] if phones < self.groups[0].min_phones else self.groups[-1]


@dataclass
class Verification:
    """A second opinion on a classifier's detections (``kws calibrate --verify``).

    The detector proposes candidates at ``candidate_threshold``; the phone model (folder
    ``phones``, None: the shipped one) hears ``context`` seconds before each and
    ``lookahead`` seconds after it and scores how surely the keyword's phones are there;
    a candidate is reported when the geometric mean of both scores, the phone model's
    weighted ``phone_weight`` and the classifier's the rest, reaches its keyword's
    threshold in ``thresholds`` (chosen by calibration). A candidate the phone model hears
    no other speech before (a command said alone) has a phone score of at least
    ``quiet_floor``: the check is for keyword-like sounds inside other words, and short
    commands said alone, in noise, are where the classifier is strong and the phone model
    weak.
    """

    phones: str | None = None
    candidate_threshold: float = 0.5
    context: float = 1.0
    lookahead: float = 0.1
    phone_weight: float = 0.2
    quiet_floor: float = 0.3
    thresholds: dict[str, float] = field(default_factory=dict)


#: The phone weight of a card whose verification does not record one: its thresholds were
#: calibrated on the plain geometric mean of the two scores.
UNRECORDED_PHONE_WEIGHT = 0.5
#: The quiet floor of a card whose verification does not record one: its thresholds were
#: calibrated without it.
UNRECORDED_QUIET_FLOOR = 0.0


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
    #: A phone model's false accepts per hour by spotting confidence (``kws phones
    #: calibrate``); absent from the JSON when None.
    fa_calibration: FaCalibration | None = None
    #: A classifier's second opinion from the phone model; absent from the JSON when None.
    verification: Verification | None = None
    parameters: int | None = None
    multiply_adds: int | None = None
    version: int = CARD_VERSION

    def to_json(self) -> str:
        values = asdict(self)
        values["task"] = self.task.value
        values["version"] = CARD_VERSION
        for name in ("fa_calibration", "verification"):
            if values[name] is None:
                del values[name]
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


def _number(source: str, name: str, value: Any, low: float = 0.0, high: float = math.inf
            ) -> float:
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not math.isfinite(value) or not low <= value <= high):
        raise _bad(source, name, f"must be a number in {low:g}..{high:g}, not {value!r}")
    return float(value)


def _numbers(source: str, name: str, value: Any, low: float = 0.0,
             high: float = math.inf) -> list[float]:
    if not isinstance(value, list) or not value:
        raise _bad(source, name, "must be a non-empty list of numbers")
    return [_number(source, f"{name}[{i}]", v, low, high) for i, v in enumerate(value)]


def _rates(source: str, name: str, value: Any, high: float = math.inf) -> dict[str, float]:
    rates = {}
    for key, item in _check_mapping(source, name, value).items():
        try:
            float(key)
        except ValueError:
            raise _bad(source, name, f"has a key {key!r} that is not a rate") from None
        rates[key] = _number(source, f"{name}.{key}", item, 0.0, high)
    return rates


def _parse_fa_group(source: str, where: str, raw: Any) -> FaGroup:
    _check_mapping(source, where, raw)
    for key in ("min_phones", "words", "confidence", "fa_per_hour"):
        if key not in raw:
            raise _bad(source, f"{where}.{key}", "is missing")
    top = raw.get("max_phones")
    confidence = _numbers(source, f"{where}.confidence", raw["confidence"], 0.0, 1.0)
    rates = _numbers(source, f"{where}.fa_per_hour", raw["fa_per_hour"])
    if len(confidence) != len(rates):
        raise _bad(source, where, "has confidence and fa_per_hour of different lengths")
    if any(b < a for a, b in zip(confidence, confidence[1:], strict=False)) or any(
            b > a for a, b in zip(rates, rates[1:], strict=False)):
        raise _bad(source, where, "is not a monotone curve (confidence must ascend, "
                                  "fa_per_hour must not rise)")
    return FaGroup(
        min_phones=_parse_int(source, f"{where}.min_phones", raw["min_phones"], 0),
        max_phones=None if top is None else _parse_int(source, f"{where}.max_phones", top, 0),
        words=_parse_int(source, f"{where}.words", raw["words"], 0),
        hours=_number(source, f"{where}.hours", raw.get("hours", 0.0)),
        held_out_hours=_number(source, f"{where}.held_out_hours",
                               raw.get("held_out_hours", 0.0)),
        confidence=confidence, fa_per_hour=rates,
        thresholds=_rates(source, f"{where}.thresholds", raw.get("thresholds") or {}, 1.0),
        held_out_fa_per_hour=_rates(source, f"{where}.held_out_fa_per_hour",
                                    raw.get("held_out_fa_per_hour") or {}),
    )


def _parse_fa_calibration(source: str, raw: Any) -> FaCalibration | None:
    if raw is None:
        return None
    name = "fa_calibration"
    _check_mapping(source, name, raw)
    groups = raw.get("groups")
    if not isinstance(groups, list) or not groups:
        raise _bad(source, f"{name}.groups", "must be a non-empty list")
    words, folders = raw.get("words") or [], raw.get("folders") or []
    for key, value in (("words", words), ("folders", folders)):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _bad(source, f"{name}.{key}", "must be a list of strings")
    return FaCalibration(
        groups=[_parse_fa_group(source, f"{name}.groups[{i}]", g) for i, g in enumerate(groups)],
        targets=_numbers(source, f"{name}.targets", raw.get("targets") or [1.0]),
        hours=_number(source, f"{name}.hours", raw.get("hours", 0.0)),
        held_out_hours=_number(source, f"{name}.held_out_hours", raw.get("held_out_hours", 0.0)),
        recordings=_parse_int(source, f"{name}.recordings", raw.get("recordings", 0), 0),
        held_out_recordings=_parse_int(source, f"{name}.held_out_recordings",
                                       raw.get("held_out_recordings", 0), 0),
        words=list(words), folders=list(folders),
        seed=_parse_int(source, f"{name}.seed", raw.get("seed", 0), -(2**63)),
        command=str(raw.get("command", "")),
    )


def _parse_verification(source: str, raw: Any) -> Verification | None:
    if raw is None:
        return None
    name = "verification"
    _check_mapping(source, name, raw)
    phones = raw.get("phones")
    if phones is not None and (not isinstance(phones, str) or not phones):
        raise _bad(source, f"{name}.phones", "must be a folder name or null")
    default = Verification()
    return Verification(
        phones=phones,
        candidate_threshold=_number(source, f"{name}.candidate_threshold", raw.get(
            "candidate_threshold", default.candidate_threshold), 0.0, 1.0),
        context=_number(source, f"{name}.context", raw.get("context", default.context),
                        0.0, 10.0),
        lookahead=_number(source, f"{name}.lookahead",
                          raw.get("lookahead", default.lookahead), 0.0, 10.0),
        phone_weight=_number(source, f"{name}.phone_weight",
                             raw.get("phone_weight", UNRECORDED_PHONE_WEIGHT), 0.0, 1.0),
        quiet_floor=_number(source, f"{name}.quiet_floor",
                            raw.get("quiet_floor", UNRECORDED_QUIET_FLOOR), 0.0, 1.0),
        thresholds={word: _number(source, f"{name}.thresholds.{word}", value, 0.0, 1.0)
                    for word, value in _check_mapping(
                        source, f"{name}.thresholds", raw.get("thresholds") or {}).items()},
    )


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
        fa_calibration=_parse_fa_calibration(source, raw.get("fa_calibration")),
        verification=_parse_verification(source, raw.get("verification")),
        **optional,
    )


#: The shipped model of each task that ships one: its folder name under ``models/``.
SHIPPED_MODELS = {Task.CLASSIFIER: "default", Task.PHONES: "phones"}


def default_model_dir(task: Task = Task.CLASSIFIER) -> Path:
    """The shipped model folder of a task (the keyword classifier's by default).

    ``$KWS_DEFAULT_MODEL`` (classifier) or ``$KWS_DEFAULT_PHONE_MODEL`` (phones) if set;
    else ``models/<name>`` of the project checkout kws runs from; else the copy ``pip
    install`` puts in ``<prefix>/share/kws/models/<name>``.
    """
    name = SHIPPED_MODELS[task]
    variable = "KWS_DEFAULT_MODEL" if task == Task.CLASSIFIER else "KWS_DEFAULT_PHONE_MODEL"
    if os.environ.get(variable):
        return Path(os.environ[variable])
    checkout = Path(__file__).resolve().parent.parent / "models" / name
    installed = Path(sys.prefix) / "share" / "kws" / "models" / name
    return checkout if checkout.is_dir() or not installed.is_dir() else installed


def resolve_model_dir(model: str | os.PathLike | None, task: Task = Task.CLASSIFIER) -> Path:
    """The model folder to use: ``model``, or the task's shipped one with a helpful error.

    A ``model`` that names a file (a ``model.tflite`` given for its folder) is a usage
    error saying so; a missing one is left to :func:`read_card` ("no such model folder").
    """
    if model is not None:
        if os.path.exists(model) and not os.path.isdir(model):
            raise UsageError(f"{model}: is a file, not a model folder")
        return Path(model)
    folder = default_model_dir(task)
    if not (folder / CARD_FILE).is_file():
        command = "kws train" if task == Task.CLASSIFIER else "kws phones train"
        raise KwsError(
            f"no default model at {folder}: train one with `{command}` or pass --model FOLDER"
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
