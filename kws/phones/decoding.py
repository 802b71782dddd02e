"""Decoding and scoring phone posteriors: what training and inference share.

:func:`decode` turns one utterance's per-frame posteriors into phones with approximate
times (greedy or CTC prefix beam search); :func:`score_examples` decodes labelled examples
and counts phone errors against their closest reference, and optionally matches the
decoded phones to the nearest lexicon word (:func:`closest_word`). Both the trainer (the
validation PER after every epoch, the card's metrics) and the recognizer use them, so
they live below both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from kws.dataset import SILENCE
from kws.errors import UsageError
from kws.phones import ctc
from kws.phones.bigram import english_transitions
from kws.phones.data import Example, bucket_length, padded, phone_ids
from kws.phones.lexicon import Lexicon
from kws.phones.metrics import PhoneErrors, closest_reference, edit_distance
from kws.phones.phoneset import model_labels

#: Lexicon file inside a phone model folder (the pronunciations it was trained with).
MODEL_LEXICON = "lexicon.txt"
DECODERS = ("greedy", "beam")
#: What ``kws phones predict`` and ``kws phones evaluate`` decode with unless told: the
#: prefix beam search (with the phone bigram) found fewer phone errors than greedy
#: decoding on every validation set of ``bench/phones.py`` (the trainer's per-epoch PER
#: stays greedy, for speed).
DEFAULT_DECODER = "beam"
#: Prefixes the beam search keeps (16 measured no better than 8).
DEFAULT_BEAM = 8
#: How far a phone's time span reaches into the blank frames around its CTC spike (s).
EXTEND_SECONDS = 0.1
#: Label of a clip with no speech when words are matched.
NO_WORD = SILENCE


@dataclass
class Decoded:
    """One utterance's recognised phones: ``(phone, start s, end s, posterior)``."""

    phones: list[tuple[str, float, float, float]]

    @property
    def sequence(self) -> list[str]:
        return [p for p, _, _, _ in self.phones]


def check_decoder(decoder: str, beam: int = DEFAULT_BEAM) -> None:
    """Raise UsageError for a ``--decoder`` or ``--beam`` that cannot decode."""
    if decoder not in DECODERS:
        raise UsageError(f"--decoder must be one of {', '.join(DECODERS)}, not {decoder!r}")
    if beam < 1:
        raise UsageError("--beam must be at least 1")


def decode(
    log_probs: np.ndarray,
    frame_seconds: float,
    decoder: str = DEFAULT_DECODER,
    beam: int = DEFAULT_BEAM,
    duration: float | None = None,
) -> Decoded:
    """Phones of one utterance's log posteriors, with approximate times.

    ``greedy`` keeps each frame's best class; ``beam`` runs a prefix beam search weighted
    by English phone sequences (:func:`kws.phones.bigram.english_transitions`) and aligns
    its best sequence to the frames for the times.
    """
    check_decoder(decoder, beam)
    labels = model_labels()
    if decoder == "beam":
        best = ctc.prefix_beam_search(log_probs, beam=beam,
                                      transitions=english_transitions())[0][0]
        found = ctc.align(log_probs, list(best))
    else:
        found = ctc.greedy_decode(log_probs)
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
    decoder: str = DEFAULT_DECODER,
    frame_seconds: float = 0.02,
    beam: int = DEFAULT_BEAM,
) -> ScoreResult:
    """Decode each example's posteriors and score them against its references.

    Word accuracy counts Speech Commands examples whose decoded phones match their word
    (:func:`closest_word`; silence must decode to nothing); ``lexicon=None`` skips it.
    """
    result = ScoreResult(PhoneErrors())
    for example, probs in zip(examples, posteriors, strict=True):
        log_probs = ctc.log_posteriors(probs)
        hypothesis = decode(log_probs, frame_seconds, decoder, beam).sequence
        _, counts = closest_reference(example.references, hypothesis)
        result.errors.add(counts)
        matched = None
        if lexicon is not None and example.word is not None:
            matched, _ = closest_word(log_probs, hypothesis, lexicon)
            result.words_scored += 1
            result.words_correct += matched == example.word
        result.rows.append((str(example.clip.path), example.word, hypothesis, matched))
    return result


def predict_posteriors(model, waveforms: Sequence[np.ndarray], frame_samples: int,
                       rate: int, seconds_per_batch: float = 64.0) -> list[np.ndarray]:
    """Posteriors ``(frames, classes)`` of a Keras phone model for recordings of any length.

    Recordings are grouped by :func:`kws.phones.data.bucket_length` and zero-padded (the
    model's front end normalises over the frames with signal); each result keeps ``ceil(samples /
    frame_samples)`` frames, its own.
    """
    groups: dict[int, list[int]] = {}
    for index, waveform in enumerate(waveforms):
        groups.setdefault(bucket_length(len(waveform), rate), []).append(index)
    results: list[np.ndarray] = [np.zeros((0, 0), np.float32)] * len(waveforms)
    for length, rows in sorted(groups.items()):
        size = max(1, int(seconds_per_batch * rate // length))
        for start in range(0, len(rows), size):
            chunk = rows[start : start + size]
            outputs = np.asarray(model.predict_on_batch(
                padded([waveforms[r] for r in chunk], length)), dtype=np.float32)
            for row, output in zip(chunk, outputs, strict=True):
                results[row] = output[: -(-len(waveforms[row]) // frame_samples)]
    return results
