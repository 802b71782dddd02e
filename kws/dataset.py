"""The Speech Commands data layer: layout, splits and labels.

Two layouts are read:

* the dataset layout (v0.01 and v0.02): one folder per word holding
  ``<speaker>_nohash_<n>.wav``, ``_background_noise_/``, and optionally
  ``validation_list.txt`` / ``testing_list.txt``;
* the canonical 12-label test layout: word folders plus ``_silence_/`` (clips of background
  noise) and ``_unknown_/`` whose files are named ``<word>_<speaker>_nohash_<n>.wav``.

Splits come from the list files when a folder has them, otherwise from the dataset's own
rule (:func:`which_set`: SHA-1 of the file name up to ``_nohash_``), which puts every file
where the official lists put it. When several folders are combined a speaker never
crosses splits: a speaker found in more than one split is moved to the most held-out one.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import math
import os
import random
import re
import stat
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kws.audio import is_audio_path, read_header
from kws.errors import DatasetError, MissingInputError

SILENCE = "_silence_"
UNKNOWN = "_unknown_"
BACKGROUND_FOLDER = "_background_noise_"
VALIDATION_LIST = "validation_list.txt"
TESTING_LIST = "testing_list.txt"

TRAINING, VALIDATION, TESTING = "training", "validation", "testing"
SPLITS = (TRAINING, VALIDATION, TESTING)
#: How held-out a split is; a speaker found in several splits goes to the highest.
_HOLDOUT_RANK = {TRAINING: 0, VALIDATION: 1, TESTING: 2}

#: The 30 words of Speech Commands v0.01.
V1_WORDS = tuple(
    "bed bird cat dog down eight five four go happy house left marvin nine no off on one "
    "right seven sheila six stop three tree two up wow yes zero".split()
)
#: The ten keywords of the canonical 12-label task (plus silence and unknown).
KEYWORDS_12 = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")

#: From the Speech Commands README: the hash is taken modulo this many buckets.
_MAX_NUM_WAVS_PER_CLASS = 2**27 - 1
_UNKNOWN_NAME = re.compile(r"^(?P<word>[^_]+)_(?P<rest>.+)$")


def which_set(
    filename: str, validation_percent: float = 10.0, testing_percent: float = 10.0
) -> str:
    """The split a Speech Commands file belongs to, by the dataset's own hashing rule.

    The part of the file name before ``_nohash_`` (the speaker) is hashed with SHA-1, so
    every clip of a speaker lands in the same split and the split stays stable as the
    dataset grows. This is the rule of the dataset's README and TensorFlow's
    ``speech_commands/input_data.py``.
    """
    base_name = os.path.basename(filename)
    hash_name = re.sub(r"_nohash_.*$", "", base_name)
    hashed = hashlib.sha1(hash_name.encode("utf-8")).hexdigest()
    percentage = (int(hashed, 16) % (_MAX_NUM_WAVS_PER_CLASS + 1)) * (
        100.0 / _MAX_NUM_WAVS_PER_CLASS
    )
    if percentage < validation_percent:
        return VALIDATION
    if percentage < validation_percent + testing_percent:
        return TESTING
    return TRAINING


@dataclass(frozen=True)
class Clip:
    """One labelled example: a file, or a segment of a background recording for silence.

    ``word`` is what was said (``_silence_`` for noise); ``label`` is the class a model
    learns, which is ``word`` or ``_unknown_`` depending on the chosen words.
    """

    path: Path
    word: str
    speaker: str | None
    split: str
    label: str = ""
    #: For silence cut from a background recording: start in seconds and gain.
    offset: float | None = None
    gain: float = 1.0

    @property
    def is_segment(self) -> bool:
        """Whether this clip is cut from a longer background recording."""
        return self.offset is not None


@dataclass
class Dataset:
    """Clips and background recordings of one or more dataset folders."""

    roots: list[Path]
    clips: list[Clip]
    backgrounds: list[Path]
    #: Word folders found (the vocabulary of "all words").
    words: list[str]
    #: Human-readable remarks found while reading (speakers moved between splits, ...).
    notes: list[str] = field(default_factory=list)
    #: Entries that look like clips but cannot be one, with the reason: dangling links,
    #: pipes, folders named ``x.wav``, unreadable folders. ``notes`` holds them grouped
    #: (one line per kind when a kind is frequent), so commands that warn notes warn these.
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def split(self, name: str) -> list[Clip]:
        """The clips of one split (``training``, ``validation`` or ``testing``)."""
        return [clip for clip in self.clips if clip.split == name]


def scan(
    root: str | os.PathLike,
    validation_percent: float = 10.0,
    testing_percent: float = 10.0,
) -> Dataset:
    """Read one dataset folder in either Speech Commands layout.

    Parameters
    ----------
    root
        The folder holding the word folders.
    validation_percent, testing_percent
        Used by :func:`which_set` only when the folder has no list files.
    """
    root = Path(root)
    if not root.exists():
        raise MissingInputError(f"{root}: no such dataset folder")
    if not root.is_dir():
        raise MissingInputError(f"{root}: not a folder")
    lists = _read_split_lists(root)
    clips: list[Clip] = []
    backgrounds: list[Path] = []
    words: list[str] = []
    skipped: list[tuple[Path, str]] = []
    for folder in _subfolders(root):
        if folder.name.startswith(".") or (
            folder.name.startswith("_") and folder.name not in (SILENCE, UNKNOWN, BACKGROUND_FOLDER)
        ):
            continue
        files = _audio_files(folder, skipped)
        if folder.name == BACKGROUND_FOLDER:
            backgrounds.extend(files)
            continue
        if folder.name not in (SILENCE, UNKNOWN):
            words.append(folder.name)
        for path in files:
            word, speaker, hash_key = _identify(folder.name, path.name)
            if lists is not None:
                split = lists.get(f"{folder.name}/{path.name}", TRAINING)
            else:
                split = which_set(hash_key, validation_percent, testing_percent)
            clips.append(Clip(path=path, word=word, speaker=speaker, split=split))
    if not clips and not backgrounds:
        raise DatasetError(f"{root}: no audio found in the Speech Commands layout (word folders)")
    if lists is None:
        clips = _silence_follows_speakers(clips)
    return Dataset(roots=[root], clips=clips, backgrounds=backgrounds, words=words,
                   notes=group_problems(skipped), skipped=skipped)


def _subfolders(root: Path) -> list[Path]:
    """The folders directly inside a dataset root, sorted (DatasetError if unreadable)."""
    try:
        return sorted(entry for entry in root.iterdir() if entry.is_dir())
    except PermissionError:
        raise DatasetError(f"{root}: permission denied") from None
    except OSError as error:
        raise DatasetError(f"{root}: cannot list the folder ({error.strerror})") from None


def _audio_files(folder: Path, skipped: list[tuple[Path, str]]) -> list[Path]:
    """The audio files of a word folder, sorted; what cannot be a clip goes to ``skipped``.

    Hidden names and names without an audio suffix are ignored silently; an audio name
    that is not a readable regular file (a dangling link, a pipe, a folder) is recorded
    with the reason, so that commands can say what they left out.
    """
    try:
        entries = sorted(entry for entry in folder.iterdir() if not entry.name.startswith("."))
    except OSError as error:
        reason = "permission denied" if isinstance(error, PermissionError) else error.strerror
        skipped.append((folder, f"folder skipped: {reason}"))
        return []
    found = []
    for entry in entries:
        if not is_audio_path(entry):
            continue
        reason = _not_a_clip(entry)
        if reason:
            skipped.append((entry, reason))
        else:
            found.append(entry)
    return found


def _not_a_clip(path: Path) -> str | None:
    """Why an audio-named entry cannot be a clip, or None when it is a regular file."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "skipped: dangling symbolic link" if path.is_symlink() else "skipped: vanished"
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "skipped: symbolic link loop"
        return f"skipped: {error.strerror or error}"
    if stat.S_ISDIR(mode):
        return "skipped: a folder, not an audio file"
    if not stat.S_ISREG(mode):
        return "skipped: not a regular file (a pipe, device or socket)"
    return None


