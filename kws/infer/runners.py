"""Runners: a model folder's model as a function from a batch of waveforms to outputs.

:class:`KerasRunner` runs ``model.keras`` (imports TensorFlow through :mod:`kws.runtime`);
:class:`LiteRTRunner` runs a ``model.tflite`` written by ``kws export`` with the LiteRT
interpreter (``ai-edge-litert``), which starts in milliseconds and never imports
TensorFlow. :func:`open_runner` reads and validates the card, and picks one.
"""

from __future__ import annotations

import abc
import os
from pathlib import Path

import numpy as np

from kws.errors import KwsError, UsageError
from kws.modelfolder import (
    KERAS_FILE,
    TFLITE_FILE,
    TFLITE_INT8_FILE,
    ModelCard,
    Task,
    export_is_current,
    load_keras_model,
    read_card,
    resolve_model_dir,
)
from kws.runtime import silenced_fd

#: Runner choices (``--runner``): ``auto`` takes a current TFLite export, else Keras.
RUNNERS = ("auto", "keras", "tflite", "tflite-int8")
#: The TFLite files each choice may run, in order of preference.
_CANDIDATES = {
    "auto": (TFLITE_FILE, TFLITE_INT8_FILE),
    "tflite": (TFLITE_FILE, TFLITE_INT8_FILE),
    "tflite-int8": (TFLITE_INT8_FILE,),
    "keras": (),
}


class Runner(abc.ABC):
    """A model mapping a ``(batch, input_length)`` float32 array to its outputs.

    ``notes`` holds remarks about the choice of runner for the caller to show.
    """

    name = "runner"
    #: Windows per batch that suit this runner (LiteRT's CPU kernels stay in cache with
    #: small batches; Keras pays a fixed cost per call, so it wants large ones).
    batch_size = 128

    def __init__(self, folder: Path, card: ModelCard) -> None:
        self.folder = folder
        self.card = card
        self.labels: list[str] = list(card.labels)
        self.sample_rate = int(card.sample_rate)
        self.input_length = int(card.input_length)
        self.notes: list[str] = []

    @abc.abstractmethod
    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Outputs ``(batch, ..., num_labels)`` of a ``(batch, input_length)`` array."""

    def _check_shapes(self, input_shape: tuple, num_outputs: int, source: Path) -> None:
        if len(input_shape) != 2 or input_shape[1] not in (None, -1, self.input_length):
            raise KwsError(f"{source}: model input shape {input_shape} does not take "
                           f"(batch, {self.input_length}) waveforms as card.json says")
        if num_outputs != len(self.labels):
            raise KwsError(f"{source}: model has {num_outputs} outputs but card.json "
                           f"lists {len(self.labels)} labels")


class KerasRunner(Runner):
    """Runs ``model.keras`` with Keras (imports TensorFlow: seconds to start)."""

    name = "keras"

    def __init__(self, folder: Path, card: ModelCard) -> None:
        super().__init__(folder, card)
        self.model = load_keras_model(folder)
        shape = tuple(self.model.inputs[0].shape)
        self._check_shapes(shape, int(self.model.outputs[0].shape[-1]), folder / KERAS_FILE)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_on_batch(batch), dtype=np.float32)


class LiteRTRunner(Runner):
    """Runs a TFLite file with the LiteRT interpreter; never imports TensorFlow.

    The batch dimension is resized to each batch's size; int8 inputs or outputs, if the
    file has them, are quantized and dequantized here.
    """

    batch_size = 32

    def __init__(self, folder: Path, card: ModelCard, file: str = TFLITE_FILE,
                 threads: int | None = None) -> None:
        super().__init__(folder, card)
        from ai_edge_litert.interpreter import Interpreter

        self.path = folder / file
        self.name = "tflite-int8" if file == TFLITE_INT8_FILE else "tflite"
        try:
            # The interpreter prints an INFO line on stderr when it creates its CPU delegate.
            with silenced_fd(2):
                self._interpreter = Interpreter(model_path=str(self.path),
                                                num_threads=threads or os.cpu_count() or 1)
                self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise KwsError(f"{self.path}: cannot load TFLite model ({error})") from None
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        shape = tuple(int(d) for d in self._input["shape_signature"])
        self._check_shapes(shape, int(self._output["shape"][-1]), self.path)
        self._batch = int(self._input["shape"][0])

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        if batch.shape[0] != self._batch:
            self._interpreter.resize_tensor_input(self._input["index"],
                                                  [batch.shape[0], self.input_length])
            self._interpreter.allocate_tensors()
            self._batch = batch.shape[0]
        self._interpreter.set_tensor(self._input["index"], _quantize(batch, self._input))
        self._interpreter.invoke()
        return _dequantize(self._interpreter.get_tensor(self._output["index"]), self._output)


def _quantize(batch: np.ndarray, details: dict) -> np.ndarray:
    dtype = np.dtype(details["dtype"])
    if dtype == np.float32:
        return np.ascontiguousarray(batch, dtype=np.float32)
    scale, zero_point = details["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(batch / scale + zero_point), info.min, info.max).astype(dtype)


def _dequantize(values: np.ndarray, details: dict) -> np.ndarray:
    if np.dtype(details["dtype"]) == np.float32:
        return np.array(values, dtype=np.float32)
    scale, zero_point = details["quantization"]
    return ((values.astype(np.float32) - zero_point) * scale).astype(np.float32)


def check_runner(runner: str) -> None:
    """Raise UsageError for a runner name that is not one of :data:`RUNNERS`."""
    if runner not in RUNNERS:
        raise UsageError(f"--runner must be one of {', '.join(RUNNERS)}, not {runner!r}")


def open_runner(model: str | os.PathLike | None = None, runner: str = "auto",
                threads: int | None = None, task: Task = Task.CLASSIFIER) -> Runner:
    """Load a model folder for inference with the chosen runner.

    ``auto`` runs ``model.tflite`` (else ``model-int8.tflite``) with LiteRT when it was
    exported from the folder's current ``model.keras`` (:func:`export_is_current`), and
    Keras otherwise; ``tflite`` and ``tflite-int8`` insist on a TFLite file; ``keras``
    runs ``model.keras``. The card is validated first and must be of ``task``.
    """
    check_runner(runner)
    folder = resolve_model_dir(model)
    card = read_card(folder)
    if card.task != task:
        raise KwsError(f"{folder}: a {card.task} model, not a {_TASK_NAMES[task]}")
    notes = []
    for file in _CANDIDATES[runner]:
        if not (folder / file).is_file():
            continue
        current, reason = export_is_current(folder, card, file)
        if current or runner != "auto":
            chosen: Runner = LiteRTRunner(folder, card, file, threads)
            chosen.notes = [reason] if reason else []
            return chosen
        notes.append(f"{reason}; running the Keras model")
    if runner in ("tflite", "tflite-int8"):
        wanted = " or ".join(_CANDIDATES[runner])
        option = " --int8" if runner == "tflite-int8" else ""
        raise KwsError(f"{folder}: no {wanted} "
                       f"(run `kws export {folder} --format tflite{option}`)")
    chosen = KerasRunner(folder, card)
    chosen.notes = notes
    return chosen


_TASK_NAMES = {Task.CLASSIFIER: "keyword classifier", Task.PHONES: "phone model",
               Task.VAE: "VAE model"}
