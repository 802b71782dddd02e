"""Batch inference: files in, labels out, streamed as they are ready.

:func:`predict` loads a model folder once, reads the inputs (files, folders, or paths on
stdin) through :func:`kws.audio.load` in a pool of decoding threads, classifies them in
batches and yields one :class:`Prediction` per file (or per detected keyword with
``spot=True``) and one :class:`Failure` per input that could not be read.

Two runners sit behind one interface (:class:`Runner`: a batch of waveforms in,
probabilities out): :class:`KerasRunner` runs ``model.keras`` (imports TensorFlow), and
:class:`LiteRTRunner` runs a ``model.tflite`` written by ``kws export`` with the LiteRT
interpreter (``ai-edge-litert``), which starts in milliseconds and never imports
TensorFlow. :func:`open_runner` picks one.

Spotting (:func:`spot_keywords`) slides the model's window over a longer recording; a
window votes for a keyword when its top label is a word (not ``_silence_``/``_unknown_``)
with probability at least the threshold. Consecutive votes for the same word form one
detection, whose centre is the probability-weighted centre of its windows (a window holds
the word whether the word sits early or late in it, so the mean is symmetric around the
word) and whose extent is the loud region around that centre. Detections of the same word
closer than ``min_gap`` are one utterance; of two overlapping detections of different
words only the better supported one is kept.
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
import os
import queue
import sys
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np

from kws import audio
from kws.dataset import SILENCE, UNKNOWN
from kws.errors import AudioError, KwsError, UsageError
from kws.modelfolder import (
    CARD_FILE,
    KERAS_FILE,
    TFLITE_FILE,
    TFLITE_INT8_FILE,
    ModelCard,
    default_model_dir,
    read_card,
)

#: Runner choices of ``kws predict --runner``.
RUNNERS = ("auto", "keras", "tflite", "tflite-int8")
#: Key of ``card.metrics`` where ``kws export`` records each exported file.
EXPORT_RECORD = "export"
#: Probability a window needs to count as a keyword when spotting, unless told otherwise.
DEFAULT_SPOT_THRESHOLD = 0.7
#: Labels that are not keywords.
NOT_WORDS = frozenset({SILENCE, UNKNOWN})
#: Frame length (s), loudness range (dB below the peak) and margin above the noise floor
#: (dB) used to find a word's extent.
_FRAME_S = 0.01
_EXTENT_DB = 20.0
_FLOOR_DB = 6.0
#: Quieter stretches shorter than this (s) do not end a word (pauses between syllables).
_EXTENT_BRIDGE_S = 0.1


@dataclass(frozen=True)
class Prediction:
    """One result: a file's label, or (when spotting) one keyword found in a file.

    ``top`` holds the ``top_k`` best ``(label, probability)`` pairs when classifying;
    ``start`` and ``end`` (seconds) are set for detections.
    """

    path: str
    label: str
    probability: float
    top: tuple[tuple[str, float], ...] = ()
    start: float | None = None
    end: float | None = None


@dataclass(frozen=True)
class Failure:
    """An input that could not be classified; ``message`` names the file and the problem."""

    path: str
    message: str


@dataclass(frozen=True)
class Detection:
    """A keyword found by :func:`spot_keywords` (times in seconds)."""

    label: str
    probability: float
    start: float
    end: float
    #: Sum of the probabilities of the windows that voted for it (its support).
    score: float


# ----------------------------------------------------------------------------- runners


class Runner(abc.ABC):
    """A model that maps a ``(batch, input_length)`` float32 array to probabilities.

    Subclasses set ``name`` and implement :meth:`__call__`; ``notes`` holds warnings about
    the choice of runner for the caller to show.
    """

    name = "runner"

    def __init__(self, folder: Path, card: ModelCard) -> None:
        self.folder = folder
        self.card = card
        self.labels: list[str] = list(card.labels)
        self.sample_rate = int(card.sample_rate)
        self.input_length = int(card.input_length)
        self.notes: list[str] = []

    @abc.abstractmethod
    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities ``(batch, num_labels)`` of a ``(batch, input_length)`` array."""

    def _check_outputs(self, num_outputs: int, source: str) -> None:
        if num_outputs != len(self.labels):
            raise KwsError(
                f"{self.folder / source}: model has {num_outputs} outputs but card.json "
                f"lists {len(self.labels)} labels"
            )


