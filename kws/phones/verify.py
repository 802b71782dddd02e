"""The phone model as a second opinion on the keyword classifier's detections.

:class:`PhoneVerifier` is the :class:`kws.infer.detector.Verifier` that ``kws listen``,
``kws predict --spot``, ``kws evaluate --stream`` and ``kws calibrate`` hand the detector
with ``--verify`` (:class:`kws.modelfolder.Verification`): given the audio
around a detection, it runs the phone model on it and aligns the keyword's pronunciations
near the detection as ``kws phones spot`` does (rival words checked), and answers with the
best confidence. The classifier says which word; the phone model says whether its phones
are really there, which ordinary speech that merely sounds like a keyword ("seven" in
"center") rarely passes.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from kws import audio
from kws.errors import KwsError, LexiconError
from kws.infer import NOT_WORDS
from kws.modelfolder import read_card, resolve_model_dir
from kws.phones import ctc
from kws.phones.data import phone_ids
from kws.phones.recognizer import PhoneRecognizer, keyword_pronunciation, spot_in

#: The lowest confidence the search reports (below it the verifier answers 0).
FLOOR = 1e-3


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
                 end: float) -> float:
        """The best confidence of ``keyword``'s phones aligned anywhere in ``samples``
        (0: none). The detection's ``start``..``end`` is not trusted further: the detector
        finds it in the audio heard when it decided, which may cut the word short."""
        if rate != self.rate:
            samples = audio.resample(samples, rate, self.rate)
        if not len(samples):
            return 0.0
        log_probs = ctc.log_posteriors(self.recognizer.posteriors([samples])[0])
        prons, ids = self.pronunciations(keyword)
        hits = spot_in(log_probs, "", keyword, prons, ids, FLOOR,
                       self.recognizer.frame_seconds, len(samples) / self.rate)
        return max((hit.probability for hit in hits), default=0.0)


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
