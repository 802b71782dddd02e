"""Grapheme-to-phoneme (G2P): a pronunciation guessed from the spelling of any word.

The model is g2p_en's (Park & Kim, Apache-2.0): a GRU encoder-decoder trained on CMUdict
that reads the letters a-z and writes ARPAbet phonemes. Its NumPy weights (3 MB,
``checkpoint20.npz``) come with the ``espnet-g2p-en`` package, a dependency of kws; this
module reads only that file and runs the network in NumPy (about a millisecond a word).
The ``g2p_en`` Python module itself is never imported: importing it downloads NLTK data,
and kws touches no network at run time. Phones are folded onto the 39-phone set.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kws.errors import LexiconError
from kws.phones.phoneset import fold

#: Name of the G2P in pronunciation sources ("G2P (g2p_en)").
G2P_NAME = "g2p_en"
#: The package that ships the weights, and the file.
G2P_PACKAGE = "espnet-g2p-en"
_MODULE = "g2p_en"
_WEIGHTS = "checkpoint20.npz"
#: The model's inputs (after the padding, unknown and end symbols) and outputs.
_GRAPHEMES = ("<pad>", "<unk>", "</s>", *"abcdefghijklmnopqrstuvwxyz")
_PHONEMES = ("<pad>", "<unk>", "<s>", "</s>", *(
    "AA0 AA1 AA2 AE0 AE1 AE2 AH0 AH1 AH2 AO0 AO1 AO2 AW0 AW1 AW2 AY0 AY1 AY2 B CH D DH "
    "EH0 EH1 EH2 ER0 ER1 ER2 EY0 EY1 EY2 F G HH IH0 IH1 IH2 IY0 IY1 IY2 JH K L M N NG "
    "OW0 OW1 OW2 OY0 OY1 OY2 P R S SH T TH UH0 UH1 UH2 UW UW0 UW1 UW2 V W Y Z ZH").split())
_START, _END = _PHONEMES.index("<s>"), _PHONEMES.index("</s>")
_ARRAYS = ("enc_emb", "enc_w_ih", "enc_w_hh", "enc_b_ih", "enc_b_hh",
           "dec_emb", "dec_w_ih", "dec_w_hh", "dec_b_ih", "dec_b_hh", "fc_w", "fc_b")


def weights_path() -> Path:
    """Where the G2P weights are; a one-line :class:`LexiconError` if not installed.

    The package is located without being imported.
    """
    try:
        spec = importlib.util.find_spec(_MODULE)
    except (ImportError, ValueError):
        spec = None
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / _WEIGHTS
        if path.is_file():
            return path
    raise LexiconError(f"the G2P model for words outside the dictionary is not installed "
                       f"(pip install {G2P_PACKAGE}, a dependency of kws)")


@dataclass(frozen=True)
class _Gru:
    w_ih: np.ndarray
    w_hh: np.ndarray
    b_ih: np.ndarray
    b_hh: np.ndarray

    def __call__(self, x: np.ndarray, h: np.ndarray) -> np.ndarray:
        """One step of a GRU cell (PyTorch's gate order: reset, update, new)."""
        gi = x @ self.w_ih.T + self.b_ih
        gh = h @ self.w_hh.T + self.b_hh
        n = gi.shape[-1] // 3
        reset = 1.0 / (1.0 + np.exp(-(gi[:n] + gh[:n])))
        update = 1.0 / (1.0 + np.exp(-(gi[n : 2 * n] + gh[n : 2 * n])))
        new = np.tanh(gi[2 * n :] + reset * gh[2 * n :])
        return (1.0 - update) * new + update * h


@dataclass(frozen=True)
class G2PModel:
    """The g2p_en network: letters in, ARPAbet phonemes out (greedy decoding)."""

    enc_emb: np.ndarray
    encoder: _Gru
    dec_emb: np.ndarray
    decoder: _Gru
    fc_w: np.ndarray
    fc_b: np.ndarray

    @classmethod
    def load(cls, path: str | Path) -> G2PModel:
        """Read the weights; a one-line :class:`LexiconError` if they are not g2p_en's."""
        try:
            with np.load(path) as saved:
                arrays = {name: np.asarray(saved[name], np.float32) for name in _ARRAYS}
        except (OSError, KeyError, ValueError) as error:
            raise LexiconError(f"{path}: not the G2P weights of g2p_en ({error})") from None
        hidden = arrays["enc_w_hh"].shape[1]
        if (arrays["enc_emb"].shape[0] != len(_GRAPHEMES)
                or arrays["fc_w"].shape != (len(_PHONEMES), hidden)):
            raise LexiconError(f"{path}: G2P weights of an unknown layout")
        gru = {part: _Gru(*(arrays[f"{part}_{name}"]
                            for name in ("w_ih", "w_hh", "b_ih", "b_hh")))
               for part in ("enc", "dec")}
        return cls(arrays["enc_emb"], gru["enc"], arrays["dec_emb"], gru["dec"],
                   arrays["fc_w"], arrays["fc_b"])

    def predict(self, letters: str, max_phonemes: int | None = None) -> list[str]:
        """ARPAbet phonemes (with stress digits) of a word of the letters a-z."""
        unknown = _GRAPHEMES.index("<unk>")
        ids = [_GRAPHEMES.index(c) if c in _GRAPHEMES[3:] else unknown for c in letters]
        h = np.zeros(self.encoder.w_hh.shape[1], np.float32)
        for i in [*ids, _GRAPHEMES.index("</s>")]:
            h = self.encoder(self.enc_emb[i], h)
        out: list[str] = []
        previous = _START
        for _ in range(max_phonemes or len(letters) + 10):
            h = self.decoder(self.dec_emb[previous], h)
            previous = int(np.argmax(self.fc_w @ h + self.fc_b))
            if previous == _END:
                break
            out.append(_PHONEMES[previous])
        return out


@functools.cache
def g2p_model() -> G2PModel:
    """The G2P network, loaded once per process."""
    return G2PModel.load(weights_path())


def guess_phones(word: str) -> tuple[str, ...]:
    """A pronunciation of ``word`` (letters a-z; others are ignored), in 39-set phones.

    Raises
    ------
    LexiconError
        The G2P is not installed, or it found no phones.
    """
    letters = "".join(c for c in word.lower() if "a" <= c <= "z")
    phones = [fold(p) for p in g2p_model().predict(letters)] if letters else []
    found = tuple(p for p in phones if p is not None)
    if not found:
        raise LexiconError(f"the G2P found no phones for {word!r}")
    return found
