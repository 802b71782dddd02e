"""Transcribed continuous speech as phone-model training examples.

Folders with a ``transcripts.tsv`` (``an4/``, ``arctic_cathy/`` and any corpus laid out the
same way) are read by the recordings layer (:func:`kws.recordings.read_recordings`:
the layout, words normalised by :func:`kws.recordings.words_of`) and split by its salted
hash of the speaker, or of the file name when the folder names no speaker
(:func:`kws.recordings.split_of`), with the run's validation and testing percentages. An
utterance's phone targets are its words' pronunciations, concatenated
(:func:`utterance_pronunciations`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kws.dataset import Clip
from kws.recordings import TRANSCRIPTS, read_recordings, split_of, words_of


@dataclass(frozen=True)
class Utterance:
    """One transcribed recording of continuous speech."""

    audio: Path
    speaker: str
    words: tuple[str, ...]
    split: str

    @property
    def text(self) -> str:
        """The words, space-separated."""
        return " ".join(self.words)

    def clip(self) -> Clip:
        """The utterance as a data-layer clip (read through the shared audio cache)."""
        return Clip(path=self.audio, word=self.text, speaker=self.speaker, split=self.split)


def is_transcript_folder(root: str | os.PathLike) -> bool:
    """Whether a folder has a ``transcripts.tsv`` at its top."""
    return (Path(root) / TRANSCRIPTS).is_file()


def scan_transcripts(
    root: str | os.PathLike,
    validation_percent: float = 10.0,
    testing_percent: float = 10.0,
) -> tuple[list[Utterance], list[str]]:
    """Every transcribed utterance of a folder, with its split, and notes on skipped files.

    Raises :class:`~kws.errors.DatasetError` (a malformed ``transcripts.tsv``, no
    recording) as :func:`kws.recordings.read_recordings` does.
    """
    folder = read_recordings(root)
    utterances = [
        Utterance(rec.path, rec.speaker or Path(root).name, tuple(words_of(rec.transcript)),
                  split_of(rec, validation_percent, testing_percent))
        for rec in folder.recordings if rec.transcript is not None
    ]
    return utterances, folder.notes


def utterance_pronunciations(
    pronunciations: Sequence[Sequence[tuple[str, ...]]], limit: int = 4,
) -> tuple[tuple[str, ...], ...]:
    """The phone sequences of an utterance: its words' pronunciations, concatenated.

    The readings of :func:`utterance_readings`, each joined into one sequence (the CTC
    loss trains on the best of them).
    """
    return tuple(dict.fromkeys(_joined(reading)
                               for reading in utterance_readings(pronunciations, limit)))


def utterance_readings(
    pronunciations: Sequence[Sequence[tuple[str, ...]]], limit: int = 4,
) -> tuple[tuple[tuple[str, ...], ...], ...]:
    """Ways to read an utterance: one pronunciation per word, word by word.

    ``pronunciations[i]`` are word ``i``'s pronunciations (a dictionary lists the most
    common first). The first reading takes every word's first pronunciation; each of the
    others changes one word to another of its pronunciations, first words first, up to
    ``limit`` readings whose joined phones differ.
    """
    base = tuple(tuple(prons[0]) for prons in pronunciations)
    readings, seen = [base], {_joined(base)}
    for index, prons in enumerate(pronunciations):
        for other in prons[1:]:
            if len(readings) == limit:
                return tuple(readings)
            changed = (*base[:index], tuple(other), *base[index + 1:])
            if _joined(changed) not in seen:
                seen.add(_joined(changed))
                readings.append(changed)
    return tuple(readings)


def _joined(words: Sequence[tuple[str, ...]]) -> tuple[str, ...]:
    return tuple(phone for word in words for phone in word)
