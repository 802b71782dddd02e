"""Measuring open-vocabulary spotting: ``kws phones evaluate --spot``.

The words are searched as ``kws phones spot`` searches them (:func:`spot_targets`,
:func:`kws.phones.recognizer.spot_in`) in transcribed recordings (the folders
:func:`kws.recordings.read_recordings` reads), and scored as ``kws evaluate --stream``
scores the classifier's detector (:class:`kws.stream_eval.Tally`): in a recording whose
transcript says a word N times, up to N of its detections are hits and the rest false
accepts. Reported per word and overall: hits, misses, false accepts per hour at the
operating thresholds (the model card's, one per pronunciation, or ``--threshold``), and
the DET curve of one threshold for every word swept over :data:`SPOT_SWEEP`.

A folder the model was trained on is split as training split it (the card's recipe), so
``--split test`` holds only speakers it never heard; other folders are split by speaker
with the given shares.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np

from kws import audio
from kws.errors import AudioError, UsageError
from kws.infer.clips import SPLIT_CHOICES
from kws.modelfolder import Task, resolve_model_dir
from kws.phones import ctc
from kws.phones.recognizer import (
    PhoneRecognizer,
    SpotTarget,
    check_rate_calibrated,
    check_spot_options,
    model_lexicon,
    phone_card,
    spot_in,
    spot_targets,
    training_split,
)
from kws.recordings import TRANSCRIPTS, Recording, read_recordings, split_of, words_of
from kws.stream_eval import (
    SourceScore,
    Spot,
    StreamEvaluation,
    StreamProgress,
    Tally,
    Truth,
    nothing_scored,
)

#: The DET curve's thresholds: one confidence for every word, 0.01 to 0.99.
SPOT_SWEEP = tuple(round(0.01 * step, 2) for step in range(99, 0, -1))


def times_said(words: Sequence[str], keyword: str) -> int:
    """How often a transcript's ``words`` say ``keyword`` (a word, or words in a row)."""
    target = words_of(keyword)
    size = len(target)
    return sum(list(words[i : i + size]) == target for i in range(len(words) - size + 1))


def evaluate_spotting(
    model: str | os.PathLike | None,
    recordings: Sequence[str | os.PathLike],
    keywords: Sequence[str],
    threshold: float | None = None,
    fa_per_hour: float | None = None,
    split: str = "test",
    shares: tuple[float, float] = (10.0, 10.0),
    lexicon: str | os.PathLike | None = None,
    warn: Callable[[str], None] | None = None,
    progress: StreamProgress | None = None,
) -> StreamEvaluation:
    """Spot ``keywords`` (any English words) in folders of transcribed recordings; score.

    ``threshold`` / ``fa_per_hour`` choose the operating point as ``kws phones spot``
    does; ``split`` the recordings (``shares``: validation and testing percent of folders
    the model did not train on); ``progress(done, total)`` is called per recording.

    Raises
    ------
    UsageError
        No folder, no keyword, or a threshold or rate that cannot work (before the model
        loads).
    """
    check_spot_options(threshold, fa_per_hour)
    if not recordings:
        raise UsageError("--spot needs folders of transcribed recordings (--data)")
    if not keywords:
        raise UsageError("--spot needs the words to find (--keyword)")
    if split not in SPLIT_CHOICES:
        raise UsageError(f"--split: {split!r} is not one of {', '.join(SPLIT_CHOICES)}")
    folder = resolve_model_dir(model, Task.PHONES)
    card = phone_card(folder)
    check_rate_calibrated(folder, card.fa_calibration, threshold, fa_per_hour)
    words = model_lexicon(folder, lexicon)
    targets = spot_targets(keywords, None, words, card.fa_calibration, threshold, fa_per_hour,
                           warn=warn)
    names = [t.spotted.word for t in targets]
    chosen, sources, notes = _chosen(recordings, card.recipe, split, shares, names)
    recognizer = PhoneRecognizer(folder, words)
    pooled = Tally(names, SPOT_SWEEP)
    failed: list[tuple[str, str]] = []
    for done, (recording, source) in enumerate(chosen, start=1):
        try:
            waveform = audio.load(recording.path, recognizer.sample_rate)
        except AudioError as error:
            failed.append((str(error.path), error.problem))
        else:
            truth, operating, swept = _scored(recognizer, targets, recording, waveform)
            source.tally.add(truth, operating, swept)
            pooled.add(truth, operating, swept)
        if progress is not None:
            progress(done, len(chosen))
    if not pooled.recordings:
        raise nothing_scored(len(chosen), failed, notes, split)
    thresholds = {t.spotted.word: min(t.thresholds) for t in targets}
    return StreamEvaluation(str(folder), recognizer.runner.name, split,
                            pooled.result(thresholds), sources, failed, notes)


def _chosen(recordings: Sequence[str | os.PathLike], recipe: dict, split: str,
            shares: tuple[float, float], names: Sequence[str]
            ) -> tuple[list[tuple[Recording, SourceScore]], list[SourceScore], list[str]]:
    """The recordings of ``split`` with the source each counts in, the sources, notes."""
    wanted = SPLIT_CHOICES[split]
    chosen, sources, notes = [], [], []
    for root in recordings:
        folder = read_recordings(root)
        notes += folder.notes
        if folder.layout != "transcripts":
            notes.append(f"{root}: no {TRANSCRIPTS}: no word is counted as said there, every "
                         "detection is a false accept")
        percent = training_split(recipe, root) or shares
        kept = [r for r in folder.recordings
                if wanted is None or split_of(r, *percent) == wanted]
        if not kept:
            notes.append(f"{root}: no recordings in the {split} split")
        source = SourceScore(str(root), "recordings", Tally(names, SPOT_SWEEP),
                             len({r.speaker for r in kept if r.speaker}))
        sources.append(source)
        chosen += [(r, source) for r in kept]
    return chosen, sources, notes


def _scored(recognizer: PhoneRecognizer, targets: Sequence[SpotTarget], recording: Recording,
            waveform: np.ndarray) -> tuple[Truth, list[Spot], dict[float, list[Spot]]]:
    """One recording's truth, its detections at the operating thresholds (exactly those of
    ``kws phones spot``), and at each threshold of the sweep."""
    seconds = len(waveform) / recognizer.sample_rate
    said = words_of(recording.transcript or "")
    truth = Truth(str(recording.path), seconds,
                  {t.spotted.word: n for t in targets
                   if (n := times_said(said, t.spotted.word))})
    log_probs = ctc.log_posteriors(recognizer.posteriors([waveform])[0])
    operating: list[Spot] = []
    lowest: list[Spot] = []
    for target in targets:

        def spots(limit: float | Sequence[float], target: SpotTarget = target) -> list[Spot]:
            return [Spot.of(d) for d in spot_in(
                log_probs, str(recording.path), target.spotted.word, target.spotted.phones,
                target.ids, limit, recognizer.frame_seconds, seconds)]

        operating += spots(target.thresholds)
        lowest += spots(SPOT_SWEEP[-1])
    swept = {t: [s for s in lowest if s.score >= t] for t in SPOT_SWEEP}
    return truth, operating, swept
