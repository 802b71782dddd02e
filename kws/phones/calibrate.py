"""Calibrating open-vocabulary spotting: confidence to false accepts per hour.

``kws phones spot`` can look for any English word, so the keyword is not known when a
phone model is calibrated: what is calibrated is the *score scale*. Random CMUdict words
(seeded, spread over 2 to 10 phones) are spotted in negative recordings (folders read by
:func:`kws.recordings.read_recordings`); for each word, the recordings whose transcript
says it are skipped, so every detection is a false accept. Each recording's posteriors are
computed once, and the alignments of every word are scored in one pass over its frames
(:func:`kws.phones.ctc.keyword_scores_many`: every word in one pass); the
detections are those of ``kws phones spot`` (:func:`kws.phones.recognizer.spot_in`), down
to :data:`SEARCH_FLOOR`.

Short words false-accept more than long ones, so pronunciations are grouped by length
(:data:`PHONE_GROUPS`), as ``kws phones spot`` holds each pronunciation to its own
length's threshold: a detection counts in the group of the pronunciation that made it, and
a word's hours in the group of each of its pronunciations. For each group, the false
accepts per keyword per hour at each threshold (all the group's false accepts over its
keyword-hours) form a :class:`kws.stream_eval.Curve`, fitted on the training and
validation recordings (:func:`kws.recordings.split_of`, as ``kws calibrate``); the
thresholds at :data:`FA_TARGETS` are then checked on the held-out recordings. In a folder
the model was trained on, its training recordings are left out and its own validation
and testing splits fit and check.
:func:`record_phone_calibration` writes the curves into the model card
(:class:`kws.modelfolder.FaCalibration`), from which ``kws phones spot --fa-per-hour``
takes its threshold and each detection its ``fa_per_hour``.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from kws import files
from kws.dataset import TESTING, TRAINING
from kws.errors import KwsError, UsageError
from kws.infer import Failure, Scored
from kws.modelfolder import (
    FaCalibration,
    FaGroup,
    Task,
    read_card,
    resolve_model_dir,
    write_card,
)
from kws.phones import ctc
from kws.phones.data import phone_ids
from kws.phones.lexicon import cmudict_lexicon
from kws.phones.recognizer import (
    PhoneRecognizer,
    model_lexicon,
    phone_card,
    spot_in,
    training_split,
)
from kws.recordings import Recording, read_recordings, require_both_sides, split_of
from kws.stream_eval import Counts, Curve

#: Groups of keyword lengths, in phones (``None``: no upper bound).
PHONE_GROUPS: tuple[tuple[int, int | None], ...] = ((2, 3), (4, 5), (6, 7), (8, None))
#: Lengths of the calibration words (phones of their shortest pronunciation).
WORD_PHONES = (2, 10)
#: Rates of false accepts per hour whose thresholds the card records.
FA_TARGETS = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0)
#: Calibration words by default.
DEFAULT_WORDS = 60
#: Detections are collected down to this confidence (the curve's lowest point).
SEARCH_FLOOR = 0.05
#: The curve's thresholds: every ``_STEP`` from :data:`SEARCH_FLOOR` to 1; in the card
#: only the points where the rate changes by more than ``_KEEP_RATIO``, from the highest
#: at most ``_MAX_FA`` false accepts per hour up.
_STEP = 0.0025
_KEEP_RATIO = 1.1
_MAX_FA = 1000.0
#: Called with ``(recordings scored, recordings in all)``.
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class CalibrationWord:
    """A word to spot, its pronunciations, and its length (its shortest pronunciation)."""

    word: str
    pronunciations: tuple[tuple[str, ...], ...]

    @property
    def phones(self) -> int:
        return min(len(p) for p in self.pronunciations)

    @property
    def groups(self) -> tuple[int, ...]:
        """The groups (:data:`PHONE_GROUPS` indices) of its pronunciations' lengths."""
        return tuple(sorted({group_index(len(p)) for p in self.pronunciations}))


def group_index(phones: int) -> int:
    """The index in :data:`PHONE_GROUPS` of keywords of ``phones`` phones."""
    for index, (low, high) in enumerate(PHONE_GROUPS):
        if phones <= (math.inf if high is None else high) and (phones >= low or index == 0):
            return index
    return len(PHONE_GROUPS) - 1


