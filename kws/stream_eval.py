"""Measuring a spotter on streams as the wake-word engines do: false accepts per hour, DET.

A keyword spotter is judged on audio that never stops, not on one-second clips. Given the
detections of a spotter on some recordings and what each recording holds, this module
counts per keyword and overall the hits, misses and false accepts, the false accepts per
hour of audio, recall and precision, and sweeps the detection threshold to draw the DET
curve (miss rate against false accepts per hour) and read the miss rate at 0.5, 1 and 5
false accepts per hour.

What a recording holds (:class:`Truth`) comes either from a transcript (how many times
each keyword is said, no word timings: up to N detections of a keyword said N times are
hits, the rest false accepts; every detection of a keyword the transcript lacks is a
false accept) or, for synthetic streams (:func:`plan_synthetic`, :func:`render_stream`:
keyword clips placed at known times in background noise at known SNRs), the exact time
of every keyword (a detection is a hit when it overlaps an occurrence of its keyword not
yet taken).

Each point of the DET curve is a run of the detector at one threshold (:class:`Tally`):
the outputs of the model are computed once per recording and the detector replays them
at each threshold of the sweep, which is cheap. Filtering the detections of one run at a
low threshold would not do: that run opens candidates earlier and decides them before
the peak a higher threshold would wait for.

The miss rate at a rate of false accepts (:meth:`Curve.at_fa_per_hour`) is that of the
best swept threshold meeting it (the most hits among those whose false accepts per hour
do not exceed the target; no interpolation), so a threshold achieving it on this data
exists.
With T hours of audio the rate moves in steps of 1/T per false accept.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kws import audio
from kws.dataset import BACKGROUND_FOLDER, open_datasets
from kws.errors import AudioError, DatasetError, UnreadableInputsError, UsageError
from kws.infer import NOT_WORDS, Detection, Runner, open_runner
from kws.infer.clips import SPLIT_CHOICES
from kws.infer.detector import DetectorSettings, StreamDetector, Verifier, detect
from kws.modelfolder import Task, read_card, resolve_model_dir
from kws.recordings import (
    TRANSCRIPTS,
    Recording,
    RecordingFolder,
    read_recordings,
    split_of,
)

#: False accepts per hour at which the miss rate is reported.
FA_TARGETS = (0.5, 1.0, 5.0)
#: Seconds a detection may miss an occurrence by and still match it (synthetic streams).
MATCH_TOLERANCE_S = 0.25
#: The pooled figures' name in tables and JSON.
OVERALL = "overall"


@dataclass(frozen=True)
class Spot:
    """One detection to score: keyword, the detector's score, start and end (seconds)."""

    keyword: str
    score: float
    start: float
    end: float

    @classmethod
    def of(cls, detection: Detection) -> Spot:
        """The spot of a detector's detection (its score: the smoothed peak probability)."""
        return cls(detection.label, float(detection.probability), float(detection.start),
                   float(detection.end))


@dataclass(frozen=True)
class Occurrence:
    """A keyword said at a known time (seconds) at a known signal-to-noise ratio (dB)."""

    keyword: str
    start: float
    end: float
    snr_db: float | None = None


@dataclass(frozen=True)
class Truth:
    """What one recording holds: its length and how often each keyword is said in it.

    ``occurrences`` gives exact times when they are known (synthetic streams); from a
    transcript only the counts are known (``occurrences is None``).
    """

    name: str
    duration: float
    counts: Mapping[str, int]
    occurrences: tuple[Occurrence, ...] | None = None

    @classmethod
    def from_transcript(cls, name: str, duration: float, words: Iterable[str],
                        keywords: Iterable[str]) -> Truth:
        """The truth of a recording whose transcript says ``words`` (counts of ``keywords``)."""
        wanted = set(keywords)
        counts = Counter(word for word in words if word in wanted)
        return cls(name, float(duration), dict(counts))

    @classmethod
    def from_occurrences(cls, name: str, duration: float,
                         occurrences: Sequence[Occurrence]) -> Truth:
        """The truth of a recording whose keywords' times are known."""
        ordered = tuple(sorted(occurrences, key=lambda o: (o.start, o.keyword)))
        counts = Counter(occurrence.keyword for occurrence in ordered)
        return cls(name, float(duration), dict(counts), ordered)


