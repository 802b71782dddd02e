"""Using phone models: ``kws phones predict|spot|evaluate`` on the one inference pipeline.

:class:`PhoneRecognizer` loads a phone model folder. Recordings longer than the model's
input are cut into windows overlapping by half (:func:`kws.infer.sliding_windows`) and
each frame's posteriors are taken from the window where it is most central, so files of
any length get one posterior row per frame. Inputs, folders, ``-`` for paths on stdin
(answered as each arrives) and unreadable files are handled by the pipeline exactly as
for ``kws predict`` (:class:`kws.infer.Pipeline`, :class:`kws.infer.Failure`).

Scoring compares decoded phones with the closest of a clip's references (a word's
pronunciations); word accuracy matches the decoded phones to the nearest lexicon entry
(:func:`kws.phones.decoding.closest_word`). Spotting finds a word from its pronunciation
and reports :class:`kws.infer.Detection` records.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from kws import audio
from kws.dataset import SILENCE
from kws.errors import DatasetError, KwsError, UsageError
from kws.infer import (
    DEFAULT_SPOT_THRESHOLD,
    Detection,
    Failure,
    Pipeline,
    Scored,
    Stream,
    default_workers,
    expand_inputs,
    open_runner,
    sliding_windows,
)
from kws.infer.clips import SPLIT_CHOICES, Progress
from kws.modelfolder import (
    CARD_FILE,
    DEFAULT_FA_PER_HOUR,
    FaCalibration,
    ModelCard,
    Task,
    load_keras_model,
    read_card,
    resolve_model_dir,
)
from kws.phones import ctc
from kws.phones.config import FRONT_END_HOP_MS
from kws.phones.data import frames_for, phone_ids, read_examples
from kws.phones.decoding import (
    DEFAULT_BEAM,
    DEFAULT_DECODER,
    EXTEND_SECONDS,
    MODEL_LEXICON,
    ScoreResult,
    check_decoder,
    decode,
    score_examples,
)
from kws.phones.lexicon import (
    MAX_PHONES,
    Lexicon,
    Pronunciation,
    cmudict_lexicon,
    continuation_pronunciations,
    default_lexicon,
    merge_lexicons,
    pronounce,
    read_lexicon,
    rival_pronunciations,
    too_many_phones,
)
from kws.phones.phoneset import fold_each, model_labels

#: How far (seconds) beyond a hit's first and last frames a rival word may be aligned.
RIVAL_PAD_SECONDS = 0.06
#: How far (seconds) after a hit's last frame a longer word that starts with the keyword
#: (:func:`kws.phones.lexicon.continuation_pronunciations`) may end.
CONTINUATION_SECONDS = 0.4
#: How surely the phones a longer word adds must follow a hit for the hit to be that word.
CONTINUATION_CONFIDENCE = 0.5

# ----------------------------------------------------------------------------- inference


def phone_card(folder: str | os.PathLike | None) -> ModelCard:
    """The validated card of a phone model folder (``None``: the shipped one), without
    TensorFlow: its task and labels."""
    folder = resolve_model_dir(folder, Task.PHONES)
    card = read_card(folder)
    if card.task != Task.PHONES:
        raise KwsError(f"{folder}: a {card.task} model, not a phone model "
                       "(train one with `kws phones train`)")
    if card.labels != model_labels():
        raise KwsError(f"{folder / CARD_FILE}: labels are not the CTC blank and the "
                       "39 phones of this kws version")
    return card


def model_lexicon(folder: str | os.PathLike, lexicon: str | os.PathLike | None = None
                  ) -> Lexicon:
    """The lexicon given, else the model folder's, else the shipped one (no TensorFlow).

    Only these words: spotting falls back to CMUdict and G2P itself
    (:func:`kws.phones.lexicon.pronounce`), and word accuracy stays over these words.
    """
    saved = Path(folder) / MODEL_LEXICON
    if lexicon is not None:
        return read_lexicon(lexicon)
    if saved.is_file():
        return read_lexicon(saved)
    return default_lexicon()


def training_split(recipe: dict[str, Any], folder: str | os.PathLike
                   ) -> tuple[float, float] | None:
    """The validation and testing percent a phone model's training split ``folder`` with
    (from its card's recipe), or None when it did not train on that folder."""
    trained = {str(Path(f).resolve()) for f in recipe.get("data", ()) or ()}
    if str(Path(folder).resolve()) not in trained:
        return None
    return (float(recipe.get("validation_percent", 10.0)),
            float(recipe.get("testing_percent", 10.0)))


class PhoneRecognizer:
    """A phone model folder loaded for inference: its LiteRT file when it is current
    (no TensorFlow), else Keras (``runner`` as ``kws predict --runner``).

    ``lexicon`` overrides the lexicon saved in the folder (used for spotting words and
    matching decoded phones to words): a file, or a :class:`Lexicon` already read. The card
    is validated before TensorFlow loads.
    """

    def __init__(self, folder: str | os.PathLike | None,
                 lexicon: str | os.PathLike | Lexicon | None = None, runner: str = "auto"):
        self.folder = resolve_model_dir(folder, Task.PHONES)
        self.card = phone_card(self.folder)
        self.sample_rate = int(self.card.sample_rate)
        self.input_length = int(self.card.input_length)
        self.frame_ms = float(self.card.recipe.get("frame_ms", 20.0))
        stride = self.frame_ms / FRONT_END_HOP_MS
        if stride < 1 or abs(stride - round(stride)) > 1e-6:
            raise KwsError(f"{self.folder}: card.json's frame_ms {self.frame_ms:g} is not a "
                           f"multiple of {FRONT_END_HOP_MS:g} ms")
        self.frame_samples = int(round(self.sample_rate * self.frame_ms / 1000))
        self.frame_seconds = self.frame_ms / 1000
        self._lexicon_file = None if isinstance(lexicon, Lexicon) else lexicon
        self._lexicon: Lexicon | None = lexicon if isinstance(lexicon, Lexicon) else None
        self.runner = open_runner(self.folder, runner, task=Task.PHONES)
        self.frames = frames_for(self.input_length, self.sample_rate, self.frame_ms)

    @functools.cached_property
    def model(self):
        """The Keras model (loaded on first use: it imports TensorFlow)."""
        return getattr(self.runner, "model", None) or load_keras_model(self.folder)

    @property
    def lexicon(self) -> Lexicon:
        """The lexicon given, else the folder's, else the shipped one."""
        if self._lexicon is None:
            self._lexicon = model_lexicon(self.folder, self._lexicon_file)
        return self._lexicon

    def _hop_frames(self, samples: int) -> int:
        """Frames between the windows of a recording (one window when it fits the input)."""
        return self.frames if samples <= self.input_length else max(1, self.frames // 2)

    def windows(self, waveform: np.ndarray) -> np.ndarray:
        """The model inputs covering a recording (the pipeline's cutter)."""
        if len(waveform) <= self.input_length:
            return audio.fix_length(waveform, self.input_length)[None, :]
        hop = self._hop_frames(len(waveform)) * self.frame_samples
        return sliding_windows(waveform, self.input_length, hop)

    def stitch(self, window_posteriors: np.ndarray, samples: int) -> np.ndarray:
        """One posterior row per frame of a recording of ``samples`` samples, each from the
        window where the frame is most central."""
        total = max(1, -(-samples // self.frame_samples))
        hop_frames = self._hop_frames(samples)
        out = np.zeros((total, window_posteriors.shape[-1]), dtype=np.float32)
        margin = np.full(total, -1)
        local = np.arange(self.frames)
        centrality = np.minimum(local, self.frames - 1 - local)
        for w, rows in enumerate(window_posteriors):
            frames = w * hop_frames + local
            inside = frames < total
            better = inside.copy()
            better[inside] = centrality[inside] > margin[frames[inside]]
            out[frames[better]] = rows[better]
            margin[frames[better]] = centrality[better]
        return out

    def posteriors(self, waveforms: Sequence[np.ndarray], batch_size: int = 64
                   ) -> list[np.ndarray]:
        """Per-frame posteriors ``(frames, classes)`` of whole recordings at the model's rate.

        A recording gives ``ceil(samples / frame_samples)`` frames.
        """
        results = []
        for waveform in waveforms:
            windows = self.windows(waveform)
            outputs = np.concatenate([self.runner(windows[i : i + batch_size])
                                      for i in range(0, len(windows), batch_size)])
            results.append(self.stitch(outputs, len(waveform)))
        return results

    def stream(self, inputs: Iterable[str], stdin: IO | None, convert,
               batch_size: int = 64) -> Stream:
        """Run inputs through the pipeline; ``convert(scored, posteriors)`` makes the records.

        Whole recordings are held while their windows are scored, so few are read ahead.
        """
        pipeline = Pipeline(self.runner, self.windows, batch_size=batch_size,
                            ahead=2 * default_workers())

        def each(scored: Scored) -> Iterable[Any]:
            return convert(scored, self.stitch(scored.outputs, len(scored.waveform)))

        return Stream(pipeline, expand_inputs(inputs, stdin), each)


@dataclass(frozen=True)
class PhonePrediction:
    """The phones recognised in one file: ``(phone, start, end, posterior)`` each."""

    path: str
    phones: tuple[tuple[str, float, float, float], ...]
    duration: float


def predict_phones(
    inputs: Iterable[str],
    model: str | os.PathLike | None,
    decoder: str = DEFAULT_DECODER,
    beam: int = DEFAULT_BEAM,
    stdin: IO | None = None,
    batch_size: int = 64,
) -> Stream:
    """Recognise the phones of audio files, with approximate times.

    ``inputs`` are files, folders (searched recursively) and ``-`` (paths on ``stdin``,
    each answered as it arrives), as for ``kws predict``. Iterate the returned stream for
    :class:`PhonePrediction` and :class:`kws.infer.Failure` records in input order.
    """
    check_decoder(decoder, beam)
    recognizer = PhoneRecognizer(model)

    def convert(scored: Scored, posteriors: np.ndarray) -> list[PhonePrediction]:
        duration = len(scored.waveform) / recognizer.sample_rate
        found = decode(ctc.log_posteriors(posteriors), recognizer.frame_seconds, decoder,
                       beam, duration)
        return [PhonePrediction(scored.path, tuple(found.phones), round(duration, 3))]

    return recognizer.stream(inputs, stdin, convert, batch_size)


def keyword_pronunciation(
    keyword: str | None, phones: str | None, lexicon: Lexicon | None
) -> Pronunciation:
    """What to spot: ``--phones`` if given (source ``--phones``), else the pronunciations
    of ``keyword``, any English word (:func:`kws.phones.lexicon.pronounce`: ``lexicon``,
    then CMUdict, then G2P), named as typed. No TensorFlow.

    Raises
    ------
    UsageError
        Neither given, or ``phones`` are not ARPAbet or are over
        :data:`~kws.phones.lexicon.MAX_PHONES`.
    LexiconError
        ``keyword`` cannot be pronounced (no letters, digits, too many phones...): one
        line saying why.
    """
    if phones is not None:
        try:
            folded = fold_each(phones.replace(",", " ").split())
        except ValueError as error:
            raise UsageError(f"--phones: unknown phone {error.args[0]!r} (use the 39-phone "
                             "ARPAbet set, e.g. \"m aa r v ih n\")") from None
        if not folded:
            raise UsageError("--phones: no phones given")
        if len(folded) > MAX_PHONES:
            raise UsageError(f"--phones: {too_many_phones(folded)}")
        return Pronunciation(keyword or "-".join(folded), (tuple(folded),), "--phones")
    if not keyword:
        raise UsageError("give --keyword WORD (any English word) or --phones \"p h o n e s\"")
    found = pronounce(keyword, lexicon)
    return Pronunciation(keyword, found.phones, found.source)


@dataclass(frozen=True)
class SpotTarget:
    """A keyword to spot: its pronunciations (and their source), their phone ids, and the
    confidence each needs."""

    spotted: Pronunciation
    ids: tuple[list[int], ...]
    thresholds: tuple[float, ...]


def check_spot_options(threshold: float | None, fa_per_hour: float | None) -> None:
    """Raise UsageError for a threshold out of (0, 1] or a rate that is not positive."""
    if threshold is not None and not 0.0 < threshold <= 1.0:
        raise UsageError("--threshold must be in (0, 1]")
    if fa_per_hour is not None and not (0.0 < fa_per_hour < float("inf")):
        raise UsageError("--fa-per-hour must be a positive number")


def check_rate_calibrated(model: Path, calibration: FaCalibration | None,
                          threshold: float | None, fa_per_hour: float | None) -> None:
    """Raise UsageError when a rate is asked (without a threshold, which wins) of a model
    that ``kws phones calibrate`` has not calibrated."""
    if calibration is None and fa_per_hour is not None and threshold is None:
        raise UsageError(f"{model}: no false-accept calibration for --fa-per-hour; run "
                         f"`kws phones calibrate --model {model} --negatives FOLDER` first, "
                         "or give --threshold")


def spot_targets(
    keywords: str | Sequence[str] | None,
    phones: str | None,
    lexicon: Lexicon,
    calibration: FaCalibration | None,
    threshold: float | None = None,
    fa_per_hour: float | None = None,
    announce: Callable[[Pronunciation], None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> list[SpotTarget]:
    """What to spot: each keyword (duplicates dropped) pronounced by
    :func:`keyword_pronunciation`, or ``phones`` (named after the one keyword if given),
    with the thresholds of :func:`pronunciation_thresholds`. ``announce(pronunciation)``
    is called with each. No TensorFlow.

    Raises
    ------
    UsageError
        ``phones`` with several keywords, or neither keywords nor phones.
    LexiconError
        A keyword that cannot be pronounced.
    """
    names = [keywords] if isinstance(keywords, str) else list(dict.fromkeys(keywords or ()))
    if phones is not None and len(names) > 1:
        raise UsageError("--phones is one keyword's pronunciation: give at most one --keyword "
                         "with it")
    targets = []
    for name in names or [None]:
        spotted = keyword_pronunciation(name, phones, lexicon)
        if announce is not None:
            announce(spotted)
        targets.append(SpotTarget(spotted, tuple(phone_ids(p) for p in spotted.phones),
                                  tuple(pronunciation_thresholds(
                                      spotted.word, spotted.phones, calibration, threshold,
                                      fa_per_hour, warn))))
    return targets


def spot_phones(
    inputs: Iterable[str],
    model: str | os.PathLike | None,
    keywords: str | Sequence[str] | None = None,
    phones: str | None = None,
    threshold: float | None = None,
    lexicon: str | os.PathLike | None = None,
    stdin: IO | None = None,
    batch_size: int = 64,
    announce: Callable[[Pronunciation], None] | None = None,
    fa_per_hour: float | None = None,
    warn: Callable[[str], None] | None = None,
) -> Stream:
    """Find words, given only their pronunciations, in audio files of any length.

    Each keyword (one, or several searched in the same posteriors: the model runs once
    per file) is any English word (:func:`keyword_pronunciation`: the lexicon given, else
    the model folder's, else the shipped one, then CMUdict, then G2P);
    ``announce(pronunciation)`` is called with each before the model loads. ``phones``
    spots one pronunciation instead, named after the one keyword if given.

    For each pronunciation, :func:`kws.phones.ctc.keyword_search` aligns its phones
    anywhere in the file's posteriors; places scoring at least that pronunciation's
    threshold (:func:`pronunciation_thresholds`) where no rival word aligns better are
    detections (overlaps of one keyword keep the best: :func:`spot_in`), in order of start.
    On a calibrated model each detection carries its ``fa_per_hour``; ``warn(message)`` is
    told when even confidence 1 false-accepts more often than the rate asked. Iterate the
    stream for :class:`kws.infer.Detection` and Failure records.

    Raises
    ------
    UsageError
        What :func:`check_spot_options`, :func:`check_rate_calibrated` and
        :func:`spot_targets` refuse (before the model loads).
    """
    # Everything the arguments decide is checked before the model (and TensorFlow) loads.
    check_spot_options(threshold, fa_per_hour)
    model = resolve_model_dir(model, Task.PHONES)
    calibration = phone_card(model).fa_calibration
    check_rate_calibrated(model, calibration, threshold, fa_per_hour)
    words = model_lexicon(model, lexicon)
    targets = spot_targets(keywords, phones, words, calibration, threshold, fa_per_hour,
                           announce, warn)
    recognizer = PhoneRecognizer(model, words)

    def convert(scored: Scored, posteriors: np.ndarray) -> list[Detection]:
        duration = len(scored.waveform) / recognizer.sample_rate
        log_probs = ctc.log_posteriors(posteriors)
        found = sorted((d for t in targets for d in spot_in(
            log_probs, scored.path, t.spotted.word, t.spotted.phones, t.ids, t.thresholds,
            recognizer.frame_seconds, duration)), key=lambda d: (d.start, d.label))
        if calibration is None:
            return found
        return [dataclasses.replace(d, fa_per_hour=round(calibration.group(
            len(d.pronunciation)).fa_per_hour_at(d.probability), 4)) for d in found]

    return recognizer.stream(inputs, stdin, convert, batch_size)


def pronunciation_thresholds(
    name: str,
    prons: Sequence[Sequence[str]],
    calibration: FaCalibration | None,
    threshold: float | None = None,
    fa_per_hour: float | None = None,
    warn: Callable[[str], None] | None = None,
) -> list[float]:
    """The confidence each pronunciation of a keyword needs to be a detection.

    ``threshold`` if given; else, on a model calibrated by ``kws phones calibrate``, the
    confidence at which words as long as that pronunciation (in phones) false-accept
    ``fa_per_hour`` times an hour (default :data:`kws.modelfolder.DEFAULT_FA_PER_HOUR`):
    "enter" said "eh n t er" needs less than said "eh n er"; else the phone task's
    :data:`kws.infer.DEFAULT_SPOT_THRESHOLD`. ``warn(message)`` is told of each length
    that false-accepts more often than the rate even at confidence 1.
    """
    if threshold is not None or calibration is None:
        chosen = DEFAULT_SPOT_THRESHOLD[Task.PHONES] if threshold is None else threshold
        return [float(chosen)] * len(prons)
    target = DEFAULT_FA_PER_HOUR if fa_per_hour is None else fa_per_hour
    groups = [calibration.group(len(pron)) for pron in prons]
    for group in {group.name: group for group in groups}.values():
        if warn is not None and group.fa_per_hour[-1] > target:
            warn(f"{name}: words of {group.name} false-accept {group.fa_per_hour[-1]:.2g} "
                 f"times an hour even at confidence 1, more than {target:g}: only "
                 "detections of confidence 1 are reported")
    return [group.threshold_for(target) for group in groups]


def keyword_seconds(phones: int) -> float:
    """The longest a word of ``phones`` phones is allowed to last when spotting (seconds).

    Generous for slow speech (a quarter second per phone plus half a second), so only
    alignments that pick phones from words far apart are refused.
    """
    return 0.5 + 0.25 * phones


def spot_in(
    log_probs: np.ndarray,
    path: str,
    name: str,
    prons: Sequence[tuple[str, ...]],
    ids: Sequence[list[int]],
    threshold: float | Sequence[float],
    frame_seconds: float,
    duration: float,
    search: Callable[..., list[ctc.KeywordHit]] = ctc.keyword_search,
) -> list[Detection]:
    """Detections of a keyword (any of its pronunciations) in one file's log posteriors:
    places scoring at least ``threshold`` (one for every pronunciation, or one each).

    ``search(log_probs, labels, threshold, max_frames)`` finds each pronunciation's hits
    (:func:`kws.phones.ctc.keyword_search`; calibration passes one reading alignments it
    scored for many words at once). A hit where a rival word, one phone different or
    longer (:func:`kws.phones.lexicon.rival_pronunciations`: "three" or "trees" for
    "tree"), aligns better (:func:`rival_confidence`) is dropped: the recogniser heard
    that word there. So is a hit followed by the phones of a longer word that starts with
    the keyword ("sixty" for "six", :func:`continuation_confidence`).
    """
    limits = ([float(threshold)] * len(prons) if isinstance(threshold, (int, float))
              else list(threshold))
    pad = int(round(RIVAL_PAD_SECONDS / frame_seconds))
    later = pad + int(round(CONTINUATION_SECONDS / frame_seconds))
    hits = []
    for pron, labels, limit in zip(prons, ids, limits, strict=True):
        longest = int(round(keyword_seconds(len(labels)) / frame_seconds))
        rivals = [ids for rival, ids in _rival_ids(tuple(pron), name) if rival not in prons]
        longer = [ids for rival, ids in _continuation_ids(tuple(pron), name)
                  if rival not in prons]
        hits += [(hit, pron) for hit in search(log_probs, labels, limit, longest)
                 if rival_confidence(log_probs, hit, rivals, pad) <= hit.confidence
                 and continuation_confidence(log_probs, hit, len(labels), longer, pad,
                                             later) < CONTINUATION_CONFIDENCE]
    kept: list[tuple[ctc.KeywordHit, tuple[str, ...]]] = []
    for hit, pron in sorted(hits, key=lambda item: -item[0].confidence):
        if all(hit.last < other.first or hit.first > other.last for other, _ in kept):
            kept.append((hit, pron))
    # The first and last phones' spikes, widened as decoded phones are (ctc.segments).
    return [
        Detection(name, round(hit.confidence, 4),
                  round(max(0.0, hit.first * frame_seconds - EXTEND_SECONDS), 3),
                  round(min(duration, (hit.last + 1) * frame_seconds + EXTEND_SECONDS), 3),
                  path=path, pronunciation=pron)
        for hit, pron in sorted(kept, key=lambda item: item[0].first)
    ]


@functools.lru_cache(maxsize=4096)
def _rival_ids(pron: tuple[str, ...], name: str) -> tuple[tuple[tuple[str, ...], list[int]], ...]:
    """``(rival, its phone ids)`` of a pronunciation, converted once: calibration spots
    hundreds of words in every recording."""
    return tuple((rival, phone_ids(rival)) for rival in rival_pronunciations(pron, name))


@functools.lru_cache(maxsize=4096)
def _continuation_ids(pron: tuple[str, ...], name: str
                      ) -> tuple[tuple[tuple[str, ...], list[int]], ...]:
    """:func:`_rival_ids` of the longer words that start with a pronunciation."""
    return tuple((longer, phone_ids(longer))
                 for longer in continuation_pronunciations(pron, name))


def rival_confidence(log_probs: np.ndarray, hit: ctc.KeywordHit,
                     rivals: Sequence[Sequence[int]], pad: int = 0) -> float:
    """The best confidence (:func:`kws.phones.ctc.keyword_scores`) of any of the ``rivals``
    (phone id sequences) aligned within a hit's frames widened by ``pad`` each side; 0
    without rivals."""
    segment = log_probs[max(0, hit.first - pad): hit.last + 1 + pad]
    return max((float(conf.max()) for conf, _ in ctc.keyword_scores_many(segment, rivals)),
               default=0.0)


def continuation_confidence(log_probs: np.ndarray, hit: ctc.KeywordHit, phones: int,
                            longer: Sequence[Sequence[int]], pad: int, after: int) -> float:
    """How surely a hit of a ``phones``-phone keyword goes on as one of the ``longer``
    words that start with it ("sixty" after "six"): the best geometric mean of the
    posteriors of the phones such a word adds, aligned from ``pad`` frames before the hit
    to ``after`` frames after it; 0 without such words.

    A longer word's whole confidence is lower than the keyword's wherever one of its added
    phones is less sure, so what is compared is the added phones' share of its score (the
    word's log score less the hit's, per added phone).
    """
    if not longer or hit.confidence <= 0:
        return 0.0
    segment = log_probs[max(0, hit.first - pad): hit.last + 1 + after]
    keyword_score = phones * math.log(hit.confidence)
    best = 0.0
    for (confidence, _), labels in zip(ctc.keyword_scores_many(segment, longer), longer,
                                       strict=True):
        peak = float(confidence.max())
        if peak > 0:
            added = (len(labels) * math.log(peak) - keyword_score) / (len(labels) - phones)
            best = max(best, math.exp(min(0.0, added)))
    return best


# ----------------------------------------------------------------------------- evaluation


def recording_posteriors(
    recognizer: PhoneRecognizer, paths: Sequence[str | os.PathLike], batch_size: int = 64,
    progress: Progress | None = None,
) -> tuple[dict[str, np.ndarray], list[tuple[str, str]]]:
    """Posteriors of whole recordings of any length through the inference pipeline:
    ``({path: posteriors}, [(path, problem)] of those that could not be read)``."""
    unique = list(dict.fromkeys(str(p) for p in paths))
    found: dict[str, np.ndarray] = {}
    failed: list[tuple[str, str]] = []
    stream = recognizer.stream(unique, None, lambda scored, post: [(scored.path, post)],
                               batch_size)
    for record in stream:
        if isinstance(record, Failure):
            failed.append((record.path, record.message.removeprefix(f"{record.path}: ")))
        else:
            found[record[0]] = record[1]
        if progress:
            progress(len(found) + len(failed), len(unique))
    return found, failed


@dataclass
class PhoneEvaluation:
    """A phone model measured on a dataset split."""

    model: str
    data: list[str]
    split: str
    decoder: str
    result: ScoreResult
    failed: list[tuple[str, str]]
    #: Prefixes kept by the beam search (None: greedy decoding).
    beam: int | None = None

    def to_json(self) -> dict[str, Any]:
        """Everything ``kws phones evaluate --json`` prints."""
        accuracy = self.result.word_accuracy
        return {
            "model": self.model,
            "data": self.data,
            "split": self.split,
            "decoder": self.decoder,
            "beam": self.beam,
            **self.result.errors.to_json(),
            "word_accuracy": None if accuracy is None else round(accuracy, 6),
            "words_scored": self.result.words_scored,
            "failed": [{"path": path, "error": problem} for path, problem in self.failed],
        }


def evaluate_phones(
    model: str | os.PathLike | None,
    data: Sequence[str | os.PathLike],
    split: str = "test",
    decoder: str = DEFAULT_DECODER,
    lexicon: str | os.PathLike | None = None,
    validation_percent: float = 10.0,
    testing_percent: float = 10.0,
    batch_size: int = 128,
    progress: Progress | None = None,
    beam: int = DEFAULT_BEAM,
) -> PhoneEvaluation:
    """PER (and word accuracy on Speech Commands data) of a phone model on a split.

    References come from the lexicon (``lexicon``, else the model folder's, then CMUdict)
    for Speech Commands clips and transcribed utterances, and from the ``.PHN`` files for
    TIMIT-format folders; word accuracy matches each clip's phones to the closest of the
    words the clips say. ``split`` is
    ``test``, ``validation``, ``train`` or ``all``. ``progress(done, total)`` is called as
    clips are scored.
    """
    if split not in SPLIT_CHOICES:
        raise UsageError(f"--split: {split!r} is not one of {', '.join(SPLIT_CHOICES)}")
    check_decoder(decoder, beam)
    recognizer = PhoneRecognizer(model, lexicon)
    words = merge_lexicons(recognizer.lexicon, cmudict_lexicon())
    examples, _, _ = read_examples(data, words, None, (), validation_percent,
                                   testing_percent, silence_percent=0.0)
    wanted = SPLIT_CHOICES[split]
    if wanted is not None:
        examples = [e for e in examples if e.clip.split == wanted]
    if not examples:
        raise DatasetError(f"{', '.join(map(str, data))}: no clips in the {split} split")
    found, failed = recording_posteriors(recognizer, [e.clip.path for e in examples],
                                         batch_size, progress)
    if not found:
        raise DatasetError(f"{', '.join(map(str, data))}: none of the {split} clips is readable")
    examples = [e for e in examples if str(e.clip.path) in found]
    said = sorted({e.word for e in examples if e.word not in (None, SILENCE)})
    result = score_examples([found[str(e.clip.path)] for e in examples], examples,
                            words.subset(said) if said else None, decoder,
                            recognizer.frame_seconds, beam)
    return PhoneEvaluation(
        model=str(recognizer.folder), data=[str(d) for d in data], split=split, decoder=decoder,
        result=result, failed=failed, beam=beam if decoder == "beam" else None,
    )
