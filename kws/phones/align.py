"""Where each word of a transcribed recording is said, and the words cut out as clips.

``kws phones align``: a recording's transcript is read as phones (each word's
pronunciations from the model's lexicon, then CMUdict, then G2P); the reading the phone
model finds most likely (:func:`kws.phones.ctc.ctc_log_likelihood`) is aligned to its
frames (:func:`kws.phones.ctc.align`, Viterbi), and a word spans its first phone to its
last, widened into the blanks around them as decoded phones are
(:func:`kws.phones.ctc.segments`).

The words asked for are cut as clips of a fixed length centred on the word, in Speech
Commands layout (``OUT/<word>/<speaker>_nohash_<recording>_<n>.wav``), with
``validation_list.txt`` and ``testing_list.txt`` from the recordings split
(:func:`kws.recordings.split_of`), so a held-out speaker's words stay held out wherever the
folder is used: ``kws train --data OUT`` teaches a classifier keywords as they are said
inside continuous speech, next to their neighbours. ``alignments.tsv`` lists every word
of every aligned recording with its times and score, cut or not.
"""

from __future__ import annotations

import itertools
import math
import os
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kws import audio, files
from kws.dataset import TESTING, TESTING_LIST, VALIDATION, VALIDATION_LIST, group_problems
from kws.errors import UnreadableInputsError, UsageError
from kws.phones import ctc
from kws.phones.data import phone_ids, word_pronunciations
from kws.phones.lexicon import LexiconError
from kws.phones.recognizer import PhoneRecognizer, recording_posteriors
from kws.phones.utterances import utterance_readings
from kws.recordings import (
    Recording,
    read_recordings,
    split_of,
    words_of,
)

#: The alignment table written next to the clips.
ALIGNMENTS = "alignments.tsv"
#: Words whose phones the model heard less surely than this (geometric mean posterior
#: over their aligned frames) are listed but not cut: the transcript or the alignment is
#: likely wrong there.
DEFAULT_MIN_SCORE = 0.2
#: Readings of a transcript tried (one pronunciation per word; see ``utterance_readings``).
READINGS = 4

_UNSAFE = re.compile(r"[^A-Za-z0-9.-]+")


@dataclass(frozen=True)
class WordTiming:
    """One word of a transcript, placed in its recording (seconds)."""

    word: str
    start: float
    end: float
    #: Geometric mean of the posteriors of the word's phones over their aligned frames.
    score: float
    phones: tuple[str, ...]

    @property
    def centre(self) -> float:
        return 0.5 * (self.start + self.end)


def word_timings(
    log_probs: np.ndarray,
    pronunciations: Sequence[Sequence[tuple[str, ...]]],
    words: Sequence[str],
    frame_seconds: float,
    duration: float | None = None,
) -> list[WordTiming]:
    """The words of a transcript placed in a recording's phone log posteriors.

    ``pronunciations[i]`` are word ``i``'s pronunciations. Returns one timing per word, in
    order, or an empty list when the phones cannot fit in the frames.
    """
    readings = [(reading, phone_ids(list(itertools.chain.from_iterable(reading))))
                for reading in utterance_readings(pronunciations, READINGS)]
    best, ids = max(readings, key=lambda item: ctc.ctc_log_likelihood(log_probs, item[1]))
    decoded = ctc.align(log_probs, ids)
    if not decoded:
        return []
    times = ctc.segments(decoded, frame_seconds, duration)
    timings, at = [], 0
    for word, phones in zip(words, best, strict=True):
        spans, found = times[at:at + len(phones)], decoded[at:at + len(phones)]
        at += len(phones)
        if not spans:
            continue
        logs = [float(np.mean(log_probs[seg.first:seg.last + 1, seg.label])) for seg in found]
        timings.append(WordTiming(word, round(spans[0][1], 3), round(spans[-1][2], 3),
                                  round(math.exp(float(np.mean(logs))), 4), tuple(phones)))
    return timings


def clip_bounds(centre: float, seconds: float, duration: float) -> tuple[float, float]:
    """A window of ``seconds`` centred on ``centre``, moved inside ``[0, duration]``
    (the whole recording when it is shorter)."""
    start = min(max(0.0, centre - seconds / 2), max(0.0, duration - seconds))
    return start, min(duration, start + seconds)


