"""The data of phone models: which recordings, with which phone targets, decoded.

A ``--data`` folder with a ``transcripts.tsv`` is transcribed continuous speech
(:mod:`kws.phones.utterances`: an utterance's references are its words' pronunciations,
concatenated); one holding ``.PHN`` files is read as TIMIT (:mod:`kws.phones.timit`); any
other folder is a Speech Commands folder read by the data layer
(:func:`kws.dataset.open_datasets`, :func:`~kws.dataset.assign_labels`): a clip's
references are its word's pronunciations, and a ``_silence_`` clip (from a ``_silence_``
folder or cut from background noise) has one empty reference. There are no alignments:
CTC learns them. Speech Commands clips are 1 s; utterances keep their own length and are
batched by length (:class:`LengthBatches`). Audio goes through the shared decode cache.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kws.augment import Augmentation, augment_batch, change_speed
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
from kws.phones.lexicon import Lexicon, LexiconError, pronounce
from kws.phones.phoneset import model_labels
from kws.phones.utterances import (
    is_transcript_folder,
    scan_transcripts,
    utterance_pronunciations,
)
from kws.train.data import NO_BACKGROUND_WARNING, decode_clips, task_cache, warn_unreadable
from kws.train.events import TrainEvents
from kws.train.task import Batches

#: Length of a Speech Commands clip (s).
CLIP_SECONDS = 1.0
#: Recordings are batched with others of the same length, rounded up to this (s).
BUCKET_SECONDS = 0.5
#: Most phone sequences trained on per utterance (its words' likeliest readings).
ALTERNATIVES = 4


@dataclass(frozen=True)
class Example:
    """A clip and what it should be recognised as.

    ``references`` are the acceptable phone sequences (a word's pronunciations, an
    utterance's readings, a TIMIT transcription, or one empty sequence for silence);
    ``word`` is the Speech Commands word (``_silence_`` for silence), or ``None`` for
    continuous speech, whose length is its own.
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

    ``words`` restricts the Speech Commands clips; ``exclude`` leaves words out entirely
    (their clips, and every utterance that says them). ``resplit`` names Speech Commands
    folders split by speaker with kws's own hash (as ``kws train --resplit``). ``dataset``
    replaces the Speech Commands folders of ``data`` with an already combined dataset (a
    benchmark's own split). Raises :class:`LexiconError` naming the first word of the
    Speech Commands data the lexicon lacks; an utterance with such a word is left out
    (one note counts them).
    """
    from kws.phones.timit import is_timit_folder, scan_timit

    transcribed = [root for root in data if is_transcript_folder(root)]
    timit_roots = [root for root in data if root not in transcribed and is_timit_folder(root)]
    sc_roots = [root for root in data if root not in transcribed and root not in timit_roots]
    examples: list[Example] = []
    notes: list[str] = []
    for root in transcribed:
        found, more = _utterance_examples(root, lexicon, exclude, validation_percent,
                                          testing_percent)
        examples += found
        notes += more
    for root in timit_roots:
        utterances, problems = scan_timit(root, validation_percent, testing_percent)
        notes += problems
        examples += [Example(u.clip(), (tuple(u.phones),), None) for u in utterances]
    if dataset is None and sc_roots:
        dataset = open_datasets(sc_roots, validation_percent, testing_percent, background,
                                [root for root in resplit if root in sc_roots])
    if dataset is not None:
        notes += dataset.notes
        examples += _clip_examples(dataset, lexicon, words, exclude, silence_percent, seed)
    return examples, dataset, notes


def _utterance_examples(
    root: str | os.PathLike, lexicon: Lexicon, exclude: Sequence[str],
    validation_percent: float, testing_percent: float,
) -> tuple[list[Example], list[str]]:
    """A transcribed folder's utterances as examples, and notes on those left out."""
    utterances, notes = scan_transcripts(root, validation_percent, testing_percent)
    left_out = set(exclude)
    kept = [u for u in utterances if not left_out.intersection(u.words)]
    if len(kept) < len(utterances):
        notes.append(f"{root}: {len(utterances) - len(kept)} utterance(s) saying an excluded "
                     "word left out")
    examples, guessed, unknown = [], set(), set()
    for utterance in kept:
        try:
            prons = [word_pronunciations(word, lexicon, guessed) for word in utterance.words]
        except LexiconError:
            unknown.update(lexicon.missing(utterance.words))
            continue
        examples.append(Example(utterance.clip(),
                                utterance_pronunciations(prons, ALTERNATIVES), None))
    if guessed:
        notes.append(f"{root}: {len(guessed)} word(s) not in the lexicon pronounced by G2P "
                     f"({_some(guessed)})")
    if unknown:
        notes.append(f"{root}: {len(kept) - len(examples)} utterance(s) left out: words "
                     f"without a pronunciation ({_some(unknown)})")
    return examples, notes


def word_pronunciations(word: str, lexicon: Lexicon, guessed: set[str]
                        ) -> tuple[tuple[str, ...], ...]:
    """A transcript word's pronunciations: the lexicon's, else CMUdict's, else G2P's (the
    words G2P guessed are added to ``guessed``)."""
    if word in lexicon:
        return lexicon.pronunciations(word)
    found = pronounce(word, lexicon)
    if found.guessed:
        guessed.add(word)
    return found.phones


def _some(words: set[str], shown: int = 5) -> str:
    listed = ", ".join(sorted(words)[:shown])
    return listed + (", ..." if len(words) > shown else "")


def _clip_examples(
    dataset: Dataset, lexicon: Lexicon, words: Sequence[str] | None, exclude: Sequence[str],
    silence_percent: float, seed: int,
) -> list[Example]:
    """The Speech Commands clips (and silence) as examples with their word's phones."""
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
    return [Example(clip, ((),) if clip.word == SILENCE else lexicon.pronunciations(clip.word),
                    clip.word) for clip in clips]


@dataclass
class PhoneData:
    """Decoded examples of every split, ready for training and scoring.

    ``x[split]`` is an object array of float32 waveforms (1 s clips and utterances of any
    length), ``y[split]`` one of phone-id sequences per example (its references).
    """

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
    cache = task_cache(config.rate, events)
    waveforms, failed = _decode(examples, config.rate, cache, events)
    backgrounds: list[np.ndarray] = []
    if sc_dataset is not None and sc_dataset.backgrounds:
        found, failed_backgrounds = cache.get_many(sc_dataset.backgrounds)
        failed = {**failed, **failed_backgrounds}
        backgrounds = [found[p] for p in sc_dataset.backgrounds if p in found]
    warn_unreadable(events, [str(error) for error in failed.values()])
    kept = [(e, w) for e, w in zip(examples, waveforms, strict=True) if w is not None]
    kept, too_long = _fitting(kept, config.rate, config.frame_ms)
    if too_long:
        events.note(f"{too_long} recording(s) left out: more phones than "
                    f"{config.frame_ms:g} ms frames can hold")
    if not kept:
        raise DatasetError(f"{', '.join(map(str, config.data))}: no readable clips")
    by_split = {s: [e for e, _ in kept if e.clip.split == s] for s in SPLITS}
    x = {s: _objects([w for e, w in kept if e.clip.split == s]) for s in SPLITS}
    y = {s: _objects([[phone_ids(ref) for ref in e.references] for e in by_split[s]])
         for s in SPLITS}
    if len(x[TRAINING]) == 0:
        raise DatasetError(f"{', '.join(map(str, config.data))}: no readable clips in the "
                           "training split")
    summary = _summary(config, by_split, x, failed, sc_dataset, notes)
    length = int(round(config.window_seconds * config.rate))
    return PhoneData(x, y, by_split, backgrounds, length, summary, failed)


def _decode(examples: Sequence[Example], rate: int, cache, events: TrainEvents
            ) -> tuple[list[np.ndarray | None], dict[Path, AudioError]]:
    """Waveforms in example order (``None`` where unreadable): clips at 1 s, utterances
    whole."""
    clips = [e.clip for e in examples if e.word is not None]
    fixed, _, failed = decode_clips(clips, rate, int(round(CLIP_SECONDS * rate)), events,
                                    cache=cache)
    paths = [e.clip.path for e in examples if e.word is None]
    found: dict[Path, np.ndarray] = {}
    if paths:
        with events.counting("reading utterances", len(set(paths))) as advance:
            found, failed_utterances = cache.get_many(paths, progress=advance)
        failed = {**failed, **failed_utterances}
    fixed_rows = iter(fixed)
    waveforms: list[np.ndarray | None] = []
    for example in examples:
        if example.clip.path in failed:
            waveforms.append(None)
        elif example.word is None:
            waveforms.append(np.asarray(found[example.clip.path], dtype=np.float32))
        else:
            waveforms.append(next(fixed_rows))
    return waveforms, failed


def _fitting(kept: list[tuple[Example, np.ndarray]], rate: int, frame_ms: float
             ) -> tuple[list[tuple[Example, np.ndarray]], int]:
    """The examples whose every reference fits their frames (CTC needs a frame per phone
    and a blank between repeated ones), and how many did not."""
    fitting = [(e, w) for e, w in kept
               if all(ctc.frames_needed(ref) <= frames_for(len(w), rate, frame_ms)
                      for ref in e.references)]
    return fitting, len(kept) - len(fitting)


def _objects(items: Sequence[Any]) -> np.ndarray:
    """A 1-D object array holding ``items`` as they are (arrays of any length, lists)."""
    out = np.empty(len(items), dtype=object)
    for index, item in enumerate(items):
        out[index] = item
    return out


def _summary(config: PhoneTrainConfig, by_split: dict[str, list[Example]],
             x: dict[str, np.ndarray], failed: dict, sc_dataset: Dataset | None,
             notes: list[str]) -> dict[str, Any]:
    """The card's ``data`` section."""
    return {
        "folders": [str(root) for root in config.data],
        "words": sorted({e.word for s in SPLITS for e in by_split[s]
                         if e.word not in (None, SILENCE)}),
        "excluded_words": list(config.exclude),
        "utterances": {s: sum(1 for e in by_split[s] if e.word is None) for s in SPLITS},
        "clips": {s: len(by_split[s]) for s in SPLITS},
        "hours": {s: round(sum(len(w) for w in x[s]) / config.rate / 3600, 3)
                  for s in SPLITS},
        "speakers": {s: len({e.clip.speaker for e in by_split[s] if e.clip.speaker})
                     for s in SPLITS},
        "silence_clips": {s: sum(1 for e in by_split[s] if e.word == SILENCE) for s in SPLITS},
        "skipped_files": len(failed),
        "backgrounds": [str(p) for p in (sc_dataset.backgrounds if sc_dataset else [])],
        "notes": notes,
    }


def frames_for(length: int, rate: int, frame_ms: float) -> int:
    """Output frames of a phone model for inputs of ``length`` samples."""
    samples = int(round(rate * frame_ms / 1000))
    return -(-length // samples)


def bucket_length(samples: int, rate: int) -> int:
    """A recording's length rounded up to the next :data:`BUCKET_SECONDS` (samples)."""
    step = int(round(BUCKET_SECONDS * rate))
    return max(step, -(-samples // step) * step)


def padded(waveforms: Sequence[np.ndarray], length: int) -> np.ndarray:
    """Waveforms zero-padded at the end into one ``(n, length)`` float32 array."""
    out = np.zeros((len(waveforms), length), dtype=np.float32)
    for row, waveform in enumerate(waveforms):
        out[row, : len(waveform)] = waveform[:length]
    return out


class LengthBatches(Batches):
    """Batches of recordings of about the same length, each a pure function of its step.

    Recordings are grouped by :func:`bucket_length`; a bucket's batches hold
    ``seconds_per_batch`` of audio (at least one recording, at most the bucket's), zero-
    padded to the bucket's length. An epoch shuffles each bucket and the order of all
    batches with a generator seeded by ``(seed, epoch)``, and drops each bucket's last
    incomplete batch, so every epoch has the same number of steps. With
    ``shuffle=False`` (validation) the batches keep the data's order and none is
    dropped. Augmentation (seeded per batch) shifts by at most ``augmentation.shift`` of
    one second, whatever the length, and plays each recording at its own speed
    (``augmentation.speed``) whole, before padding. Targets are
    :func:`kws.phones.ctc.encode_targets` of ``alternatives`` sequences per recording.
    """

    def __init__(self, waveforms: np.ndarray, targets: np.ndarray, rate: int,
                 seconds_per_batch: float, alternatives: int,
                 backgrounds: Sequence[np.ndarray] = (),
                 augmentation: Augmentation | None = None, seed: int = 0,
                 shuffle: bool = True) -> None:
        self.waveforms, self.targets = waveforms, targets
        self.rate, self.alternatives = rate, alternatives
        self.backgrounds, self.augmentation = backgrounds, augmentation
        self.seed, self.shuffle = seed, shuffle
        buckets: dict[int, list[int]] = {}
        for index, waveform in enumerate(waveforms):
            buckets.setdefault(bucket_length(len(waveform), rate), []).append(index)
        self.buckets = dict(sorted(buckets.items()))
        budget = seconds_per_batch * rate
        self.per_batch = {length: max(1, min(int(budget // length), len(rows)))
                          for length, rows in self.buckets.items()}
        counts = [len(rows) / self.per_batch[length] for length, rows in self.buckets.items()]
        self.steps = sum(int(c) if shuffle else math.ceil(c) for c in counts)
        self.batch_size = max(1, round(len(waveforms) / max(1, self.steps)))

    @functools.lru_cache(maxsize=2)  # noqa: B019 - a few epochs, freed with the object
    def plan(self, epoch: int) -> tuple[tuple[int, np.ndarray], ...]:
        """The epoch's batches: ``(padded length, rows)`` each, in order."""
        rng = np.random.default_rng([self.seed, epoch])
        batches = []
        for length, rows in self.buckets.items():
            rows = np.asarray(rows)
            if self.shuffle:
                rows = rng.permutation(rows)
            size = self.per_batch[length]
            stop = len(rows) - len(rows) % size if self.shuffle else len(rows)
            batches += [(length, np.sort(rows[i : i + size])) for i in range(0, stop, size)]
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return tuple(batches)

    def batch(self, epoch: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Batch ``index`` of ``epoch``: padded waveforms and encoded targets."""
        length, rows = self.plan(epoch)[index]
        waveforms = [self.waveforms[r] for r in rows]
        augmentation = self.augmentation
        rng = np.random.default_rng([self.seed, epoch, index])
        if augmentation is not None and augmentation.speed > 0:
            waveforms = self._speed_changed(waveforms, augmentation.speed, rng)
            length = max(length, bucket_length(max(map(len, waveforms)), self.rate))
        x = padded(waveforms, length)
        if augmentation is not None:
            augmentation = dataclasses.replace(
                augmentation, shift=augmentation.shift * self.rate / length, speed=0.0)
            x = augment_batch(x, self.backgrounds, augmentation, rng)
        targets = [self.targets[r] for r in rows]
        longest = max((len(seq) for alts in targets for seq in alts), default=0)
        return (x.astype(np.float32, copy=False),
                ctc.encode_targets(targets, self.alternatives, max(1, longest)))

    @staticmethod
    def _speed_changed(waveforms: Sequence[np.ndarray], change: float,
                       rng: np.random.Generator) -> list[np.ndarray]:
        """Each recording at its own speed in ``[1 - change, 1 + change]``, whole: a
        recording that grows gets a longer row rather than losing its end."""
        rates = rng.uniform(1.0 - change, 1.0 + change, size=len(waveforms))
        return [change_speed(w, r) for w, r in zip(waveforms, rates, strict=True)]

    def shapes(self, shapes: Sequence[tuple[int, ...]]) -> list[tuple[int | None, ...]]:
        """Batch size, length and target length vary from batch to batch."""
        return [(None, None), (None, self.alternatives, None)]
