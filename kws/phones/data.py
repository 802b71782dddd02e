"""The data of phone models: which clips, with which phone targets, decoded into arrays.

A ``--data`` folder holding ``.PHN`` files is read as TIMIT (:mod:`kws.phones.timit`);
any other folder is a Speech Commands folder read by the data layer
(:func:`kws.dataset.open_datasets`, :func:`~kws.dataset.assign_labels`). A Speech
Commands clip's references are its word's pronunciations in the lexicon (there are no
alignments: CTC learns them); a ``_silence_`` clip (from a ``_silence_`` folder or cut from
background noise) has one empty reference. Audio goes through the shared decode cache
(:func:`kws.train.data.decode_clips`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kws.dataset import (
    SILENCE,
    SPLITS,
    TRAINING,
    UNKNOWN,
    Clip,
    Dataset,
    LabelPolicy,
    assign_labels,
    open_datasets,
)
from kws.errors import AudioError, DatasetError
from kws.phones import ctc
from kws.phones.config import PhoneTrainConfig
from kws.phones.lexicon import Lexicon, LexiconError
from kws.phones.phoneset import model_labels
from kws.train.data import NO_BACKGROUND_WARNING, decode_clips, task_cache, warn_unreadable
from kws.train.events import TrainEvents


@dataclass(frozen=True)
class Example:
    """A clip and what it should be recognised as.

    ``references`` are the acceptable phone sequences (a word's pronunciations, a TIMIT
    transcription, or one empty sequence for silence); ``word`` is the Speech Commands word
    (``_silence_`` for silence) or ``None`` for TIMIT.
    """

    clip: Clip
    references: tuple[tuple[str, ...], ...]
    word: str | None


def phone_ids(phones: Sequence[str]) -> list[int]:
    """Model output indices of phones (the blank is 0)."""
    index = {label: i for i, label in enumerate(model_labels())}
    return [index[p] for p in phones]


def read_examples(
    data: Sequence[str | os.PathLike],
    lexicon: Lexicon,
    words: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    validation_percent: float = 10.0,
    testing_percent: float = 10.0,
    silence_percent: float = 10.0,
    background: Sequence[str | os.PathLike] = (),
    dataset: Dataset | None = None,
    seed: int = 59185,
    resplit: Sequence[str | os.PathLike] = (),
) -> tuple[list[Example], Dataset | None, list[str]]:
    """The labelled examples of dataset folders; ``(examples, speech commands data, notes)``.

    ``resplit`` names Speech Commands folders split by speaker with kws's own hash (as
    ``kws train --resplit``). ``dataset`` replaces the Speech Commands folders of ``data``
    with an already combined dataset (a benchmark's own split). Raises
    :class:`LexiconError` naming the first word of the data the lexicon lacks.
    """
    from kws.phones.timit import is_timit_folder, scan_timit

    timit_roots = [root for root in data if is_timit_folder(root)]
    sc_roots = [root for root in data if root not in timit_roots]
    examples: list[Example] = []
    notes: list[str] = []
    for root in timit_roots:
        utterances, problems = scan_timit(root, validation_percent, testing_percent)
        notes += problems
        examples += [Example(u.clip(), (tuple(u.phones),), None) for u in utterances]
    if dataset is None and sc_roots:
        dataset = open_datasets(sc_roots, validation_percent, testing_percent, background,
                                [root for root in resplit if root in sc_roots])
    if dataset is not None:
        notes += dataset.notes
        policy = LabelPolicy(words=None, silence_percent=silence_percent, unknown_percent=0.0,
                             seed=seed)
        clips, _ = assign_labels(dataset, policy)
        wanted = set(words) if words is not None else None
        left_out = set(exclude)
        clips = [
            clip for clip in clips
            if clip.word != UNKNOWN and clip.word not in left_out
            and (clip.word == SILENCE or wanted is None or clip.word in wanted)
        ]
        spoken = [clip.word for clip in clips if clip.word != SILENCE]
        missing = lexicon.missing(spoken)
        if missing:
            count = sum(1 for word in spoken if word == missing[0])
            more = f" (and {len(missing) - 1} more word(s))" if len(missing) > 1 else ""
            raise LexiconError(
                f"{lexicon.source}: no pronunciation of {missing[0]!r}, said in {count} "
                f"clip(s){more}; add it to the lexicon or leave it out with --exclude "
                f"{missing[0]}"
            )
        for clip in clips:
            refs = ((),) if clip.word == SILENCE else lexicon.pronunciations(clip.word)
            examples.append(Example(clip, refs, clip.word))
    return examples, dataset, notes


def clip_length(examples: Sequence[Example], rate: int, seconds: float | None) -> int:
    """Input length in samples: ``seconds``, or 1 s, or the longest TIMIT utterance."""
    if seconds is not None:
        return int(round(seconds * rate))
    import soundfile

    longest = 1.0
    for example in examples:
        if example.word is None:
            try:
                longest = max(longest, soundfile.info(example.clip.path).duration)
            except (RuntimeError, OSError):
                continue
    return int(round(math.ceil(longest * 2) / 2 * rate))


@dataclass
class PhoneData:
    """Decoded examples of every split, ready for training and scoring."""

    x: dict[str, np.ndarray]
    y: dict[str, np.ndarray]
    examples: dict[str, list[Example]]
    backgrounds: list[np.ndarray]
    length: int
    summary: dict[str, Any]
    failed: dict[Path, AudioError]

    @property
    def labels(self) -> list[str]:
        return model_labels()


def prepare_phone_data(
    config: PhoneTrainConfig, lexicon: Lexicon, events: TrainEvents,
    dataset: Dataset | None = None,
) -> PhoneData:
    """Read, label and decode the data of a resolved configuration.

    Dataset notes and unreadable files are reported through ``events``.
    """
    examples, sc_dataset, notes = read_examples(
        config.data, lexicon, config.words, config.exclude, config.validation_percent,
        config.testing_percent, config.silence_percent, config.background, dataset,
        resplit=config.resplit,
    )
    for note in notes:
        events.note(note)
    if not examples:
        raise DatasetError(f"{', '.join(map(str, config.data))}: no clips to train on")
    if config.silence_percent > 0 and sc_dataset is not None and not sc_dataset.backgrounds:
        events.warn(NO_BACKGROUND_WARNING)
    length = clip_length(examples, config.rate, config.clip_seconds)
    cache = task_cache(config.rate, events)
    x_all, _, failed = decode_clips([e.clip for e in examples], config.rate, length, events,
                                    cache=cache)
    examples = [e for e in examples if e.clip.path not in failed]
    backgrounds: list[np.ndarray] = []
    if sc_dataset is not None and sc_dataset.backgrounds:
        found, failed_backgrounds = cache.get_many(sc_dataset.backgrounds)
        failed = {**failed, **failed_backgrounds}
        backgrounds = [found[p] for p in sc_dataset.backgrounds if p in found]
    warn_unreadable(events, [str(error) for error in failed.values()])
    if not examples:
        raise DatasetError(f"{', '.join(map(str, config.data))}: no readable clips")
    frames = frames_for(length, config.rate, config.frame_ms)
    targets = [[phone_ids(ref) for ref in e.references] for e in examples]
    longest = max(len(ref) for alts in targets for ref in alts)
    if longest > frames // 2:
        raise DatasetError(f"a transcription of {longest} phones is too long for "
                           f"{frames} frames of {config.frame_ms:g} ms; raise --clip-seconds")
    alternatives = max(len(alts) for alts in targets)
    y_all = ctc.encode_targets(targets, alternatives, max(1, longest))
    splits = np.asarray([e.clip.split for e in examples])
    x = {s: x_all[splits == s] for s in SPLITS}
    y = {s: y_all[splits == s] for s in SPLITS}
    by_split = {s: [e for e in examples if e.clip.split == s] for s in SPLITS}
    if len(x[TRAINING]) == 0:
        raise DatasetError(f"{', '.join(map(str, config.data))}: no readable clips in the "
                           "training split")
    summary = {
        "folders": [str(root) for root in config.data],
        "words": sorted({e.word for e in examples if e.word not in (None, SILENCE)}),
        "excluded_words": list(config.exclude),
        "timit_utterances": sum(1 for e in examples if e.word is None),
        "clips": {s: len(by_split[s]) for s in SPLITS},
        "speakers": {s: len({e.clip.speaker for e in by_split[s] if e.clip.speaker})
                     for s in SPLITS},
        "silence_clips": {s: sum(1 for e in by_split[s] if e.word == SILENCE) for s in SPLITS},
        "skipped_files": len(failed),
        "backgrounds": [str(p) for p in (sc_dataset.backgrounds if sc_dataset else [])],
        "notes": notes,
    }
    return PhoneData(x, y, by_split, backgrounds, length, summary, failed)


def frames_for(length: int, rate: int, frame_ms: float) -> int:
    """Output frames of a phone model for inputs of ``length`` samples."""
    samples = int(round(rate * frame_ms / 1000))
    return -(-length // samples)
