"""Using phone models: decoding, scoring, and ``kws phones predict|evaluate|spot``.

:class:`PhoneRecognizer` loads a model folder. Recordings longer than the model's input
are cut into windows overlapping by half (:func:`kws.predict.sliding_windows`) and each
frame's posteriors are taken from the window where it is most central, so files of any
length get one posterior row per frame. Inputs, folders, ``-`` for paths on stdin and
unreadable files are handled exactly as by ``kws predict`` (:func:`kws.predict.expand_inputs`,
:class:`kws.predict.Failure`).

Scoring compares decoded phones with the closest of a clip's references (a word's
pronunciations); word accuracy matches the decoded phones to the nearest lexicon entry
(:func:`closest_word`).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from kws import audio
from kws.dataset import (
    SILENCE,
)
from kws.errors import AudioError, DatasetError, KwsError, UsageError
from kws.modelfolder import CARD_FILE, KERAS_FILE, read_card
from kws.phones import ctc
from kws.phones.data import Example, phone_ids, read_examples
from kws.phones.lexicon import Lexicon, load_lexicon, read_lexicon
from kws.phones.metrics import PhoneErrors, closest_reference, edit_distance
from kws.phones.phoneset import model_labels

#: The task name of phone models in ``card.json``.
TASK = "phones"
#: Lexicon file inside a phone model folder (the pronunciations it was trained with).
MODEL_LEXICON = "lexicon.txt"
#: Confidence a keyword alignment needs to count as a detection, unless told otherwise
#: (on the benchmark: 86 % of trained keywords found, 1.7 % false alarms on other words).
DEFAULT_SPOT_THRESHOLD = 0.5
DECODERS = ("greedy", "beam")
#: How far a phone's time span reaches into the blank frames around its CTC spike (s).
EXTEND_SECONDS = 0.1
#: Label of a clip with no speech when words are matched.
NO_WORD = SILENCE


# ----------------------------------------------------------------------------- scoring


@dataclass
class Decoded:
    """One utterance's recognised phones: ``(phone, start s, end s, posterior)``."""

    phones: list[tuple[str, float, float, float]]

    @property
    def sequence(self) -> list[str]:
        return [p for p, _, _, _ in self.phones]


def decode(
    log_probs: np.ndarray,
    frame_seconds: float,
    decoder: str = "greedy",
    beam: int = 8,
    duration: float | None = None,
) -> Decoded:
    """Phones of one utterance's log posteriors, with approximate times.

    ``greedy`` keeps each frame's best class; ``beam`` runs a prefix beam search and
    aligns its best sequence to the frames for the times.
    """
    labels = model_labels()
    if decoder == "beam":
        best = ctc.prefix_beam_search(log_probs, beam=beam)[0][0]
        found = ctc.align(log_probs, list(best))
    elif decoder == "greedy":
        found = ctc.greedy_decode(log_probs)
    else:
        raise UsageError(f"--decoder must be one of {', '.join(DECODERS)}, not {decoder!r}")
    times = ctc.segments(found, frame_seconds, duration,
                         max_extend=int(round(EXTEND_SECONDS / frame_seconds)))
    phones = []
    for segment, (label, start, end) in zip(found, times, strict=True):
        posterior = float(np.exp(log_probs[segment.first : segment.last + 1, label].max()))
        phones.append((labels[label], round(start, 3), round(end, 3), round(posterior, 4)))
    return Decoded(phones)


def closest_word(
    log_probs: np.ndarray, hypothesis: Sequence[str], lexicon: Lexicon
) -> tuple[str, int]:
    """The lexicon word whose pronunciation is nearest the decoded phones.

    Nearest by edit distance; ties go to the pronunciation the posteriors find likeliest
    (CTC log-likelihood). No phones at all is ``_silence_``. Returns ``(word, distance)``.
    """
    if not hypothesis:
        return NO_WORD, 0
    best: tuple[int, float, str] | None = None
    for word in lexicon:
        for pron in lexicon.pronunciations(word):
            distance = edit_distance(pron, hypothesis).errors
            if best is not None and distance > best[0]:
                continue
            score = ctc.ctc_log_likelihood(log_probs, phone_ids(pron))
            if best is None or (distance, -score) < (best[0], -best[1]):
                best = (distance, score, word)
    return best[2], best[0]


