"""The 39-phone set of kws and the standard folding of TIMIT's 61 phones onto it.

The set is the one of Lee & Hon (1989) that TIMIT results are reported on: CMUdict's
ARPAbet phonemes without ``ao`` and ``zh`` (folded into ``aa`` and ``sh``), plus the
flap ``dx`` and one silence ``sil``. Exactly this folding of TIMIT's labels is applied
(:data:`FOLDING`):

* ``q`` (glottal stop) is dropped;
* the closures ``bcl dcl gcl pcl tcl kcl``, the pauses ``pau epi`` and ``h#`` become ``sil``;
* ``ao``→``aa``, ``ax``/``ax-h``→``ah``, ``axr``→``er``, ``ix``→``ih``, ``el``→``l``,
  ``em``→``m``, ``en``/``nx``→``n``, ``eng``→``ng``, ``hv``→``hh``, ``ux``→``uw``,
  ``zh``→``sh``.

Every other TIMIT label is already one of the 39. Models are trained on the folded labels,
so they are scored on the same 39 phones they emit.
"""

from __future__ import annotations

from collections.abc import Iterable

#: The 39 phones, in the order of a phone model's outputs (after the CTC blank).
PHONES = tuple(
    "aa ae ah aw ay b ch d dh dx eh er ey f g hh ih iy jh k l m n ng ow oy p r s sh sil "
    "t th uh uw v w y z".split()
)
#: The silence phone (TIMIT's closures, pauses and ``h#``).
SILENCE_PHONE = "sil"
#: Name of the CTC blank, output 0 of a phone model.
BLANK = "<blank>"
#: TIMIT labels dropped by the folding.
DROPPED = frozenset({"q"})
#: TIMIT label -> phone of the 39-phone set, for the labels that change.
FOLDING = {
    **{closure: SILENCE_PHONE for closure in ("bcl", "dcl", "gcl", "pcl", "tcl", "kcl")},
    "pau": SILENCE_PHONE,
    "epi": SILENCE_PHONE,
    "h#": SILENCE_PHONE,
    "ao": "aa",
    "ax": "ah",
    "ax-h": "ah",
    "axr": "er",
    "ix": "ih",
    "el": "l",
    "em": "m",
    "en": "n",
    "nx": "n",
    "eng": "ng",
    "hv": "hh",
    "ux": "uw",
    "zh": "sh",
}
#: TIMIT's 61 labels.
TIMIT_61 = frozenset(PHONES) - {SILENCE_PHONE} | set(FOLDING) | DROPPED


def fold(phone: str) -> str | None:
    """The 39-set phone of a TIMIT or ARPAbet label (``None`` for a dropped one).

    Case and CMUdict stress digits are ignored; a label that is neither in TIMIT's 61 nor
    in the 39 set raises ``ValueError``.
    """
    label = phone.strip().lower().rstrip("012")
    if label in DROPPED:
        return None
    label = FOLDING.get(label, label)
    if label not in PHONES:
        raise ValueError(f"unknown phone {phone!r}")
    return label


def fold_each(symbols: Iterable[str]) -> list[str]:
    """Fold ARPAbet or TIMIT symbols one by one, dropping the dropped ones (``q``).

    Raises ``ValueError`` with the first unknown symbol as its argument.
    """
    folded = []
    for symbol in symbols:
        try:
            phone = fold(symbol)
        except ValueError:
            raise ValueError(symbol) from None
        if phone is not None:
            folded.append(phone)
    return folded


def fold_sequence(phones: Iterable[str]) -> list[str]:
    """Fold a phone sequence, dropping ``q`` and merging runs of ``sil`` into one.

    Runs of silence arise where a closure follows a pause (``pau pcl p``); they are one
    silence to a recogniser. Repeated speech phones are kept.
    """
    out: list[str] = []
    for phone in phones:
        folded = fold(phone)
        if folded is None:
            continue
        if folded == SILENCE_PHONE and out and out[-1] == SILENCE_PHONE:
            continue
        out.append(folded)
    return out


def model_labels() -> list[str]:
    """The outputs of a phone model: the CTC blank, then the 39 phones."""
    return [BLANK, *PHONES]
