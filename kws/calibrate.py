"""Calibration: a threshold per keyword for a target rate of false accepts per hour.

Negative audio (long recordings in which none of the model's words is said: folders read by
:func:`kws.recordings.read_recordings`; with a ``transcripts.tsv`` only the recordings whose
transcript says no keyword) is scored once through the inference pipeline. The recordings
are split by speaker (or file) as :func:`kws.recordings.split_of` splits them: thresholds
are chosen on the training and validation recordings and checked on the held-out testing
recordings, so the figure reported is one the thresholds were not fitted to.

For each keyword, the threshold is the lowest on a fine grid at and above which the
keyword's smoothed posterior (the detector's) rises above the threshold at most
``target x hours`` times on the chosen half. The thresholds are then checked by replaying
the recorded outputs through the streaming detector itself (every keyword competing, with
cooldown), raised one grid step for any keyword still above the target, and finally
measured the same way on the held-out half. :func:`record_calibration` writes them into
the model card (``thresholds``, and ``metrics["calibration"]``), which ``kws predict
--spot`` and ``kws listen`` then use by default. A run that calibrates some keywords only
(``--keywords``) keeps the earlier runs' records of the others (:func:`merge_record`), so
every threshold in the card says how it was chosen.

With a verifier (``kws calibrate --verify``), what is calibrated is the combined score of
the verified detector (:class:`kws.modelfolder.Verification`): the detector's candidates
in each recording are verified once, and each keyword's threshold is the lowest on the
grid that at most ``target x hours`` of its candidates reach (reporting a candidate does
not change the detector's decisions, so no replay is needed). They go into the card's
``verification`` (and ``metrics["verified_calibration"]``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from kws import files
from kws.dataset import TESTING
from kws.errors import KwsError, UsageError
from kws.infer import (
    NOT_WORDS,
    DetectorSettings,
    Failure,
    Pipeline,
    Runner,
    detect,
    open_runner,
    replay,
)
from kws.infer.detector import DEFAULT_VERIFIED_THRESHOLD, Verifier
from kws.infer.runners import check_runner
from kws.infer.spotting import DEFAULT_SPOT_THRESHOLD
from kws.modelfolder import Task, Verification, read_card, resolve_model_dir, write_card
from kws.recordings import (
    Recording,
    keyword_free,
    read_recordings,
    require_both_sides,
    split_of,
)

#: Thresholds tried: from ``_LOWEST`` to 1 in steps of ``_STEP``.
_LOWEST, _STEP = 0.05, 0.0025
#: Times a threshold is raised one step when the detector's own count exceeds the target.
_RAISES = 40
#: Called with ``(recordings scored, recordings in all)``.
Progress = Callable[[int, int], None]
#: Key of a card's calibration record holding the earlier runs that still explain some
#: thresholds (of keywords later runs did not calibrate again), newest first.
EARLIER_RUNS = "earlier_runs"


@dataclass(frozen=True)
class KeywordCalibration:
    """One keyword's threshold and its false accepts on each half (``reached``: the target
    was met on the chosen half; when it was not, the threshold is 1.0)."""

    keyword: str
    threshold: float
    false_accepts: int
    fa_per_hour: float
    held_out_false_accepts: int
    held_out_fa_per_hour: float
    reached: bool


@dataclass
class Calibration:
    """The result of :func:`calibrate`."""

    model: Path
    target_fa_per_hour: float
    settings: DetectorSettings
    keywords: list[KeywordCalibration]
    hours: float
    held_out_hours: float
    recordings: int
    held_out_recordings: int
    #: Recordings left out because their transcript says one of the model's words.
    with_keywords: int = 0
    failures: list[Failure] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)
    #: Remarks on the folders read (listed files missing, files not listed).
    notes: list[str] = field(default_factory=list)

    @property
    def verified(self) -> bool:
        """Whether the thresholds are those of the verified detector's combined score."""
        return self.settings.verification is not None

    def to_json(self) -> dict:
        """The result as plain JSON values (``--json``, and the card's metrics entry)."""
        return {
            "target_fa_per_hour": self.target_fa_per_hour,
            "hours": round(self.hours, 4),
            "held_out_hours": round(self.held_out_hours, 4),
            "recordings": self.recordings,
            "held_out_recordings": self.held_out_recordings,
            "recordings_with_keywords": self.with_keywords,
            "folders": self.folders,
            "detector": self.settings.timing(),
            "verification": (None if self.settings.verification is None else {
                k: v for k, v in asdict(self.settings.verification).items()
                if k != "thresholds"}),
            "keywords": [asdict(k) for k in self.keywords],
            "held_out_fa_per_hour": _held_out_rate([asdict(k) for k in self.keywords],
                                                   self.held_out_hours),
            "failed": [f.message for f in self.failures],
        }