@dataclass
class ScoreResult:
    """PER counts and word matching of a set of examples."""

    errors: PhoneErrors
    words_correct: int = 0
    words_scored: int = 0
    #: ``[(path, reference word or None, recognised phones, matched word)]``.
    rows: list[tuple[str, str | None, list[str], str | None]] = field(default_factory=list)

    @property
    def word_accuracy(self) -> float | None:
        return self.words_correct / self.words_scored if self.words_scored else None


def score_examples(
    posteriors: np.ndarray,
    examples: Sequence[Example],
    lexicon: Lexicon | None,
    decoder: str = "greedy",
    frame_seconds: float = 0.02,
) -> ScoreResult:
    """Decode each example's posteriors and score them against its references.

    Word accuracy counts Speech Commands examples whose decoded phones match their word
    (:func:`closest_word`; silence must decode to nothing); ``lexicon=None`` skips it.
    """
    result = ScoreResult(PhoneErrors())
    for example, probs in zip(examples, posteriors, strict=True):
        log_probs = ctc.log_posteriors(probs)
        hypothesis = decode(log_probs, frame_seconds, decoder).sequence
        _, counts = closest_reference(example.references, hypothesis)
        result.errors.add(counts)
        matched = None
        if lexicon is not None and example.word is not None:
            matched, _ = closest_word(log_probs, hypothesis, lexicon)
            result.words_scored += 1
            result.words_correct += matched == example.word
        result.rows.append((str(example.clip.path), example.word, hypothesis, matched))
    return result


def predict_posteriors(model, x: np.ndarray, batch_size: int = 128) -> np.ndarray:
    """Posteriors ``(n, frames, classes)`` of a Keras phone model for clips ``x``."""
    if len(x) == 0:
        return np.zeros((0, *model.output_shape[1:]), dtype=np.float32)
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0), dtype=np.float32)


# ----------------------------------------------------------------------------- inference