def judge(truth: Truth, spots: Sequence[Spot],
          tolerance: float = MATCH_TOLERANCE_S) -> list[bool]:
    """Whether each detection of a recording is a hit (``True``) or a false accept.

    Detections are taken in descending score order. With transcript counts, the first
    N detections of a keyword said N times are hits. With exact times, a detection is a
    hit when it overlaps (within ``tolerance`` seconds) an occurrence of its keyword that
    no better detection took; of several, the one whose centre is nearest its own. A second
    detection of one occurrence is a false accept, as a second event would be to a user.
    """
    order = sorted(range(len(spots)), key=lambda i: (-spots[i].score, spots[i].start))
    hits = [False] * len(spots)
    if truth.occurrences is None:
        left = Counter(truth.counts)
        for index in order:
            keyword = spots[index].keyword
            if left[keyword] > 0:
                left[keyword] -= 1
                hits[index] = True
        return hits
    free = list(truth.occurrences)
    for index in order:
        spot = spots[index]
        candidates = [o for o in free if o.keyword == spot.keyword
                      and spot.start < o.end + tolerance and spot.end > o.start - tolerance]
        if candidates:
            centre = (spot.start + spot.end) / 2
            taken = min(candidates, key=lambda o: abs((o.start + o.end) / 2 - centre))
            free.remove(taken)
            hits[index] = True
    return hits


@dataclass(frozen=True)
class Counts:
    """Hits, misses and false accepts of one keyword (or all) over ``hours`` of audio."""

    occurrences: int
    hits: int
    false_accepts: int
    hours: float

    @property
    def misses(self) -> int:
        return self.occurrences - self.hits

    @property
    def recall(self) -> float | None:
        return self.hits / self.occurrences if self.occurrences else None

    @property
    def miss_rate(self) -> float | None:
        return None if self.recall is None else 1.0 - self.recall

    @property
    def precision(self) -> float | None:
        accepted = self.hits + self.false_accepts
        return self.hits / accepted if accepted else None

    @property
    def fa_per_hour(self) -> float:
        if self.hours > 0:
            return self.false_accepts / self.hours
        return math.inf if self.false_accepts else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"occurrences": self.occurrences, "hits": self.hits, "misses": self.misses,
                "false_accepts": self.false_accepts, "fa_per_hour": _round(self.fa_per_hour),
                "recall": _round(self.recall), "precision": _round(self.precision)}


@dataclass(frozen=True)
class OperatingPoint:
    """The counts of one detection threshold (``inf``: nothing accepted)."""

    threshold: float
    counts: Counts

    @property
    def miss_rate(self) -> float | None:
        return self.counts.miss_rate

    def to_json(self) -> dict[str, Any]:
        return {"threshold": _round(self.threshold), "miss_rate": _round(self.miss_rate),
                "fa_per_hour": _round(self.counts.fa_per_hour),
                "hits": self.counts.hits, "false_accepts": self.counts.false_accepts}


@dataclass(frozen=True)
class Curve:
    """A threshold sweep of one keyword (or all): hits and false accepts at each threshold.

    ``thresholds`` descend; ``hits[i]`` and ``false_accepts[i]`` are the detector's at
    ``thresholds[i]``.
    """

    name: str
    thresholds: np.ndarray
    hits: np.ndarray
    false_accepts: np.ndarray
    occurrences: int
    hours: float

    def point(self, index: int) -> OperatingPoint:
        """The operating point at ``thresholds[index]`` (``-1``: nothing accepted)."""
        if index < 0:
            return OperatingPoint(math.inf, Counts(self.occurrences, 0, 0, self.hours))
        return OperatingPoint(float(self.thresholds[index]),
                              Counts(self.occurrences, int(self.hits[index]),
                                     int(self.false_accepts[index]), self.hours))

    def at_fa_per_hour(self, target: float) -> OperatingPoint:
        """The best swept point whose false accepts per hour do not exceed ``target``.

        Best: the most hits (the lowest miss rate), the higher threshold on a tie; nothing
        accepted when every swept threshold breaks the target. No interpolation.
        """
        allowed = target * self.hours + 1e-9
        best = -1
        for index in range(len(self.thresholds)):
            if self.false_accepts[index] <= allowed and (
                    best < 0 or self.hits[index] > self.hits[best]):
                best = index
        return self.point(best)

    def det(self) -> tuple[np.ndarray, np.ndarray]:
        """``(fa_per_hour, miss_rate)`` from nothing accepted down the thresholds."""
        hours = self.hours if self.hours > 0 else math.nan
        fa = np.concatenate([[0.0], self.false_accepts / hours])
        hits = np.concatenate([[0], self.hits])
        if not self.occurrences:
            return fa, np.full(len(hits), np.nan)
        return fa, 1.0 - hits / self.occurrences


