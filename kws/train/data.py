"""Decoding a task's clips into arrays, with counted progress and one warning for failures."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kws.cache import AudioCache, load_clips
from kws.dataset import Clip
from kws.errors import AudioError
from kws.train.events import TrainEvents

#: The warning of a run with no background recordings: ``_silence_`` clips are cut from
#: them and augmentation mixes them in.
NO_BACKGROUND_WARNING = ("no background recordings (no _background_noise_ folder, no "
                         "--background): no _silence_ class is made and no noise is mixed in")


def decode_clips(clips: Sequence[Clip], rate: int, length: int, events: TrainEvents,
                 what: str = "clips", cache: AudioCache | None = None,
                 ) -> tuple[np.ndarray, list[Clip], dict[Path, AudioError]]:
    """Decode clips (through the on-disk cache) into an ``(n, length)`` float32 array.

    Progress goes to ``events.counting("reading <what>", files)``. Unreadable files are
    left out and returned as ``{path: error}``.
    """
    cache = cache or task_cache(rate, events)
    files = len({clip.path for clip in clips})
    with events.counting(f"reading {what}", files) as advance:
        return load_clips(clips, rate, length, cache, progress=advance)


def task_cache(rate: int, events: TrainEvents) -> AudioCache:
    """The decode cache of a run at ``rate``, reporting damage it repairs as warnings."""
    return AudioCache(rate, warn=events.warn)


def warn_unreadable(events: TrainEvents, problems: Sequence[str], limit: int = 3) -> None:
    """One warning about files that could not be read: a count and the first few problems."""
    if not problems:
        return
    shown = "; ".join(problems[:limit])
    more = f"; and {len(problems) - limit} more" if len(problems) > limit else ""
    events.warn(f"skipped {len(problems)} unreadable file(s): {shown}{more}")