def calibration_words(count: int, seed: int = 0, avoid: Sequence[str] = ()
                      ) -> list[CalibrationWord]:
    """``count`` random CMUdict words (letters only), the same for the same seed.

    The words are dealt to the groups of :data:`PHONE_GROUPS` in turn and, within a group,
    to its lengths (of :data:`WORD_PHONES`) in turn, so every group has words as soon as
    ``count`` reaches the number of groups. Words of ``avoid`` are not drawn.
    """
    low, high = WORD_PHONES
    avoided = {w.lower() for w in avoid}
    by_length: dict[int, list[str]] = {n: [] for n in range(low, high + 1)}
    entries = cmudict_lexicon().entries
    for word, prons in entries.items():
        length = min(len(p) for p in prons)
        if (low <= length <= high and len(word) >= 2 and word.isascii() and word.isalpha()
                and word not in avoided):
            by_length[length].append(word)
    wanted: dict[int, int] = dict.fromkeys(by_length, 0)
    for index in range(count):
        first, last = PHONE_GROUPS[index % len(PHONE_GROUPS)]
        lengths = list(range(first, (high if last is None else last) + 1))
        wanted[lengths[(index // len(PHONE_GROUPS)) % len(lengths)]] += 1
    rng = random.Random(f"kws-phone-calibration|{seed}")
    chosen = []
    for length, words in by_length.items():
        picked = rng.sample(sorted(words), min(wanted[length], len(words)))
        chosen += [CalibrationWord(word, entries[word]) for word in sorted(picked)]
    return chosen


# ----------------------------------------------------------------------------- scoring


class _Searcher:
    """``spot_in``'s search over alignments scored once for every calibration word."""

    def __init__(self, words: Sequence[CalibrationWord]) -> None:
        self.words = list(words)
        self.ids = [[phone_ids(p) for p in w.pronunciations] for w in self.words]
        self.keys = list(dict.fromkeys(tuple(ids) for per in self.ids for ids in per))
        self.scored: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray]] = {}

    def score(self, log_probs: np.ndarray) -> None:
        self.scored = dict(zip(self.keys, ctc.keyword_scores_many(log_probs, self.keys),
                               strict=True))

    def __call__(self, log_probs, labels, threshold, max_frames=None) -> list[ctc.KeywordHit]:
        return ctc.select_hits(*self.scored[tuple(labels)], threshold, max_frames)


# ----------------------------------------------------------------------------- calibration


@dataclass
class GroupScores:
    """Detection scores of a group's words on one side of the split, and keyword-seconds."""

    scores: list[float] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class PhoneCalibration:
    """The result of :func:`calibrate_phones` (nothing written yet)."""

    model: Path
    calibration: FaCalibration
    failures: list[Failure] = field(default_factory=list)
    #: Notes on the folders (files left out).
    notes: list[str] = field(default_factory=list)
    #: (recording, word) pairs skipped because the recording's transcript says the word.
    skipped: int = 0

    def to_json(self) -> dict:
        """Plain JSON values (``--json``)."""
        return {"model": str(self.model), **asdict(self.calibration),
                "skipped_saying_the_word": self.skipped, "notes": self.notes,
                "failed": [f.message for f in self.failures]}


def calibrate_phones(model: str | os.PathLike | None, negatives: Sequence[str | os.PathLike],
                     words: int = DEFAULT_WORDS, seed: int = 0,
                     targets: Sequence[float] = FA_TARGETS,
                     progress: Progress | None = None) -> PhoneCalibration:
    """Measure false accepts per hour of open-vocabulary spotting on negative recordings.

    Parameters
    ----------
    model
        A phone model folder (``None``: the shipped one).
    negatives
        Folders (or files) of recordings of speech or noise; with a ``transcripts.tsv``, a
        word is not searched in the recordings that say it.
    words, seed
        How many random CMUdict words to spot (at least one per group of
        :data:`PHONE_GROUPS`), and the seed drawing them.
    targets
        Rates of false accepts per hour at which thresholds are recorded and checked.

    Returns
    -------
    PhoneCalibration
        The curves (:class:`kws.modelfolder.FaCalibration`), fitted on the training and
        validation recordings and checked on the held-out ones.
    """
    _check_request(negatives, words, targets)
    folder = resolve_model_dir(model, Task.PHONES)
    phone_card(folder)
    recordings, held_out, notes = negative_recordings(negatives, read_card(folder))
    chosen = calibration_words(words, seed, model_lexicon(folder).words)
    recognizer = PhoneRecognizer(folder)
    by_path = {str(r.path): r for r in recordings}
    tally = _Tally(chosen, recognizer.frame_seconds)

    def convert(scored: Scored, posteriors: np.ndarray) -> list[tuple[str, int]]:
        recording = by_path[scored.path]
        tally.add(recording, held_out[recording.path],
                  len(scored.waveform) / recognizer.sample_rate, posteriors)
        return [(scored.path, 1)]

    failures = []
    stream = recognizer.stream(list(by_path), None, convert, batch_size=64)
    for done, record in enumerate(stream, start=1):
        if isinstance(record, Failure):
            failures.append(record)
        if progress:
            progress(done, len(by_path))
    require_both_sides(tally.recordings[False], tally.recordings[True],
                       [f.message for f in failures], "fitted", notes)
    return PhoneCalibration(folder, tally.calibration(targets, seed, negatives), failures,
                            notes, tally.skipped)


def _check_request(negatives: Sequence[str | os.PathLike], words: int,
                   targets: Sequence[float]) -> None:
    """UsageError for a calibration that cannot be made, before the model is loaded."""
    if words < len(PHONE_GROUPS):
        raise UsageError(f"--words must be at least {len(PHONE_GROUPS)} (one per group of "
                         "word lengths)")
    if not negatives:
        raise UsageError("give at least one --negatives folder")
    if not targets or not all(0 < t < math.inf for t in targets):
        raise UsageError("false-accept targets must be positive numbers")


class _Tally:
    """Every calibration word's detections in each recording, by group of word lengths
    and side of the split (fitted or held out), with the keyword-seconds searched."""

    def __init__(self, words: Sequence[CalibrationWord], frame_seconds: float) -> None:
        self.words = list(words)
        self.frame_seconds = frame_seconds
        self.searcher = _Searcher(self.words)
        self.sides = {(g, held): GroupScores() for g in range(len(PHONE_GROUPS))
                      for held in (False, True)}
        self.recordings = {False: 0, True: 0}
        self.seconds = {False: 0.0, True: 0.0}
        #: (recording, word) pairs skipped because the recording's transcript says the word.
        self.skipped = 0

    def add(self, recording: Recording, held: bool, seconds: float,
            posteriors: np.ndarray) -> None:
        """Spot every word not said in one recording (its phone posteriors)."""
        self.recordings[held] += 1
        self.seconds[held] += seconds
        log_probs = ctc.log_posteriors(posteriors)
        self.searcher.score(log_probs)
        for word, ids in zip(self.words, self.searcher.ids, strict=True):
            if word.word in recording.words:
                self.skipped += 1
                continue
            for group in word.groups:
                self.sides[(group, held)].seconds += seconds
            for d in spot_in(log_probs, str(recording.path), word.word, word.pronunciations, ids,
                             SEARCH_FLOOR, self.frame_seconds, seconds, search=self.searcher):
                self.sides[(group_index(len(d.pronunciation)), held)].scores.append(
                    d.probability)

    def calibration(self, targets: Sequence[float], seed: int,
                    negatives: Sequence[str | os.PathLike]) -> FaCalibration:
        """The curves fitted on one side and checked on the other."""
        groups = [fa_group(low, high, sum(g in w.groups for w in self.words),
                           self.sides[(g, False)], self.sides[(g, True)], targets)
                  for g, (low, high) in enumerate(PHONE_GROUPS)]
        return FaCalibration(
            groups=groups, targets=[float(t) for t in targets],
            hours=round(self.seconds[False] / 3600, 4),
            held_out_hours=round(self.seconds[True] / 3600, 4),
            recordings=self.recordings[False], held_out_recordings=self.recordings[True],
            words=[w.word for w in self.words], seed=seed, folders=[str(n) for n in negatives])


def record_phone_calibration(result: PhoneCalibration, command: str = "") -> None:
    """Write the calibration into the model's card (under the folder's lock, atomically),
    replacing an earlier one."""
    folder = result.model
    with files.locked_folder(folder, option="--model"):
        card = read_card(folder)
        card.fa_calibration = replace(result.calibration, command=command)
        try:
            write_card(folder, card)
        except OSError as error:
            raise KwsError(f"{folder}: cannot write card.json ({error.strerror})") from None


def negative_recordings(negatives: Sequence[str | os.PathLike], card
                    ) -> tuple[list[Recording], dict[Path, bool], list[str]]:
    """The negative recordings, whether each is held out (checks rather than fits), and
    notes.

    A folder the model was trained on keeps only the recordings of its validation split
    (they fit) and testing split (held out), by the split training used: calibrating on
    what the model learnt from would promise fewer false accepts than new speech gives.
    Other folders split as ``kws calibrate`` splits them.
    """
    recordings: dict[Path, Recording] = {}
    held_out: dict[Path, bool] = {}
    notes: list[str] = []
    for source in negatives:
        folder = read_recordings(source)
        notes += folder.notes
        percent = training_split(card.recipe, source)
        left = 0
        for recording in folder.recordings:
            if recording.path in recordings:
                continue
            split = split_of(recording, *percent) if percent else None
            if split == TRAINING:
                left += 1
                continue
            recordings[recording.path] = recording
            held_out[recording.path] = (split or split_of(recording)) == TESTING
        if left:
            notes.append(f"{source}: {left} recording(s) the model was trained on left out; "
                         "its validation recordings fit, its testing recordings check")
    return list(recordings.values()), held_out, notes


# ----------------------------------------------------------------------------- curves


def fa_curve(name: str, scores: Sequence[float], hours: float) -> Curve:
    """False accepts at every threshold of the sweep (descending, every ``_STEP`` from 1
    down to :data:`SEARCH_FLOOR`): the detections scoring at least the threshold."""
    grid = np.round(np.arange(1.0, SEARCH_FLOOR - _STEP / 2, -_STEP), 4)
    ranked = np.sort(np.asarray(scores, dtype=np.float64))
    false = len(ranked) - np.searchsorted(ranked, grid, "left")
    return Curve(name, grid, np.zeros(len(grid), dtype=np.int64), false, 0, hours)


def curve_points(curve: Curve) -> tuple[list[float], list[float]]:
    """The points of a curve kept in the card: ``(confidence ascending, FA/h)``.

    From the highest threshold above :data:`_MAX_FA` false accepts per hour (if any) up,
    keeping only the points that linear interpolation needs to stay within
    :data:`_KEEP_RATIO` of the rate. Beyond the highest score of any false accept the rate
    falls linearly to 0 at confidence 1 (below the calibration's resolution, one false
    accept in ``hours``), unless some false accepts score 1.
    """
    hours = curve.hours if curve.hours > 0 else math.inf
    conf = [float(c) for c in curve.thresholds[::-1]]
    rate = [float(n) / hours for n in curve.false_accepts[::-1]]
    nonzero = [i for i, r in enumerate(rate) if r > 0]
    if not nonzero:
        return [conf[0], 1.0], [0.0, 0.0]
    if nonzero[-1] < len(conf) - 1:
        conf, rate = conf[: nonzero[-1] + 1] + [1.0], rate[: nonzero[-1] + 1] + [0.0]
    over = [i for i, r in enumerate(rate) if r > _MAX_FA]
    begin = over[-1] if over else 0
    conf, rate = conf[begin:], rate[begin:]
    keep = [0]
    for i in range(1, len(conf) - 1):
        if rate[i + 1] <= 0 or rate[keep[-1]] > _KEEP_RATIO * rate[i + 1]:
            keep.append(i)
    keep.append(len(conf) - 1)
    return [round(conf[i], 4) for i in keep], [round(rate[i], 4) for i in keep]


def fa_group(low: int, high: int | None, words: int, fitted: GroupScores, held_out: GroupScores,
             targets: Sequence[float]) -> FaGroup:
    """A group's curve from its fitted scores, with thresholds at ``targets`` and their
    false accepts per hour on the held-out scores."""
    hours, held_hours = fitted.seconds / 3600, held_out.seconds / 3600
    group = FaGroup(low, high, words, round(hours, 4), round(held_hours, 4), [], [])
    group.confidence, group.fa_per_hour = curve_points(fa_curve(group.name, fitted.scores,
                                                                hours))
    held = np.sort(np.asarray(held_out.scores, dtype=np.float64))
    for target in targets:
        threshold = group.threshold_for(target)
        false = int(len(held) - np.searchsorted(held, threshold, "left"))
        counts = Counts(0, 0, false, held_hours)
        key = f"{target:g}"
        group.thresholds[key] = threshold
        group.held_out_fa_per_hour[key] = round(counts.fa_per_hour, 4) if held_hours else 0.0
    return group