@dataclass
class StreamScore:
    """Everything measured on a set of recordings: counts at the operating thresholds and
    the sweeps, per keyword and pooled over keywords (:data:`OVERALL`)."""

    keywords: list[str]
    hours: float
    recordings: int
    #: Counts at the operating thresholds (per keyword, and :data:`OVERALL`).
    counts: dict[str, Counts]
    #: Threshold sweeps (per keyword said or detected at some threshold, and
    #: :data:`OVERALL`); empty when nothing was swept.
    curves: dict[str, Curve]
    #: The operating threshold of each keyword.
    thresholds: dict[str, float]

    def miss_rates(self, targets: Sequence[float] = FA_TARGETS
                   ) -> dict[str, dict[float, OperatingPoint]]:
        """``{name: {target FA/h: best swept point meeting it}}``."""
        return {name: {target: curve.at_fa_per_hour(target) for target in targets}
                for name, curve in self.curves.items()}

    def to_json(self, targets: Sequence[float] = FA_TARGETS) -> dict[str, Any]:
        rates = self.miss_rates(targets)
        return {
            "hours": round(self.hours, 6),
            "recordings": self.recordings,
            "thresholds": {k: _round(v) for k, v in self.thresholds.items()},
            "per_keyword": {
                name: {**counts.to_json(),
                       "at_fa_per_hour": {str(t): p.to_json()
                                          for t, p in rates.get(name, {}).items()}}
                for name, counts in self.counts.items()
            },
            "det": {name: {"thresholds": _round_list(curve.thresholds),
                           "fa_per_hour": _round_list(curve.det()[0][1:]),
                           "miss_rate": _round_list(curve.det()[1][1:])}
                    for name, curve in self.curves.items()},
        }


class Tally:
    """Hits and false accepts accumulated recording by recording.

    Each recording is scored at the operating thresholds and, for the DET curve, at each
    threshold of ``sweep`` (one detector run each; a run at a lower threshold is not a
    superset of one at a higher threshold, since candidates open and decide earlier, so
    every point is a run of its own rather than a filter of one low-threshold run).
    """

    def __init__(self, keywords: Sequence[str], sweep: Sequence[float] = (),
                 tolerance: float = MATCH_TOLERANCE_S) -> None:
        self.keywords = list(dict.fromkeys(keywords))
        self.sweep = sorted(set(float(t) for t in sweep), reverse=True)
        self.tolerance = tolerance
        self.seconds = 0.0
        self.recordings = 0
        self.occurrences: Counter = Counter()
        self._hits: dict[float | None, Counter] = {t: Counter() for t in [None, *self.sweep]}
        self._false: dict[float | None, Counter] = {t: Counter() for t in [None, *self.sweep]}

    def add(self, truth: Truth, operating: Sequence[Spot],
            swept: Mapping[float, Sequence[Spot]] | None = None) -> None:
        """Count one recording: its detections at the operating thresholds and, keyed by
        threshold, at each threshold of the sweep (ValueError unless exactly those)."""
        runs = {None: operating, **{float(t): s for t, s in (swept or {}).items()}}
        if set(runs) != set(self._hits):
            raise ValueError(f"detections at thresholds {sorted(set(runs) - {None})}, "
                             f"the sweep is {self.sweep}")
        chosen = set(self.keywords)
        self.recordings += 1
        self.seconds += truth.duration
        self.occurrences.update({k: n for k, n in truth.counts.items() if k in chosen})
        for threshold, spots in runs.items():
            spots = [spot for spot in spots if spot.keyword in chosen]
            for spot, hit in zip(spots, judge(truth, spots, self.tolerance), strict=True):
                (self._hits if hit else self._false)[threshold][spot.keyword] += 1

    def result(self, thresholds: Mapping[str, float]) -> StreamScore:
        """The counts and curves so far; ``thresholds`` are the operating ones (reported)."""
        hours = self.seconds / 3600
        counts = {k: Counts(self.occurrences[k], self._hits[None][k], self._false[None][k],
                            hours) for k in self.keywords}
        counts[OVERALL] = _pooled(counts.values(), hours)
        curves = {}
        if self.sweep:
            for k in self.keywords:
                if self.occurrences[k] or any(self._false[t][k] for t in self.sweep):
                    curves[k] = self._curve(k, [k], hours)
            curves[OVERALL] = self._curve(OVERALL, self.keywords, hours)
        return StreamScore(self.keywords, hours, self.recordings, counts, curves,
                           {k: float(thresholds[k]) for k in self.keywords})

    def _curve(self, name: str, keywords: Sequence[str], hours: float) -> Curve:
        hits = [sum(self._hits[t][k] for k in keywords) for t in self.sweep]
        false = [sum(self._false[t][k] for k in keywords) for t in self.sweep]
        return Curve(name, np.asarray(self.sweep), np.asarray(hits), np.asarray(false),
                     sum(self.occurrences[k] for k in keywords), hours)