def open_datasets(
    roots: Sequence[str | os.PathLike],
    validation_percent: float = 10.0,
    testing_percent: float = 10.0,
    backgrounds: Sequence[str | os.PathLike] = (),
    resplit: Sequence[str | os.PathLike] = (),
) -> Dataset:
    """Read and combine dataset folders, keeping every speaker inside one split.

    ``backgrounds`` adds folders (or files) of background recordings to those found in
    the datasets' ``_background_noise_`` folders. Folders named in ``resplit`` (which must
    also be in ``roots``) are split by speaker with :func:`resplit_by_speaker` at
    :data:`RESPLIT_PERCENT`, ignoring their lists and the official rule.
    """
    if not roots:
        raise DatasetError("no dataset folder given")
    resplit_folders = {Path(folder).resolve() for folder in resplit}
    unknown = resplit_folders - {Path(root).resolve() for root in roots}
    if unknown:
        raise DatasetError(f"{sorted(unknown)[0]}: --resplit names a folder that is not a --data")
    parts = [scan(root, validation_percent, testing_percent) for root in roots]
    parts = [
        resplit_by_speaker(part, *RESPLIT_PERCENT)
        if Path(root).resolve() in resplit_folders
        else part
        for root, part in zip(roots, parts, strict=True)
    ]
    skipped: list[tuple[Path, str]] = []
    extra = _background_files(backgrounds, skipped)
    if extra or skipped:
        parts.append(Dataset(roots=[], clips=[], backgrounds=extra, words=[],
                             notes=group_problems(skipped), skipped=skipped))
    return combine(parts)