class PhoneRecognizer:
    """A phone model folder loaded for inference.

    ``lexicon`` overrides the lexicon saved in the folder (used for spotting words and
    matching decoded phones to words).
    """

    def __init__(self, folder: str | os.PathLike, lexicon: str | os.PathLike | None = None):
        from kws.predict import import_tensorflow_quietly

        import_tensorflow_quietly()
        from kws.modelfolder import load_keras_model
        from kws.models.phones import frame_stride

        self.folder = Path(folder)
        self.card = read_card(self.folder)
        if self.card.task != TASK:
            raise KwsError(f"{self.folder}: a {self.card.task} model, not a phone model "
                           "(train one with `kws phones train`)")
        if self.card.labels != model_labels():
            raise KwsError(f"{self.folder / CARD_FILE}: labels are not the CTC blank and the "
                           "39 phones of this kws version")
        self.sample_rate = int(self.card.sample_rate)
        self.input_length = int(self.card.input_length)
        self.frame_ms = float(self.card.recipe.get("frame_ms", 20.0))
        frame_stride(self.frame_ms)
        self.frame_samples = int(round(self.sample_rate * self.frame_ms / 1000))
        self.frame_seconds = self.frame_ms / 1000
        self._lexicon_file = lexicon
        self._lexicon: Lexicon | None = None
        self.model = load_keras_model(self.folder)
        frames = int(self.model.outputs[0].shape[1])
        if int(self.model.outputs[0].shape[-1]) != len(self.card.labels):
            raise KwsError(f"{self.folder / KERAS_FILE}: model outputs do not match card.json")
        self.frames = frames

    @property
    def lexicon(self) -> Lexicon:
        """The lexicon given, else the folder's, else the shipped one."""
        if self._lexicon is None:
            saved = self.folder / MODEL_LEXICON
            if self._lexicon_file is not None:
                self._lexicon = read_lexicon(self._lexicon_file)
            elif saved.is_file():
                self._lexicon = read_lexicon(saved)
            else:
                self._lexicon = load_lexicon(None)
        return self._lexicon

    def _windows(self, waveform: np.ndarray) -> tuple[np.ndarray, int]:
        """The model inputs covering a recording, and the hop between them in frames."""
        from kws.predict import sliding_windows

        if len(waveform) <= self.input_length:
            return audio.fix_length(waveform, self.input_length)[None, :], self.frames
        hop_frames = max(1, self.frames // 2)
        return sliding_windows(waveform, self.input_length, hop_frames * self.frame_samples), \
            hop_frames

    def _stitch(self, window_posteriors: np.ndarray, hop_frames: int, total: int) -> np.ndarray:
        """One posterior row per frame, from the window where the frame is most central."""
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

        A recording gives ``ceil(samples / frame_samples)`` frames; windows of all the
        recordings are run through the model together, ``batch_size`` at a time.
        """
        cut = [self._windows(w) for w in waveforms]
        if not cut:
            return []
        stacked = np.concatenate([windows for windows, _ in cut]).astype(np.float32)
        outputs = np.concatenate([
            np.asarray(self.model.predict_on_batch(stacked[i : i + batch_size]),
                       dtype=np.float32)
            for i in range(0, len(stacked), batch_size)
        ])
        results, row = [], 0
        for waveform, (windows, hop_frames) in zip(waveforms, cut, strict=True):
            total = max(1, -(-len(waveform) // self.frame_samples))
            results.append(self._stitch(outputs[row : row + len(windows)], hop_frames, total))
            row += len(windows)
        return results


@dataclass(frozen=True)
class PhonePrediction:
    """The phones recognised in one file: ``(phone, start, end, posterior)`` each."""

    path: str
    phones: tuple[tuple[str, float, float, float], ...]
    duration: float


@dataclass(frozen=True)
class Detection:
    """A keyword found by spotting (times in seconds)."""

    path: str
    keyword: str
    start: float
    end: float
    confidence: float
    pronunciation: tuple[str, ...]


@dataclass
class Stream:
    """Results produced while iterating; ``succeeded`` and ``failed`` count the inputs."""

    recognizer: PhoneRecognizer
    results: Iterable
    succeeded: int = 0
    failed: int = 0

    def __iter__(self):
        from kws.predict import Failure

        for item in self.results:
            if isinstance(item, Failure):
                self.failed += 1
                yield item
            else:
                self.succeeded += 1
                yield from item


def _decoded_files(
    recognizer: PhoneRecognizer,
    inputs: Iterable[str],
    stdin: TextIO | None,
    batch_files: int,
) -> Iterator:
    """``(path, waveform, posteriors)`` per readable input, or a Failure, in input order."""
    from kws.predict import Failure, expand_inputs

    def load(path: Path):
        try:
            return audio.load(path, recognizer.sample_rate)
        except AudioError as error:
            return Failure(str(path), str(error))
        except (OSError, ValueError, RuntimeError, MemoryError) as error:
            return Failure(str(path), f"{path}: cannot read ({error})")

    source = expand_inputs(inputs, stdin)
    workers = min(8, 2 * (os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kws-decode") as pool:
        while True:
            chunk = list(itertools.islice(source, batch_files))
            if not chunk:
                return
            loaded = list(pool.map(lambda item: item if isinstance(item, Failure)
                                   else load(item), chunk))
            good = [(path, w) for path, w in zip(chunk, loaded, strict=True)
                    if not isinstance(w, Failure)]
            posteriors = iter(recognizer.posteriors([w for _, w in good]))
            for path, result in zip(chunk, loaded, strict=True):
                yield result if isinstance(result, Failure) else (path, result, next(posteriors))


def predict_phones(
    inputs: Iterable[str],
    model: str | os.PathLike,
    decoder: str = "greedy",
    beam: int = 8,
    stdin: TextIO | None = None,
    batch_files: int = 32,
) -> Stream:
    """Recognise the phones of audio files, with approximate times.

    ``inputs`` are files, folders (searched recursively) and ``-`` (paths on ``stdin``),
    as for ``kws predict``. Iterate the returned stream for :class:`PhonePrediction` and
    :class:`kws.predict.Failure` records in input order.
    """
    if decoder not in DECODERS:
        raise UsageError(f"--decoder must be one of {', '.join(DECODERS)}, not {decoder!r}")
    if beam < 1:
        raise UsageError("--beam must be at least 1")
    recognizer = PhoneRecognizer(model)

    def results():
        for item in _decoded_files(recognizer, inputs, stdin, batch_files):
            if not isinstance(item, tuple):
                yield item
                continue
            path, waveform, posteriors = item
            duration = len(waveform) / recognizer.sample_rate
            found = decode(ctc.log_posteriors(posteriors), recognizer.frame_seconds, decoder,
                           beam, duration)
            yield [PhonePrediction(str(path), tuple(found.phones), round(duration, 3))]

    return Stream(recognizer, results())


def keyword_pronunciations(
    keyword: str | None, phones: str | None, lexicon: Lexicon
) -> tuple[str, tuple[tuple[str, ...], ...]]:
    """The name and pronunciations to spot: ``--phones`` if given, else the lexicon's."""
    from kws.phones.phoneset import fold

    if phones is not None:
        folded = []
        for symbol in phones.replace(",", " ").split():
            try:
                phone = fold(symbol)
            except ValueError:
                raise UsageError(f"--phones: unknown phone {symbol!r} (use the 39-phone "
                                 "ARPAbet set, e.g. \"m aa r v ih n\")") from None
            if phone is not None:
                folded.append(phone)
        if not folded:
            raise UsageError("--phones: no phones given")
        return keyword or "-".join(folded), (tuple(folded),)
    if not keyword:
        raise UsageError("give --keyword WORD (from the lexicon) or --phones \"p h o n e s\"")
    return keyword, lexicon.pronunciations(keyword)


def spot_phones(
    inputs: Iterable[str],
    model: str | os.PathLike,
    keyword: str | None = None,
    phones: str | None = None,
    threshold: float = DEFAULT_SPOT_THRESHOLD,
    lexicon: str | os.PathLike | None = None,
    stdin: TextIO | None = None,
    batch_files: int = 32,
) -> Stream:
    """Find a word, given only its pronunciation, in audio files of any length.

    For each pronunciation, :func:`kws.phones.ctc.keyword_search` aligns its phones
    anywhere in the file's posteriors and scores the alignment against the best path;
    places scoring at least ``threshold`` are detections (overlaps keep the best).
    Iterate the stream for :class:`Detection` and Failure records.
    """
    if not 0.0 < threshold <= 1.0:
        raise UsageError("--threshold must be in (0, 1]")
    recognizer = PhoneRecognizer(model, lexicon)
    name, prons = keyword_pronunciations(keyword, phones, recognizer.lexicon)
    ids = [phone_ids(pron) for pron in prons]

    def results():
        for item in _decoded_files(recognizer, inputs, stdin, batch_files):
            if not isinstance(item, tuple):
                yield item
                continue
            path, waveform, posteriors = item
            duration = len(waveform) / recognizer.sample_rate
            yield spot_in(ctc.log_posteriors(posteriors), str(path), name, prons, ids,
                          threshold, recognizer.frame_seconds, duration)

    return Stream(recognizer, results())


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
    threshold: float,
    frame_seconds: float,
    duration: float,
) -> list[Detection]:
    """Detections of a keyword (any of its pronunciations) in one file's log posteriors."""
    hits = []
    for pron, labels in zip(prons, ids, strict=True):
        longest = int(round(keyword_seconds(len(labels)) / frame_seconds))
        for hit in ctc.keyword_search(log_probs, labels, threshold, longest):
            hits.append((hit, pron))
    kept: list[tuple[ctc.KeywordHit, tuple[str, ...]]] = []
    for hit, pron in sorted(hits, key=lambda item: -item[0].confidence):
        if all(hit.last < other.first or hit.first > other.last for other, _ in kept):
            kept.append((hit, pron))
    # The first and last phones' spikes, widened as decoded phones are (ctc.segments).
    return [
        Detection(path, name,
                  round(max(0.0, hit.first * frame_seconds - EXTEND_SECONDS), 3),
                  round(min(duration, (hit.last + 1) * frame_seconds + EXTEND_SECONDS), 3),
                  round(hit.confidence, 4), pron)
        for hit, pron in sorted(kept, key=lambda item: item[0].first)
    ]


