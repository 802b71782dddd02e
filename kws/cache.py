"""Decoded audio cached on disk, so a second run does not decode again.

Every file is decoded through :func:`kws.audio.load` once per sample rate. Entries are
keyed by the file's real path, size, modification time and the rate, so a changed file or
another rate is decoded afresh. The cache is a folder of segments: each run that decoded
something adds one ``.npy`` of concatenated float32 samples and a ``.json`` index, both
written atomically through :mod:`kws.files` (the index last, so a segment without one is
never read).

Nothing read from the cache is trusted: the index is validated (format, sizes, bounds),
the ``.npy`` is opened without pickles and must have the dtype and length the index
declares, and each entry's CRC-32 is checked when it is read. A damaged entry or segment
is dropped (from disk too), reported once through the ``warn`` callback, and decoded
again. A cache folder that cannot be written only costs time: kws runs without writing
to it, with one warning.

The folder is ``$KWS_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/kws`` (``~/.cache/kws``).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from kws import audio, files
from kws.dataset import Clip
from kws.errors import AudioError, KwsError

#: Past this many segments the cache is compacted into one.
_MAX_SEGMENTS = 16
#: What a segment index declares about itself.
_FORMAT, _VERSION = "kws-audio-cache", 2


class _Damaged(Exception):
    """A cache segment or entry that cannot be trusted; the message says why."""


class _Outdated(Exception):
    """A segment written by an older kws (no checksums): dropped without a warning."""


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
    warn
        Called with one line when the cache is damaged (the bad part is dropped and
        decoded again) or cannot be written (the run goes on without it). Each kind of
        problem is reported once per cache object; every message is also kept in
        :attr:`problems`.
    """

    def __init__(self, rate: int, directory: str | os.PathLike | None | bool = None,
                 warn: Callable[[str], None] | None = None) -> None:
        self.rate = rate
        if directory is False:
            self.directory = None
        else:
            base = default_cache_dir() if directory in (None, True) else Path(directory)
            self.directory = base / f"sr{rate}"
        self.problems: list[str] = []
        self._warn = warn
        self._warned: set[str] = set()
        self._writable = True
        self._index: dict[str, tuple[str, int, int, int]] = {}
        self._segments: dict[str, np.ndarray] = {}
        self._declared_samples: dict[str, int] = {}
        self._dropped_keys: dict[str, set[str]] = {}
        self._damaged: list[str] = []
        self._read_index()
        self._report_damage()

    def get_many(
        self,
        paths: Sequence[Path],
        progress: Callable[[int], None] | None = None,
    ) -> tuple[dict[Path, np.ndarray], dict[Path, AudioError]]:
        """Waveforms of many files: ``({path: waveform}, {path: error})``.

        Files missing from the cache (or whose entry is damaged) are decoded in parallel
        threads and added to it. ``progress(n)`` is called as files are done.
        """
        unique = list(dict.fromkeys(Path(p) for p in paths))
        keys = {path: self._key(path) for path in unique}
        found: dict[Path, np.ndarray] = {}
        missing = []
        for path in unique:
            waveform = self._lookup(keys[path])
            if waveform is None:
                missing.append(path)
            else:
                found[path] = waveform
        self._forget_damaged_entries()
        self._report_damage()
        if progress and found:
            progress(len(found))
        failed: dict[Path, AudioError] = {}
        decoded: dict[str, np.ndarray] = {}
        if missing:
            with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1) * 2) as pool:
                for path, result in zip(missing, pool.map(self._decode, missing), strict=True):
                    if isinstance(result, AudioError):
                        failed[path] = result
                    else:
                        found[path] = result
                        if keys[path] is not None:
                            decoded[keys[path]] = result
                    if progress:
                        progress(1)
            self._store(decoded)
        return found, failed

    # ------------------------------------------------------------------ reading

    def _decode(self, path: Path) -> np.ndarray | AudioError:
        try:
            return audio.load(path, self.rate)
        except AudioError as error:
            return error

    @staticmethod
    def _key(path: Path) -> str | None:
        """The cache key of a file, or None when it cannot be stat'ed (decoding says why)."""
        try:
            stat = path.stat()
        except OSError:
            return None
        real = os.fsencode(os.path.realpath(path))
        text = real + f"|{stat.st_size}|{stat.st_mtime_ns}".encode()
        return hashlib.sha1(text).hexdigest()

    def _lookup(self, key: str | None) -> np.ndarray | None:
        """The cached waveform of ``key``, or None when absent or damaged (then dropped)."""
        if key is None or key not in self._index:
            return None
        segment, start, length, checksum = self._index[key]
        samples = self._open_segment(segment)
        if samples is None:
            return None
        waveform = samples[start : start + length]
        if zlib.crc32(waveform) != checksum:
            self._damaged.append(f"entry {key[:12]} of segment {segment}: checksum mismatch")
            self._drop_entry(key)
            return None
        return np.asarray(waveform)

    def _open_segment(self, segment: str) -> np.ndarray | None:
        """The memory-mapped samples of a segment, or None (and the segment dropped)."""
        if segment in self._segments:
            return self._segments[segment]
        npy = self.directory / f"{segment}.npy"
        try:
            samples = np.load(npy, mmap_mode="r", allow_pickle=False)
        except FileNotFoundError:
            self._forget_segment(segment)
            return None
        except (OSError, ValueError, EOFError) as error:
            self._drop_segment(segment, f"unreadable samples ({_first_line(error)})")
            return None
        expected = self._declared_samples[segment]
        if samples.dtype != np.float32 or samples.shape != (expected,):
            self._drop_segment(segment, f"samples are {samples.dtype} {samples.shape}, the "
                                        f"index declares float32 ({expected},)")
            return None
        self._segments[segment] = samples
        return samples

    def _read_index(self) -> None:
        """Read every segment index, dropping those that are damaged."""
        if self.directory is None or not self.directory.is_dir():
            return
        for index_path in sorted(self.directory.glob("*.json")):
            segment = index_path.stem
            if not (self.directory / f"{segment}.npy").is_file():
                continue
            try:
                samples, entries = self._parse_index(index_path)
            except _Damaged as error:
                self._drop_segment(segment, str(error))
                continue
            except _Outdated:
                self._drop_files_quietly(segment)
                continue
            self._declared_samples[segment] = samples
            for key, (start, length, checksum) in entries.items():
                self._index[key] = (segment, start, length, checksum)

    def _parse_index(self, path: Path) -> tuple[int, dict[str, tuple[int, int, int]]]:
        """``(samples, {key: (start, length, crc32)})`` of an index; _Damaged if invalid."""
        try:
            raw = json.loads(path.read_bytes())
        except (OSError, ValueError) as error:
            raise _Damaged(f"unreadable index ({_first_line(error)})") from None
        if isinstance(raw, dict) and "format" not in raw and all(
                isinstance(value, list) and len(value) == 2 for value in raw.values()):
            raise _Outdated
        if not isinstance(raw, dict) or raw.get("format") != _FORMAT:
            raise _Damaged("the index is not a kws audio cache index")
        samples, entries = raw.get("samples"), raw.get("entries")
        if raw.get("version") != _VERSION or raw.get("rate") != self.rate:
            raise _Damaged(f"index version {raw.get('version')!r} at rate {raw.get('rate')!r}")
        if not _is_count(samples) or not isinstance(entries, dict):
            raise _Damaged("the index has no valid 'samples' and 'entries'")
        parsed = {}
        for key, value in entries.items():
            if not (isinstance(value, list) and len(value) == 3 and all(map(_is_count, value))
                    and value[0] + value[1] <= samples and value[1] > 0):
                raise _Damaged(f"index entry {key[:12]} is not [start, length, crc32] "
                               f"within {samples} samples")
            parsed[key] = tuple(value)
        return samples, parsed

    # ------------------------------------------------------------------ damage

    def _drop_segment(self, segment: str, why: str) -> None:
        """Forget a damaged segment and delete its files (when the folder allows)."""
        self._damaged.append(f"segment {segment}: {why}")
        self._drop_files_quietly(segment)

    def _drop_files_quietly(self, segment: str) -> None:
        """Forget a segment and delete its files when the folder allows it."""
        self._forget_segment(segment)
        try:
            self._drop_files(segment)
        except OSError:
            pass

    def _forget_segment(self, segment: str) -> None:
        self._index = {k: v for k, v in self._index.items() if v[0] != segment}
        self._segments.pop(segment, None)
        self._dropped_keys.pop(segment, None)

    def _drop_entry(self, key: str) -> None:
        segment = self._index.pop(key)[0]
        self._dropped_keys.setdefault(segment, set()).add(key)

    def _forget_damaged_entries(self) -> None:
        """Rewrite the index of each segment that lost entries, so later runs skip them."""
        for segment in list(self._dropped_keys):
            self._dropped_keys.pop(segment)
            entries = {key: value[1:] for key, value in self._index.items()
                       if value[0] == segment}
            try:
                if entries:
                    self._write_index(segment, self._declared_samples[segment], entries)
                else:
                    self._drop_files(segment)
            except (OSError, KwsError) as error:
                self._cannot_write(error)

    def _report_damage(self) -> None:
        if not self._damaged:
            return
        first, count = self._damaged[0], len(self._damaged)
        more = f" (and {count - 1} more)" if count > 1 else ""
        self._report("damaged", f"decode cache {self.directory}: dropped damaged {first}{more}; "
                                "decoding those files again")
        self._damaged = []

    def _cannot_write(self, error: BaseException) -> None:
        self._writable = False
        self._report("unwritable", f"decode cache {self.directory}: cannot write "
                                   f"({_first_line(error)}); running without storing to it")

    def _report(self, kind: str, message: str) -> None:
        """Record a problem; pass it to ``warn`` the first time its kind occurs."""
        self.problems.append(message)
        if kind in self._warned:
            return
        self._warned.add(kind)
        if self._warn is not None:
            self._warn(message)

    # ------------------------------------------------------------------ writing

    def _store(self, decoded: dict[str, np.ndarray]) -> None:
        if self.directory is None or not decoded or not self._writable:
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            files.remove_stale_temporaries(self.directory)
            remove_orphans(self.directory)
            self._store_segment(decoded)
        except (OSError, KwsError) as error:
            self._cannot_write(error)
        self._report_damage()

    def _store_segment(self, decoded: dict[str, np.ndarray]) -> None:
        segments = {value[0] for value in self._index.values()}
        compact = len(segments) >= _MAX_SEGMENTS
        if compact:
            kept = {key: self._lookup(key) for key in list(self._index)}
            decoded = {**{k: v for k, v in kept.items() if v is not None}, **decoded}
        segment = uuid.uuid4().hex
        entries = self._write_segment(segment, decoded)
        if compact:
            for old in segments:
                self._drop_files(old)
                self._forget_segment(old)
        self._declared_samples[segment] = sum(length for _, length, _ in entries.values())
        for key, (start, length, checksum) in entries.items():
            self._index[key] = (segment, start, length, checksum)

    def _write_segment(self, segment: str, decoded: dict[str, np.ndarray]
                       ) -> dict[str, tuple[int, int, int]]:
        """Write a segment's samples, then its index; return its entries."""
        parts = [np.ascontiguousarray(w, dtype=np.float32) for w in decoded.values()]
        entries, offset = {}, 0
        for key, waveform in zip(decoded, parts, strict=True):
            entries[key] = (offset, len(waveform), zlib.crc32(waveform))
            offset += len(waveform)
        with files.atomic_write(self.directory / f"{segment}.npy", suffix=".npy") as temporary:
            with open(temporary, "wb") as handle:
                np.save(handle, np.concatenate(parts), allow_pickle=False)
        self._write_index(segment, offset, entries)
        return entries

    def _write_index(self, segment: str, samples: int,
                     entries: dict[str, tuple[int, int, int]]) -> None:
        index = {"format": _FORMAT, "version": _VERSION, "rate": self.rate, "samples": samples,
                 "entries": {key: list(value) for key, value in entries.items()}}
        files.write_text(self.directory / f"{segment}.json", json.dumps(index))

    def _drop_files(self, segment: str) -> None:
        (self.directory / f"{segment}.json").unlink(missing_ok=True)
        (self.directory / f"{segment}.npy").unlink(missing_ok=True)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


def remove_orphans(directory: str | os.PathLike, older_than_s: float = files.STALE_AFTER_S
                   ) -> list[Path]:
    """Remove ``.npy`` segments without an index (a run killed between the two writes)."""
    removed = []
    now = time.time()
    for npy in Path(directory).glob("*.npy"):
        try:
            if not npy.with_suffix(".json").exists() and now - npy.stat().st_mtime > older_than_s:
                npy.unlink()
                removed.append(npy)
        except OSError:
            continue
    return removed


def load_clips(
    clips: Sequence[Clip],
    rate: int,
    length: int,
    cache: AudioCache | None = None,
    progress: Callable[[int], None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> tuple[np.ndarray, list[Clip], dict[Path, AudioError]]:
    """Waveforms of labelled clips as one ``(n, length)`` float32 array.

    Files are read through the cache (a new one reporting problems to ``warn`` when none
    is given); silence clips are cut from their background recording. Returns the array,
    the clips it holds (in order; unreadable ones are left out) and the errors of the
    files that could not be read.
    """
    cache = cache or AudioCache(rate, warn=warn)
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