def _held_out_rate(keywords: Sequence[dict], held_out_hours: object) -> float:
    """False accepts per hour on the held-out part, summed over the keywords' records
    (a value of a card that is not a number counts as none)."""
    counts = [k.get("held_out_false_accepts") for k in keywords]
    total = sum(n for n in counts if isinstance(n, int | float))
    return _rate(total, held_out_hours if isinstance(held_out_hours, int | float) else 0.0)


@dataclass
class _Scores:
    """One recording's outputs, its length in samples, whether it is held out, and (with
    a verifier) its candidates' ``(keyword, combined score)``."""

    outputs: np.ndarray
    samples: int
    held_out: bool
    verified: list[tuple[str, float]] = field(default_factory=list)


def calibrate(model: str | os.PathLike | None, negatives: Sequence[str | os.PathLike],
              target_fa_per_hour: float, keywords: Sequence[str] | None = None,
              runner: str = "auto", threads: int | None = None,
              progress: Progress | None = None,
              min_threshold: float | None = None,
              verifier: Verifier | None = None) -> Calibration:
    """Choose a threshold per keyword so that false accepts per hour stay within the target.

    Parameters
    ----------
    model
        A classifier model folder (``None``: the shipped default).
    negatives
        Folders (or files) of recordings that hold no keyword.
    target_fa_per_hour
        False accepts per hour allowed per keyword.
    keywords
        The keywords to calibrate (default: every word of the model).
    runner, threads
        As ``kws predict``.
    min_threshold
        No threshold is set below this (default: the detector's default threshold).
        Negative audio shows where false accepts happen, not what a lower threshold would
        gain in recall, and a model scores low on the negatives it was trained on: without
        a floor, little negative audio would pull thresholds far down. With a verifier:
        :data:`~kws.infer.detector.DEFAULT_VERIFIED_THRESHOLD`.
    verifier
        Calibrate the verified detector of the card's verification (its defaults when it
        has none) with this second opinion.

    Returns
    -------
    Calibration
        Thresholds and false-accept rates on the chosen and held-out halves; nothing is
        written (see :func:`record_calibration`).
    """
    settings, folder = _settings(model, target_fa_per_hour, keywords, runner,
                                 verifier is not None)
    if not negatives:
        raise UsageError("give at least one --negatives folder")
    recordings, with_keywords, notes = _negative_recordings(negatives,
                                                            read_card(folder).labels)
    loaded = open_runner(folder, runner, threads)
    scores, failures = _score(loaded, recordings, settings, progress, verifier)
    chosen = [s for s in scores if not s.held_out]
    held_out = [s for s in scores if s.held_out]
    require_both_sides(len(chosen), len(held_out), [f.message for f in failures],
                       notes=notes)
    hours, held_hours = _hours(chosen, loaded), _hours(held_out, loaded)
    words = list(settings.keywords or [w for w in loaded.labels if w not in NOT_WORDS])
    default = (DEFAULT_SPOT_THRESHOLD[Task.CLASSIFIER] if verifier is None
               else DEFAULT_VERIFIED_THRESHOLD)
    floor = _on_grid(default if min_threshold is None else min_threshold)
    allowed = target_fa_per_hour * hours
    final, counts, held_counts = _thresholds(loaded, settings, words, chosen, held_out,
                                             floor, allowed)
    thresholds = final.thresholds
    rows = [KeywordCalibration(w, thresholds[w], counts[w], _rate(counts[w], hours),
                               held_counts[w], _rate(held_counts[w], held_hours),
                               counts[w] <= allowed) for w in words]
    return Calibration(folder, target_fa_per_hour, final, rows, hours, held_hours, len(chosen),
                       len(held_out), with_keywords, failures, [str(n) for n in negatives],
                       notes)


def _thresholds(runner: Runner, settings: DetectorSettings, words: list[str],
                chosen: list[_Scores], held_out: list[_Scores], floor: float,
                allowed: float) -> tuple[DetectorSettings, dict[str, int], dict[str, int]]:
    """Each keyword's lowest threshold (at least ``floor``) with at most ``allowed`` false
    accepts on the chosen half: ``(settings with them, false accepts on the chosen half,
    on the held-out half)``. Verified settings threshold the candidates' combined scores."""
    if settings.verification is None:
        thresholds = {w: max(floor, _lowest_threshold(runner, chosen, settings, w, allowed))
                      for w in words}
        thresholds, counts = _check(runner, chosen, settings, thresholds, allowed)
        final = replace(settings, thresholds=thresholds)
        return final, counts, _false_accepts(runner, held_out, final)
    thresholds = {w: max(floor, _lowest_verified(chosen, w, allowed)) for w in words}
    counts, held_counts = (_verified_accepts(part, thresholds) for part in (chosen, held_out))
    return replace(settings, thresholds=thresholds), counts, held_counts


