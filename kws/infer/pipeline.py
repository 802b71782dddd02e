"""The one inference pipeline: decode in threads, score in batches, answer in input order.

A :class:`Pipeline` takes an iterable of inputs (paths, dataset clips, or
:class:`~kws.infer.inputs.Failure` records already made by the caller) and yields, in
input order, one :class:`Scored` record per input that could be processed and one
:class:`Failure` per input that could not. Three stages overlap:

* a feeding thread lists the inputs (reading stdin as lines arrive) and hands each to a
  pool of decoding threads (soundfile and soxr release the GIL, so decoding runs beside
  inference);
* each decoded waveform is cut into the model's input windows (one window for a clip,
  sliding windows for a long recording);
* the calling thread gathers windows into batches and runs the :class:`Runner` on them.

When no decoded input is waiting (paths arriving one by one on stdin) the windows at
hand are scored at once rather than held back for a full batch, so each input is
answered as soon as it arrives. An input whose model output is not finite (NaN or
infinity, e.g. from samples far outside [-1, 1]) is a failure of that input alone.
``succeeded`` and ``failed`` count the inputs answered so far.
"""

from __future__ import annotations

import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kws import audio
from kws.errors import AudioError, KwsError
from kws.infer.inputs import Failure
from kws.infer.runners import Runner

#: Turns an input into a waveform at the runner's rate (raises AudioError).
Decoder = Callable[[Any], np.ndarray]
#: Cuts a waveform into the ``(windows, input_length)`` rows the runner scores.
Cutter = Callable[[np.ndarray], np.ndarray]


@dataclass
class Scored:
    """An input processed: its waveform and the runner's outputs for its windows."""

    item: Any
    path: str
    waveform: np.ndarray
    outputs: np.ndarray


@dataclass
class _Pending:
    """A decoded input waiting for the outputs of its windows."""

    item: Any
    waveform: np.ndarray
    windows: np.ndarray
    outputs: list[np.ndarray] = field(default_factory=list)
    scored: int = 0

    @property
    def done(self) -> bool:
        return self.scored == len(self.windows)


def path_of(item: Any) -> str:
    """The file an input names (a path, or anything with a ``path`` attribute)."""
    return str(getattr(item, "path", item))


def default_workers() -> int:
    """Decoding threads: one per CPU but one (left to inference), at most four.

    Decoding a short clip is mostly Python work under the GIL, so more threads only
    contend for it (on two CPUs, one decoding thread beside inference is fastest);
    resampling and disk reads release the GIL, which a few threads exploit.
    """
    return max(1, min(4, (os.cpu_count() or 1) - 1))


class Pipeline:
    """Decode → batch → score with one runner.

    Parameters
    ----------
    runner
        The model (:func:`kws.infer.runners.open_runner`).
    cut
        Waveform to window rows; default: one window, padded or cropped to the loudest
        stretch (:func:`kws.audio.fix_length`).
    decode
        Input to waveform; default: :func:`kws.audio.load` of the input's path.
    batch_size
        Windows scored together (default: the runner's ``batch_size``).
    workers
        Decoding threads (default :func:`default_workers`).
    ahead
        Inputs decoded ahead of scoring at most (bounds memory; default
        ``max(64, 2 * batch_size)``).
    """

    def __init__(self, runner: Runner, cut: Cutter | None = None, decode: Decoder | None = None,
                 batch_size: int | None = None, workers: int | None = None,
                 ahead: int | None = None) -> None:
        self.runner = runner
        self.cut = cut or (lambda waveform: audio.fix_length(waveform, runner.input_length)[None])
        self.decode = decode or (lambda item: audio.load(path_of(item), runner.sample_rate))
        self.batch_size = batch_size or runner.batch_size
        self.workers = workers or default_workers()
        self.ahead = ahead or max(64, 2 * self.batch_size)
        self.succeeded = 0
        self.failed = 0
        self._rows = 0
        self._buffer: np.ndarray | None = None

    def run(self, items: Iterable[Any]) -> Iterator[Scored | Failure]:
        """Process ``items``; yield a :class:`Scored` or :class:`Failure` per input, in order."""
        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="kws-decode")
        ready: queue.Queue = queue.Queue(maxsize=self.ahead)
        stop = threading.Event()
        feeder = threading.Thread(target=_feed, args=(items, pool, self._prepare, ready, stop),
                                  name="kws-feed", daemon=True)
        feeder.start()
        try:
            yield from self._batches(ready)
        finally:
            # Stopped early (an error, or the consumer went away): do not decode the rest.
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)

    def _prepare(self, item: Any) -> _Pending | Failure:
        """Decoding thread: read and cut one input."""
        try:
            waveform = self.decode(item)
            return _Pending(item, waveform, self.cut(waveform))
        except AudioError as error:
            return Failure(path_of(item), str(error))
        except MemoryError:
            return Failure(path_of(item), f"{path_of(item)}: too large to hold in memory")

    def _batches(self, ready: queue.Queue) -> Iterator[Scored | Failure]:
        pending: deque[_Pending | Failure] = deque()
        queued: list[tuple[_Pending, int, int]] = []
        while True:
            try:
                entry = ready.get(timeout=_PATIENCE_S if queued else None)
            except queue.Empty:
                # Inputs arrive slowly (paths typed or piped on stdin): score what is
                # decoded rather than wait for a full batch.
                self._score(queued)
                yield from self._finished(pending)
                entry = ready.get()
            if entry is _END:
                break
            if isinstance(entry, Exception):
                raise entry
            result = entry.result() if isinstance(entry, Future) else entry
            pending.append(result)
            if isinstance(result, _Pending):
                yield from self._enqueue(result, queued, pending)
            yield from self._finished(pending)
        if queued:
            self._score(queued)
        yield from self._finished(pending)

    def _enqueue(self, item: _Pending, queued: list[tuple[_Pending, int, int]],
                 pending: deque[_Pending | Failure]) -> Iterator[Scored | Failure]:
        """Add an input's windows to the batch, scoring each batch as it fills; yield the
        inputs each batch finishes at once, so a long recording does not hold back the
        results of the one before it (nor keep a closed consumer's run going)."""
        start = 0
        while start < len(item.windows):
            take = min(self.batch_size - self._rows, len(item.windows) - start)
            queued.append((item, start, start + take))
            self._rows += take
            start += take
            if self._rows == self.batch_size:
                self._score(queued)
                yield from self._finished(pending)

    def _score(self, queued: list[tuple[_Pending, int, int]]) -> None:
        """Run the model on the queued windows and hand each input its rows; empty the queue."""
        width = queued[0][0].windows.shape[1:]
        if self._buffer is None or self._buffer.shape[1:] != width:
            # One buffer for every batch: a fresh one per batch costs page faults.
            self._buffer = np.empty((self.batch_size, *width), dtype=np.float32)
        batch = self._buffer[: self._rows]
        _gather(batch, [item.windows[a:b] for item, a, b in queued])
        outputs = self.runner(batch)
        row = 0
        for item, a, b in queued:
            item.outputs.append(outputs[row : row + b - a])
            item.scored += b - a
            row += b - a
        queued.clear()
        self._rows = 0

    def _finished(self, pending: deque[_Pending | Failure]) -> Iterator[Scored | Failure]:
        """Yield the inputs at the head of the line that are done, counting them."""
        while pending and (isinstance(pending[0], Failure) or pending[0].done):
            entry = pending.popleft()
            result = entry if isinstance(entry, Failure) else _scored(entry)
            if isinstance(result, Failure):
                self.failed += 1
            else:
                self.succeeded += 1
            yield result


