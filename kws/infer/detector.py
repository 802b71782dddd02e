"""The streaming keyword detector shared by ``kws predict --spot``, ``kws listen``,
``kws evaluate --stream`` and ``kws calibrate``.

Audio arrives in chunks of any size (:meth:`StreamDetector.feed`); the model scores the
window of ``input_length`` samples that ends every ``hop`` at *absolute* stream positions
(window ``i`` covers samples ``[i * hop - edge, i * hop - edge + input_length)``, as
:func:`~kws.infer.spotting.window_starts` places them), so the detections never depend on
how the audio was chunked. The detector hears ``edge`` seconds of silence before the
stream begins and after it ends, so a word at either end of a recording is scored in
windows centred on it, as a word in the middle is. Windows ready together are scored in
one batch (a whole file is fast). Each hop's posteriors are smoothed (mean of the last
``smoothing`` seconds); a keyword whose smoothed posterior reaches its threshold opens a
*candidate*. The candidate is decided when every keyword in it falls back below its
threshold, or ``max_delay`` seconds after it opened, whichever is first: the keyword with
the highest smoothed peak in the candidate wins (a different word overlapping it is
suppressed). A decided keyword is re-armed only after its smoothed posterior has fallen
below its threshold and ``cooldown`` seconds have passed, so one utterance is one
detection; and no keyword other than the last detected one opens a candidate until
``holdoff`` seconds after that one fell below its threshold, so the tail of a word (the
"op" of "stop") is not reported as a second word ("up"). The detection's start and end are
the loud stretch around the centre of the windows that voted for it, found in the audio
heard so far (nothing after the decision is used).

With a :class:`Verifier` (settings with a :class:`~kws.modelfolder.Verification`), the
detector's decisions at the verification's candidate threshold are candidates: each waits
until ``lookahead`` seconds of audio after it have arrived, the verifier (the phone model)
scores how surely its keyword is said there from ``context`` seconds before it to that
point, and it is reported when the combined score (:func:`combined_score`) reaches its
keyword's threshold; the detection carries the combined score. A keyword the verifier
hears no other speech before is trusted more (the verification's ``quiet_floor``).

Sliding windows rather than a streaming (stateful) model: on one core the shipped
model costs 0.35 ms per one-second window with LiteRT (10.8 M multiply-adds), i.e. a
real-time factor of 0.007 at a 50 ms hop, well under the 0.05 target, so a stateful
model would save nothing worth its complexity (the README measures it: "Why sliding
windows and not a streaming model").
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Protocol

import numpy as np

from kws.errors import KwsError, UsageError
from kws.infer.runners import Runner
from kws.infer.spotting import (
    DEFAULT_SPOT_THRESHOLD,
    NOT_WORDS,
    Detection,
    loud_extent,
    sliding_windows,
    window_starts,
)
from kws.modelfolder import ModelCard, Task, Verification

#: Scores a ``(windows, input_length)`` batch: the runner, or recorded outputs.
Scorer = Callable[[np.ndarray], np.ndarray]
#: The combined score a verified detection needs when its keyword has no calibrated
#: threshold.
DEFAULT_VERIFIED_THRESHOLD = 0.6
#: The shortest hop (s): shorter ones score windows that barely differ, at a cost without
#: bound (a hop of 1e-9 s would never finish).
MIN_HOP_S = 0.01
#: The longest any other time of the settings may be (s), far above any useful value
#: (the README's run up to a few seconds): huge or infinite times overflow hop counts.
MAX_TIME_S = 60.0


@dataclass(frozen=True)
class Opinion:
    """A verifier's answer: how surely (0 to 1) the keyword is said, and whether no other
    speech comes just before it (a word said alone)."""

    confidence: float
    after_quiet: bool = False


class Verifier(Protocol):
    """A second opinion on a detection (:class:`kws.phones.verify.PhoneVerifier`)."""

    def __call__(self, keyword: str, audio: np.ndarray, rate: int, start: float,
                 end: float) -> Opinion:
        """Its opinion of ``keyword`` said between ``start`` and ``end`` seconds of
        ``audio`` (mono float32 at ``rate`` Hz)."""


def combined_score(probability: float, opinion: float, phone_weight: float) -> float:
    """A verified candidate's score: the geometric mean of the classifier's probability
    and the phone model's confidence (clipped to 0..1), the latter weighted
    ``phone_weight`` (:class:`~kws.modelfolder.Verification`)."""
    opinion = min(1.0, max(0.0, opinion))
    return probability ** (1.0 - phone_weight) * opinion ** phone_weight


@dataclass(frozen=True)
class DetectorSettings:
    """How the detector decides (times in seconds).

    ``thresholds`` holds a threshold per keyword (a calibrated card's); a keyword not in
    it uses ``default_threshold``. ``keywords=None`` watches every label but
    ``_silence_``/``_unknown_``. With ``verification`` the thresholds are those of the
    combined score and candidates open at its ``candidate_threshold``.
    """

    hop: float = 0.05
    smoothing: float = 0.25
    max_delay: float = 0.1
    cooldown: float = 0.5
    #: Seconds after the last detected keyword falls below its threshold during which no
    #: keyword opens a new candidate.
    holdoff: float = 0.1
    #: Seconds of silence heard before the stream and after its end: the last word of a
    #: recording that stops right after it is otherwise only seen off-centre.
    edge: float = 0.2
    default_threshold: float = DEFAULT_SPOT_THRESHOLD[Task.CLASSIFIER]
    thresholds: Mapping[str, float] = field(default_factory=dict)
    keywords: tuple[str, ...] | None = None
    verification: Verification | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "thresholds", MappingProxyType(dict(self.thresholds)))

    @classmethod
    def from_card(cls, card: ModelCard, threshold: float | None = None,
                  keywords: Sequence[str] | None = None, verify: bool = False,
                  **values) -> DetectorSettings:
        """Settings for a model: the card's calibrated thresholds, unless ``threshold``
        (``--threshold``) overrides every keyword; other fields from ``values``. With
        ``verify``, the card's verification (its defaults when the card has none) and its
        thresholds of the combined score."""
        calibrated = dict(card.thresholds)
        if verify:
            values["verification"] = card.verification or Verification()
            calibrated = dict(values["verification"].thresholds)
            values.setdefault("default_threshold", DEFAULT_VERIFIED_THRESHOLD)
        if threshold is not None:
            values.update(default_threshold=threshold, thresholds={})
        else:
            values.setdefault("thresholds", calibrated)
        if keywords is not None:
            values["keywords"] = tuple(keywords)
        settings = cls(**values)
        settings.check(card.labels, card.input_length / card.sample_rate)
        return settings

    def reporting_everything(self) -> DetectorSettings:
        """These settings with every threshold 0: every decision is reported (verified:
        every candidate, with its combined score), for callers that threshold the scores
        themselves. Reporting does not change the decisions, so thresholding these
        detections is the same as detecting at those thresholds."""
        return replace(self, thresholds={}, default_threshold=0.0)

    def check(self, labels: Sequence[str], window: float | None = None) -> None:
        """Raise UsageError for values that cannot work with a model of ``labels`` whose
        input is ``window`` seconds long (see :meth:`check_timing`)."""
        self.check_timing(window)
        for name, value in [("--threshold", self.default_threshold), *self.thresholds.items()]:
            if not 0.0 <= value <= 1.0:
                raise UsageError(f"threshold of {name} must be between 0 and 1, not {value}")
        words = [label for label in labels if label not in NOT_WORDS]
        for keyword in self.keywords or ():
            if keyword not in words:
                raise UsageError(f"--keywords: {keyword!r} is not a keyword of this model "
                                 f"({', '.join(words)})")
        if self.keywords is not None and not self.keywords:
            raise UsageError("--keywords: give at least one keyword")

    def check_timing(self, window: float | None = None) -> None:
        """Raise UsageError for times that cannot work, before anything is loaded.

        The hop runs from :data:`MIN_HOP_S` to the model's ``window`` (seconds; before
        the model is known, :data:`MAX_TIME_S`): a longer one would skip audio. Every
        other time is a finite number of seconds from 0 to :data:`MAX_TIME_S`; NaN,
        infinity or 1e300 would overflow the counts of hops the detector derives.
        """
        longest = MAX_TIME_S if window is None else window
        if not MIN_HOP_S <= self.hop <= longest:
            limit = "" if window is None else f" ({window:g} s)"
            raise UsageError(f"--hop must be from {MIN_HOP_S:g} s to the model's window"
                             f"{limit}, not {self.hop:g}")
        for name in ("smoothing", "max_delay", "cooldown", "holdoff", "edge"):
            value = getattr(self, name)
            if not 0 <= value <= MAX_TIME_S:
                raise UsageError(f"--{name.replace('_', '-')} must be from 0 s to "
                                 f"{MAX_TIME_S:g} s, not {value:g}")

    def threshold(self, keyword: str) -> float:
        """The threshold of one keyword."""
        return float(self.thresholds.get(keyword, self.default_threshold))

    def timing(self) -> dict[str, float]:
        """The settings that shape decisions, besides thresholds (recorded beside them)."""
        return {name: getattr(self, name)
                for name in ("hop", "smoothing", "max_delay", "cooldown", "holdoff", "edge")}

    def hop_samples(self, rate: int) -> int:
        """The hop in samples at ``rate`` (at least one)."""
        return max(1, int(round(self.hop * rate)))

    def edge_samples(self, rate: int) -> int:
        """The silence heard at each end of a stream, in samples at ``rate``."""
        return int(round(self.edge * rate))

    def cutter(self, rate: int, length: int) -> Callable[[np.ndarray], np.ndarray]:
        """Cuts a whole recording into the windows the detector scores, in its order (for
        outputs computed ahead, replayed by :func:`detect`)."""
        return functools.partial(sliding_windows, length=length, hop=self.hop_samples(rate),
                                 edge=self.edge_samples(rate))


@dataclass(frozen=True)
class Hop:
    """What the detector saw at one hop, for a live meter.

    ``time`` is the end of the scored window (stream seconds); ``level_db`` the RMS level
    of the window's last hop of audio (dBFS); ``posteriors`` the model's outputs and
    ``smoothed`` their running mean, both in label order.
    """

    time: float
    level_db: float
    posteriors: np.ndarray
    smoothed: np.ndarray


@dataclass
class _Candidate:
    """An utterance being decided: first hop, peaks per keyword, voting windows."""

    first: int
    peaks: dict[int, tuple[float, int]] = field(default_factory=dict)
    votes: dict[int, list[tuple[int, float]]] = field(default_factory=dict)


class StreamDetector:
    """Keywords found in a stream fed in chunks of any size.

    Parameters
    ----------
    runner
        The model (``labels``, ``sample_rate``, ``input_length``, ``batch_size``, called on
        a batch of windows).
    settings
        Hop, smoothing, thresholds, keywords, cooldown, maximum decision delay.
    on_hop
        Called with a :class:`Hop` for every scored window (a level meter).
    score
        Scores a batch of windows; default: the runner (``detect`` replays outputs
        computed elsewhere through it).
    verifier
        The second opinion the settings' ``verification`` asks for (both or neither).
    """

    def __init__(self, runner: Runner, settings: DetectorSettings | None = None,
                 on_hop: Callable[[Hop], None] | None = None,
                 score: Scorer | None = None, verifier: Verifier | None = None) -> None:
        self.settings = settings or DetectorSettings()
        self.settings.check(runner.labels, runner.input_length / runner.sample_rate)
        self.verification = self.settings.verification
        if (self.verification is None) != (verifier is None):
            raise KwsError("a verified detector needs both the settings' verification and "
                           "a verifier")
        self._verifier = verifier
        self._pending: list[Detection] = []
        self._audio_end: int | None = None  # the stream's last sample, once finished
        self.labels = list(runner.labels)
        self.rate = int(runner.sample_rate)
        self.length = int(runner.input_length)
        self.hop = self.settings.hop_samples(self.rate)
        self.edge = self.settings.edge_samples(self.rate)
        self.batch_size = max(1, int(getattr(runner, "batch_size", 32)))
        self._score = score or runner
        words = self.settings.keywords or [w for w in self.labels if w not in NOT_WORDS]
        self.keywords = tuple(words)
        self._index = np.array([self.labels.index(w) for w in words], dtype=np.int64)
        self._threshold = np.array([self.settings.threshold(w) for w in words])
        self._open = (self._threshold if self.verification is None else
                      np.full(len(words), self.verification.candidate_threshold))
        self._smooth_hops = max(1, int(round(self.settings.smoothing * self.rate / self.hop)))
        self._max_hops = max(0, int(round(self.settings.max_delay * self.rate / self.hop)))
        self._cooldown_hops = int(round(self.settings.cooldown * self.rate / self.hop))
        self._holdoff_hops = int(round(self.settings.holdoff * self.rate / self.hop))
        self._quiet_until = 0  # first hop index at which a new candidate may open
        self._holding: int | None = None  # the last detected keyword, holding others off
        keep = 3 * self.length + (self._max_hops + self._smooth_hops + 2) * self.hop
        if self.verification is not None:  # a candidate's audio until it is verified
            keep += self.length + self.batch_size * self.hop + int(math.ceil(
                (self.verification.context + self.verification.lookahead) * self.rate))
        self._ring = _Ring(keep, start=-self.edge)
        self._recent: list[np.ndarray] = []
        self._next = 0  # index of the next window to score
        self._candidate: _Candidate | None = None
        self._armed = np.ones(len(words), dtype=bool)
        self._last = np.full(len(words), -(10**9), dtype=np.int64)
        self._on_hop = on_hop
        self._finished = False

    @property
    def position(self) -> float:
        """Stream time received so far (seconds)."""
        return (self._ring.end if self._audio_end is None else self._audio_end) / self.rate

    @property
    def scored_until(self) -> float:
        """End of the last scored window (seconds): how far decisions have been made."""
        if self._next == 0:
            return 0.0
        return (self._window_start(self._next - 1) + self.length) / self.rate

    def threshold(self, keyword: str) -> float:
        """The threshold the detector applies to ``keyword``."""
        return float(self._threshold[self.keywords.index(keyword)])

    def feed(self, samples: np.ndarray) -> list[Detection]:
        """Take the next samples (float32 mono at the runner's rate, any number); return
        the detections decided with them, in time order."""
        if self._finished:
            raise KwsError("the detector was finished; start a new one for a new stream")
        samples = np.asarray(samples, dtype=np.float32)
        if samples.ndim != 1:
            raise KwsError(f"the detector takes mono samples, not an array of shape "
                           f"{samples.shape} (mix the channels first)")
        found: list[Detection] = []
        step = self.batch_size * self.hop
        for start in range(0, len(samples), step):
            self._ring.append(samples[start : start + step])
            found += self._verified(self._score_ready(self._ring.end))
        return found

    def finish(self) -> list[Detection]:
        """End of stream: score the windows still due (the last one zero-padded, as a file
        is) and decide any open candidate."""
        if self._finished:
            return []
        total = self._ring.end
        due = len(window_starts(total, self.length, self.hop, self.edge)) if total else 0
        found: list[Detection] = []
        self._audio_end = total
        if due > self._next:
            last_end = self._window_start(due - 1) + self.length
            self._ring.append(np.zeros(last_end - total, dtype=np.float32))
            found += self._score_ready(last_end, audio_end=total)
        if self._candidate is not None:
            found += self._decide(self._next - 1, min(total, self._ring.end))
        self._finished = True
        return self._verified(found)

    def _score_ready(self, available: int, audio_end: int | None = None) -> list[Detection]:
        """Score every window that ends within ``available`` samples, in batches."""
        found: list[Detection] = []
        while self._window_start(self._next) + self.length <= available:
            count = min(self.batch_size,
                        (available - self.length + self.edge) // self.hop - self._next + 1)
            starts = self._window_start(self._next + np.arange(count))
            batch = np.stack([self._ring.view(s, s + self.length) for s in starts])
            outputs = np.asarray(self._score(batch), dtype=np.float32)
            if outputs.shape != (count, len(self.labels)):
                raise KwsError(f"the model gave outputs of shape {outputs.shape} for "
                               f"{count} windows of {len(self.labels)} labels")
            if not np.isfinite(outputs).all():
                raise KwsError("the model's output is not finite (NaN or infinity); "
                               "audio is expected within -1..1")
            for row, start in zip(outputs, starts, strict=True):
                found += self._step(row, int(start), audio_end)
        return found

    def _step(self, posteriors: np.ndarray, start: int, audio_end: int | None) -> list[Detection]:
        """One hop: smooth, meter, open, extend or decide a candidate."""
        index = self._next
        self._next += 1
        self._recent.append(posteriors)
        if len(self._recent) > self._smooth_hops:
            self._recent.pop(0)
        smoothed = np.mean(self._recent, axis=0)
        end = start + self.length
        if self._on_hop is not None:
            self._on_hop(Hop(end / self.rate, self._level(end), posteriors, smoothed))
        scores = smoothed[self._index]
        above = scores >= self._open
        self._armed |= ~above & (index - self._last >= self._cooldown_hops)
        if self._holding is not None and above[self._holding]:
            self._quiet_until = index + 1 + self._holdoff_hops
        limit = end if audio_end is None else min(end, audio_end)
        found: list[Detection] = []
        candidate = self._candidate
        if candidate is not None:
            self._extend(candidate, index, scores, above, posteriors)
            if not above[list(candidate.peaks)].any() or index - candidate.first >= self._max_hops:
                found += self._decide(index, limit)
        elif self._may_open(above, index).any():
            self._candidate = _Candidate(index)
            self._extend(self._candidate, index, scores, above, posteriors)
            if self._max_hops == 0:
                found += self._decide(index, limit)
        return found

    def _may_open(self, above: np.ndarray, index: int) -> np.ndarray:
        """Keywords that may open a candidate: armed, above threshold, and during a
        hold-off only the keyword holding it (its own repeats are the cooldown's)."""
        allowed = above & self._armed
        if index < self._quiet_until and self._holding is not None:
            held = np.zeros_like(allowed)
            held[self._holding] = True
            allowed &= held
        return allowed

    def _extend(self, candidate: _Candidate, index: int, scores: np.ndarray,
                above: np.ndarray, posteriors: np.ndarray) -> None:
        """Add one hop to the candidate: each armed keyword above its threshold (or already
        in it) updates its peak and votes with the window's own probability."""
        for k in map(int, np.flatnonzero(above)):
            if k not in candidate.peaks and not self._armed[k]:
                continue
            peak = candidate.peaks.get(k)
            if peak is None or scores[k] > peak[0]:
                candidate.peaks[k] = (float(scores[k]), index)
            candidate.votes.setdefault(k, []).append((index,
                                                      float(posteriors[self._index[k]])))

    def _decide(self, index: int, limit: int) -> list[Detection]:
        """Close the candidate: its best keyword is a detection; every keyword in it waits
        to fall below its threshold (and the winner its cooldown) before it fires again."""
        candidate = self._candidate
        self._candidate = None
        if candidate is None or not candidate.peaks:
            return []
        best = max(candidate.peaks, key=lambda k: (candidate.peaks[k][0], -k))
        for k in candidate.peaks:
            self._armed[k] = False
        self._last[best] = index
        self._holding = best
        self._quiet_until = index + 1 + self._holdoff_hops
        votes = candidate.votes[best]
        weights = np.array([max(p, 1e-6) for _, p in votes])
        centres = np.array([(self._window_start(i) + self.length / 2) for i, _ in votes])
        centre = float(np.average(centres, weights=weights)) / self.rate
        first = max(0, self._ring.start, int(round(centre * self.rate)) - 2 * self.length)
        audio = self._ring.view(first, limit)
        start, end = loud_extent(audio, self.rate, centre - first / self.rate,
                                 self.length / self.rate)
        start, end = max(0.0, start + first / self.rate), min(limit / self.rate,
                                                              end + first / self.rate)
        return [Detection(self.keywords[best], round(candidate.peaks[best][0], 4),
                          round(start, 3), round(max(start, end), 3),
                          score=round(float(weights.sum()), 4),
                          decided_at=round(limit / self.rate, 3))]

    def _verified(self, decided: list[Detection]) -> list[Detection]:
        """Without a verifier, the decisions; with one, the candidates whose audio up to
        ``lookahead`` after them has arrived (all once the stream is finished) that its
        combined score accepts, in order."""
        if self._verifier is None:
            return decided
        self._pending += decided
        found: list[Detection] = []
        ahead, before = self.verification.lookahead, self.verification.context
        while self._pending:
            candidate = self._pending[0]
            last = int(math.ceil((candidate.end + ahead) * self.rate))
            if self._audio_end is None and self._ring.end < last:
                break
            self._pending.pop(0)
            if self._audio_end is not None:
                last = min(last, self._audio_end)
            first = max(self._ring.start, int((candidate.start - before) * self.rate))
            opinion = self._verifier(candidate.label, self._ring.view(first, last), self.rate,
                                     candidate.start - first / self.rate,
                                     candidate.end - first / self.rate)
            confidence = opinion.confidence
            if opinion.after_quiet:
                confidence = max(confidence, self.verification.quiet_floor)
            combined = combined_score(candidate.probability, confidence,
                                      self.verification.phone_weight)
            if combined >= self.threshold(candidate.label):
                found.append(replace(candidate, probability=round(combined, 4),
                                     decided_at=round(max(candidate.decided_at or 0.0,
                                                          last / self.rate), 3)))
        return found

    def _window_start(self, index: int | np.ndarray) -> int | np.ndarray:
        """Stream position of window ``index``'s first sample (negative in the edge)."""
        return index * self.hop - self.edge

    def _level(self, end: int) -> float:
        chunk = self._ring.view(max(self._ring.start, end - self.hop), end)
        energy = float(np.mean(np.square(chunk, dtype=np.float64))) if len(chunk) else 0.0
        return 10 * float(np.log10(energy + 1e-12))


class _Ring:
    """The last samples of a stream, addressed by absolute sample position.

    Holds at least ``keep`` samples; appending shifts the buffer only when it is full, so
    feeding one sample at a time costs O(1) amortised. A negative ``start`` is silence
    held before position 0.
    """

    def __init__(self, keep: int, start: int = 0) -> None:
        self.keep = keep
        self.data = np.zeros(4 * keep, dtype=np.float32)
        self.fill = 0
        self.start = start  # absolute position of data[0]
        self.append(np.zeros(max(0, -start), dtype=np.float32))  # silence before 0

    @property
    def end(self) -> int:
        return self.start + self.fill

    def append(self, samples: np.ndarray) -> None:
        if self.fill + len(samples) > len(self.data):
            drop = max(0, self.fill - self.keep)
            self.data[: self.fill - drop] = self.data[drop : self.fill]
            self.fill -= drop
            self.start += drop
            if self.fill + len(samples) > len(self.data):
                grown = np.zeros(2 * (self.fill + len(samples)), dtype=np.float32)
                grown[: self.fill] = self.data[: self.fill]
                self.data = grown
        self.data[self.fill : self.fill + len(samples)] = samples
        self.fill += len(samples)

    def view(self, first: int, last: int) -> np.ndarray:
        """Samples ``[first, last)`` (absolute positions, within what is held)."""
        return self.data[first - self.start : last - self.start]


def detect(runner: Runner, waveform: np.ndarray, settings: DetectorSettings | None = None,
           outputs: np.ndarray | None = None, verifier: Verifier | None = None
           ) -> list[Detection]:
    """Keywords in a whole recording: the stream detector fed everything, then finished.

    ``outputs``, when given, are the runner's outputs for the recording's windows at the
    settings' hop (:func:`~kws.infer.spotting.sliding_windows`), already computed (by the
    threaded pipeline of ``kws predict``); they are replayed instead of running the model.
    ``verifier``: the second opinion of settings with a verification.
    """
    score = None if outputs is None else _Replay(np.asarray(outputs, dtype=np.float32))
    detector = StreamDetector(runner, settings, score=score, verifier=verifier)
    return detector.feed(waveform) + detector.finish()


def replay(runner: Runner, outputs: np.ndarray, num_samples: int,
           settings: DetectorSettings | None = None) -> list[Detection]:
    """The detections recorded outputs give, without the audio (for counting them).

    ``outputs`` are the runner's outputs for the windows of a recording of ``num_samples``
    samples; silence stands in for the audio, so the decisions (labels, probabilities,
    times) are those of :func:`detect` and only the extents (``start``/``end``) are not.
    Used by calibration to try many thresholds on outputs computed once.
    """
    detector = StreamDetector(runner, settings, score=_Replay(np.asarray(outputs, np.float32)))
    piece = np.zeros(min(num_samples, 60 * detector.rate), dtype=np.float32)
    found: list[Detection] = []
    for start in range(0, num_samples, max(1, len(piece))):
        found += detector.feed(piece[: num_samples - start])
    return found + detector.finish()


class _Replay:
    """Scores windows by handing out recorded outputs in order."""

    def __init__(self, outputs: np.ndarray) -> None:
        self.outputs = outputs
        self.used = 0

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        rows = self.outputs[self.used : self.used + len(batch)]
        self.used += len(batch)
        if len(rows) != len(batch):
            raise KwsError(f"recorded outputs cover {len(self.outputs)} windows, "
                           f"the recording has more")
        return rows

