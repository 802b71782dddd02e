"""Export a model folder's Keras model to TFLite (float32 or int8) and check parity.

The conversion takes the path TensorFlow documents for Keras 3: the model is written as a
SavedModel with a ``(batch, input_length)`` float32 signature (batch left free, so the
LiteRT interpreter can resize it) and converted with ``tf.lite.TFLiteConverter``, using
TFLite builtin ops only (the LiteRT interpreter of ``ai-edge-litert`` has no TensorFlow
ops).

``int8=True`` first quantizes weights and activations to int8 with a representative
dataset of training clips (full int8); inputs and outputs stay float32, so callers feed
waveforms and read probabilities as with the float model. When that cannot be converted or
does not agree with the Keras model well enough, int8 weights with float32 activations
(dynamic-range quantization) are tried instead; the card says which was written.

Before a file is put in place, its top-1 label is compared with the Keras model's on real
clips (held-out clips of ``data`` first); below the required agreement nothing is written.
"""

from __future__ import annotations

import os
import random
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kws import files
from kws.cache import load_clips
from kws.dataset import (
    SILENCE,
    TESTING,
    TRAINING,
    UNKNOWN,
    VALIDATION,
    LabelPolicy,
    assign_labels,
    open_datasets,
)
from kws.errors import DatasetError, KwsError, UsageError
from kws.infer import LiteRTRunner
from kws.modelfolder import (
    KERAS_FILE,
    TFLITE_FILE,
    TFLITE_INT8_FILE,
    ExportRecord,
    ModelCard,
    Task,
    file_sha256,
    load_keras_model,
    read_card,
    write_card,
)
from kws.runtime import import_tensorflow, quiet_native_output

#: Minimum top-1 agreement with the Keras model for a float32 and an int8 export.
MIN_AGREEMENT = {False: 0.99, True: 0.97}
#: Quantization schemes, in the order ``kws export`` tries them.
FLOAT32 = "float32"
FULL_INT8 = "int8 weights and activations, float32 input and output"
WEIGHTS_INT8 = "int8 weights, float32 activations (dynamic range)"


