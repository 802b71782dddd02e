"""Spotting helpers: window arithmetic, a word's loud extent, and the one Detection record.

Windows are placed every hop from the start of a recording, or from a little silence
before it (:func:`window_starts`, :func:`sliding_windows`: zero-padded where they run past
the recording); :func:`loud_extent` finds the loud
stretch around a detection's centre. The decision itself (smoothing, thresholds, peak
picking, cooldown) is the streaming detector's (:mod:`kws.infer.detector`), shared by
files and streams.

:class:`Detection` is the one record of a keyword found, by the classifier's detector and
by the phone model's pronunciation search (:mod:`kws.phones.recognizer`);
:data:`DEFAULT_SPOT_THRESHOLD` holds the one default threshold of each task.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from kws.dataset import SILENCE, UNKNOWN
from kws.modelfolder import Task

#: The default detection threshold of each task, unless ``--threshold`` says otherwise.
#: Classifier: the probability a window's top word needs to vote for it. Phones: the
#: confidence of a pronunciation's alignment against the best path over the same frames
#: (on the phone benchmark: 86 % of trained keywords found, 1.7 % false alarms on other
#: words). The two scores measure different things, hence two values.
DEFAULT_SPOT_THRESHOLD: Mapping[Task, float] = MappingProxyType({
    Task.CLASSIFIER: 0.7,
    Task.PHONES: 0.5,
})
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
class Detection:
    """A keyword found in a recording (times in seconds).

    ``probability`` is the detector's confidence (the keyword's highest smoothed
    probability, or the alignment confidence of a phone search); ``score`` its support
    (the sum of the probabilities of the windows that voted for it). ``path`` names the
    recording and ``pronunciation`` the phones found, when a phone model spotted it;
    ``decided_at`` is the stream time at which the streaming detector decided it.
    """

    label: str
    probability: float
    start: float
    end: float
    score: float = 0.0
    path: str = ""
    pronunciation: tuple[str, ...] = ()
    #: Stream time (s) at which the detector decided it (the end of the audio it had
    #: heard then); ``kws listen`` measures latency from ``end`` to this moment.
    decided_at: float | None = None
    #: The calibrated false accepts per hour at ``probability`` (a phone model calibrated
    #: by ``kws phones calibrate``; None otherwise).
    fa_per_hour: float | None = None


def window_starts(num_samples: int, length: int, hop: int, edge: int = 0) -> np.ndarray:
    """Start samples of the windows that cover a recording heard with ``edge`` samples of
    silence before and after it: the first starts at ``-edge``, the last ends at or after
    ``num_samples + edge``."""
    count = 1 + max(0, -(-(num_samples + 2 * edge - length) // hop))
    return np.arange(count, dtype=np.int64) * hop - edge


def sliding_windows(waveform: np.ndarray, length: int, hop: int, edge: int = 0) -> np.ndarray:
    """``(windows, length)`` view of a waveform cut into windows every ``hop`` samples.

    The windows of :func:`window_starts`: the waveform is zero-padded with ``edge`` samples
    before it and as many after it as the last window needs.
    """
    starts = window_starts(len(waveform), length, hop, edge)
    after = max(0, int(starts[-1]) + length - len(waveform))
    padded = np.pad(waveform, (edge, after)) if edge or after else waveform
    return np.lib.stride_tricks.sliding_window_view(padded, length)[::hop]


def loud_extent(
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