@dataclass(frozen=True)
class LabelPolicy:
    """Which classes a model learns, as in TensorFlow's speech_commands trainer.

    ``words=None`` means every word folder of the datasets. Other words become
    ``_unknown_`` (sampled at ``unknown_percent`` of each split's keyword clips when
    ``words`` is given, all of them otherwise), and ``_silence_`` clips are cut from the
    background recordings at ``silence_percent`` of each split's keyword clips.
    ``sample_training_unknown=False`` keeps every unknown clip of the training split (a
    trainer that weights its batches, as ``kws train`` does, sets the share itself).
    """

    words: tuple[str, ...] | None = None
    silence_percent: float = 10.0
    unknown_percent: float = 10.0
    seed: int = 59185
    sample_training_unknown: bool = True


def parse_words(text: str | None) -> tuple[str, ...] | None:
    """Parse ``--words``: a comma-separated list, or ``all``/empty for every word."""
    if text is None or text.strip().lower() in ("", "all"):
        return None
    words = tuple(dict.fromkeys(w.strip() for w in text.split(",") if w.strip()))
    for word in words:
        if word.startswith("_"):
            raise DatasetError(
                f"--words: {word!r} is not a word (names starting with '_' are reserved)"
            )
    return words


def assign_labels(
    dataset: Dataset, policy: LabelPolicy = LabelPolicy()
) -> tuple[list[Clip], list[str]]:
    """Give every clip its class under ``policy``; return ``(clips, labels)``.

    Labels are ordered ``_silence_``, ``_unknown_`` (when present), then the words in
    alphabetical order. Clips not chosen (unknown words beyond the sampled share) are
    dropped. Sampling is seeded, so the same inputs give the same clips.
    """
    rng = random.Random(policy.seed)
    vocabulary = set(policy.words) if policy.words is not None else set(dataset.words)
    labelled: list[Clip] = []
    for split in SPLITS:
        known, unknown, silence = [], [], []
        for clip in dataset.split(split):
            if clip.word == SILENCE:
                silence.append(dataclasses.replace(clip, label=SILENCE))
            elif clip.word in vocabulary:
                known.append(dataclasses.replace(clip, label=clip.word))
            else:
                unknown.append(dataclasses.replace(clip, label=UNKNOWN))
        if policy.words is not None:
            rng.shuffle(unknown)
            if split != TRAINING or policy.sample_training_unknown:
                unknown = unknown[: math.ceil(len(known) * policy.unknown_percent / 100)]
        else:
            unknown = [clip for clip in unknown if clip.path.parent.name == UNKNOWN]
        silence += _silence_segments(
            dataset.backgrounds,
            math.ceil(len(known) * policy.silence_percent / 100),
            split,
            rng,
        )
        labelled += known + unknown + silence
    present = {clip.label for clip in labelled}
    words = sorted(policy.words if policy.words is not None else vocabulary)
    labels = [special for special in (SILENCE, UNKNOWN) if special in present] + words
    return labelled, labels