class KerasRunner(Runner):
    """Runs ``model.keras`` with Keras (imports TensorFlow: a few seconds to start)."""

    name = "keras"

    def __init__(self, folder: Path, card: ModelCard) -> None:
        super().__init__(folder, card)
        import_tensorflow_quietly()
        from kws.modelfolder import load_keras_model

        self.model = load_keras_model(folder)
        shape = tuple(self.model.inputs[0].shape)
        if len(shape) != 2 or shape[1] not in (None, self.input_length):
            raise KwsError(
                f"{folder / KERAS_FILE}: model input shape {shape} does not take "
                f"(batch, {self.input_length}) waveforms as card.json says"
            )
        self._check_outputs(int(self.model.outputs[0].shape[-1]), KERAS_FILE)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_on_batch(batch), dtype=np.float32)


class LiteRTRunner(Runner):
    """Runs a TFLite file with the LiteRT interpreter; never imports TensorFlow.

    The batch dimension is resized to each batch's size (``resize_tensor_input``); int8
    inputs or outputs, if the file has them, are quantized and dequantized here.
    """

    name = "tflite"

    def __init__(
        self, folder: Path, card: ModelCard, file: str = TFLITE_FILE, threads: int | None = None
    ) -> None:
        super().__init__(folder, card)
        from ai_edge_litert.interpreter import Interpreter

        self.path = folder / file
        self.name = "tflite-int8" if file == TFLITE_INT8_FILE else "tflite"
        try:
            # The interpreter prints an INFO line on stderr when it creates its CPU delegate.
            with silenced_fd(2):
                self._interpreter = Interpreter(
                    model_path=str(self.path), num_threads=threads or os.cpu_count() or 1
                )
                self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise KwsError(f"{self.path}: cannot load TFLite model ({error})") from None
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        shape = tuple(int(d) for d in self._input["shape_signature"])
        if len(shape) != 2 or shape[1] != self.input_length:
            raise KwsError(
                f"{self.path}: model input shape {shape} does not take "
                f"(batch, {self.input_length}) waveforms as card.json says"
            )
        self._check_outputs(int(self._output["shape"][-1]), file)
        self._batch = int(self._input["shape"][0])

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        if batch.shape[0] != self._batch:
            self._interpreter.resize_tensor_input(
                self._input["index"], [batch.shape[0], self.input_length]
            )
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


@contextlib.contextmanager
def silenced_fd(fd: int) -> Iterator[None]:
    """Send a file descriptor to /dev/null for the duration (silences C libraries' logs)."""
    try:
        saved = os.dup(fd)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


def import_tensorflow_quietly():
    """Import TensorFlow without the log lines its C++ libraries print on stderr at import.

    TensorFlow 2.21 logs through absl before ``TF_CPP_MIN_LOG_LEVEL`` takes effect, so
    stderr itself is pointed at /dev/null while the libraries load. Errors still surface
    as Python exceptions.
    """
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    with silenced_fd(2):
        import tensorflow

    return tensorflow


