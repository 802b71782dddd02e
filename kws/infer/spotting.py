"""Spotting: keywords found in a recording longer than the model's input.

The recording is cut into windows every hop (:func:`sliding_windows`) and each window is
classified. A window votes for a keyword when its top label is a word (not
``_silence_``/``_unknown_``) with probability at least the threshold. Consecutive votes for
the same word form one :class:`Detection`, whose centre is the probability-weighted centre
of its windows (a window holds the word whether the word sits early or late in it, so the
mean is symmetric around the word) and whose extent is the loud region around that
centre. Detections of the same word closer than ``min_gap`` are one utterance; of two
overlapping detections of different words only the better supported one is kept.

:class:`Detection` is the one record of a keyword found, by the classifier's spotting here
and by the phone model's pronunciation search (:mod:`kws.phones.recognizer`);
:data:`DEFAULT_SPOT_THRESHOLD` holds the one default threshold of each task.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
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

    ``probability`` is the detector's confidence (the best window's probability, or the
    alignment confidence of a phone search); ``score`` its support (the sum of the
    probabilities of the windows that voted for it). ``path`` names the recording and
    ``pronunciation`` the phones found, when a phone model spotted it.
    """

    label: str
    probability: float
    start: float
    end: float
    score: float = 0.0
    path: str = ""
    pronunciation: tuple[str, ...] = ()


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
    threshold: float = DEFAULT_SPOT_THRESHOLD[Task.CLASSIFIER],
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