def _pooled(counts: Iterable[Counts], hours: float) -> Counts:
    counts = list(counts)
    return Counts(sum(c.occurrences for c in counts), sum(c.hits for c in counts),
                  sum(c.false_accepts for c in counts), hours)


def _round(value: float | None) -> float | None:
    if value is None or math.isnan(value) or math.isinf(value):
        return None
    return round(float(value), 6)


def _round_list(values: np.ndarray) -> list[float | None]:
    return [_round(float(v)) for v in values]


# --- synthetic streams ----------------------------------------------------------------

#: Level (dBFS, RMS) of the background noise in a synthetic stream; speech sits SNR above.
NOISE_DBFS = -40.0
#: Default SNRs (dB) cycled through the placed clips, and the range allowed: at
#: :data:`MAX_SNR_DB` speech is as loud as full scale (louder would only clip), and at
#: :data:`MIN_SNR_DB` it is buried far under the noise.
DEFAULT_SNRS = (20.0, 10.0, 5.0)
MIN_SNR_DB, MAX_SNR_DB = -30.0, -NOISE_DBFS
#: Default length of a synthetic stream (s) and range of the gaps between clips (s).
STREAM_SECONDS = 120.0
GAP_SECONDS = (1.0, 4.0)
#: A clip is trimmed to its frames within this many dB of its loudest 10 ms frame.
_TRIM_DB = 35.0


@dataclass(frozen=True)
class Placement:
    """A clip to place in a synthetic stream: in a slot of ``length`` seconds from ``start``
    (a longer clip is cut to it, so words never overlap)."""

    path: Path
    word: str
    start: float
    snr_db: float
    length: float = 1.0


@dataclass(frozen=True)
class StreamPlan:
    """A synthetic stream: a background recording (from a seeded offset) and clips."""

    name: str
    duration: float
    noise: Path
    noise_offset: float
    placements: tuple[Placement, ...]


def plan_synthetic(
    clips: Sequence[tuple[str | os.PathLike, str]],
    noises: Sequence[str | os.PathLike],
    snrs: Sequence[float] = DEFAULT_SNRS,
    seed: int = 0,
    stream_seconds: float = STREAM_SECONDS,
    gap_seconds: tuple[float, float] = GAP_SECONDS,
    clip_seconds: float = 1.0,
) -> list[StreamPlan]:
    """Lay ``(path, word)`` clips out in streams over background noise, reproducibly.

    Every clip is used once, in a seeded order, one ``clip_seconds`` slot each, separated
    by gaps drawn from ``gap_seconds``; each stream is about ``stream_seconds`` long and
    takes the next noise recording (at a seeded offset). SNRs cycle through ``snrs``.
    Words the model does not know are placed too: they are speech that must not fire.
    """
    if not noises:
        raise ValueError("synthetic streams need at least one background recording")
    if not snrs:
        raise ValueError("synthetic streams need at least one SNR")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(clips))
    plans: list[StreamPlan] = []
    current: list[Placement] = []
    time = float(rng.uniform(*gap_seconds))

    def close() -> None:
        index = len(plans)
        plans.append(StreamPlan(f"synthetic-{index:04d}", time, Path(noises[index % len(noises)]),
                                float(rng.uniform(0.0, 1.0)), tuple(current)))

    for count, index in enumerate(order):
        path, word = clips[int(index)]
        current.append(Placement(Path(path), str(word), time, float(snrs[count % len(snrs)]),
                                 clip_seconds))
        time += clip_seconds + float(rng.uniform(*gap_seconds))
        if time >= stream_seconds:
            close()
            current, time = [], float(rng.uniform(*gap_seconds))
    if current:
        close()
    return plans