def record_calibration(calibration: Calibration, command: str = "") -> None:
    """Write the thresholds and the calibration's figures into the model's card.

    Thresholds of keywords not calibrated this time are kept, and so are the records of
    how they were chosen (:func:`merge_record`). The card is rewritten under the folder's
    lock (:func:`kws.files.locked_folder`), atomically.
    """
    folder = calibration.model
    chosen = {k.keyword: k.threshold for k in calibration.keywords}
    key = "verified_calibration" if calibration.verified else "calibration"
    with files.locked_folder(folder, option="MODEL"):
        card = read_card(folder)
        entry = {**calibration.to_json(), "command": command}
        card.metrics[key] = merge_record(card.metrics.get(key), entry)
        if calibration.verified:
            kept = card.verification.thresholds if card.verification else {}
            card.verification = replace(calibration.settings.verification,
                                        thresholds={**kept, **chosen})
        else:
            card.thresholds = {**card.thresholds, **chosen}
        try:
            write_card(folder, card)
        except OSError as error:
            raise KwsError(f"{folder}: cannot write card.json ({error.strerror})") from None


def calibration_runs(record: object) -> list[dict]:
    """The runs of a card's calibration record, newest first: the record itself (without
    :data:`EARLIER_RUNS`), then its earlier runs. Empty when there is no record."""
    if not isinstance(record, dict):
        return []
    earlier = record.get(EARLIER_RUNS)
    runs = [record, *(earlier if isinstance(earlier, list) else [])]
    return [{key: value for key, value in run.items() if key != EARLIER_RUNS}
            for run in runs if isinstance(run, dict)]


def merge_record(previous: object, entry: dict) -> dict:
    """A card's calibration record after a run: this run's ``entry``, with the earlier
    runs of ``previous`` that still explain a threshold under :data:`EARLIER_RUNS`.

    An earlier run keeps only the records of keywords no newer run calibrated (and its
    held-out rate is summed over those); a run left with none is dropped. So a run with
    ``--keywords yes`` keeps how the other keywords' thresholds were chosen (their
    folders, hours, false accepts and command), and a full run replaces them all.
    """
    calibrated = {k["keyword"] for k in entry["keywords"]}
    earlier = []
    for run in calibration_runs(previous):
        records = run.get("keywords")
        kept = [k for k in records if isinstance(k, dict) and k.get("keyword")
                not in calibrated] if isinstance(records, list) else []
        if kept:
            earlier.append({**run, "keywords": kept, "held_out_fa_per_hour": _held_out_rate(
                kept, run.get("held_out_hours"))})
            calibrated |= {k.get("keyword") for k in kept}
    return {**entry, EARLIER_RUNS: earlier} if earlier else entry


def _settings(model, target: float, keywords, runner: str, verify: bool
              ) -> tuple[DetectorSettings, Path]:
    """Check the arguments against the card, before any model is loaded."""
    if not (target > 0 and math.isfinite(target)):
        raise UsageError("--target-fa-per-hour must be a positive number")
    check_runner(runner)
    folder = resolve_model_dir(model)
    card = read_card(folder)
    settings = DetectorSettings.from_card(card, threshold=_LOWEST, keywords=keywords,
                                          verify=verify)
    if settings.verification is not None:  # thresholds for today's combined score
        settings = replace(settings, verification=replace(
            settings.verification, phone_weight=Verification.phone_weight,
            quiet_floor=Verification.quiet_floor))
    return settings, folder


def _negative_recordings(negatives: Sequence[str | os.PathLike], labels: Sequence[str]
                         ) -> tuple[list[Recording], int, list[str]]:
    """The recordings of the folders that say none of the model's words, how many were
    left out for saying one, and the folders' notes (files skipped)."""
    words = [w for w in labels if w not in NOT_WORDS]
    recordings: list[Recording] = []
    notes: list[str] = []
    left_out = 0
    for source in negatives:
        folder = read_recordings(source)
        free, said = keyword_free(folder.recordings, words)
        recordings += free
        left_out += len(said)
        notes += folder.notes
    if not recordings:
        raise KwsError("no negative recordings: every transcript says a keyword")
    return recordings, left_out, notes


def _score(runner: Runner, recordings: list[Recording], settings: DetectorSettings,
           progress: Progress | None, verifier: Verifier | None = None
           ) -> tuple[list[_Scores], list[Failure]]:
    """Every recording's window outputs, scored once through the pipeline, and with a
    verifier its candidates' combined scores (every candidate reported)."""
    everything = settings.reporting_everything()
    pipeline = Pipeline(runner, settings.cutter(runner.sample_rate, runner.input_length),
                        ahead=4)
    held = {r.path: split_of(r) == TESTING for r in recordings}
    scores, failures = [], []
    for result in pipeline.run([r.path for r in recordings]):
        if isinstance(result, Failure):
            failures.append(result)
        else:
            verified = [] if verifier is None else [
                (d.label, d.probability) for d in detect(
                    runner, result.waveform, everything, result.outputs, verifier)]
            scores.append(_Scores(result.outputs, len(result.waveform), held[result.item],
                                  verified))
        if progress:
            progress(len(scores) + len(failures), len(recordings))
    return scores, failures


