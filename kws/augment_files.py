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
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kws import audio
from kws.augment import Augmentation, augment_batch
from kws.dataset import (
    TESTING,
    TESTING_LIST,
    VALIDATION,
    VALIDATION_LIST,
    Clip,
    open_datasets,
)
from kws.errors import AudioError, UsageError
from kws.modelfolder import write_text_atomic

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


def copy_name(name: str, copy: int) -> str:
    """The file name of copy ``copy`` of ``name``: ``<stem>_aug<copy>.wav``."""
    return f"{Path(name).stem}_aug{copy}.wav"


def check_folders(data: Path, out: Path, backgrounds: Sequence[Path] = ()) -> None:
    """Refuse an output folder that is, contains or lies inside an input folder."""
    target = out.resolve()
    for source in (data, *backgrounds):
        resolved = Path(source).resolve()
        if target == resolved or resolved in target.parents or target in resolved.parents:
            raise UsageError(
                f"--out {out}: would write into the input {source} (choose a folder outside it)"
            )


def _file_seed(seed: int, copy: int, relative: str) -> list[int]:
    digest = hashlib.sha1(relative.encode("utf-8")).digest()
    return [seed, copy, int.from_bytes(digest[:8], "little")]


def _merge_list(path: Path, entries: Sequence[str]) -> None:
    """Add entries to a list file (creating it), keeping the ones already there."""
    existing = path.read_text(encoding="utf-8").split() if path.is_file() else []
    merged = sorted(set(existing) | set(entries))
    write_text_atomic(path, "".join(f"{entry}\n" for entry in merged))


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
) -> AugmentResult:
    """Write ``copies`` augmented versions of every clip of ``data`` into ``out``.

    Background recordings come from the dataset's ``_background_noise_`` folder and
    ``backgrounds``; they are decoded through the cache at each clip's rate.
    ``progress(n, total)`` is called as clips are done.

    Raises
    ------
    UsageError
        ``out`` is, contains or lies inside an input; nothing would change the clips.
    """
    from kws.cache import AudioCache

    data, out = Path(data), Path(out)
    if copies < 1:
        raise UsageError("--copies must be at least 1")
    check_folders(data, out, [Path(b) for b in backgrounds])
    dataset = open_datasets([data], validation_percent, testing_percent, backgrounds)
    changes = (
        augmentation.noise_factor > 0,
        augmentation.speed > 0,
        augmentation.shift > 0,
        augmentation.gain_db != (0.0, 0.0),
        augmentation.background_probability > 0 and bool(dataset.backgrounds),
    )
    if not any(changes):
        raise UsageError(
            f"{data}: nothing to add: no background recordings (_background_noise_ or "
            "--background) and no --noise-factor, --shift, --gain-db or --speed"
        )
    clips = [clip for clip in dataset.clips if not clip.is_segment]
    backgrounds_at: dict[int, list[np.ndarray]] = {}
    result = AugmentResult(out=out, sources=len(clips), written=0, existing=0)
    listed: dict[str, list[str]] = {VALIDATION: [], TESTING: []}

    lock = threading.Lock()

    def background_recordings(rate: int) -> list[np.ndarray]:
        with lock:
            if rate not in backgrounds_at:
                found, failed = AudioCache(rate).get_many(dataset.backgrounds)
                result.failed.update(failed)
                backgrounds_at[rate] = [found[p] for p in dataset.backgrounds if p in found]
            return backgrounds_at[rate]

    def one(clip: Clip) -> tuple[Clip, list[str], int, int, AudioError | None]:
        relative = clip.path.relative_to(data).as_posix()
        folder = clip.path.parent.relative_to(data).as_posix()
        targets = [f"{folder}/{copy_name(clip.path.name, k)}" for k in range(1, copies + 1)]
        todo = [(k, t) for k, t in enumerate(targets, 1) if not (out / t).exists()]
        if not todo:
            return clip, targets, 0, len(targets), None
        try:
            waveform, rate = audio.read(clip.path)
        except AudioError as error:
            return clip, [], 0, 0, error
        written = 0
        for k, target in todo:
            rng = np.random.default_rng(_file_seed(seed, k, relative))
            copy = augment_batch(waveform[None, :], background_recordings(rate),
                                 augmentation, rng)[0]
            if (out / target).exists():
                continue
            audio.write(out / target, copy, rate)
            written += 1
        return clip, targets, written, len(targets) - len(todo), None

    out.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for clip, targets, written, existing, error in pool.map(one, clips):
            if error is not None:
                result.failed[clip.path] = error
            else:
                result.written += written
                result.existing += existing
                result.splits[clip.split] += len(targets)
                if clip.split in listed:
                    listed[clip.split].extend(targets)
            if progress:
                progress(1, len(clips))
    _merge_list(out / VALIDATION_LIST, listed[VALIDATION])
    _merge_list(out / TESTING_LIST, listed[TESTING])
    return result