def _gather(out: np.ndarray, parts: list[np.ndarray]) -> None:
    """Copy ``parts`` one after the other into the rows of ``out``.

    numpy releases the GIL for each large copy and must win it back from the decoding
    threads afterwards (up to a switch interval, 5 ms, each time); copying through
    memoryviews keeps the GIL for the few microseconds a row takes.
    """
    target = memoryview(out).cast("B")
    position = 0
    for part in parts:
        if part.dtype != np.float32 or not part.flags.c_contiguous:
            part = np.ascontiguousarray(part, dtype=np.float32)
        size = part.nbytes
        target[position : position + size] = memoryview(part).cast("B")
        position += size


class Stream:
    """The results of a pipeline run over some inputs, produced while iterating.

    Each :class:`Scored` input becomes the records ``convert`` makes of it (a label, the
    keywords found, the phones heard); each :class:`Failure` is passed on as it is.
    ``succeeded`` and ``failed`` count inputs as they are done; ``runner`` is the model.
    """

    def __init__(self, pipeline: Pipeline, items: Iterable[Any],
                 convert: Callable[[Scored], Iterable[Any]]) -> None:
        self.pipeline = pipeline
        self.runner = pipeline.runner
        self._items = items
        self._convert = convert
        self._started = False

    @property
    def succeeded(self) -> int:
        return self.pipeline.succeeded

    @property
    def failed(self) -> int:
        return self.pipeline.failed

    def __iter__(self) -> Iterator[Any]:
        if self._started:
            raise RuntimeError("a Stream can be iterated only once")
        self._started = True
        for result in self.pipeline.run(self._items):
            if isinstance(result, Failure):
                yield result
            else:
                yield from self._convert(result)


def _scored(entry: _Pending) -> Scored | Failure:
    outputs = entry.outputs[0] if len(entry.outputs) == 1 else np.concatenate(entry.outputs)
    path = path_of(entry.item)
    if not np.isfinite(outputs).all():
        peak = float(np.max(np.abs(entry.waveform))) if len(entry.waveform) else 0.0
        return Failure(path, f"{path}: the model's output is not finite (NaN or infinity); "
                             f"samples reach {peak:.3g} (audio is expected within -1..1)")
    return Scored(entry.item, path, entry.waveform, outputs)


#: How long the batcher waits for the next input before scoring a partial batch (s): long
#: enough for the feeding thread to be scheduled, short enough not to be noticed.
_PATIENCE_S = 0.01
#: Marks the end of the inputs in the queue between the feeding thread and the batcher.
_END = object()


def _feed(items: Iterable[Any], pool: ThreadPoolExecutor, prepare: Callable,
          ready: queue.Queue, stop: threading.Event) -> None:
    """Feeding thread: submit every input for decoding, in order, as it is listed.

    Runs apart from the batcher so that slowly arriving inputs (stdin) never hold back
    results already decoded. An error while listing (reading stdin) is handed over to be
    raised by the batcher.
    """

    def put(entry) -> bool:
        while not stop.is_set():
            try:
                ready.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    try:
        for item in items:
            if not put(item if isinstance(item, Failure) else pool.submit(prepare, item)):
                return
    except (OSError, ValueError) as error:
        put(KwsError(f"reading the list of inputs failed: {error}"))
    except RuntimeError:  # the pool was shut down: the batcher has stopped
        return
    put(_END)