def _hours(scores: list[_Scores], runner: Runner) -> float:
    return sum(s.samples for s in scores) / runner.sample_rate / 3600


def _rate(count: int, hours: float) -> float:
    return round(count / hours, 3) if hours > 0 else 0.0


def _grid() -> np.ndarray:
    return np.round(np.arange(_LOWEST, 1.0 + _STEP / 2, _STEP), 4)


def _on_grid(threshold: float) -> float:
    """The smallest grid threshold at or above ``threshold``."""
    if not 0.0 <= threshold <= 1.0:
        raise UsageError(f"--min-threshold must be in 0..1, not {threshold:g}")
    grid = _grid()
    return float(grid[min(len(grid) - 1, int(np.searchsorted(grid, threshold - 1e-9)))])


def _lowest_threshold(runner: Runner, scores: list[_Scores], settings: DetectorSettings,
                      keyword: str, allowed: float) -> float:
    """The lowest grid threshold at and above which the keyword's smoothed posterior rises
    above the threshold at most ``allowed`` times (1.0 when none does)."""
    column = runner.labels.index(keyword)
    hop = settings.hop_samples(runner.sample_rate)
    width = max(1, int(round(settings.smoothing * runner.sample_rate / hop)))
    grid = _grid()
    rises = np.zeros(len(grid), dtype=np.int64)
    for score in scores:
        smoothed = _running_mean(score.outputs[:, column], width)
        above = smoothed[:, None] >= grid[None, :]
        rises += above[0] + np.sum(above[1:] & ~above[:-1], axis=0)
    fine = rises <= allowed
    # the lowest threshold from which every higher one meets the target too
    bad = np.flatnonzero(~fine)
    first = 0 if not len(bad) else int(bad[-1]) + 1
    return float(grid[min(first, len(grid) - 1)])


def _lowest_verified(scores: list[_Scores], keyword: str, allowed: float) -> float:
    """The lowest grid threshold that at most ``allowed`` of the keyword's verified
    candidates reach (1.0 when more reach every one)."""
    combined = np.sort([c for s in scores for w, c in s.verified if w == keyword])
    grid = _grid()
    reaching = len(combined) - np.searchsorted(combined, grid - 1e-9)
    fine = np.flatnonzero(reaching <= allowed)
    return float(grid[fine[0]]) if len(fine) else 1.0


def _verified_accepts(scores: list[_Scores], thresholds: dict[str, float]) -> dict[str, int]:
    """The verified detector's false accepts per keyword at the thresholds."""
    counts = dict.fromkeys(thresholds, 0)
    for score in scores:
        for word, combined in score.verified:
            if word in counts and combined >= thresholds[word]:
                counts[word] += 1
    return counts


def _running_mean(values: np.ndarray, width: int) -> np.ndarray:
    """The detector's smoothing: the mean of the last ``width`` values (fewer at first)."""
    total = np.cumsum(np.asarray(values, dtype=np.float64))
    shifted = np.concatenate([np.zeros(width), total[:-width]]) if len(total) > width \
        else np.zeros(len(total))
    counts = np.minimum(np.arange(1, len(total) + 1), width)
    return ((total - shifted[: len(total)]) / counts).astype(np.float32)


def _check(runner: Runner, scores: list[_Scores], settings: DetectorSettings,
           thresholds: dict[str, float], allowed: float) -> tuple[dict[str, float], dict]:
    """Replay the detector with the thresholds; raise those still above the target."""
    grid = _grid()
    for _ in range(_RAISES):
        trial = replace(settings, thresholds=thresholds)
        counts = _false_accepts(runner, scores, trial)
        over = [w for w, n in counts.items() if n > allowed and thresholds[w] < 1.0]
        if not over:
            break
        for word in over:
            thresholds[word] = float(grid[min(len(grid) - 1,
                                              np.searchsorted(grid, thresholds[word]) + 1)])
    return thresholds, counts


def _false_accepts(runner: Runner, scores: list[_Scores],
                   settings: DetectorSettings) -> dict[str, int]:
    """Detections per keyword of the streaming detector on the recorded outputs."""
    words = settings.keywords or [w for w in runner.labels if w not in NOT_WORDS]
    counts = dict.fromkeys(words, 0)
    for score in scores:
        for detection in replay(runner, score.outputs, score.samples, settings):
            counts[detection.label] += 1
    return counts
