"""``kws augment``: write augmented copies of a dataset folder, keeping every split.

Each clip of a dataset folder (word folders, and ``_silence_``/``_unknown_`` of the test
layout) gets ``copies`` augmented versions in the same layout under the output folder,
named ``<name>_aug<k>.wav``. The part of the name before ``_nohash_`` (the speaker) is
kept, so the dataset's hashing rule puts a copy where its source is; and the output gets
``validation_list.txt`` and ``testing_list.txt`` naming every copy of a validation or test
clip, so a copy always stays in its source's split (a noisy copy of a test clip never
becomes training data), whatever percentages a later reader uses.

Copies are written atomically at their source's sample rate and never replace a file that
exists (a second run skips what the first wrote, so an interrupted run can be completed).
Each copy's randomness is seeded by the seed, the copy number and the file's path, so the
output does not depend on the order the files are processed in.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kws import audio, files
from kws.augment import Augmentation, augment_batch
from kws.dataset import (
    TESTING,
    TESTING_LIST,
    VALIDATION,
    VALIDATION_LIST,
    Clip,
    open_datasets,
)
from kws.errors import AudioError, KwsError, UsageError

#: Settings of ``kws augment`` unless told otherwise: a real background in every copy.
DEFAULT_AUGMENTATION = Augmentation(
    background_probability=1.0, shift=0.0, gain_db=(0.0, 0.0), speed=0.0, noise_factor=0.0
)


@dataclass
class AugmentResult:
    """What :func:`augment_folder` wrote."""

    out: Path
    sources: int
    written: int
    existing: int
    splits: Counter = field(default_factory=Counter)
    failed: dict[Path, AudioError] = field(default_factory=dict)
    #: Entries of the input that are not clips, with the reason (from the dataset scan).
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    #: Temporaries of an interrupted earlier run, removed before writing.
    removed_temporaries: list[Path] = field(default_factory=list)


def copy_name(name: str, copy: int) -> str:
    """The file name of copy ``copy`` of ``name``: ``<stem>_aug<copy>.wav``."""
    return f"{Path(name).stem}_aug{copy}.wav"


def check_folders(data: Path, out: Path, backgrounds: Sequence[Path] = ()) -> None:
    """Refuse an output folder that is, contains or lies inside an input folder."""
    target = Path(os.path.realpath(out))
    for source in (data, *backgrounds):
        resolved = Path(os.path.realpath(source))
        if target == resolved or resolved in target.parents or target in resolved.parents:
            raise UsageError(
                f"--out {out}: would write into the input {source} (choose a folder outside it)"
            )


def check_target_folders(out: Path, folders: Iterable[str], inputs: Sequence[Path]) -> None:
    """Refuse when any folder the copies go into resolves into an input.

    ``--out`` itself is checked by :func:`check_folders`; this catches a folder inside it
    that is a symbolic link (``out/yes -> data/yes``), which would put the copies into the
    input dataset. Every folder is checked before anything is written.
    """
    resolved_inputs = [(Path(source), Path(os.path.realpath(source))) for source in inputs]
    for folder in sorted(set(folders)):
        target = Path(os.path.realpath(out / folder))
        for source, resolved in resolved_inputs:
            if target == resolved or resolved in target.parents:
                raise UsageError(
                    f"--out {out}: {out / folder} would write into the input {source} "
                    "(through a symbolic link); remove the link or choose another --out"
                )


def _file_seed(seed: int, copy: int, relative: str) -> list[int]:
    digest = hashlib.sha1(relative.encode("utf-8", "surrogateescape")).digest()
    return [seed, copy, int.from_bytes(digest[:8], "little")]


def _merge_list(path: Path, entries: Sequence[str]) -> None:
    """Add entries to a list file (creating it), keeping the ones already there."""
    existing = path.read_text(encoding="utf-8").split() if path.is_file() else []
    merged = sorted(set(existing) | set(entries))
    files.write_text(path, "".join(f"{entry}\n" for entry in merged))


def _has_changes(augmentation: Augmentation, has_backgrounds: bool) -> bool:
    """Whether the settings change a clip at all."""
    return any((
        augmentation.noise_factor > 0,
        augmentation.speed > 0,
        augmentation.shift > 0,
        augmentation.lowpass_probability > 0,
        augmentation.gain_db != (0.0, 0.0),
        augmentation.background_probability > 0 and has_backgrounds,
    ))


def augment_folder(
    data: str | os.PathLike,
    out: str | os.PathLike,
    copies: int = 1,
    augmentation: Augmentation = DEFAULT_AUGMENTATION,
    seed: int = 0,
    backgrounds: Sequence[str | os.PathLike] = (),
    validation_percent: float = 10.0,
    testing_percent: float = 10.0,
    workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> AugmentResult:
    """Write ``copies`` augmented versions of every clip of ``data`` into ``out``.

    Background recordings come from the dataset's ``_background_noise_`` folder and
    ``backgrounds``; they are decoded through the cache at each clip's rate.
    ``progress(n, total)`` is called as clips are done; ``warn(line)`` hears of a damaged
    or unwritable decode cache. ``out`` is locked for the run,
    so temporaries that an interrupted earlier run left in the folders written to are
    kws's own leftovers and are removed first.

    Raises
    ------
    UsageError
        ``out`` is, contains or lies inside an input, or a folder inside ``out`` resolves
        into an input; nothing would change the clips.
    KwsError
        Another run is writing into ``out``, or a copy cannot be written.
    """
    data, out = Path(data), Path(out)
    if copies < 1:
        raise UsageError("--copies must be at least 1")
    inputs = [data, *(Path(b) for b in backgrounds)]
    check_folders(data, out, inputs[1:])
    dataset = open_datasets([data], validation_percent, testing_percent, backgrounds)
    if not _has_changes(augmentation, bool(dataset.backgrounds)):
        raise UsageError(
            f"{data}: nothing to add: no background recordings (_background_noise_ or "
            "--background) and no --noise-factor, --shift, --gain-db, --speed or --lowpass"
        )
    clips = [clip for clip in dataset.clips if not clip.is_segment]
    folders = {clip.path.parent.relative_to(data).as_posix() for clip in clips}
    check_target_folders(out, folders, inputs)
    result = AugmentResult(out=out, sources=len(clips), written=0, existing=0,
                           skipped=list(dataset.skipped))
    with files.locked_folder(out):
        for folder in sorted({".", *folders}):
            result.removed_temporaries += files.remove_stale_temporaries(out / folder, 0.0)
        writer = _CopyWriter(data, out, copies, augmentation, seed, dataset.backgrounds, warn)
        for clip in clips:
            for target in writer.targets(clip):
                _is_finished_copy(out / target)
        listed: dict[str, list[str]] = {VALIDATION: [], TESTING: []}
        pool = ThreadPoolExecutor(max_workers=max(1, workers))
        try:
            for clip, targets, written, existing, error in pool.map(writer.one, clips):
                if error is not None:
                    result.failed[clip.path] = error
                else:
                    result.written += written
                    result.existing += existing
                    result.splits[clip.split] += len(targets)
                    listed.get(clip.split, []).extend(targets)
                if progress:
                    progress(1, len(clips))
        finally:
            # A write that fails (full disk) or Ctrl-C stops the run: clips not started
            # are not attempted.
            pool.shutdown(wait=True, cancel_futures=True)
        result.failed.update(writer.failed_backgrounds)
        _merge_list(out / VALIDATION_LIST, listed[VALIDATION])
        _merge_list(out / TESTING_LIST, listed[TESTING])
    return result


class _CopyWriter:
    """Writes the copies of one clip; shared by the worker threads of a run."""

    def __init__(self, data: Path, out: Path, copies: int, augmentation: Augmentation,
                 seed: int, backgrounds: Sequence[Path],
                 warn: Callable[[str], None] | None = None) -> None:
        self.data, self.out, self.copies, self.warn = data, out, copies, warn
        self.augmentation, self.seed, self.backgrounds = augmentation, seed, backgrounds
        self.failed_backgrounds: dict[Path, AudioError] = {}
        self._at_rate: dict[int, list[np.ndarray]] = {}
        self._lock = threading.Lock()

    def background_recordings(self, rate: int) -> list[np.ndarray]:
        """The background recordings decoded at ``rate`` (once per rate)."""
        from kws.cache import AudioCache

        with self._lock:
            if rate not in self._at_rate:
                found, failed = AudioCache(rate, warn=self.warn).get_many(self.backgrounds)
                self.failed_backgrounds.update(failed)
                self._at_rate[rate] = [found[p] for p in self.backgrounds if p in found]
            return self._at_rate[rate]

    def targets(self, clip: Clip) -> list[str]:
        """The names of the copies of ``clip``, relative to ``out``."""
        folder = clip.path.parent.relative_to(self.data).as_posix()
        return [f"{folder}/{copy_name(clip.path.name, k)}" for k in range(1, self.copies + 1)]

    def one(self, clip: Clip) -> tuple[Clip, list[str], int, int, AudioError | None]:
        """Write the missing copies of ``clip``: ``(clip, targets, written, existing, error)``."""
        relative = clip.path.relative_to(self.data).as_posix()
        targets = self.targets(clip)
        todo = [(k, t) for k, t in enumerate(targets, 1)
                if not _is_finished_copy(self.out / t)]
        if not todo:
            return clip, targets, 0, len(targets), None
        try:
            waveform, rate = audio.read(clip.path)
        except AudioError as error:
            return clip, [], 0, 0, error
        written = 0
        for k, target in todo:
            rng = np.random.default_rng(_file_seed(self.seed, k, relative))
            copy = augment_batch(waveform[None, :], self.background_recordings(rate),
                                 self.augmentation, rng)[0]
            if _is_finished_copy(self.out / target):
                continue
            audio.write(self.out / target, copy, rate)
            written += 1
        return clip, targets, written, len(targets) - len(todo), None


def _is_finished_copy(path: Path) -> bool:
    """Whether a copy is already at ``path`` (kept); False when nothing is there.

    Only a regular file counts. A symbolic link (to an input clip, say) or anything else
    at a copy's name is refused: kws neither follows it nor removes it.
    """
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return False
    except OSError as error:
        raise KwsError(f"{path}: cannot check ({error.strerror or error})") from None
    if stat.S_ISREG(mode):
        return True
    kind = "a symbolic link" if stat.S_ISLNK(mode) else "not a regular file"
    raise KwsError(f"{path}: is {kind}, not a finished copy; kws will neither follow nor "
                   "remove it (remove it, or choose another --out)")
