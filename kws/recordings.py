"""Folders of long recordings: what they hold, what was said, and which split each is in.

Three layouts are read (see :func:`read_recordings`):

* ``transcripts.tsv`` with the columns ``file``, ``speaker``, ``transcript`` (the layout of
  CMU AN4: ``<speaker>/<utterance>.flac``);
* ``transcripts.tsv`` with ``file`` and ``transcript`` and no speaker column (the layout of
  ``arctic_cathy/``: ``file``, ``prompt``, ``transcript``; other columns are ignored);
* a plain folder of audio files without transcripts (what was said is unknown).

A transcript's words are normalised by :func:`words_of` (lower case, punctuation stripped,
apostrophes inside words kept), so ``"Stop!"`` counts as the keyword ``stop``. Recordings are
split into training, validation and testing by a salted hash of the speaker (or of the file
name when the speaker is unknown), as ``--resplit`` splits clip datasets: the split of a
recording depends only on that key, so it is stable across runs and machines and a held-out
recording stays held out whatever else is in the folder.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from kws.audio import find_audio_files, is_audio_path, read_header
from kws.dataset import (
    SPLITS,
    TESTING,
    TRAINING,
    UNKNOWN,
    VALIDATION,
    Clip,
    group_problems,
)
from kws.errors import AudioError, DatasetError, MissingInputError, UnreadableInputsError

#: The transcript file of a recordings folder.
TRANSCRIPTS = "transcripts.tsv"
#: ``(validation, testing)`` percentages of the recordings split: as ``--resplit``, half
#: the speakers (or files) are held out for testing, so calibration and stream evaluation
#: have unseen audio.
SPLIT_PERCENT = (10.0, 50.0)
#: Salt of the recordings split's hash (independent of the Speech Commands rule).
SPLIT_SALT = "kws-recordings-v1"

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
#: How the reasons for skipping a row of ``transcripts.tsv`` begin, and how many such
#: rows the error names when none of them is usable.
_LISTED = f"listed in {TRANSCRIPTS}"
_ROWS_SHOWN = 3


def require_both_sides(fitted: int, held_out: int, failures: Sequence[str],
                       fitted_name: str = "chosen", notes: Sequence[str] = ()) -> None:
    """Refuse a calibration without readable recordings on both sides of the split.

    Raises :class:`UnreadableInputsError` (carrying ``failures`` and ``notes``) that says
    the recordings could not be read when none could, else how many each side has.
    """
    if fitted and held_out:
        return
    if failures and not (fitted or held_out):
        raise UnreadableInputsError(f"--negatives: none of the {len(failures)} "
                                    "recording(s) could be read", failures, notes)
    unreadable = f", unreadable {len(failures)}" if failures else ""
    raise UnreadableInputsError(
        "calibration needs readable recordings on both sides of the split "
        f"({fitted_name} {fitted}, held out {held_out}{unreadable}); give more "
        "recordings or speakers", failures, notes)


def words_of(transcript: str) -> list[str]:
    """The words of a transcript, in order: lower case, punctuation stripped.

    Apostrophes inside a word are kept (``won't``, ``pierre's``); hyphens and every other
    mark separate words (``forty-two`` -> ``forty``, ``two``).
    """
    return _WORD.findall(transcript.lower())


@dataclass(frozen=True)
class Recording:
    """One long recording: its file, its speaker (None if unknown) and what was said.

    ``transcript`` is None for recordings of a plain folder (no ``transcripts.tsv``).
    """

    path: Path
    speaker: str | None
    transcript: str | None

    @property
    def words(self) -> frozenset[str]:
        """The set of normalised words of the transcript (empty without one)."""
        return frozenset(words_of(self.transcript or ""))

    def keyword_counts(self, keywords: Iterable[str]) -> dict[str, int]:
        """How many times each keyword is said (every keyword is a key; 0 when absent)."""
        counts = Counter(words_of(self.transcript or ""))
        return {word: counts[word] for word in _normalised(keywords)}

    def contains_any(self, keywords: Iterable[str]) -> bool:
        """Whether the transcript contains one of the keywords.

        A recording without a transcript contains none as far as kws can know: callers
        that need certainty check ``transcript is not None``.
        """
        return not self.words.isdisjoint(_normalised(keywords))

    @property
    def split_key(self) -> str:
        """What the split hashes: the speaker, or the file name when it is unknown."""
        return self.speaker if self.speaker else self.path.name


@dataclass
class RecordingFolder:
    """The recordings of one folder, and what was left out of it."""

    root: Path
    recordings: list[Recording]
    #: ``"transcripts"`` (a transcripts.tsv was read) or ``"plain"`` (none).
    layout: str
    #: Entries left out, with the reason (a listed file missing, an unlisted audio file).
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def notes(self) -> list[str]:
        """``skipped``, grouped into readable lines."""
        return group_problems(self.skipped)


def read_recordings(source: str | os.PathLike) -> RecordingFolder:
    """Read a folder of long recordings (or one audio file) in one of the layouts above.

    With a ``transcripts.tsv`` only the files it lists are recordings (listed files that do
    not exist, and audio files it does not list, go to ``skipped``). Without one, every
    audio file under the folder is a recording; its speaker is the name of the first
    sub-folder it is in (None for files directly in the folder).

    Raises
    ------
    MissingInputError
        ``source`` does not exist.
    DatasetError
        The transcripts file is malformed (the message names the file and the line), or
        the folder holds no recording.
    """
    root = Path(source)
    if not root.exists():
        raise MissingInputError(f"{root}: no such folder of recordings")
    if root.is_file():
        if not is_audio_path(root):
            raise DatasetError(f"{root}: not an audio file or a folder of recordings")
        return RecordingFolder(root, [Recording(root, None, None)], "plain")
    table = root / TRANSCRIPTS
    if table.exists():
        folder = _read_transcribed(root, table)
    else:
        folder = _read_plain(root)
    if not folder.recordings:
        raise DatasetError(f"{root}: no recordings found ({_why_none(folder)})")
    return folder


def _why_none(folder: RecordingFolder) -> str:
    """Why a folder gave no recording: no audio files, or which listed rows were skipped."""
    if folder.layout == "plain":
        return "no audio files"
    listed = [f"{path.relative_to(folder.root)}: {reason.removeprefix(_LISTED + ' but ')}"
              for path, reason in folder.skipped if reason.startswith(_LISTED)]
    if not listed:
        return f"{TRANSCRIPTS} lists no file"
    more = f"; and {len(listed) - _ROWS_SHOWN} more" if len(listed) > _ROWS_SHOWN else ""
    return (f"no file listed in {TRANSCRIPTS} is usable: "
            f"{'; '.join(listed[:_ROWS_SHOWN])}{more}")


def read_transcripts(path: str | os.PathLike) -> list[tuple[int, str, str | None, str]]:
    """The rows of a ``transcripts.tsv``: ``(line number, file, speaker or None, transcript)``.

    The first line names the columns; ``file`` and ``transcript`` are required,
    ``speaker`` is optional and other columns are ignored. Blank lines are skipped. Every
    problem is a one-line :class:`DatasetError` naming the file and the line.
    """
    path = Path(path)
    lines = _read_text(path).splitlines()
    if not lines or not lines[0].strip():
        raise DatasetError(f"{path}:1: no header line (expected columns file, transcript "
                           "and optionally speaker, separated by tabs)")
    header = [name.strip().lower() for name in lines[0].split("\t")]
    missing = [name for name in ("file", "transcript") if name not in header]
    if missing or len(set(header)) != len(header):
        problem = (f"missing column {' and '.join(missing)}" if missing
                   else "a column is named twice")
        raise DatasetError(f"{path}:1: {problem} in the header (found: {', '.join(header)})")
    columns = {name: header.index(name) for name in ("file", "speaker", "transcript")
               if name in header}
    rows, seen = [], {}
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != len(header):
            raise DatasetError(f"{path}:{number}: expected {len(header)} tab-separated fields "
                               f"({', '.join(header)}), found {len(fields)}")
        name = fields[columns["file"]].strip()
        _check_file_name(path, number, name)
        if name in seen:
            raise DatasetError(f"{path}:{number}: {name} is listed twice (first on line "
                               f"{seen[name]})")
        seen[name] = number
        speaker = fields[columns["speaker"]].strip() if "speaker" in columns else ""
        rows.append((number, name, speaker or None, fields[columns["transcript"]].strip()))
    return rows


def split_of(recording: Recording, validation_percent: float = SPLIT_PERCENT[0],
             testing_percent: float = SPLIT_PERCENT[1], salt: str = SPLIT_SALT) -> str:
    """The split of a recording: a salted SHA-1 of :attr:`Recording.split_key`.

    Every recording of a speaker lands in the same split; the result depends only on the
    key, the percentages and the salt.
    """
    digest = hashlib.sha1(f"{salt}|{recording.split_key}".encode()).hexdigest()
    bucket = int(digest, 16) % 10_000 / 100
    if bucket < testing_percent:
        return TESTING
    if bucket < testing_percent + validation_percent:
        return VALIDATION
    return TRAINING


def split_recordings(recordings: Iterable[Recording], validation_percent: float = SPLIT_PERCENT[0],
                     testing_percent: float = SPLIT_PERCENT[1], salt: str = SPLIT_SALT,
                     ) -> dict[str, list[Recording]]:
    """``{split: recordings}`` for every split (see :func:`split_of`)."""
    splits: dict[str, list[Recording]] = {split: [] for split in SPLITS}
    for recording in recordings:
        splits[split_of(recording, validation_percent, testing_percent, salt)].append(recording)
    return splits


def keyword_free(recordings: Iterable[Recording], keywords: Iterable[str],
                 ) -> tuple[list[Recording], list[Recording]]:
    """``(free, with_keywords)``: recordings whose transcript says none of the keywords.

    Recordings without a transcript count as free (their folder has no transcripts).
    """
    keywords = _normalised(keywords)
    free, said = [], []
    for recording in recordings:
        (said if recording.contains_any(keywords) else free).append(recording)
    return free, said


def durations(recordings: Iterable[Recording]) -> tuple[dict[Path, float], list[tuple[Path, str]]]:
    """Durations in seconds from the files' headers (no samples decoded).

    Returns ``({path: seconds}, [(path, problem)])``; unreadable files and files holding
    no samples are problems, not durations.
    """
    found: dict[Path, float] = {}
    problems: list[tuple[Path, str]] = []
    for recording in recordings:
        info, problem = read_header(recording.path)
        if info is None:
            problems.append((recording.path, problem))
        else:
            found[recording.path] = info.frames / info.samplerate
    return found, problems


def cut_windows(recordings: Sequence[Recording], seconds_of: dict[Path, float], count: int,
                split: str, rng: random.Random, window: float = 1.0) -> list[Clip]:
    """``count`` ``_unknown_`` clips cut at random places of the recordings.

    A place is drawn uniformly over the recordings' total duration, so a long recording
    gives more windows than a short one; every window lies inside its recording (a
    recording shorter than ``window`` gives a window at 0, padded when decoded). Returns
    :class:`kws.dataset.Clip` segments (``offset`` in seconds, gain 1) of split ``split``.
    """
    usable = [r for r in recordings if seconds_of.get(r.path, 0.0) > 0]
    if count <= 0 or not usable:
        return []
    weights = [seconds_of[r.path] for r in usable]
    chosen = rng.choices(usable, weights=weights, k=count)
    clips = []
    for recording in chosen:
        latest = max(0.0, seconds_of[recording.path] - window)
        offset = math.floor(rng.uniform(0.0, latest) * 10_000) / 10_000
        clips.append(Clip(path=recording.path, word=UNKNOWN, speaker=recording.speaker,
                          split=split, label=UNKNOWN, offset=offset, gain=1.0))
    return clips


@dataclass
class Negatives:
    """Windows cut from folders of non-keyword recordings, and what they came from.

    ``clips`` are ``_unknown_`` segments of every split; ``summary`` is JSON-ready (the
    model card's ``data.negatives``); ``notes`` are remarks to warn (files left out, splits
    without recordings).
    """

    clips: list[Clip]
    summary: dict
    notes: list[str]


def negative_windows(sources: Sequence[str | os.PathLike], keywords: Iterable[str],
                     wanted: dict[str, int], seed: int = 0, window: float = 1.0,
                     percent: float | None = None) -> Negatives:
    """Cut ``wanted[split]`` one-second ``_unknown_`` windows per split from folders of recordings.

    Only recordings whose transcript says none of ``keywords`` are used (recordings
    without a transcript are used as they are), and each split's windows come from that
    split's recordings (:func:`split_of`), so held-out audio stays held out. Windows are
    drawn uniformly over the total duration of a split's recordings of every folder; each
    split has its own generator seeded with ``(seed, split)``, so the same inputs give the
    same windows. ``percent`` is only recorded in the summary.
    """
    keywords = _normalised(keywords)
    folders = [read_recordings(source) for source in sources]
    notes = [note for folder in folders for note in folder.notes]
    by_split: dict[str, list[Recording]] = {split: [] for split in SPLITS}
    said = untranscribed = 0
    seen: set[Path] = set()
    for folder in folders:
        recordings = [r for r in folder.recordings if not (r.path in seen or seen.add(r.path))]
        free, with_keywords = keyword_free(recordings, keywords)
        said += len(with_keywords)
        untranscribed += sum(r.transcript is None for r in free)
        for split, recordings in split_recordings(free).items():
            by_split[split] += recordings
    seconds, problems = durations(r for split in SPLITS for r in by_split[split])
    notes += group_problems(problems)
    clips: list[Clip] = []
    for split in SPLITS:
        if wanted.get(split, 0) > 0 and not any(r.path in seconds for r in by_split[split]):
            notes.append(f"--negatives: no usable {split} recordings, so no {split} negatives")
        rng = random.Random(f"kws-negatives|{seed}|{split}")
        clips += cut_windows(by_split[split], seconds, wanted.get(split, 0), split, rng, window)
    root_of: dict[Path, str] = {}
    for folder in folders:
        for recording in folder.recordings:
            root_of.setdefault(recording.path, str(folder.root))
    per_folder: dict[str, Counter] = {str(folder.root): Counter() for folder in folders}
    for clip in clips:
        per_folder[root_of[clip.path]][clip.split] += 1
    summary = {
        "folders": [str(folder.root) for folder in folders],
        "percent": percent,
        "windows": {split: sum(c.split == split for c in clips) for split in SPLITS},
        "windows_per_folder": {root: {split: counts[split] for split in SPLITS}
                               for root, counts in per_folder.items()},
        "recordings": {split: sum(r.path in seconds for r in by_split[split])
                       for split in SPLITS},
        "seconds": {split: round(sum(seconds.get(r.path, 0.0) for r in by_split[split]), 1)
                    for split in SPLITS},
        "left_out_saying_keywords": said,
        "without_transcript": untranscribed,
    }
    return Negatives(clips, summary, notes)


def _normalised(keywords: Iterable[str]) -> frozenset[str]:
    return frozenset(word for keyword in keywords for word in words_of(keyword))


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except PermissionError:
        raise DatasetError(f"{path}: permission denied") from None
    except UnicodeDecodeError as error:
        line = path.read_bytes()[: error.start].count(b"\n") + 1
        raise DatasetError(f"{path}:{line}: not UTF-8 text") from None
    except IsADirectoryError:
        raise DatasetError(f"{path}: a folder, not a transcripts file") from None
    except OSError as error:
        raise DatasetError(f"{path}: cannot read ({error.strerror or error})") from None


def _check_file_name(path: Path, number: int, name: str) -> None:
    """Refuse empty names and names leaving the folder (absolute, ``..``)."""
    if not name:
        raise DatasetError(f"{path}:{number}: empty file name")
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or re.match(r"^[A-Za-z]:", name):
        raise DatasetError(f"{path}:{number}: {name} is not a path inside the folder")


def _unusable_row(path: Path, name: str) -> str | None:
    """Why a file listed in ``transcripts.tsv`` cannot be a recording, or None."""
    if path.is_file():
        return None
    if path.is_dir():
        return f"{_LISTED} but a folder, not an audio file"
    if name.startswith(("'", '"')):
        return f"{_LISTED} but missing (file names are written without quotes)"
    return f"{_LISTED} but missing"


def _read_transcribed(root: Path, table: Path) -> RecordingFolder:
    rows = read_transcripts(table)
    recordings, skipped, listed = [], [], set()
    for _number, name, speaker, transcript in rows:
        path = root / name
        listed.add(path)
        problem = _unusable_row(path, name)
        if problem is None:
            recordings.append(Recording(path, speaker, transcript))
        else:
            skipped.append((path, problem))
    for path in _audio_files(root):
        if path not in listed:
            skipped.append((path, f"not listed in {TRANSCRIPTS}: not used"))
    return RecordingFolder(root, recordings, "transcripts", skipped)


def _read_plain(root: Path) -> RecordingFolder:
    recordings = []
    for path in _audio_files(root):
        parts = path.relative_to(root).parts
        recordings.append(Recording(path, parts[0] if len(parts) > 1 else None, None))
    return RecordingFolder(root, recordings, "plain")


def _audio_files(root: Path) -> list[Path]:
    try:
        return find_audio_files(root)
    except AudioError as error:
        raise DatasetError(str(error)) from None


__all__ = [
    "SPLIT_PERCENT", "SPLIT_SALT", "TRANSCRIPTS", "Negatives", "Recording", "RecordingFolder",
    "cut_windows", "durations", "keyword_free", "negative_windows",
    "read_recordings", "read_transcripts", "require_both_sides",
    "split_of", "split_recordings", "words_of",
]