class NoiseBank:
    """Background recordings read once each, at one rate, scaled to :data:`NOISE_DBFS`."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._loaded: dict[Path, np.ndarray] = {}

    def segment(self, path: Path, offset_fraction: float, samples: int) -> np.ndarray:
        """``samples`` of the recording from a fraction of its length on, looped."""
        noise = self._load(path)
        start = int(offset_fraction * len(noise))
        return np.resize(np.roll(noise, -start), samples)

    def readable(self, paths: Sequence[Path]) -> tuple[list[Path], list[tuple[str, str]]]:
        """Read every recording now: ``(the readable ones, [(path, problem)] of the
        others)``, so that no stream is planned over noise that cannot be read."""
        usable, failed = [], []
        for path in paths:
            try:
                self._load(path)
            except AudioError as error:
                failed.append((error.path, error.problem))
            else:
                usable.append(path)
        return usable, failed

    def _load(self, path: Path) -> np.ndarray:
        if path not in self._loaded:
            waveform = audio.load(path, self.rate).astype(np.float64)
            waveform -= waveform.mean()
            self._loaded[path] = waveform * _gain_to(waveform, NOISE_DBFS)
        return self._loaded[path]


def render_stream(plan: StreamPlan, rate: int, noises: NoiseBank
                  ) -> tuple[np.ndarray, list[Occurrence], list[tuple[str, str]]]:
    """The waveform of a planned stream, where each clip's word is, and unreadable clips.

    Each clip is trimmed to its loud part and scaled so that its RMS there sits
    ``snr_db`` above the noise's. Returns ``(waveform, occurrences of every placed word,
    [(path, problem)])``; the caller keeps the occurrences of the model's keywords.
    """
    total = int(round(plan.duration * rate))
    mixture = noises.segment(plan.noise, plan.noise_offset, total)
    placed, failed = [], []
    for placement in plan.placements:
        try:
            clip = audio.load(placement.path, rate).astype(np.float64)
        except AudioError as error:
            failed.append((str(placement.path), error.problem))
            continue
        first, last = _loud_span(clip[: int(round(placement.length * rate))], rate)
        clip = clip[first:last]
        if not len(clip):
            continue
        begin = int(round(placement.start * rate)) + first
        clip = clip[: max(0, total - begin)]
        mixture[begin : begin + len(clip)] += clip * _gain_to(clip, NOISE_DBFS +
                                                              placement.snr_db)
        placed.append(Occurrence(placement.word, begin / rate, (begin + len(clip)) / rate,
                                 placement.snr_db))
    return np.clip(mixture, -1.0, 1.0).astype(np.float32), placed, failed


def synthetic_truth(plan: StreamPlan, occurrences: Sequence[Occurrence],
                    keywords: Iterable[str]) -> Truth:
    """The truth of a rendered stream: the occurrences of ``keywords`` only."""
    wanted = set(keywords)
    return Truth.from_occurrences(plan.name, plan.duration,
                                  [o for o in occurrences if o.keyword in wanted])


def _gain_to(waveform: np.ndarray, dbfs: float) -> float:
    """The gain bringing a waveform's RMS to ``dbfs`` (1 for silence)."""
    rms = float(np.sqrt(np.mean(np.square(waveform)))) if len(waveform) else 0.0
    return 10 ** (dbfs / 20) / rms if rms > 1e-9 else 1.0