def file_sha256(path: Path) -> str:
    """SHA-256 of a file (used to tie an exported TFLite file to its Keras model)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tflite_is_current(folder: Path, card: ModelCard, file: str) -> tuple[bool, str]:
    """Whether an exported TFLite file was made from the folder's current ``model.keras``.

    ``kws export`` records the SHA-256 of ``model.keras`` in the card; a file without that
    record, or with another model's, is stale (for instance after retraining). Returns
    ``(current, reason)``.
    """
    record = card.metrics.get(EXPORT_RECORD, {}).get(file)
    keras_path = folder / KERAS_FILE
    if not record or "keras_sha256" not in record:
        return False, f"{file} has no export record in {folder}/card.json (re-run kws export)"
    if keras_path.is_file() and record["keras_sha256"] != file_sha256(keras_path):
        return False, f"{file} was exported from an older {KERAS_FILE} (re-run kws export)"
    return True, ""


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


def open_runner(
    model: str | os.PathLike | None = None, runner: str = "auto", threads: int | None = None
) -> Runner:
    """Load a model folder for inference with the chosen runner.

    ``auto`` runs ``model.tflite`` (else ``model-int8.tflite``) with LiteRT when it was
    exported from the folder's current ``model.keras``, and Keras otherwise; ``tflite``
    and ``tflite-int8`` insist on a TFLite file; ``keras`` runs ``model.keras``.
    """
    if runner not in RUNNERS:
        raise UsageError(f"--runner must be one of {', '.join(RUNNERS)}, not {runner!r}")
    folder = resolve_model_dir(model)
    card = read_card(folder)
    if card.task != "classifier":
        raise KwsError(f"{folder}: a {card.task} model, not a keyword classifier")
    candidates = {
        "auto": (TFLITE_FILE, TFLITE_INT8_FILE),
        "tflite": (TFLITE_FILE, TFLITE_INT8_FILE),
        "tflite-int8": (TFLITE_INT8_FILE,),
        "keras": (),
    }[runner]
    notes = []
    for file in candidates:
        if not (folder / file).is_file():
            continue
        current, reason = tflite_is_current(folder, card, file)
        if current or runner != "auto":
            chosen: Runner = LiteRTRunner(folder, card, file, threads)
            chosen.notes = [reason] if reason else []
            return chosen
        notes.append(f"{reason}; running the Keras model")
    if runner in ("tflite", "tflite-int8"):
        wanted = " or ".join(candidates)
        raise KwsError(f"{folder}: no {wanted} (run `kws export {folder} --format tflite`)")
    chosen = KerasRunner(folder, card)
    chosen.notes = notes
    return chosen


# ----------------------------------------------------------------------------- inputs


def expand_inputs(inputs: Iterable[str], stdin: TextIO | None = None) -> Iterator[Path | Failure]:
    """Turn command-line inputs into audio file paths, lazily.

    A folder gives its audio files (recursively, sorted; hidden files skipped), or a
    :class:`Failure` when it holds none; ``-`` gives the paths listed on ``stdin``, one per
    line; anything else is taken as a file (reading it reports any problem).
    """
    for item in inputs:
        if item == "-":
            for line in stdin if stdin is not None else sys.stdin:
                if line.strip():
                    yield Path(line.strip())
        elif os.path.isdir(item):
            files = list(_audio_files(Path(item)))
            if not files:
                yield Failure(item, f"{item}: no audio files in this folder")
            yield from files
        else:
            yield Path(item)


def _audio_files(folder: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and audio.is_audio_path(name):
                yield Path(root) / name


# ----------------------------------------------------------------------------- spotting


def window_starts(num_samples: int, length: int, hop: int) -> np.ndarray:
    """Start samples of the windows that cover a recording (the last one may run past it)."""
    count = 1 + max(0, -(-(num_samples - length) // hop))
    return np.arange(count, dtype=np.int64) * hop


def sliding_windows(waveform: np.ndarray, length: int, hop: int) -> np.ndarray:
    """``(windows, length)`` view of a waveform cut into windows every ``hop`` samples.

    The waveform is zero-padded at the end so the last window is whole.
    """
    starts = window_starts(len(waveform), length, hop)
    needed = int(starts[-1]) + length
    if needed > len(waveform):
        waveform = np.pad(waveform, (0, needed - len(waveform)))
    return np.lib.stride_tricks.sliding_window_view(waveform, length)[::hop]


def spot_keywords(
    probabilities: np.ndarray,
    labels: Sequence[str],
    rate: int,
    length: int,
    hop: int,
    threshold: float = DEFAULT_SPOT_THRESHOLD,
    min_gap: float = 0.3,
    waveform: np.ndarray | None = None,
) -> list[Detection]:
    """Keywords found in a recording from the probabilities of its sliding windows.

    Parameters
    ----------
    probabilities
        ``(windows, labels)`` model outputs for the windows of :func:`sliding_windows`.
    labels
        The model's labels.
    rate, length, hop
        Sample rate, window length and hop in samples.
    threshold
        Probability a window's top label needs to vote for a keyword.
    min_gap
        Detections of the same word closer than this (seconds, end to start) are merged.
    waveform
        The recording; when given, each detection's start and end are the loud region
        around its centre rather than one window centred on it.

    Returns
    -------
    list of Detection
        In time order.
    """
    if len(probabilities) == 0:
        return []
    top = probabilities.argmax(axis=1)
    best = probabilities[np.arange(len(top)), top]
    is_word = np.array([labels[i] not in NOT_WORDS for i in top]) & (best >= threshold)
    duration = (len(waveform) / rate) if waveform is not None else None
    window_s = length / rate
    found = []
    for first, last in _runs(is_word, top):
        votes = best[first : last + 1]
        centres = (np.arange(first, last + 1) * hop + length / 2) / rate
        centre = float(np.average(centres, weights=votes))
        if waveform is not None:
            start, end = _loud_extent(waveform, rate, centre, window_s)
        else:
            start, end = centre - window_s / 2, centre + window_s / 2
        if duration is not None:
            start, end = max(0.0, start), min(duration, end)
        found.append(
            Detection(labels[top[first]], float(votes.max()), start, end, float(votes.sum()))
        )
    return _suppress_overlaps(_merge_close(found, min_gap))


def _runs(is_word: np.ndarray, top: np.ndarray) -> Iterator[tuple[int, int]]:
    """``(first, last)`` indices of consecutive voting windows with the same top label."""
    first = None
    for index, voting in enumerate(is_word):
        if first is not None and not (voting and top[index] == top[first]):
            yield first, index - 1
            first = None
        if voting and first is None:
            first = index
    if first is not None:
        yield first, len(is_word) - 1


def _loud_extent(
    waveform: np.ndarray, rate: int, centre: float, window_s: float
) -> tuple[float, float]:
    """Start and end (s) of the loud stretch nearest ``centre`` within one window around it.

    A 10 ms frame is loud when it is within 20 dB of the window's loudest frame and at
    least 6 dB above the noise floor (the 10th percentile of frame levels within two
    windows around the centre). Quieter gaps shorter than 100 ms are bridged so syllables
    stay together.
    """
    frame = max(1, int(round(_FRAME_S * rate)))
    level, first_frame = _frame_levels(waveform, rate, frame, centre, window_s)
    if not len(level):
        return centre - window_s / 2, centre + window_s / 2
    around, _ = _frame_levels(waveform, rate, frame, centre, 2 * window_s)
    floor = float(np.percentile(around, 10))
    loud_index = np.flatnonzero(level >= max(level.max() - _EXTENT_DB, floor + _FLOOR_DB))
    if not len(loud_index):
        loud_index = np.array([int(np.argmax(level))])
    nearest = int(loud_index[np.argmin(np.abs(loud_index - (centre * rate / frame - first_frame)))])
    bridge = max(1, int(round(_EXTENT_BRIDGE_S / _FRAME_S)))
    first = last = nearest
    while True:
        before = loud_index[(loud_index < first) & (loud_index >= first - bridge)]
        after = loud_index[(loud_index > last) & (loud_index <= last + bridge)]
        if not len(before) and not len(after):
            break
        first = int(before.min()) if len(before) else first
        last = int(after.max()) if len(after) else last
    return (first_frame + first) * frame / rate, (first_frame + last + 1) * frame / rate


def _frame_levels(
    waveform: np.ndarray, rate: int, frame: int, centre: float, span_s: float
) -> tuple[np.ndarray, int]:
    """Levels (dB) of the whole frames within ``span_s`` around ``centre``, and the index
    of the first of them (frames counted from the start of the recording)."""
    first = max(0, int(round((centre - span_s / 2) * rate / frame)))
    last = min(len(waveform) // frame, int(round((centre + span_s / 2) * rate / frame)))
    if last <= first:
        return np.zeros(0), first
    frames = waveform[first * frame : last * frame].reshape(last - first, frame)
    energy = np.mean(np.square(frames, dtype=np.float64), axis=1)
    return 10 * np.log10(energy + 1e-12), first


def _merge_close(found: list[Detection], min_gap: float) -> list[Detection]:
    """Merge detections of the same word whose gap (end to start) is below ``min_gap``."""
    merged: list[Detection] = []
    for detection in sorted(found, key=lambda d: d.start):
        for index in range(len(merged) - 1, -1, -1):
            previous = merged[index]
            if previous.label == detection.label and detection.start - previous.end < min_gap:
                merged[index] = Detection(
                    previous.label,
                    max(previous.probability, detection.probability),
                    min(previous.start, detection.start),
                    max(previous.end, detection.end),
                    previous.score + detection.score,
                )
                break
        else:
            merged.append(detection)
    return merged


def _suppress_overlaps(found: list[Detection]) -> list[Detection]:
    """Of detections of different words that overlap in time, keep the best supported."""
    kept: list[Detection] = []
    for detection in sorted(found, key=lambda d: -d.score):
        if all(detection.end <= other.start or other.end <= detection.start for other in kept):
            kept.append(detection)
    return sorted(kept, key=lambda d: d.start)


# ----------------------------------------------------------------------------- pipeline


@dataclass
class PredictOptions:
    """How :func:`predict` classifies (see ``kws predict --help``)."""

    batch_size: int = 128
    top_k: int = 1
    threshold: float | None = None
    spot: bool = False
    hop: float = 0.1
    min_gap: float = 0.3
    threads: int | None = None

    def check(self) -> None:
        """Raise UsageError for values that cannot work."""
        if self.batch_size < 1:
            raise UsageError("--batch-size must be at least 1")
        if self.top_k < 1:
            raise UsageError("--top-k must be at least 1")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise UsageError("--threshold must be between 0 and 1")
        if self.hop <= 0:
            raise UsageError("--hop must be a positive number of seconds")
        if self.min_gap < 0:
            raise UsageError("--min-gap must not be negative")
        if self.threads is not None and self.threads < 1:
            raise UsageError("--threads must be at least 1")


@dataclass
class PredictionStream:
    """The results of :func:`predict`, produced while iterating.

    ``succeeded`` and ``failed`` count inputs as they are done.
    """

    runner: Runner
    options: PredictOptions
    inputs: Iterable[str]
    stdin: TextIO | None = None
    succeeded: int = 0
    failed: int = 0
    _started: bool = field(default=False, repr=False)

    def __iter__(self) -> Iterator[Prediction | Failure]:
        if self._started:
            raise RuntimeError("a PredictionStream can be iterated only once")
        self._started = True
        for result in _run(self.runner, self.options, expand_inputs(self.inputs, self.stdin)):
            if isinstance(result, Failure):
                self.failed += 1
                yield result
            else:
                self.succeeded += 1
                yield from result


def predict(
    inputs: Iterable[str],
    model: str | os.PathLike | None = None,
    runner: str = "auto",
    options: PredictOptions | None = None,
    stdin: TextIO | None = None,
) -> PredictionStream:
    """Classify audio files (or spot keywords in them) with a model folder.

    Parameters
    ----------
    inputs
        Files, folders (searched recursively for audio) and ``-`` (paths on ``stdin``).
    model
        A model folder; ``None`` is the shipped default model.
    runner
        ``auto``, ``keras``, ``tflite`` or ``tflite-int8`` (see :func:`open_runner`).
    options
        Batch size, top-k, threshold and spotting settings.

    Returns
    -------
    PredictionStream
        Iterate it for :class:`Prediction` and :class:`Failure` records in input order,
        produced batch by batch. The model is loaded before this returns.
    """
    options = options or PredictOptions()
    options.check()
    loaded = open_runner(model, runner, options.threads)
    return PredictionStream(loaded, options, inputs, stdin)


@dataclass
class _Pending:
    """A decoded file waiting for the scores of its windows."""

    path: Path
    waveform: np.ndarray
    windows: np.ndarray
    scores: list[np.ndarray] = field(default_factory=list)
    scored: int = 0


def _run(
    runner: Runner, options: PredictOptions, paths: Iterable[Path | Failure]
) -> Iterator[Failure | list[Prediction]]:
    """Decode in threads, score in batches; yield a Failure or a file's predictions."""
    hop = max(1, int(round(options.hop * runner.sample_rate)))
    workers = options.threads or min(8, 2 * (os.cpu_count() or 1))
    # Whole recordings are held while spotting, so read fewer ahead.
    ahead = workers * 2 if options.spot else max(64, 2 * options.batch_size)

    def decode(path: Path) -> _Pending | Failure:
        try:
            waveform = audio.load(path, runner.sample_rate)
        except AudioError as error:
            return Failure(str(path), str(error))
        except (OSError, ValueError, RuntimeError, MemoryError) as error:
            return Failure(str(path), f"{path}: cannot read ({error})")
        if options.spot:
            windows = sliding_windows(waveform, runner.input_length, hop)
        else:
            windows = audio.fix_length(waveform, runner.input_length)[None, :]
        return _Pending(path, waveform, windows)

    pending: deque[_Pending] = deque()
    queued: list[tuple[_Pending, int, int]] = []
    queued_rows = 0

    def score_queued() -> None:
        nonlocal queued, queued_rows
        batch = np.concatenate([item.windows[a:b] for item, a, b in queued], dtype=np.float32)
        probabilities = runner(batch)
        row = 0
        for item, a, b in queued:
            item.scores.append(probabilities[row : row + b - a])
            item.scored += b - a
            row += b - a
        queued, queued_rows = [], 0

    def finished() -> Iterator[list[Prediction]]:
        while pending and pending[0].scored == len(pending[0].windows):
            item = pending.popleft()
            yield _predictions(item, runner, options, hop)

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kws-decode")
    ready: queue.Queue = queue.Queue(maxsize=ahead)
    stop = threading.Event()
    feeder = threading.Thread(target=_feed, args=(paths, pool, decode, ready, stop),
                              name="kws-feed", daemon=True)
    feeder.start()
    try:
        while True:
            try:
                item = ready.get_nowait()
            except queue.Empty:
                # Inputs arrive slowly (paths typed or piped on stdin): classify what is
                # decoded rather than wait for a full batch.
                if queued:
                    score_queued()
                    yield from finished()
                item = ready.get()
            if item is _END:
                break
            if isinstance(item, Exception):
                raise item
            result = item if isinstance(item, Failure) else item.result()
            if isinstance(result, Failure):
                yield result
                continue
            pending.append(result)
            start = 0
            while start < len(result.windows):
                take = min(options.batch_size - queued_rows, len(result.windows) - start)
                queued.append((result, start, start + take))
                queued_rows += take
                start += take
                if queued_rows == options.batch_size:
                    score_queued()
                    yield from finished()
        if queued:
            score_queued()
        yield from finished()
    finally:
        # Stopped early (an error, or the consumer went away): do not decode the rest.
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)