def count_by_label(clips: Iterable[Clip]) -> dict[str, dict[str, int]]:
    """``{split: {label: count}}`` for a list of labelled clips."""
    counts: dict[str, Counter] = defaultdict(Counter)
    for clip in clips:
        counts[clip.split][clip.label or clip.word] += 1
    return {split: dict(sorted(counts[split].items())) for split in SPLITS}


def _identify(folder: str, name: str) -> tuple[str, str | None, str]:
    """``(word, speaker, hash key)`` of a file in a word, _unknown_ or _silence_ folder."""
    if folder == SILENCE:
        return SILENCE, None, Path(name).stem
    if folder == UNKNOWN:
        match = _UNKNOWN_NAME.match(name)
        if match and "_nohash_" in match["rest"]:
            rest = match["rest"]
            return match["word"], rest.split("_nohash_")[0], rest
        return UNKNOWN, None, name
    speaker = name.split("_nohash_")[0] if "_nohash_" in name else None
    return folder, speaker, name


def _silence_follows_speakers(clips: list[Clip]) -> list[Clip]:
    """Put ``_silence_`` files (no speaker to hash) in the split most spoken clips are in.

    In the canonical test set every speaker hashes to ``testing``, so its silence clips
    are test clips too, instead of being scattered by their file names.
    """
    spoken = Counter(clip.split for clip in clips if clip.speaker)
    if not spoken:
        return clips
    usual = spoken.most_common(1)[0][0]
    return [
        dataclasses.replace(clip, split=usual) if clip.word == SILENCE else clip
        for clip in clips
    ]


def _read_split_lists(root: Path) -> dict[str, str] | None:
    """``{relative path: split}`` from the list files, or None when there are none."""
    found = {}
    for split, list_name in ((VALIDATION, VALIDATION_LIST), (TESTING, TESTING_LIST)):
        list_path = root / list_name
        if list_path.is_file():
            for line in _read_list(list_path):
                if line.strip():
                    found[line.strip()] = split
    has_lists = (root / VALIDATION_LIST).is_file() or (root / TESTING_LIST).is_file()
    return found if has_lists else None


def _read_list(path: Path) -> list[str]:
    """The lines of a split list file (DatasetError if it is unreadable or not text)."""
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except PermissionError:
        raise DatasetError(f"{path}: permission denied") from None
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: not a text list of files (not UTF-8)") from None
    except OSError as error:
        raise DatasetError(f"{path}: cannot read the list ({error.strerror})") from None


def _background_files(sources: Iterable[str | os.PathLike],
                      skipped: list[tuple[Path, str]]) -> list[Path]:
    files = []
    for source in sources:
        source = Path(source)
        if source.is_dir():
            files.extend(_audio_files(source, skipped))
        elif source.is_file():
            files.append(source)
        else:
            raise MissingInputError(f"{source}: no such background folder or file")
    return files


def _keep_speakers_in_one_split(clips: list[Clip]) -> tuple[list[Clip], int]:
    """Move every speaker found in several splits to the most held-out of them."""
    splits_of: dict[str, set[str]] = defaultdict(set)
    for clip in clips:
        if clip.speaker:
            splits_of[clip.speaker].add(clip.split)
    target = {
        speaker: max(splits, key=_HOLDOUT_RANK.__getitem__)
        for speaker, splits in splits_of.items()
        if len(splits) > 1
    }
    if not target:
        return clips, 0
    moved = [
        dataclasses.replace(clip, split=target[clip.speaker]) if clip.speaker in target else clip
        for clip in clips
    ]
    return moved, len(target)


def _silence_segments(
    backgrounds: Sequence[Path], count: int, split: str, rng: random.Random
) -> list[Clip]:
    """``count`` one-second silence clips cut from random places of the background recordings."""
    if not backgrounds or count <= 0:
        return []
    durations = _durations(backgrounds)
    usable = [path for path in backgrounds if durations.get(path, 0.0) > 1.0]
    segments = []
    for _ in range(count if usable else 0):
        path = rng.choice(usable)
        offset = rng.uniform(0.0, durations[path] - 1.0)
        gain = math.exp(rng.uniform(math.log(0.05), 0.0))
        segments.append(
            Clip(
                path=path,
                word=SILENCE,
                speaker=None,
                split=split,
                label=SILENCE,
                offset=round(offset, 4),
                gain=round(gain, 4),
            )
        )
    return segments