def _loud_span(waveform: np.ndarray, rate: int) -> tuple[int, int]:
    """First and last sample (exclusive) of the 10 ms frames within :data:`_TRIM_DB` of
    the loudest one."""
    first, last = audio.loud_spans(waveform[None, :], max(1, rate // 100), _TRIM_DB)[0]
    return int(first), int(last)



# --- evaluating a model on streams ------------------------------------------------------

#: Thresholds of the DET sweep: one detector run each, on model outputs computed once.
SWEEP_THRESHOLDS = (0.995, 0.99, 0.98, 0.96, 0.93, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3)
#: Called with ``(recordings done, recordings in all)``.
StreamProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class StreamSettings:
    """What ``kws evaluate --stream`` measures and how.

    ``threshold`` overrides the card's thresholds for every keyword (the operating point);
    ``keywords`` restricts the keywords watched and measured; ``sweep`` lists the DET
    curve's thresholds (empty: no curve). ``snrs``, ``seed``, ``stream_seconds`` and
    ``max_clips`` shape the synthetic streams; the split percents, ``backgrounds`` and
    ``resplit`` are those of the clip datasets (as ``kws evaluate``).
    """

    split: str = "test"
    threshold: float | None = None
    keywords: tuple[str, ...] | None = None
    sweep: tuple[float, ...] = SWEEP_THRESHOLDS
    snrs: tuple[float, ...] = DEFAULT_SNRS
    seed: int = 0
    stream_seconds: float = STREAM_SECONDS
    max_clips: int | None = None
    validation_percent: float = 10.0
    testing_percent: float = 10.0
    backgrounds: tuple[str, ...] = ()
    resplit: tuple[str, ...] = ()

    def check(self) -> None:
        """Raise UsageError for values that cannot work (before any model is loaded)."""
        if self.split not in SPLIT_CHOICES:
            raise UsageError(f"--split: {self.split!r} is not one of {', '.join(SPLIT_CHOICES)}")
        for value in self.sweep:
            if not 0.0 <= value <= 1.0:
                raise UsageError(f"sweep threshold {value} is not between 0 and 1")
        if not self.snrs or not all(MIN_SNR_DB <= snr <= MAX_SNR_DB for snr in self.snrs):
            raise UsageError(f"--snr: give signal-to-noise ratios from {MIN_SNR_DB:g} to "
                             f"{MAX_SNR_DB:g} dB")
        if not self.stream_seconds >= 2.0:
            raise UsageError("synthetic streams must be at least 2 seconds long")
        if self.max_clips is not None and self.max_clips < 1:
            raise UsageError("--max-clips must be at least 1")


@dataclass
class SourceScore:
    """One source of streams: a folder of recordings or the synthetic streams."""

    path: str
    kind: str
    tally: Tally
    speakers: int = 0

    def to_json(self) -> dict[str, Any]:
        counts = self.tally.result(dict.fromkeys(self.tally.keywords, 0.0)).counts[OVERALL]
        return {"path": self.path, "kind": self.kind, "recordings": self.tally.recordings,
                "hours": round(self.tally.seconds / 3600, 6), "speakers": self.speakers,
                **counts.to_json()}


@dataclass
class StreamEvaluation:
    """A model's detections on streams, scored (what ``kws evaluate --stream`` reports)."""

    model: str
    runner: str
    split: str
    score: StreamScore
    sources: list[SourceScore]
    #: Recordings or clips that could not be read: ``[(path, problem)]``.
    failed: list[tuple[str, str]]
    notes: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "runner": self.runner, "split": self.split,
                **self.score.to_json(),
                "sources": [source.to_json() for source in self.sources],
                "failed": [{"path": path, "error": why} for path, why in self.failed],
                "notes": self.notes}


def evaluate_stream(
    model_dir: str | os.PathLike | None,
    recordings: Sequence[str | os.PathLike] = (),
    synthetic_from: Sequence[str | os.PathLike] = (),
    settings: StreamSettings = StreamSettings(),
    runner: str = "auto",
    threads: int | None = None,
    progress: StreamProgress | None = None,
    verifier: Verifier | None = None,
) -> StreamEvaluation:
    """Run a model's streaming detector over long recordings and synthetic streams; score it.

    Parameters
    ----------
    model_dir
        A classifier model folder (``None``: the shipped default).
    recordings
        Folders of long recordings (:func:`kws.recordings.read_recordings`); with a
        ``transcripts.tsv`` the keywords said come from it, without one nothing counts as
        said (every detection is a false accept: for noise or non-keyword speech). Only the
        recordings of ``settings.split`` are used (speakers split as
        :func:`kws.recordings.split_of` does, as ``kws train --negatives`` does).
    synthetic_from
        Clip datasets (Speech Commands layouts): their ``settings.split`` clips placed at
        known times over their background noise (and ``settings.backgrounds``).
    runner, threads
        The runner (:func:`kws.infer.open_runner`; ``auto`` takes a current TFLite
        export) and its threads.
    verifier
        The second opinion of the verified detector (the card's verification), or None.

    Raises
    ------
    UnreadableInputsError
        Nothing could be scored (no recording of the split could be read), or no
        background noise file is readable to build streams in; it names each file.
    """
    settings.check()
    if not recordings and not synthetic_from:
        raise UsageError("--stream needs folders of recordings (--data) or --synthetic-from")
    folders = [read_recordings(folder) for folder in recordings]
    model_folder = resolve_model_dir(model_dir)
    card = read_card(model_folder, Task.CLASSIFIER)
    detector_settings = DetectorSettings.from_card(card, settings.threshold, settings.keywords,
                                                   verify=verifier is not None)
    keywords = [k for k in card.labels if k not in NOT_WORDS
                and (settings.keywords is None or k in settings.keywords)]
    notes = [note for folder in folders for note in folder.notes]
    failed: list[tuple[str, str]] = []
    rate = int(card.sample_rate)
    jobs = [_recording_jobs(folder, settings, keywords, rate, notes) for folder in folders]
    if synthetic_from:
        jobs.append(_synthetic_jobs(synthetic_from, settings, keywords, rate, notes, failed))
    loaded = open_runner(model_folder, runner, threads)
    notes += loaded.notes
    pooled = Tally(keywords, settings.sweep)
    total, done = sum(len(items) for _, items in jobs), 0
    for source, items in jobs:
        for item in items:
            read = item(failed)
            if read is not None:
                truth, waveform = read
                operating, swept = spot_and_sweep(loaded, waveform, detector_settings,
                                                  settings.sweep, verifier)
                source.tally.add(truth, operating, swept)
                pooled.add(truth, operating, swept)
            done += 1
            if progress is not None:
                progress(done, total)
    if not pooled.recordings:
        raise nothing_scored(total, failed, notes, settings.split)
    thresholds = {k: detector_settings.threshold(k) for k in keywords}
    return StreamEvaluation(str(model_folder), loaded.name, settings.split,
                            pooled.result(thresholds), [source for source, _ in jobs],
                            failed, notes)


def nothing_scored(total: int, failed: Sequence[tuple[str, str]], notes: Sequence[str],
                   split: str) -> UnreadableInputsError:
    """The error of a stream evaluation that scored no recording (a report over none
    would only say "inf false accepts per hour"), carrying the unreadable files and notes
    for the command to report first."""
    problem = (f"none of the {total} recording(s) could be read" if total
               else f"no recordings in the {split} split")
    return UnreadableInputsError(f"nothing to score: {problem}",
                                 [f"{path}: {why}" for path, why in failed], notes)


def spot_and_sweep(runner: Runner, waveform: np.ndarray, operating: DetectorSettings,
                   sweep: Sequence[float] = SWEEP_THRESHOLDS, verifier: Verifier | None = None
                   ) -> tuple[list[Spot], dict[float, list[Spot]]]:
    """The detector's detections in a recording at the operating thresholds and at every
    threshold of ``sweep`` (one threshold for every keyword); the model runs once (its
    outputs are recorded, then replayed through the detector at each threshold). A
    verified detector's candidates are verified once and thresholded on their combined
    score (verifying decides nothing about the candidates themselves)."""
    if verifier is not None:
        everything = operating.reporting_everything()
        found = [Spot.of(d) for d in detect(runner, waveform, everything, verifier=verifier)]
        return ([s for s in found if s.score >= operating.threshold(s.keyword)],
                {t: [s for s in found if s.score >= t] for t in sweep})
    recorder = _Recorder(runner)
    detector = StreamDetector(runner, operating, score=recorder)
    found = detector.feed(waveform) + detector.finish()
    outputs = (np.concatenate(recorder.outputs) if recorder.outputs
               else np.zeros((0, len(runner.labels)), dtype=np.float32))
    swept = {}
    for threshold in sweep:
        at = dataclasses.replace(operating, default_threshold=threshold, thresholds={})
        swept[threshold] = [Spot.of(d) for d in detect(runner, waveform, at, outputs)]
    return [Spot.of(d) for d in found], swept


class _Recorder:
    """Scores windows with the runner and keeps the outputs for replaying."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.outputs: list[np.ndarray] = []

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        outputs = np.asarray(self.runner(batch), dtype=np.float32)
        self.outputs.append(outputs)
        return outputs


def _recording_jobs(folder: RecordingFolder, settings: StreamSettings, keywords: list[str],
                    rate: int, notes: list[str]) -> tuple[SourceScore, list]:
    """A source for a folder of recordings and a reader per recording of the split."""
    wanted = SPLIT_CHOICES[settings.split]
    chosen = [r for r in folder.recordings if wanted is None or split_of(r) == wanted]
    if not chosen:
        notes.append(f"{folder.root}: no recordings in the {settings.split} split")
    if folder.layout == "plain":
        notes.append(f"{folder.root}: no {TRANSCRIPTS}: no keyword is counted as said there, "
                     "every detection is a false accept")
    speakers = len({r.speaker for r in chosen if r.speaker})
    source = SourceScore(str(folder.root), "recordings", Tally(keywords, settings.sweep),
                         speakers)

    def reader(recording: Recording) -> Callable[[list], tuple[Truth, np.ndarray] | None]:
        def read(failed: list) -> tuple[Truth, np.ndarray] | None:
            try:
                waveform = audio.load(recording.path, rate)
            except AudioError as error:
                failed.append((error.path, error.problem))
                return None
            counts = recording.keyword_counts(keywords) if recording.transcript else {}
            return Truth(str(recording.path), len(waveform) / rate,
                         {k: n for k, n in counts.items() if n}), waveform
        return read

    return source, [reader(recording) for recording in chosen]


def _synthetic_jobs(data: Sequence[str | os.PathLike], settings: StreamSettings,
                    keywords: list[str], rate: int, notes: list[str],
                    failed: list[tuple[str, str]]) -> tuple[SourceScore, list]:
    """A source for the synthetic streams of clip datasets and a renderer per stream.

    The background recordings are read first: unreadable ones go to ``failed`` and no
    stream is planned over them.
    """
    dataset = open_datasets(data, settings.validation_percent, settings.testing_percent,
                            settings.backgrounds, settings.resplit)
    notes.extend(dataset.notes)
    wanted = SPLIT_CHOICES[settings.split]
    clips = [c for c in dataset.clips if not c.is_segment and c.word not in NOT_WORDS
             and (wanted is None or c.split == wanted)]
    if settings.max_clips is not None and len(clips) > settings.max_clips:
        rng = np.random.default_rng(settings.seed)
        clips = [clips[i] for i in sorted(rng.choice(len(clips), settings.max_clips,
                                                     replace=False))]
        notes.append(f"synthetic streams: {settings.max_clips} clips drawn at random "
                     f"(seed {settings.seed})")
    if not clips:
        raise DatasetError(f"{', '.join(map(str, data))}: no word clips in the "
                           f"{settings.split} split to build streams from")
    if not dataset.backgrounds:
        raise DatasetError(f"{', '.join(map(str, data))}: no background noise to build "
                           "streams in (no _background_noise_ folder; give --background)")
    noises = NoiseBank(rate)
    backgrounds, unreadable = noises.readable(dataset.backgrounds)
    if not backgrounds:
        raise UnreadableInputsError(
            f"{_noise_sources(data, settings)}: none of the {len(unreadable)} background "
            "noise file(s) is readable, so no stream can be built",
            [f"{path}: {why}" for path, why in unreadable], notes)
    failed.extend(unreadable)
    plans = plan_synthetic([(c.path, c.word) for c in clips], backgrounds,
                           settings.snrs, settings.seed, settings.stream_seconds)
    name = "synthetic: " + ", ".join(map(str, data))
    source = SourceScore(name, "synthetic", Tally(keywords, settings.sweep),
                         len({c.speaker for c in clips if c.speaker}))

    def renderer(plan: StreamPlan) -> Callable[[list], tuple[Truth, np.ndarray] | None]:
        def render(failed: list) -> tuple[Truth, np.ndarray] | None:
            try:
                waveform, placed, problems = render_stream(plan, rate, noises)
            except AudioError as error:
                failed.append((error.path, error.problem))
                return None
            failed.extend(problems)
            return synthetic_truth(plan, placed, keywords), waveform
        return render

    return source, [renderer(plan) for plan in plans]


def _noise_sources(data: Sequence[str | os.PathLike], settings: StreamSettings) -> str:
    """Where the background noise of synthetic streams comes from, as the user named it."""
    folders = [f"{Path(root) / BACKGROUND_FOLDER}" for root in data
               if (Path(root) / BACKGROUND_FOLDER).is_dir()]
    return ", ".join([*(f"--background {b}" for b in settings.backgrounds), *folders])