#: Marks the end of the inputs in the queue between the feeding thread and the batcher.
_END = object()


def _feed(paths: Iterable[Path | Failure], pool: ThreadPoolExecutor, decode, ready: queue.Queue,
          stop: threading.Event) -> None:
    """Feeding thread: submit every input for decoding, in order, as it is listed.

    Runs apart from the batcher so that slowly arriving inputs (stdin) never hold back
    results already decoded. An error while listing (reading stdin) is handed over to be
    raised by the batcher.
    """

    def put(item) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    try:
        for path in paths:
            if not put(path if isinstance(path, Failure) else pool.submit(decode, path)):
                return
    except (OSError, ValueError) as error:
        put(KwsError(f"reading the list of inputs failed: {error}"))
    except RuntimeError:  # the pool was shut down: the batcher has stopped
        return
    put(_END)


def _predictions(
    item: _Pending, runner: Runner, options: PredictOptions, hop: int
) -> list[Prediction]:
    """The predictions of one fully scored file."""
    probabilities = np.concatenate(item.scores)
    labels = runner.labels
    path = str(item.path)
    if options.spot:
        threshold = DEFAULT_SPOT_THRESHOLD if options.threshold is None else options.threshold
        found = spot_keywords(
            probabilities, labels, runner.sample_rate, runner.input_length, hop,
            threshold, options.min_gap, item.waveform,
        )
        return [
            Prediction(path, d.label, round(d.probability, 4), start=round(d.start, 3),
                       end=round(d.end, 3))
            for d in found
        ]
    row = probabilities[0]
    order = np.argsort(-row, kind="stable")[: options.top_k]
    top = tuple((labels[i], round(float(row[i]), 4)) for i in order)
    label, probability = top[0]
    if options.threshold is not None and probability < options.threshold:
        label = UNKNOWN
    return [Prediction(path, label, probability, top)]
