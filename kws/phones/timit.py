"""Reading TIMIT-format folders: audio with ``.PHN`` phone transcriptions beside it.

Two layouts are read the same way, by looking for ``.PHN`` files (any case) anywhere
under a folder and the audio file of the same name beside each:

* TIMIT itself: ``TRAIN/DR1/FCJF0/SA1.WAV`` + ``SA1.PHN`` (the ``.WAV`` files are NIST
  SPHERE, which soundfile reads; converted copies named ``SA1.WAV.wav`` or ``SA1.wav``
  are found too);
* any folder of audio files with TIMIT-format ``.PHN`` files beside them.

A ``.PHN`` file holds one ``START END LABEL`` line per phone, in samples of the audio
(16 kHz for TIMIT). Labels are TIMIT's 61, folded onto the 39-phone set with
:func:`kws.phones.phoneset.fold_sequence` (``q`` dropped, closures, pauses and ``h#``
to ``sil``, runs of ``sil`` merged).

Splits: a path with a ``TEST`` folder is ``testing``, one with ``TRAIN`` is ``training``
(minus ``validation_percent`` of its speakers, chosen by the Speech Commands hashing
rule on the speaker's name); a folder with neither splits by speaker with that rule. The
speaker is the folder holding the file (``FCJF0``). The ``SA`` sentences, which every
TIMIT speaker reads, are left out by default as is customary: they would let a model
learn two sentences by heart.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from kws.audio import is_audio_path
from kws.dataset import TESTING, Clip, which_set
from kws.errors import DatasetError
from kws.phones.phoneset import fold_sequence

PHN_SUFFIX = ".phn"
#: Audio suffixes tried beside a ``.PHN`` file besides kws's usual ones (NIST SPHERE).
_EXTRA_AUDIO = (".sph",)


@dataclass(frozen=True)
class Utterance:
    """One transcribed recording."""

    audio: Path
    phn: Path
    speaker: str
    split: str
    #: ``(start, end, label)`` in samples, TIMIT's labels as written.
    segments: tuple[tuple[int, int, str], ...]

    @property
    def phones(self) -> list[str]:
        """The transcription folded onto the 39-phone set."""
        return fold_sequence(label for _, _, label in self.segments)

    @property
    def name(self) -> str:
        """``SPEAKER/SENTENCE``, e.g. ``FCJF0/SI1027``."""
        return f"{self.speaker}/{self.audio.name.split('.')[0]}"

    def clip(self) -> Clip:
        """The utterance as a data-layer clip (read through the shared audio cache)."""
        return Clip(path=self.audio, word=self.name, speaker=self.speaker, split=self.split)


def read_phn(path: str | os.PathLike) -> tuple[tuple[int, int, str], ...]:
    """Read a ``.PHN`` file: ``(start, end, label)`` per line, checked.

    Raises
    ------
    DatasetError
        The file cannot be read, a line is not ``START END LABEL`` with integer sample
        indices and ``start <= end``, a label is not one of TIMIT's 61 or the 39, or the
        file holds no phones.
    """
    from kws.phones.phoneset import fold

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="strict")
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path}: cannot read phone transcription ({error})") from None
    segments = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split()
        try:
            start, end, label = int(fields[0]), int(fields[1]), fields[2]
            if len(fields) != 3:
                raise ValueError
        except (ValueError, IndexError):
            raise DatasetError(
                f"{path}:{number}: expected 'START END PHONE', got {line.strip()!r}"
            ) from None
        if start < 0 or end < start:
            raise DatasetError(f"{path}:{number}: bad sample range {start}..{end}")
        try:
            fold(label)
        except ValueError:
            raise DatasetError(f"{path}:{number}: unknown phone {label!r}") from None
        segments.append((start, end, label.lower()))
    if not segments:
        raise DatasetError(f"{path}: no phones in this transcription")
    return tuple(segments)


def phn_files(root: str | os.PathLike) -> list[Path]:
    """Every ``.PHN`` file under a folder (any case), sorted; hidden folders skipped."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(folder) / f for f in files if f.lower().endswith(PHN_SUFFIX)]
    return sorted(found)


def is_timit_folder(root: str | os.PathLike) -> bool:
    """Whether a folder holds TIMIT-format transcriptions (stops at the first found)."""
    for _, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        if any(f.lower().endswith(PHN_SUFFIX) for f in files):
            return True
    return False


def audio_beside(phn: Path) -> Path | None:
    """The audio file of a transcription: same name, an audio suffix (``SA1.WAV``,
    ``SA1.wav``, ``SA1.WAV.wav``, ``SA1.flac``, ...), or ``None``."""
    stem = phn.name[: -len(PHN_SUFFIX)].lower()
    candidates = []
    for sibling in phn.parent.iterdir():
        name = sibling.name.lower()
        if sibling == phn or not sibling.is_file():
            continue
        base = name.split(".")[0]
        if base == stem and (is_audio_path(name) or name.endswith(_EXTRA_AUDIO)):
            candidates.append(sibling)
    # Prefer a converted RIFF copy (SA1.WAV.wav) over the original SPHERE file.
    return min(candidates, key=lambda p: (-len(p.suffixes), p.name), default=None)


def split_of(path: Path, root: Path, speaker: str, validation_percent: float,
             testing_percent: float) -> str:
    """The split of a TIMIT file: its TRAIN/TEST folder, else the speaker hashing rule."""
    parts = {part.upper() for part in path.relative_to(root).parts[:-1]}
    if "TEST" in parts:
        return TESTING
    key = f"{speaker}_nohash_"
    if "TRAIN" in parts:
        return which_set(key, validation_percent, 0.0)
    return which_set(key, validation_percent, testing_percent)


def scan_timit(
    root: str | os.PathLike,
    validation_percent: float = 10.0,
    testing_percent: float = 10.0,
    include_sa: bool = False,
) -> tuple[list[Utterance], list[str]]:
    """Read every transcribed utterance under a TIMIT-format folder.

    Returns ``(utterances, problems)``: a transcription without audio beside it is a
    problem (one line each), not an error, so one missing file does not stop training.

    Raises
    ------
    DatasetError
        The folder is missing, holds no ``.PHN`` file, or a ``.PHN`` file is malformed.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such dataset folder")
    files = phn_files(root)
    if not files:
        raise DatasetError(f"{root}: no .PHN phone transcriptions found (not a TIMIT folder)")
    utterances, problems = [], []
    for phn in files:
        if not include_sa and phn.name.upper().startswith("SA"):
            continue
        audio = audio_beside(phn)
        if audio is None:
            problems.append(f"{phn}: no audio file beside this transcription")
            continue
        speaker = phn.parent.name
        split = split_of(phn, root, speaker, validation_percent, testing_percent)
        utterances.append(Utterance(audio, phn, speaker, split, read_phn(phn)))
    if not utterances:
        raise DatasetError(f"{root}: no usable utterances ({len(files)} .PHN file(s), "
                           f"{len(problems)} without audio)")
    return utterances, problems

