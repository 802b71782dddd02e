"""PocketSphinx keyword-list search as the peer of ``kws phones`` spotting (bench/phones.py).

PocketSphinx (``pip install pocketsphinx``; not a kws dependency, imported only here) with
its bundled US English model (``pocketsphinx.get_model_path()``: the default ``hmm`` and
``dict``) searches for a list of keywords in each file (``Decoder`` keyword search, one
keyword per line with a ``/threshold/``). A keyword missing from its dictionary is added
with kws's pronunciation (ARPAbet, upper case) through ``Decoder.add_word``.

**One permissive run, swept by its scores.** Keyword search reports a keyword when the
score of its HMM path minus that of the best phone-loop path reaches the keyword's
threshold (``logmath_log(threshold) >> SENSCR_SHIFT``), and a segment's ``prob`` is
``1.0001 ** (score - KWS_MAX)``. So each report carries the largest threshold it passes
(:func:`log10_threshold`), and the reports of a run at a threshold ``T`` are, up to a few
percent, the reports of a permissive run (``1e-50``) whose score passes ``T``: measured on
53 AN4 utterances and clips against real runs at ``1e-50 .. 1e-10``, the filtered
permissive run held every report of the real run, plus 0.4-2.6% more (near the end of a
file or right after another report; the search differs slightly when it reported just
before). The DET curve is therefore swept from one permissive run (it slightly favours
detection and slightly over-counts false accepts), and :func:`spot_files` with the chosen
threshold gives an exact operating point when asked.

Everything here runs in a worker process (spawned; PocketSphinx is single-threaded):
:func:`spot_files` returns plain data, and the CPU time of decoding alone (audio decoding
and file reading excluded, as for kws).
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

#: PocketSphinx keyword search internals that relate a report's ``prob`` to thresholds
#: (``kws_search.c``: ``KWS_MAX``; ``SENSCR_SHIFT`` of the acoustic scores; log base).
KWS_MAX = 1500
SENSCR_SHIFT = 10
LOG_BASE = 1.0001
#: Threshold of the permissive run (every report down to it is kept).
PERMISSIVE = 1e-50
#: Phones of kws's 39-phone set PocketSphinx's en-us model lacks: the flap (a ``T`` in
#: CMUdict) and silence (dropped).
_PHONE_MAP = {"dx": "T", "sil": None}


def missing() -> str | None:
    """Why the peer cannot run (PocketSphinx not installed), or None."""
    try:
        import pocketsphinx  # noqa: F401
    except ImportError:
        return "PocketSphinx is not installed (pip install pocketsphinx): the peer is skipped"
    return None


def describe() -> str:
    """The peer in a few words (version, model)."""
    import importlib.metadata

    import pocketsphinx

    try:
        version = importlib.metadata.version("pocketsphinx")
    except importlib.metadata.PackageNotFoundError:
        version = "?"
    return (f"PocketSphinx {version}, keyword-list search, bundled en-us model "
            f"({os.path.join(pocketsphinx.get_model_path(), 'en-us')})")


def ps_phones(phones: Sequence[str]) -> str:
    """kws phones (39-phone set, lower case) as a PocketSphinx pronunciation."""
    out = []
    for phone in phones:
        mapped = _PHONE_MAP.get(phone, phone.upper())
        if mapped:
            out.append(mapped)
    return " ".join(out)


def log10_threshold(prob: float) -> float:
    """The largest keyword-search threshold (log10) a report of segment ``prob`` passes."""
    score = math.log(max(prob, 1e-300)) / math.log(LOG_BASE) + KWS_MAX
    return score * (1 << SENSCR_SHIFT) * math.log10(LOG_BASE)


def threshold_text(log10: float) -> str:
    """A threshold for a keyword list (``1.234e-20``) from its log10."""
    mantissa_exp = math.floor(log10)
    return f"{10 ** (log10 - mantissa_exp):.4f}e{mantissa_exp:d}"


@dataclass
class PeerRun:
    """What a keyword-search run found: per file ``[(keyword, start s, end s, log10 of the
    largest threshold passed)]``, file lengths, and timing."""

    threshold: str
    detections: dict[str, list[tuple[str, float, float, float]]]
    seconds: dict[str, float]
    cpu_seconds: float
    wall_seconds: float
    added: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def audio_seconds(self) -> float:
        return sum(self.seconds.values())

    @property
    def rtf(self) -> float:
        """CPU time of decoding / audio time."""
        return self.cpu_seconds / self.audio_seconds if self.audio_seconds else math.nan


def _decoder(keywords: Mapping[str, Sequence[str]], threshold: str, folder: str):
    """A keyword-search decoder for ``keywords`` (word -> kws phones); the words added."""
    from pocketsphinx import Decoder

    decoder = Decoder(lm=None, logfn=os.devnull)
    added = {}
    for word, phones in keywords.items():
        if decoder.lookup_word(word) is None:
            added[word] = ps_phones(phones)
            decoder.add_word(word, added[word], update=True)
    path = os.path.join(folder, "keywords.list")
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(f"{word} /{threshold}/\n" for word in keywords)
    decoder.add_kws("keywords", path)
    decoder.activate_search("keywords")
    return decoder, added


def spot_files(paths: Sequence[str], keywords: Mapping[str, Sequence[str]],
               threshold: str = f"{PERMISSIVE:g}", rate: int = 16000) -> PeerRun:
    """Keyword search for ``keywords`` (word -> kws phones, used when PocketSphinx's
    dictionary lacks the word) in each file, at ``threshold`` (keyword-list text)."""
    import numpy as np

    from kws.cache import AudioCache

    if rate != 16000:
        raise ValueError("the en-us model of PocketSphinx takes 16 kHz audio")
    started = time.perf_counter()
    found, failed = AudioCache(rate).get_many([os.fspath(p) for p in paths])
    by_name = {os.fspath(p): w for p, w in found.items()}
    detections: dict[str, list[tuple[str, float, float, float]]] = {}
    seconds: dict[str, float] = {}
    cpu = 0.0
    with tempfile.TemporaryDirectory() as folder:
        decoder, added = _decoder(keywords, threshold, folder)
        for path in map(os.fspath, paths):
            waveform = by_name.get(path)
            if waveform is None:
                continue
            pcm = (np.clip(waveform, -1.0, 1.0) * 32767).astype(np.int16).tobytes()
            clock = time.process_time()
            decoder.start_utt()
            decoder.process_raw(pcm, full_utt=True)
            decoder.end_utt()
            segments = [(s.word.strip().split("(")[0], s.start_frame / 100,
                         (s.end_frame + 1) / 100, log10_threshold(s.prob))
                        for s in decoder.seg() or []]
            cpu += time.process_time() - clock
            detections[path] = segments
            seconds[path] = len(waveform) / rate
    return PeerRun(threshold, detections, seconds, cpu, time.perf_counter() - started,
                   added, {os.fspath(p): str(e) for p, e in failed.items()})
