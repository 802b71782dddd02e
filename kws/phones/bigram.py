"""A phone bigram of English words: how likely each phone is to follow another.

The beam search of :func:`kws.phones.decoding.decode` adds a weighted log of it
(:func:`english_transitions`) whenever a decoded phone sequence grows, so that a phone
the posteriors leave in doubt is read the way English words run (``l eh f t`` rather than
``l eh f``). It is estimated from the pronunciations of CMUdict's words, each word once,
so it knows English phonotactics, not the training words: a word never heard is helped as
much as any other. Within a word a phone follows the one before it; at a word's end
the next phone is one that starts a word. Silence resets the context to a word start.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

import numpy as np

from kws.phones.lexicon import cmudict_lexicon
from kws.phones.phoneset import SILENCE_PHONE, model_labels

#: Weight of the bigram's log probability against the acoustic log posteriors, and the
#: log bonus of each decoded phone (against deleting phones to avoid bigram costs):
#: chosen on the phone benchmark's validation files (0.2-0.4 and 0.5-2 tried), where
#: they lowered PER on every set; see the README's phone benchmark.
LM_WEIGHT = 0.3
INSERTION_BONUS = 1.0
#: Count added to every transition, so none is impossible.
_SMOOTHING = 0.1


def bigram(pronunciations: Iterable[Sequence[str]], labels: Sequence[str]) -> np.ndarray:
    """``P[p, c]``: the probability that phone ``c`` follows phone ``p`` in running speech
    of words with these ``pronunciations``, over the indices of ``labels``.

    Index 0 (the CTC blank's) stands for a word boundary: row 0 is how words start. A
    row's mass is the phone's within-word continuations plus, for its share of word
    ends, the word starts. Silence follows nothing here (its column is 0).
    """
    index = {label: i for i, label in enumerate(labels)}
    counts = np.full((len(labels), len(labels)), _SMOOTHING)
    for pron in pronunciations:
        ids = [0, *(index[p] for p in pron if p in index), 0]
        np.add.at(counts, (ids[:-1], ids[1:]), 1.0)
    counts[:, index.get(SILENCE_PHONE, 0)] = 0.0
    within = counts / counts.sum(axis=1, keepdims=True)
    ends, starts = within[:, :1], within[:1, :]
    running = within + ends * starts
    running[:, 0] = 0.0
    return running / running.sum(axis=1, keepdims=True)


def transitions(probabilities: np.ndarray, labels: Sequence[str],
                weight: float = LM_WEIGHT, bonus: float = INSERTION_BONUS) -> np.ndarray:
    """The log scores :func:`kws.phones.ctc.prefix_beam_search` adds as a sequence grows:
    ``weight * log P[p, c] + bonus``; a silence costs only the bonus and is followed as
    a word start."""
    scores = weight * np.log(np.maximum(probabilities, 1e-12)) + bonus
    silence = list(labels).index(SILENCE_PHONE) if SILENCE_PHONE in labels else None
    if silence is not None:
        scores[silence] = scores[0]
        scores[:, silence] = bonus
    return scores


@functools.cache
def english_transitions() -> np.ndarray:
    """:func:`transitions` of the bigram of CMUdict's words (first pronunciations) over a
    phone model's labels; computed once per process (about 0.6 s)."""
    words = cmudict_lexicon()
    labels = model_labels()
    found = bigram((words.pronunciations(word)[0] for word in words), labels)
    scores = transitions(found, labels)
    scores.setflags(write=False)
    return scores