_DURATIONS: dict[Path, float] = {}


def _durations(paths: Iterable[Path]) -> dict[Path, float]:
    """Durations in seconds of background recordings (unreadable ones are left out)."""
    for path in paths:
        if path not in _DURATIONS:
            info, _ = read_header(path)
            _DURATIONS[path] = 0.0 if info is None else info.duration
    return {path: _DURATIONS[path] for path in paths}


@dataclass
class FileCheck:
    """What reading every file's header found: rates, unreadable files, empty folders."""

    rates: Counter
    unreadable: list[tuple[Path, str]]
    wrong_rate: list[tuple[Path, int, int]]
    empty_words: list[str]


def check_files(dataset: Dataset, workers: int = 8) -> FileCheck:
    """Read the header of every file of a dataset (not the samples) and report problems.

    A file's rate is "wrong" when it differs from the most common rate of its dataset
    folder. Empty words are word folders without any audio file.
    """
    from concurrent.futures import ThreadPoolExecutor

    def probe(path: Path) -> tuple[Path, int | None, str | None]:
        info, problem = read_header(path)
        return path, None if info is None else int(info.samplerate), problem

    files = [clip.path for clip in dataset.clips if not clip.is_segment]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(probe, files))
    rates: Counter = Counter()
    rate_by_root: dict[Path, Counter] = defaultdict(Counter)
    unreadable = []
    for path, rate, problem in results:
        if problem:
            unreadable.append((path, problem))
        else:
            rates[rate] += 1
            rate_by_root[_root_of(path, dataset.roots)][rate] += 1
    usual = {root: counts.most_common(1)[0][0] for root, counts in rate_by_root.items()}
    wrong_rate = [
        (path, rate, usual[_root_of(path, dataset.roots)])
        for path, rate, problem in results
        if not problem and rate != usual[_root_of(path, dataset.roots)]
    ]
    present = {clip.word for clip in dataset.clips}
    empty_words = [word for word in dataset.words if word not in present]
    return FileCheck(
        rates=rates, unreadable=unreadable, wrong_rate=wrong_rate, empty_words=empty_words
    )


def _root_of(path: Path, roots: Sequence[Path]) -> Path:
    for root in roots:
        if root in path.parents:
            return root
    return path.parent


def _file_warnings(found: FileCheck) -> list[str]:
    """One line per kind of file problem: unreadable, unusual rate, empty word folder."""
    wrong_rates = [(path, f"sample rate {rate} Hz differs from its dataset's {usual} Hz")
                   for path, rate, usual in found.wrong_rate]
    return [*group_problems(found.unreadable), *group_problems(wrong_rates),
            *(f"word folder {word!r} holds no audio" for word in found.empty_words)]


def _missing_label_warnings(counts: dict[str, dict[str, int]], labels: Sequence[str]) -> list[str]:
    """A line for each non-empty split that lacks some of the labels."""
    warnings = []
    for split in SPLITS:
        missing = [label for label in labels if label not in counts[split]]
        if counts[split] and missing:
            warnings.append(f"{split} split has no clips of: {', '.join(missing)}")
    return warnings