@dataclass
class AlignResult:
    """What ``kws phones align`` wrote."""

    out: Path
    aligned: int = 0
    #: ``{split: Counter(word -> clips)}``.
    clips: dict[str, Counter] = field(default_factory=dict)
    #: Words asked for but left uncut, by reason (``low score``, ``longer than a clip``).
    left: Counter = field(default_factory=Counter)
    #: ``(path, problem)`` of recordings that could not be aligned.
    failed: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def count(self, split: str, word: str) -> None:
        self.clips.setdefault(split, Counter())[word] += 1

    @property
    def total(self) -> int:
        return sum(sum(words.values()) for words in self.clips.values())


def cut_word_clips(
    sources: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    words: Sequence[str] | None = None,
    model: str | os.PathLike | None = None,
    seconds: float = 1.0,
    rate: int = 16000,
    min_score: float = DEFAULT_MIN_SCORE,
    progress: Callable[[int, int], None] | None = None,
) -> AlignResult:
    """Align the transcribed recordings of ``sources`` and cut their words into ``out``.

    ``words`` restricts the clips (every word of the transcripts when None; the
    alignment table always lists every word of the recordings aligned, which are those
    that say one of ``words``). ``progress(done, total)`` follows the recordings.

    Raises
    ------
    UsageError
        ``out`` exists and is not empty, or lies inside a source; a clip length or rate
        out of range; no recording with a transcript says any of ``words``.
    DatasetError
        A source cannot be read (see :func:`kws.recordings.read_recordings`).
    UnreadableInputsError
        No clip could be cut (every recording unreadable, unaligned or its words left
        uncut): nothing is written, not even ``out``.
    """
    out = Path(out)
    _check_arguments(sources, out, seconds, rate, min_score)
    wanted = None if words is None else frozenset(words_of(" ".join(words)))
    recordings, result = _recordings_to_align(sources, wanted, out)
    recognizer = PhoneRecognizer(model)
    readings = _pronunciations(recordings, recognizer, result)
    posteriors, result.failed = recording_posteriors(
        recognizer, [str(rec.path) for rec in readings], progress=progress)
    rows, listed = [], {VALIDATION: [], TESTING: []}
    with files.atomic_folder(out) as folder:
        for rec, prons in readings.items():
            post = posteriors.get(str(rec.path))
            if post is None:
                continue
            timings = word_timings(ctc.log_posteriors(post), prons, words_of(rec.transcript),
                                   recognizer.frame_seconds,
                                   len(post) * recognizer.frame_seconds)
            if not timings:
                result.failed.append((str(rec.path), "its phones do not fit in its frames"))
                continue
            result.aligned += 1
            cut = _cut(rec, timings, wanted, folder, seconds, rate, min_score, result)
            listed.get(split_of(rec), []).extend(cut.values())
            rows += [_row(rec, index, timing, cut.get(index, ""))
                     for index, timing in enumerate(timings)]
        if not result.total:  # raised inside: the folder is discarded, never committed
            raise _nothing_cut(result, len(recordings))
        _write_tables(folder, rows, listed)
    return result


def _nothing_cut(result: AlignResult, tried: int) -> UnreadableInputsError:
    """The error of a run that cut no clip, saying why (the failures and notes with it)."""
    why = [f"{len(result.failed)} could not be read or aligned"] if result.failed else []
    unpronounced = tried - len(result.failed) - result.aligned
    if unpronounced:
        why.append(f"{unpronounced} left out: a word with no pronunciation")
    why += [f"{count} word(s) left uncut: {reason}"
            for reason, count in sorted(result.left.items())]
    return UnreadableInputsError(
        f"--out {result.out}: no word clip cut from {tried} recording(s) "
        f"({'; '.join(why) or 'none of the words asked for was aligned'}); nothing was written",
        [f"{path}: {problem}" for path, problem in result.failed], result.notes)


def _check_arguments(sources: Sequence[str | os.PathLike], out: Path, seconds: float,
                     rate: int, min_score: float) -> None:
    if not sources:
        raise UsageError("give at least one folder of transcribed recordings")
    if not 0.1 <= seconds <= 10.0:
        raise UsageError("--seconds must be between 0.1 and 10")
    if not audio.MIN_RATE <= rate <= audio.MAX_RATE:
        raise UsageError(f"--rate must be between {audio.MIN_RATE} and {audio.MAX_RATE} Hz")
    if not 0.0 <= min_score < 1.0:
        raise UsageError("--min-score must be in [0, 1)")
    files.check_not_input(out, sources, "--out")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"--out {out}: already exists and is not an empty folder "
                         "(choose a new folder; nothing was written)")


