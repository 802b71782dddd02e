"""The phone model as a second opinion on the keyword classifier's detections.

:class:`PhoneVerifier` is the :class:`kws.infer.detector.Verifier` that ``kws listen``,
``kws predict --spot``, ``kws evaluate --stream`` and ``kws calibrate`` hand the detector
with ``--verify`` (:class:`kws.modelfolder.Verification`): given the audio
around a detection, it runs the phone model on it and aligns the keyword's pronunciations
near the detection as ``kws phones spot`` does (rival words checked), and answers with the
best confidence. The classifier says which word; the phone model says whether its phones
are really there, which ordinary speech that merely sounds like a keyword ("seven" in
"center") rarely passes. It also says whether it heard other speech just before the
detection: a word said alone is not part of a longer one.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from kws import audio
from kws.errors import KwsError, LexiconError
from kws.infer import NOT_WORDS
from kws.infer.detector import Opinion
from kws.modelfolder import read_card, resolve_model_dir
from kws.phones import ctc
from kws.phones.data import phone_ids
from kws.phones.phoneset import SILENCE_PHONE
from kws.phones.recognizer import PhoneRecognizer, keyword_pronunciation, spot_in

#: The lowest confidence the search reports (below it the verifier answers 0).
FLOOR = 1e-3
#: Seconds before a detection's start in which other speech is listened for, and the
#: seconds just before its start left out (the keyword's own onset).
BEFORE_SECONDS, ONSET_SECONDS = 0.5, 0.15
#: Fewer phones than this heard in those seconds (the expected count: the posteriors of
#: all phones but blank and silence, summed over frames) is quiet.
QUIET_PHONES = 0.5
#: The phone model's output index of silence.
SILENCE = phone_ids((SILENCE_PHONE,))[0]


class PhoneVerifier:
    """How surely a keyword's phones are said where the classifier heard it.

    ``folder``: a phone model folder (``None``: the shipped one), run with LiteRT when
    its export is current (no TensorFlow).
    """

    def __init__(self, folder: str | os.PathLike | None = None) -> None:
        self.recognizer = PhoneRecognizer(folder)
        self.rate = self.recognizer.sample_rate

    @functools.cache  # noqa: B019 - one verifier a process, a few keywords
    def pronunciations(self, keyword: str
                       ) -> tuple[tuple[tuple[str, ...], ...], list[list[int]]]:
        """The keyword's pronunciations and their phone ids (LexiconError when it cannot
        be pronounced)."""
        phones = keyword_pronunciation(keyword, None, self.recognizer.lexicon).phones
        return phones, [phone_ids(p) for p in phones]

    def __call__(self, keyword: str, samples: np.ndarray, rate: int, start: float,
                 end: float) -> Opinion:
        """The best confidence of ``keyword``'s phones aligned anywhere in ``samples``
        (0: none), and whether the :data:`BEFORE_SECONDS` before ``start`` are quiet. The
        detection's ``start``..``end`` is not trusted further: the detector finds it in the
        audio heard when it decided, which may cut the word short."""
        if rate != self.rate:
            samples = audio.resample(samples, rate, self.rate)
        if not len(samples):
            return Opinion(0.0)
        posteriors = self.recognizer.posteriors([samples])[0]
        prons, ids = self.pronunciations(keyword)
        hits = spot_in(ctc.log_posteriors(posteriors), "", keyword, prons, ids, FLOOR,
                       self.recognizer.frame_seconds, len(samples) / self.rate)
        before = phones_before(posteriors, start, self.recognizer.frame_seconds)
        return Opinion(max((hit.probability for hit in hits), default=0.0),
                       before < QUIET_PHONES)


def phones_before(posteriors: np.ndarray, start: float, frame_seconds: float) -> float:
    """How many phones (expected: the posteriors of all but blank and silence, summed)
    a phone model's ``(frames, classes)`` posteriors hold in the :data:`BEFORE_SECONDS`
    before ``start - ONSET_SECONDS`` (seconds from the first frame)."""
    last = max(0, int((start - ONSET_SECONDS) / frame_seconds))
    first = max(0, last - int(round(BEFORE_SECONDS / frame_seconds)))
    silent = posteriors[first:last, [ctc.BLANK_INDEX, SILENCE]].sum(axis=1)
    return float(np.sum(1.0 - silent))


def detector_verifier(model: str | os.PathLike | None, verify: bool = True
                      ) -> PhoneVerifier | None:
    """The verifier of a classifier folder's detections (None unless ``verify``): the
    phone model its card's verification names (relative to the classifier's folder), else
    the shipped one."""
    if not verify:
        return None
    folder = resolve_model_dir(model)
    card = read_card(folder)
    phones = card.verification.phones if card.verification is not None else None
    verifier = PhoneVerifier(None if phones is None else folder / Path(phones))
    for word in card.labels:
        if word not in NOT_WORDS:
            try:
                verifier.pronunciations(word)
            except LexiconError as error:
                raise KwsError(f"--verify: {error}") from None
    return verifier
