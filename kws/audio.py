"""Reading audio: the one road every command takes from a file to a waveform.

:func:`load` reads any file soundfile can read (WAV in 8/16/24/32-bit PCM or float, FLAC,
OGG, ...), mixes channels to mono, resamples to the requested rate and checks that the
samples are finite. :func:`fix_length` then pads or crops the waveform to a model's input.
Problems raise :class:`~kws.errors.AudioError`, whose message names the file and the
problem in one line.

Resampling calls soxr (the library librosa's ``soxr_hq`` mode wraps) directly with the
same quality setting, because importing librosa's resampler costs over a second and
``kws predict`` must start fast.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from kws.errors import AudioError

#: File name suffixes treated as audio when scanning folders.
AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".au", ".mp3"})

#: soxr quality used for every resampling (librosa's ``soxr_hq``).
RESAMPLE_QUALITY = "HQ"


def is_audio_path(path: str | os.PathLike) -> bool:
    """Whether a path has a suffix kws reads as audio."""
    return Path(path).suffix.lower() in AUDIO_EXTENSIONS


def load(path: str | os.PathLike, rate: int | None = None) -> np.ndarray:
    """Read an audio file as a float32 mono waveform in [-1, 1].

    Parameters
    ----------
    path
        Any file soundfile (libsndfile) can read.
    rate
        Sample rate to return, in Hz; ``None`` keeps the file's own rate.

    Returns
    -------
    numpy.ndarray
        1-D float32 array.

    Raises
    ------
    AudioError
        The file is missing, empty, truncated, corrupt, not audio, has no samples or
        holds NaN or infinite samples.
    """
    waveform, file_rate = read(path)
    if rate is not None and rate != file_rate:
        waveform = resample(waveform, file_rate, rate)
    return waveform


def read(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read an audio file at its own rate; return ``(mono float32 waveform, rate)``."""
    import soundfile

    path = Path(path)
    _check_file(path)
    try:
        data, file_rate = soundfile.read(path, dtype="float32", always_2d=True)
    except soundfile.LibsndfileError as error:
        raise AudioError(path, _describe_libsndfile_error(error)) from None
    except (RuntimeError, ValueError, TypeError) as error:
        raise AudioError(path, f"corrupt audio ({error})") from None
    if data.shape[0] == 0:
        raise AudioError(path, "contains no audio samples (zero length)")
    waveform = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.isfinite(waveform).all():
        raise AudioError(path, "contains NaN or infinite samples")
    return np.ascontiguousarray(waveform, dtype=np.float32), int(file_rate)


def resample(waveform: np.ndarray, orig_rate: int, rate: int) -> np.ndarray:
    """Resample a 1-D waveform from ``orig_rate`` to ``rate`` with soxr (high quality)."""
    if orig_rate == rate:
        return waveform
    import soxr

    out = soxr.resample(waveform, orig_rate, rate, quality=RESAMPLE_QUALITY)
    return np.asarray(out, dtype=np.float32)


def fix_length(waveform: np.ndarray, length: int) -> np.ndarray:
    """Pad or crop a waveform to exactly ``length`` samples.

    The rule: a shorter waveform is padded with zeros at the end (as TensorFlow's
    ``decode_wav`` does for Speech Commands clips); a longer one is cropped to its
    loudest window of ``length`` samples, so a word inside a longer recording is kept.
    """
    n = waveform.shape[-1]
    if n == length:
        return waveform
    if n < length:
        padding = [(0, 0)] * (waveform.ndim - 1) + [(0, length - n)]
        return np.pad(waveform, padding)
    start = loudest_window(waveform, length)
    return waveform[..., start : start + length]


def loudest_window(waveform: np.ndarray, length: int) -> int:
    """Start index of the ``length``-sample window with the most energy."""
    energy = np.concatenate([[0.0], np.cumsum(np.square(waveform, dtype=np.float64))])
    window_energy = energy[length:] - energy[:-length]
    return int(np.argmax(window_energy))


def write(path: str | os.PathLike, waveform: np.ndarray, rate: int) -> None:
    """Write a mono waveform as 16-bit PCM WAV, atomically (temporary file, then rename)."""
    import soundfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        soundfile.write(tmp, np.clip(waveform, -1.0, 1.0), rate, subtype="PCM_16", format="WAV")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _check_file(path: Path) -> None:
    """Raise AudioError for problems visible before decoding: missing, empty, truncated."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise AudioError(path, "no such file") from None
    except PermissionError:
        raise AudioError(path, "permission denied") from None
    except OSError as error:
        raise AudioError(path, error.strerror or str(error)) from None
    if path.is_dir():
        raise AudioError(path, "is a directory, not an audio file")
    if size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    try:
        with open(path, "rb") as handle:
            header = handle.read(12)
            if header[:4] == b"RIFF" and header[8:12] == b"WAVE":
                _check_wav_chunks(path, handle, size)
    except PermissionError:
        raise AudioError(path, "permission denied") from None


def _check_wav_chunks(path: Path, handle, size: int) -> None:
    """Detect a WAV file cut short: its data chunk declares more bytes than the file holds."""
    position = 12
    while position + 8 <= size:
        handle.seek(position)
        chunk_id, chunk_size = struct.unpack("<4sI", handle.read(8))
        if chunk_id == b"data":
            available = size - position - 8
            streaming = chunk_size in (0, 0xFFFFFFFF)
            if not streaming and chunk_size > available:
                raise AudioError(
                    path,
                    f"truncated WAV: header declares {chunk_size} bytes of audio "
                    f"but the file holds {available}",
                )
            return
        position += 8 + chunk_size + (chunk_size & 1)
    raise AudioError(path, "corrupt WAV: no data chunk")


def _describe_libsndfile_error(error: Exception) -> str:
    message = str(getattr(error, "error_string", "") or error).strip().rstrip(".")
    lowered = message.lower()
    if "format not recognised" in lowered or "unknown format" in lowered:
        return "not an audio file soundfile can read (format not recognised)"
    return f"corrupt or unreadable audio ({message})"