def _recordings_to_align(sources: Sequence[str | os.PathLike], wanted: frozenset[str] | None,
                         out: Path) -> tuple[list[Recording], AlignResult]:
    """The transcribed recordings that say a wanted word, and a result holding the notes."""
    result = AlignResult(out=out)
    recordings: list[Recording] = []
    for source in sources:
        folder = read_recordings(source)
        result.notes += folder.notes
        if folder.layout != "transcripts":
            raise UsageError(f"{source}: no transcripts.tsv: what was said must be known "
                             "to align it")
        recordings += [rec for rec in folder.recordings if rec.transcript
                       and (wanted is None or not wanted.isdisjoint(rec.words))]
    if not recordings:
        said = "any word" if wanted is None else ", ".join(sorted(wanted))
        raise UsageError(f"no transcribed recording in {', '.join(map(str, sources))} "
                         f"says {said}")
    return recordings, result


def _pronunciations(recordings: Sequence[Recording], recognizer: PhoneRecognizer,
                    result: AlignResult) -> dict[Recording, list]:
    """Each recording's words' pronunciations; a recording with a word that cannot be
    pronounced is left out, with a note naming it and why."""
    found, guessed, left_out = {}, set(), []
    for rec in recordings:
        try:
            found[rec] = [word_pronunciations(word, recognizer.lexicon, guessed)
                          for word in words_of(rec.transcript)]
        except LexiconError as error:
            left_out.append((rec.path, f"left out: {error}"))
    if guessed:
        shown = ", ".join(sorted(guessed)[:5]) + (", ..." if len(guessed) > 5 else "")
        result.notes.append(f"{len(guessed)} word(s) not in the lexicon pronounced by G2P: "
                            f"{shown}")
    result.notes += group_problems(left_out)
    return found


def _cut(rec: Recording, timings: Sequence[WordTiming], wanted: frozenset[str] | None,
         folder: Path, seconds: float, rate: int, min_score: float,
         result: AlignResult) -> dict[int, str]:
    """Write the wanted words of one recording as clips: ``{word index: relative path}``."""
    chosen = [(index, t) for index, t in enumerate(timings)
              if wanted is None or t.word in wanted]
    if not chosen:
        return {}
    waveform = audio.load(rec.path, rate)
    duration = len(waveform) / rate
    # The part before _nohash_ is the speaker: the recording itself when none is known.
    stem = _UNSAFE.sub("-", rec.path.stem)
    prefix = f"{_UNSAFE.sub('-', rec.speaker)}_nohash_{stem}" if rec.speaker else f"{stem}_nohash"
    written = {}
    for index, timing in chosen:
        if timing.score < min_score:
            result.left["low score"] += 1
            continue
        if timing.end - timing.start > seconds:
            result.left["longer than a clip"] += 1
            continue
        start, _ = clip_bounds(timing.centre, seconds, duration)
        first = int(round(start * rate))
        clip = audio.fix_length(waveform[first:first + int(round(seconds * rate))],
                                int(round(seconds * rate)))
        relative = f"{_UNSAFE.sub('-', timing.word)}/{prefix}_{index}.wav"
        (folder / relative).parent.mkdir(exist_ok=True)
        audio.write(folder / relative, clip, rate)
        written[index] = relative
        result.count(split_of(rec), timing.word)
    return written


def _row(rec: Recording, index: int, timing: WordTiming, clip: str) -> str:
    return "\t".join((str(rec.path), rec.speaker or "", str(index), timing.word,
                      f"{timing.start:.3f}", f"{timing.end:.3f}", f"{timing.score:.4f}",
                      " ".join(timing.phones), clip))


def _write_tables(folder: Path, rows: Sequence[str], listed: dict[str, list[str]]) -> None:
    header = "file\tspeaker\tindex\tword\tstart\tend\tscore\tphones\tclip\n"
    files.write_text(folder / ALIGNMENTS, header + "".join(f"{row}\n" for row in rows))
    for split, name in ((VALIDATION, VALIDATION_LIST), (TESTING, TESTING_LIST)):
        files.write_text(folder / name, "".join(f"{path}\n" for path in sorted(listed[split])))