class _BelowRequired(Exception):
    """A conversion's parity is below the required agreement (its file is not kept)."""


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_tflite` wrote and measured."""

    path: Path
    quantization: str
    bytes: int
    #: Share of parity clips on which the TFLite and Keras models agree on the top label.
    agreement: float
    required: float
    parity_clips: int
    calibration_clips: int
    #: Largest absolute difference between the two models' probabilities.
    max_probability_difference: float
    #: Schemes tried before the one written, and why they were not kept.
    rejected: tuple[str, ...] = ()


def export_tflite(
    model_dir: str | os.PathLike,
    int8: bool = False,
    data: Sequence[str | os.PathLike] = (),
    parity_clips: int = 1000,
    calibration_clips: int = 500,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    warn: Callable[[str], None] | None = None,
    clips: np.ndarray | None = None,
) -> ExportResult:
    """Convert ``model.keras`` to ``model.tflite`` (or ``model-int8.tflite``) and check it.

    Keyword classifiers and phone models export (a phone model at its card's input length,
    its window); agreement is that of the top label, per clip or per frame.

    With ``int8``, full int8 quantization is tried first; when it cannot be converted or
    falls below the required agreement (a model whose activations span a wide dynamic
    range, such as energies before a logarithm, loses too much in int8), int8 weights with
    float32 activations are tried next. The first scheme that agrees is written.

    Parameters
    ----------
    model_dir
        A model folder; the TFLite file is written into it and the card records the export.
    int8
        Quantize to int8 (calibrated on training clips of ``data``).
    data
        Dataset folders for parity clips (testing and validation splits first, then
        training clips if there are too few) and calibration clips (training split);
        default: the folders recorded in the card (``data.folders``, as ``kws train``
        writes it).
    parity_clips, calibration_clips
        How many clips to compare on and to calibrate with (at most).
    progress
        Called with a short description of each step.
    warn
        Called with each warning (a damaged cache entry repaired, ...).
    clips
        Inputs ``(n, input_length)`` to check parity on and calibrate with, instead of
        clips read from ``data`` (a trainer passes its own held-out recordings).

    Raises
    ------
    KwsError
        The conversion failed, or the agreement is below :data:`MIN_AGREEMENT` (then no
        file is left in place).
    """
    say = progress or (lambda _message: None)
    folder = Path(model_dir)
    card = read_card(folder)
    if card.task not in (Task.CLASSIFIER, Task.PHONES):
        raise KwsError(f"{folder}: a {card.task} model; only keyword classifiers and phone "
                       "models export")
    if parity_clips < 1 or calibration_clips < 1:
        raise UsageError("--clips and --calibration-clips must be at least 1")
    if clips is not None:
        held_out, training = clips[:parity_clips], clips[:calibration_clips]
    else:
        held_out, training = _read_inputs(folder, card, data, parity_clips,
                                          calibration_clips, seed, say, warn)

    say(f"loading {folder / KERAS_FILE}")
    return _write_first_agreeing(folder, card, load_keras_model(folder), held_out, training,
                                 int8, say)


def _write_first_agreeing(folder: Path, card, model, held_out: np.ndarray,
                          training: np.ndarray, int8: bool,
                          say: Callable[[str], None]) -> ExportResult:
    """Convert with each scheme in turn; write and record the first that agrees enough."""
    expected = np.asarray(model.predict(held_out, batch_size=256, verbose=0))
    name = TFLITE_INT8_FILE if int8 else TFLITE_FILE
    final = folder / name
    required = MIN_AGREEMENT[int8]
    rejected: list[str] = []
    for quantization in (FULL_INT8, WEIGHTS_INT8) if int8 else (FLOAT32,):
        say(f"converting to TFLite ({quantization})")
        try:
            content = convert(model, card.input_length, quantization, training)
        except KwsError as error:
            rejected.append(f"{quantization}: {error}")
            continue
        try:
            with files.atomic_write(final, suffix=".tflite") as temporary:
                temporary.write_bytes(content)
                say(f"checking parity on {len(held_out)} clips")
                got = _run_tflite(folder, card, temporary.name, held_out)
                agreement = float(np.mean(expected.argmax(axis=-1) == got.argmax(axis=-1)))
                if agreement < required:
                    raise _BelowRequired
        except _BelowRequired:
            rejected.append(f"{quantization}: {100 * agreement:.2f}% agreement")
            continue
        result = ExportResult(
            final, quantization, len(content), agreement, required, len(held_out),
            len(training) if quantization == FULL_INT8 else 0,
            float(np.max(np.abs(expected - got))), tuple(rejected),
        )
        _record(folder, name, result)
        return result
    raise KwsError(
        f"{final}: no conversion reaches the {100 * required:.0f}% top-1 agreement with the "
        f"Keras model required on {len(held_out)} clips ({'; '.join(rejected)}); not written"
    )


def export_after_training(
    model_dir: str | os.PathLike,
    stage: Callable[[str], None],
    warn: Callable[[str], None],
    data: Sequence[str | os.PathLike] = (),
    clips: np.ndarray | None = None,
) -> dict:
    """``model.tflite`` at the end of a training run (float32, parity-checked); the card's
    ``export`` entry.

    A failed export warns and leaves the folder as it is: the model runs through Keras,
    and ``kws export`` can be run later.
    """
    stage("exporting model.tflite…")
    try:
        result = export_tflite(model_dir, data=data, progress=stage, warn=warn, clips=clips)
    except KwsError as error:
        warn(f"model.tflite not written: {error} (the model runs through Keras; "
             f"`kws export {model_dir}` tries again)")
        return {"export": {"file": None, "error": str(error)}}
    return {"export": {"file": result.path.name, "bytes": result.bytes,
                       "top1_agreement": round(result.agreement, 5)}}


def _run_tflite(folder: Path, card: ModelCard, file: str, clips: np.ndarray) -> np.ndarray:
    runner = LiteRTRunner(folder, card, file)
    return np.concatenate([runner(clips[i : i + 256]) for i in range(0, len(clips), 256)])


def convert(
    model, input_length: int, quantization: str = FLOAT32, calibration: np.ndarray | None = None
) -> bytes:
    """TFLite flatbuffer of a Keras waveform classifier.

    ``quantization`` is :data:`FLOAT32`, :data:`FULL_INT8` (needs ``calibration``, a
    ``(clips, input_length)`` array of typical inputs) or :data:`WEIGHTS_INT8`.
    """
    tf = import_tensorflow()
    import keras

    signature = [tf.TensorSpec([None, input_length], tf.float32, name="waveform")]
    with tempfile.TemporaryDirectory(prefix="kws-export-") as saved:
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint("serve", lambda x: model(x, training=False), input_signature=signature)
        archive.write_out(saved, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if quantization != FLOAT32:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantization == FULL_INT8:
            if calibration is None or not len(calibration):
                raise UsageError("int8 quantization needs calibration clips")
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.representative_dataset = lambda: (
                [calibration[i : i + 1]] for i in range(len(calibration))
            )
        return run_converter(converter)


def run_converter(converter) -> bytes:
    """Run a ``tf.lite.TFLiteConverter`` quietly; any failure is one-line ``KwsError``."""
    try:
        with warnings.catch_warnings(), quiet_native_output():
            warnings.simplefilter("ignore")
            return converter.convert()
    except Exception as error:  # the converter raises many types; all mean "cannot convert"
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise KwsError(f"TFLite conversion failed: {first_line}") from None


def _read_inputs(folder: Path, card: ModelCard, data: Sequence[str | os.PathLike],
                 parity: int, calibration: int, seed: int, say: Callable[[str], None],
                 warn: Callable[[str], None] | None) -> tuple[np.ndarray, np.ndarray]:
    """``(parity clips, calibration clips)`` read from the data folders."""
    roots = _data_roots(folder, card, data)
    say(f"reading clips from {', '.join(str(r) for r in roots)}")
    return _clip_sets(roots, card, parity, calibration, seed, warn)


def _data_roots(folder: Path, card: ModelCard, data: Sequence[str | os.PathLike]) -> list[Path]:
    if data:
        return [Path(d) for d in data]
    recorded = card.data.get("folders") if isinstance(card.data, dict) else None
    if isinstance(recorded, list) and recorded and all(Path(r).is_dir() for r in recorded):
        return [Path(r) for r in recorded]
    raise UsageError(
        f"{folder}: pass --data DIR (the dataset the model was trained on): parity is checked "
        "on real clips and int8 is calibrated on them"
    )


def _clip_sets(
    roots: list[Path], card: ModelCard, parity: int, calibration: int, seed: int,
    warn: Callable[[str], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(held-out clips, training clips)`` as waveform arrays at the model's rate and length."""
    recorded = card.data if isinstance(card.data, dict) else {}
    dataset = open_datasets(roots, recorded.get("validation_percent", 10.0),
                            recorded.get("testing_percent", 10.0))
    words = tuple(label for label in card.labels if label not in (SILENCE, UNKNOWN)
                  ) if card.task == Task.CLASSIFIER else ()
    clips, _ = assign_labels(dataset, LabelPolicy(words=words or None))
    if not clips:
        raise DatasetError(f"{', '.join(map(str, roots))}: no clips to check the export on")
    rng = random.Random(seed)
    held_out = [c for c in clips if c.split in (TESTING, VALIDATION)]
    training = [c for c in clips if c.split == TRAINING]
    rng.shuffle(held_out)
    rng.shuffle(training)
    # Parity measures the conversion, not generalisation: held-out clips first, then
    # training clips when there are too few.
    pools = (("parity", held_out + training, parity), ("calibration", training or held_out,
                                                       calibration))
    chosen = {}
    for name, pool, count in pools:
        sample = pool[:count]
        waveforms, kept, _failed = load_clips(sample, card.sample_rate, card.input_length,
                                              warn=warn)
        if not len(kept):
            raise DatasetError(f"{', '.join(map(str, roots))}: no readable clips for {name}")
        chosen[name] = waveforms
    return chosen["parity"], chosen["calibration"]


def _record(folder: Path, name: str, result: ExportResult) -> None:
    """Write the export into the card, tied to the current model.keras by its SHA-256."""
    card = read_card(folder)
    card.exports[name] = ExportRecord(
        keras_sha256=file_sha256(folder / KERAS_FILE),
        quantization=result.quantization,
        bytes=result.bytes,
        top1_agreement=round(result.agreement, 5),
        parity_clips=result.parity_clips,
        calibration_clips=result.calibration_clips,
        max_probability_difference=round(result.max_probability_difference, 6),
        rejected=list(result.rejected),
    )
    key = "tflite_int8_top1_agreement" if name == TFLITE_INT8_FILE else "tflite_top1_agreement"
    card.metrics[key] = round(result.agreement, 5)
    write_card(folder, card)