# ----------------------------------------------------------------------------- evaluation


@dataclass
class PhoneEvaluation:
    """A phone model measured on a dataset split."""

    model: str
    data: list[str]
    split: str
    decoder: str
    result: ScoreResult
    failed: list[tuple[str, str]]

    def to_json(self) -> dict[str, Any]:
        """Everything ``kws phones evaluate --json`` prints."""
        accuracy = self.result.word_accuracy
        return {
            "model": self.model,
            "data": self.data,
            "split": self.split,
            "decoder": self.decoder,
            **self.result.errors.to_json(),
            "word_accuracy": None if accuracy is None else round(accuracy, 6),
            "words_scored": self.result.words_scored,
            "failed": [{"path": path, "error": problem} for path, problem in self.failed],
        }


def evaluate_phones(
    model: str | os.PathLike,
    data: Sequence[str | os.PathLike],
    split: str = "test",
    decoder: str = "greedy",
    lexicon: str | os.PathLike | None = None,
    validation_percent: float = 10.0,
    testing_percent: float = 10.0,
    console=None,
) -> PhoneEvaluation:
    """PER (and word accuracy on Speech Commands data) of a phone model on a split.

    References come from the lexicon (the model folder's, or ``lexicon``) for Speech
    Commands folders and from the ``.PHN`` files for TIMIT-format folders; ``split`` is
    ``test``, ``validation``, ``train`` or ``all``.
    """
    from kws.evaluate import SPLIT_CHOICES
    from kws.training import load_arrays, stderr_console

    console = console or stderr_console()
    if split not in SPLIT_CHOICES:
        raise UsageError(f"--split: {split!r} is not one of {', '.join(SPLIT_CHOICES)}")
    if decoder not in DECODERS:
        raise UsageError(f"--decoder must be one of {', '.join(DECODERS)}, not {decoder!r}")
    recognizer = PhoneRecognizer(model, lexicon)
    examples, _, _ = read_examples(data, recognizer.lexicon, None, (), validation_percent,
                                   testing_percent, silence_percent=0.0)
    wanted = SPLIT_CHOICES[split]
    if wanted is not None:
        examples = [e for e in examples if e.clip.split == wanted]
    if not examples:
        raise DatasetError(f"{', '.join(map(str, data))}: no clips in the {split} split")
    x, kept, failed = load_arrays([e.clip for e in examples], recognizer.sample_rate,
                                  recognizer.input_length, console, what=f"{split} clips")
    examples = [e for e in examples if e.clip.path not in failed]
    if not kept:
        raise DatasetError(f"{', '.join(map(str, data))}: none of the {split} clips is readable")
    posteriors = predict_posteriors(recognizer.model, x)
    result = score_examples(posteriors, examples, recognizer.lexicon, decoder,
                            recognizer.frame_seconds)
    return PhoneEvaluation(
        model=str(model), data=[str(d) for d in data], split=split, decoder=decoder,
        result=result, failed=[(str(p), e.problem) for p, e in failed.items()],
    )
