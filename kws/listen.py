"""Listening: keywords spotted in a live stream, reported the moment they are decided.

:func:`listen` feeds the chunks of an :class:`~kws.audio_stream.AudioSource` to the one
streaming detector (:class:`kws.infer.StreamDetector`, shared with ``kws predict --spot``)
and hands each decision to a callback as a :class:`Heard` record, with the wall time it
was emitted and its latency: the wall time between the arrival of the keyword's last
audio sample and the event. It runs until the input ends or Ctrl-C; either way the
detector is finished, so a keyword being spoken is still reported.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from kws.audio_stream import AudioSource
from kws.errors import AudioError
from kws.infer import Detection, DetectorSettings, Hop, Runner, StreamDetector
from kws.infer.detector import Verifier


@dataclass(frozen=True)
class Heard:
    """A keyword heard in a stream.

    ``start`` and ``end``: stream seconds of the keyword; ``emitted_at``: ISO 8601 wall
    time (local, with its offset) of the event; ``latency_ms``: wall milliseconds from
    the arrival of the sample at ``end`` to the event.
    """

    keyword: str
    probability: float
    start: float
    end: float
    emitted_at: str
    latency_ms: float

    def record(self) -> dict:
        """The JSON object of ``kws listen``'s output."""
        return {"keyword": self.keyword, "probability": self.probability,
                "start": self.start, "end": self.end, "emitted_at": self.emitted_at,
                "latency_ms": self.latency_ms}


@dataclass
class ListenReport:
    """What a :func:`listen` run did: audio seconds heard, keywords reported, whether it
    was interrupted, and the process CPU and wall seconds it took (for the real-time
    factor ``cpu_seconds / audio_seconds``)."""

    audio_seconds: float = 0.0
    heard: int = 0
    interrupted: bool = False
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0

    @property
    def real_time_factor(self) -> float:
        """Processing (CPU) time per second of audio."""
        return self.cpu_seconds / self.audio_seconds if self.audio_seconds else 0.0


def listen(source: AudioSource, runner: Runner, settings: DetectorSettings,
           on_heard: Callable[[Heard], None],
           on_hop: Callable[[Hop], None] | None = None,
           verifier: Verifier | None = None) -> ListenReport:
    """Spot keywords in ``source`` until it ends or Ctrl-C; return a :class:`ListenReport`.

    ``on_heard`` gets each detection as soon as it is decided; ``on_hop`` (optional,
    called from inside the detector, keep it cheap) what the detector saw at each hop,
    for a level meter. A Ctrl-C sets ``interrupted``; an :class:`AudioError` from the
    source (cut mid-sample, stalled, ...) is raised after the detections it allowed have
    been reported. The source is closed on return. ``verifier``: the second opinion of
    settings with a verification.
    """
    detector = StreamDetector(runner, settings, on_hop=on_hop, verifier=verifier)
    report = ListenReport()
    cpu, wall = time.process_time(), time.monotonic()

    def emit(found: list[Detection]) -> None:
        for detection in found:
            on_heard(_heard(detection, source))
            report.heard += 1

    try:
        with source:
            try:
                for chunk in source.chunks(runner.sample_rate):
                    report.audio_seconds = chunk.start + len(chunk.samples) / runner.sample_rate
                    emit(detector.feed(chunk.samples))
            except KeyboardInterrupt:
                report.interrupted = True
            except AudioError:
                emit(detector.finish())
                raise
            emit(detector.finish())
    finally:
        report.cpu_seconds = time.process_time() - cpu
        report.wall_seconds = time.monotonic() - wall
    return report


def _heard(detection: Detection, source: AudioSource) -> Heard:
    """The record of a detection decided now."""
    latency = max(0.0, time.monotonic() - source.arrival(detection.end))
    now = datetime.now(timezone.utc).astimezone()
    return Heard(detection.label, round(float(detection.probability), 4),
                 round(detection.start, 3), round(detection.end, 3),
                 now.isoformat(timespec="milliseconds"), round(latency * 1000, 1))
