"""Decoded audio cached on disk, so a second run does not decode again.

Every file is decoded through :func:`kws.audio.load` once per sample rate. Entries are
keyed by the file's absolute path, size, modification time and the rate, so a changed
file or another rate is decoded afresh. The cache is a folder of segments: each run that
decoded something adds one ``.npy`` of concatenated samples and a ``.json`` index, written
atomically, so an interrupted run never leaves a corrupt cache.

The folder is ``$KWS_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/kws`` (``~/.cache/kws``).
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from kws import audio
from kws.dataset import Clip
from kws.errors import AudioError

#: Past this many segments the cache is compacted into one.
_MAX_SEGMENTS = 16


def default_cache_dir() -> Path:
    """Where decoded audio is cached unless told otherwise."""
    if os.environ.get("KWS_CACHE_DIR"):
        return Path(os.environ["KWS_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "kws"


class AudioCache:
    """Decoded waveforms at one sample rate, kept on disk between runs.

    Parameters
    ----------
    rate
        Sample rate of the cached waveforms.
    directory
        Cache folder; ``None`` uses :func:`default_cache_dir`. ``False`` disables the
        disk (everything is decoded in memory only).
    """

    def __init__(self, rate: int, directory: str | os.PathLike | None | bool = None) -> None:
        self.rate = rate
        if directory is False:
            self.directory = None
        else:
            base = default_cache_dir() if directory in (None, True) else Path(directory)
            self.directory = base / f"sr{rate}"
        self._index: dict[str, tuple[str, int, int]] = {}
        self._segments: dict[str, np.ndarray] = {}
        self._read_index()

    def get_many(
        self,
        paths: Sequence[Path],
        progress: Callable[[int], None] | None = None,
    ) -> tuple[dict[Path, np.ndarray], dict[Path, AudioError]]:
        """Waveforms of many files: ``({path: waveform}, {path: error})``.

        Files missing from the cache are decoded in parallel threads and added to it.
        ``progress(n)`` is called as files are done.
        """
        unique = list(dict.fromkeys(Path(p) for p in paths))
        keys = {path: self._key(path) for path in unique}
        found: dict[Path, np.ndarray] = {}
        failed: dict[Path, AudioError] = {}
        missing = []
        for path in unique:
            key = keys[path]
            if key is None:
                failed[path] = AudioError(path, "no such file")
            elif key in self._index:
                found[path] = self._fetch(key)
            else:
                missing.append(path)
        if progress and found:
            progress(len(found) + len(failed))
        decoded: dict[str, np.ndarray] = {}
        if missing:
            with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1) * 2) as pool:
                for path, result in zip(missing, pool.map(self._decode, missing), strict=True):
                    if isinstance(result, AudioError):
                        failed[path] = result
                    else:
                        found[path] = result
                        decoded[keys[path]] = result
                    if progress:
                        progress(1)
            self._store(decoded)
        return found, failed

    def _decode(self, path: Path) -> np.ndarray | AudioError:
        try:
            return audio.load(path, self.rate)
        except AudioError as error:
            return error

    @staticmethod
    def _key(path: Path) -> str | None:
        try:
            stat = path.stat()
        except OSError:
            return None
        text = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
        return hashlib.sha1(text.encode("utf-8")).hexdigest()

    def _fetch(self, key: str) -> np.ndarray:
        segment, start, length = self._index[key]
        if segment not in self._segments:
            self._segments[segment] = np.load(self.directory / f"{segment}.npy", mmap_mode="r")
        return np.asarray(self._segments[segment][start : start + length])

    def _read_index(self) -> None:
        if self.directory is None or not self.directory.is_dir():
            return
        for index_path in sorted(self.directory.glob("*.json")):
            segment = index_path.stem
            if not (self.directory / f"{segment}.npy").is_file():
                continue
            try:
                entries = json.loads(index_path.read_text())
            except (OSError, ValueError):
                continue
            for key, (start, length) in entries.items():
                self._index[key] = (segment, start, length)

    def _store(self, decoded: dict[str, np.ndarray]) -> None:
        if self.directory is None or not decoded:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        segments = {segment for segment, _, _ in self._index.values()}
        if len(segments) >= _MAX_SEGMENTS:
            decoded = {**{key: self._fetch(key) for key in self._index}, **decoded}
        segment = uuid.uuid4().hex
        self._write_segment(segment, decoded)
        if len(segments) >= _MAX_SEGMENTS:
            for old in segments:
                (self.directory / f"{old}.json").unlink(missing_ok=True)
                (self.directory / f"{old}.npy").unlink(missing_ok=True)
            self._index = {}
            self._segments = {}
        offset = 0
        for key, waveform in decoded.items():
            self._index[key] = (segment, offset, len(waveform))
            offset += len(waveform)

    def _write_segment(self, segment: str, decoded: dict[str, np.ndarray]) -> None:
        entries, offset = {}, 0
        for key, waveform in decoded.items():
            entries[key] = (offset, len(waveform))
            offset += len(waveform)
        samples = np.concatenate(list(decoded.values())).astype(np.float32)
        npy = self.directory / f"{segment}.npy"
        index = self.directory / f"{segment}.json"
        tmp_npy = npy.with_name(f".{segment}.npy.tmp")
        tmp_index = index.with_name(f".{segment}.json.tmp")
        try:
            with open(tmp_npy, "wb") as handle:
                np.save(handle, samples)
            tmp_index.write_text(json.dumps(entries))
            os.replace(tmp_npy, npy)
            os.replace(tmp_index, index)
        except OSError:
            # A cache that cannot be written only costs time: decode again next run.
            pass
        finally:
            tmp_npy.unlink(missing_ok=True)
            tmp_index.unlink(missing_ok=True)


def load_clips(
    clips: Sequence[Clip],
    rate: int,
    length: int,
    cache: AudioCache | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, list[Clip], dict[Path, AudioError]]:
    """Waveforms of labelled clips as one ``(n, length)`` float32 array.

    Files are read through the cache; silence clips are cut from their background
    recording. Returns the array, the clips it holds (in order; unreadable ones are
    left out) and the errors of the files that could not be read.
    """
    cache = cache or AudioCache(rate)
    found, failed = cache.get_many([clip.path for clip in clips], progress)
    kept = [clip for clip in clips if clip.path in found]
    batch = np.zeros((len(kept), length), dtype=np.float32)
    for row, clip in enumerate(kept):
        waveform = found[clip.path]
        if clip.is_segment:
            start = int(clip.offset * rate)
            batch[row] = audio.fix_length(waveform[start : start + length] * clip.gain, length)
        else:
            batch[row] = audio.fix_length(waveform, length)
    return batch, kept, failed