def describe(
    roots: Sequence[str | os.PathLike],
    policy: LabelPolicy = LabelPolicy(),
    validation_percent: float = 10.0,
    testing_percent: float = 10.0,
    backgrounds: Sequence[str | os.PathLike] = (),
    check: bool = True,
    resplit: Sequence[str | os.PathLike] = (),
) -> dict[str, Any]:
    """Everything ``kws dataset`` reports about dataset folders, as JSON-ready data.

    Returns counts per split and label, files and speakers per split, the label list,
    every clip's split and label, warnings (unreadable files, unusual rates, empty words,
    labels missing from a split), and the files whose header could not be read
    (``unreadable``; they are still counted: the counts are of the files present).
    """
    dataset = open_datasets(roots, validation_percent, testing_percent, backgrounds, resplit)
    clips, labels = assign_labels(dataset, policy)
    counts = count_by_label(clips)
    warnings = list(dataset.notes)
    absent = [word for word in (policy.words or ()) if word not in dataset.words]
    if absent:
        warnings.append(f"no clips of {', '.join(absent)} in {', '.join(map(str, roots))}")
    unreadable: list[tuple[Path, str]] = []
    if check:
        found = check_files(dataset)
        unreadable = found.unreadable
        warnings += _file_warnings(found)
    warnings += _missing_label_warnings(counts, labels)
    files = [clip for clip in clips if not clip.is_segment]
    return {
        "roots": [str(root) for root in dataset.roots],
        "labels": labels,
        "counts": counts,
        "files": {split: sum(1 for c in files if c.split == split) for split in SPLITS},
        "speakers": {
            split: len({c.speaker for c in files if c.split == split and c.speaker})
            for split in SPLITS
        },
        "generated_silence": {
            split: sum(1 for c in clips if c.is_segment and c.split == split) for split in SPLITS
        },
        "backgrounds": [str(path) for path in dataset.backgrounds],
        "skipped": [{"path": str(path), "reason": reason} for path, reason in dataset.skipped],
        "warnings": warnings,
        "unreadable": [{"path": str(path), "problem": problem} for path, problem in unreadable],
        "clips": [
            {
                "path": str(c.path),
                "split": c.split,
                "label": c.label,
                "word": c.word,
                "speaker": c.speaker,
            }
            for c in files
        ],
    }


def group_problems(problems: list[tuple[Path, str]], limit: int = 3) -> list[str]:
    """One warning per file, or one per kind of problem when a kind is frequent."""
    by_problem: dict[str, list[Path]] = defaultdict(list)
    for path, problem in problems:
        by_problem[problem].append(path)
    lines = []
    for problem, paths in by_problem.items():
        if len(paths) <= limit:
            lines += [f"{path}: {problem}" for path in paths]
        else:
            lines.append(f"{len(paths)} files: {problem} (first: {paths[0]})")
    return lines


#: ``(validation, testing)`` percentages of ``--resplit``: half the speakers held out.
RESPLIT_PERCENT = (10.0, 50.0)
#: Salt of ``--resplit``'s speaker hash (independent of the official rule's hash).
RESPLIT_SALT = "kws-v2-holdout"


def resplit_by_speaker(
    dataset: Dataset,
    validation_percent: float,
    testing_percent: float,
    salt: str = RESPLIT_SALT,
) -> Dataset:
    """Split a dataset by speaker with a salted hash, ignoring its lists and the official rule.

    Used to hold out part of a folder that the official rule puts in a single split (the
    canonical test set is all ``testing``). A speaker's clips stay together; clips with no
    speaker (``_silence_`` files) are split by file name.
    """

    def split_of(clip: Clip) -> str:
        key = clip.speaker or clip.path.stem
        bucket = int(hashlib.sha1(f"{salt}|{key}".encode()).hexdigest(), 16) % 100
        if bucket < testing_percent:
            return TESTING
        if bucket < testing_percent + validation_percent:
            return VALIDATION
        return TRAINING

    clips = [dataclasses.replace(clip, split=split_of(clip)) for clip in dataset.clips]
    return dataclasses.replace(dataset, clips=clips)


def combine(datasets: Sequence[Dataset]) -> Dataset:
    """Merge datasets into one, moving any speaker found in several splits to the most held-out."""
    clips, moved = _keep_speakers_in_one_split([c for d in datasets for c in d.clips])
    notes = [note for d in datasets for note in d.notes]
    if moved:
        notes.append(
            f"{moved} speaker(s) appeared in more than one split; their clips were moved to "
            "the most held-out one"
        )
    return Dataset(
        roots=[root for d in datasets for root in d.roots],
        clips=clips,
        backgrounds=list(dict.fromkeys(b for d in datasets for b in d.backgrounds)),
        words=sorted({w for d in datasets for w in d.words}),
        notes=notes,
        skipped=[entry for d in datasets for entry in d.skipped],
    )
