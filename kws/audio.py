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

import errno
import math
import os
import stat
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kws import files
from kws.errors import AudioError, KwsError

if TYPE_CHECKING:
    import soundfile

#: File name suffixes treated as audio when scanning folders.
AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".au", ".mp3"})

#: soxr quality used for every resampling (librosa's ``soxr_hq``).
RESAMPLE_QUALITY = "HQ"

#: Sample rates (Hz) kws accepts from a header; anything else is not a real recording.
MIN_RATE, MAX_RATE = 1_000, 384_000
#: Channels kws accepts from a header.
MAX_CHANNELS = 64
#: Largest absolute sample value accepted: float files are nominally within ±1, and far
#: larger values overflow the features (a squared 1e30 is infinite in float32).
MAX_ABS_SAMPLE = 1_000.0
#: Frames decoded per block; a header's frame count is never used to allocate.
_BLOCK_FRAMES = 1 << 16
#: Bytes per sample of the uncompressed subtypes, to compare a header with the file size.
_SAMPLE_BYTES = {"PCM_S8": 1, "PCM_U8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4,
                 "FLOAT": 4, "DOUBLE": 8, "ULAW": 1, "ALAW": 1}
#: Containers whose samples are stored as they are (frames x channels x width bytes).
_UNCOMPRESSED = frozenset({"WAV", "WAVEX", "AIFF", "AU", "W64", "RF64", "CAF"})
#: The problem of a recording without samples, whichever command reads it.
ZERO_LENGTH = "contains no audio samples (zero length)"
#: Samples that are not finite numbers once read as float32 (a float64 file's 1e300 too).
NOT_FINITE = "NaN or infinite, or beyond the float range"
#: The problem of a file libsndfile would read only as headerless raw PCM (its suffix).
HEADERLESS = "no audio header (headerless raw PCM?)"


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
        holds NaN or infinite samples (checked again after resampling: huge samples can
        overflow in the resampler).
    """
    waveform, file_rate = read(path)
    if rate is None or rate == file_rate:
        return waveform
    try:
        waveform = resample(waveform, file_rate, rate)
    except (ValueError, RuntimeError, MemoryError) as error:
        raise AudioError(path, f"cannot resample ({error})") from None
    if not np.isfinite(waveform).all():
        raise AudioError(path, "samples are not finite after resampling (NaN or infinity)")
    return waveform


def read(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read an audio file at its own rate; return ``(mono float32 waveform, rate)``.

    The header is checked before any sample is decoded (a plausible rate, no more frames
    than the file's bytes can hold) and samples are read block by block, so a lying
    header cannot make kws allocate more than the file really holds. The name is passed
    to libsndfile as bytes, so a name that is not valid UTF-8 reads like any other.
    """
    import soundfile

    path = Path(path)
    size = check_file(path)
    try:
        with open_soundfile(path) as handle:
            _check_header(path, handle, size)
            data = _read_blocks(handle)
            file_rate = handle.samplerate
    except soundfile.LibsndfileError as error:
        raise AudioError(path, describe_libsndfile_error(error)) from None
    except MemoryError:
        raise AudioError(path, "too large to decode in memory") from None
    except OSError as error:
        raise AudioError(path, _describe_os_error(error)) from None
    except (RuntimeError, ValueError, TypeError) as error:
        raise AudioError(path, f"corrupt audio ({error})") from None
    if data.shape[0] == 0:
        raise AudioError(path, ZERO_LENGTH)
    _check_samples(path, data)
    waveform = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    return np.ascontiguousarray(waveform, dtype=np.float32), int(file_rate)


def open_soundfile(path: str | os.PathLike,
                   raw_hint: str = "convert it to a format with a header, such as WAV"
                   ) -> soundfile.SoundFile:
    """libsndfile's handle on ``path`` (a ``soundfile.SoundFile``, for reading).

    Raises
    ------
    AudioError
        libsndfile refuses the file; or the file's suffix (``.raw``) makes soundfile take
        it for headerless raw PCM, which needs a rate it cannot know: the message says so
        and adds ``raw_hint`` (what the caller offers for such a file).
    """
    import soundfile

    try:
        return soundfile.SoundFile(os.fsencode(path))
    except soundfile.LibsndfileError as error:
        raise AudioError(path, describe_libsndfile_error(error)) from None
    except TypeError as error:  # "samplerate must be specified": read as RAW
        problem = f"{HEADERLESS}; {raw_hint}" if "must be specified" in str(error) \
            else f"corrupt audio ({error})"
        raise AudioError(path, problem) from None
    except OSError as error:
        raise AudioError(path, _describe_os_error(error)) from None


def find_audio_files(folder: str | os.PathLike) -> list[Path]:
    """The audio files under ``folder`` (recursively, sorted, hidden names skipped).

    Raises
    ------
    AudioError
        ``folder`` or a folder inside it cannot be listed (permission denied, ...), so an
        unreadable folder is never mistaken for one without audio.
    """
    found = []
    for entry in scan_audio_files(folder):
        if isinstance(entry, AudioError):
            raise entry
        found.append(entry)
    return found


def scan_audio_files(folder: str | os.PathLike) -> list[Path | AudioError]:
    """The audio files under ``folder`` as :func:`find_audio_files` lists them, with an
    :class:`AudioError` in place of each folder that cannot be listed (where the walk
    meets it), so a caller can report it and still use every file that can be found."""
    folder = Path(folder)
    found: list[Path | AudioError] = []

    def unreadable(error: OSError) -> None:
        found.append(AudioError(error.filename or folder, _describe_os_error(error)))

    for root, dirs, names in os.walk(folder, onerror=unreadable):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(root) / name for name in sorted(names)
                  if not name.startswith(".") and is_audio_path(name)]
    return found


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


def loud_spans(batch: np.ndarray, frame: int, db: float) -> np.ndarray:
    """``(start, end)`` samples of each row's loud part: its first to last whole
    ``frame``-sample frame whose power is within ``db`` dB of the row's loudest frame.

    ``batch`` is ``(n, length)``; a row of silence is loud throughout, a row shorter than
    a frame is one span of its whole length.
    """
    batch = np.asarray(batch)
    n, length = batch.shape
    count = length // max(1, frame)
    if count == 0:
        return np.tile(np.array([0, length], dtype=np.int64), (n, 1))
    power = np.mean(np.square(batch[:, : count * frame].reshape(n, count, frame),
                              dtype=np.float64), axis=2) + 1e-12
    loud = power >= power.max(axis=1, keepdims=True) * 10.0 ** (-db / 10.0)
    first = np.argmax(loud, axis=1)
    last = count - np.argmax(loud[:, ::-1], axis=1)
    return np.stack([first, last], axis=1).astype(np.int64) * frame


def loudest_window(waveform: np.ndarray, length: int) -> int:
    """Start index of the ``length``-sample window with the most energy.

    Works on running sums of the energy in float64, in place, so it needs about two
    float64 copies of the waveform whatever its length. For a batch (2-D and more) the
    energy is summed over the leading axes: one window for all rows.
    """
    n = waveform.shape[-1]
    energy = np.empty(n + 1, dtype=np.float64)
    energy[0] = 0.0
    if waveform.ndim == 1:
        np.square(waveform, out=energy[1:], dtype=np.float64)
    else:
        energy[1:] = np.square(waveform.reshape(-1, n), dtype=np.float64).sum(axis=0)
    np.cumsum(energy, out=energy)
    return int(np.argmax(energy[length:] - energy[:-length]))


def write(path: str | os.PathLike, waveform: np.ndarray, rate: int) -> None:
    """Write a mono waveform as 16-bit PCM WAV, atomically (via :func:`kws.files.atomic_write`).

    Raises
    ------
    KwsError
        The file cannot be written (full disk, no permission, a place such as ``/proc``
        that holds no files); the message names ``path``. Nothing is left at ``path``.
    """
    import soundfile

    path = Path(path)
    clipped = np.clip(waveform, -1.0, 1.0)
    try:
        with files.atomic_write(path, suffix=".wav") as temporary:
            soundfile.write(os.fsencode(temporary), clipped, rate, subtype="PCM_16",
                            format="WAV")
    except soundfile.LibsndfileError as error:
        errno_after = getattr(getattr(soundfile, "_ffi", None), "errno", 0)
        problem = _describe_write_failure(error, errno_after, path, 44 + 2 * clipped.size)
        raise KwsError(f"{path}: cannot write audio ({problem})") from None
    except OSError as error:
        raise KwsError(f"{path}: cannot write audio ({_describe_os_error(error)})") from None


def _describe_write_failure(error: Exception, errno_after: int, path: Path,
                            needed: int) -> str:
    """The real cause of a failed libsndfile write, which itself only says "System error".

    A folder with less free space than the file needs is a full disk; otherwise the C
    ``errno`` left by the failed call (cffi keeps it) names the cause when there is one.
    """
    try:
        folder = os.statvfs(path.parent)
        if folder.f_bavail * folder.f_frsize < needed:
            return "no space left on device"
    except OSError:
        pass
    if errno_after == errno.ENOSPC:
        return "no space left on device"
    if errno_after:
        return os.strerror(errno_after).lower()
    return str(getattr(error, "error_string", "") or error).strip().rstrip(".")


def check_file(path: Path) -> int:
    """Raise AudioError for problems visible before decoding (a name holding a NUL byte,
    which no file has, a directory, a pipe, an empty file, a WAV cut short); return the
    size in bytes."""
    if "\0" in str(path):
        raise AudioError(path, "not a valid path (contains a NUL byte)")
    try:
        info = path.stat()
        size = info.st_size
        if stat.S_ISDIR(info.st_mode):
            raise AudioError(path, "is a directory, not an audio file")
        if not stat.S_ISREG(info.st_mode):
            raise AudioError(path, "not a regular file (a pipe, device or socket)")
        if size == 0:
            raise AudioError(path, "empty file (0 bytes)")
        with open(path, "rb") as handle:
            header = handle.read(12)
            if header[:4] == b"RIFF" and header[8:12] == b"WAVE":
                _check_wav_chunks(path, handle, size)
    except OSError as error:
        raise AudioError(path, _describe_os_error(error)) from None
    return size


def read_header(path: str | os.PathLike) -> tuple[Any, str | None]:
    """An audio file's header (soundfile's ``info``), without decoding a sample.

    Returns ``(info, None)``, or ``(None, problem)`` with the problem worded as
    :func:`read` words it (an empty or truncated file, not audio, an implausible header,
    no samples), so every command names an unreadable file the same way.
    """
    import soundfile

    path = Path(path)
    try:
        size = check_file(path)
        info = soundfile.info(os.fsencode(path))
        _check_header(path, info, size)
    except AudioError as error:
        return None, error.problem
    except soundfile.LibsndfileError as error:
        return None, describe_libsndfile_error(error)
    except (RuntimeError, OSError, ValueError, TypeError) as error:
        return None, f"corrupt or unreadable audio ({' '.join(str(error).split()) or error!r})"
    if info.frames <= 0:
        return None, ZERO_LENGTH
    return info, None


def _check_header(path: Path, handle, size: int) -> None:
    """Refuse a header no real recording has: an implausible rate, more frames than bytes."""
    rate = handle.samplerate
    if not MIN_RATE <= rate <= MAX_RATE:
        raise AudioError(path, f"implausible sample rate {rate} Hz in the header "
                               f"(kws reads {MIN_RATE} to {MAX_RATE} Hz)")
    if not 1 <= handle.channels <= MAX_CHANNELS:
        raise AudioError(path, f"implausible channel count {handle.channels} in the header")
    width = _SAMPLE_BYTES.get(handle.subtype) if handle.format in _UNCOMPRESSED else None
    if width is not None and handle.frames * handle.channels * width > size:
        raise AudioError(path, f"truncated: the header declares {handle.frames} frames "
                               f"but the file holds {size} bytes")


def _read_blocks(handle) -> np.ndarray:
    """All frames of an open SoundFile as ``(frames, channels)`` float32, block by block.

    Never trusts the header's frame count for an allocation: a compressed file whose
    header claims hours holds only what its decoder really produces.
    """
    blocks = []
    while True:
        block = handle.read(_BLOCK_FRAMES, dtype="float32", always_2d=True)
        if len(block):
            blocks.append(block)
        if len(block) < _BLOCK_FRAMES:
            break
    if not blocks:
        return np.zeros((0, handle.channels), dtype=np.float32)
    return blocks[0] if len(blocks) == 1 else np.concatenate(blocks)


def _check_samples(path: Path, data: np.ndarray) -> None:
    """Refuse NaN, infinite or absurdly large samples: no model or filter can use them."""
    peak = max(abs(float(np.max(data))), abs(float(np.min(data))))
    if not math.isfinite(peak):
        raise AudioError(path, f"samples out of range: {NOT_FINITE}")
    if peak > MAX_ABS_SAMPLE:
        raise AudioError(path, f"samples out of range: peak {peak:.3g} (audio samples lie "
                               "within ±1)")


def _describe_os_error(error: OSError) -> str:
    """A short phrase for an OSError met while reading a path."""
    if isinstance(error, FileNotFoundError):
        return "no such file"
    if isinstance(error, PermissionError):
        return "permission denied"
    if error.errno == errno.ELOOP:
        return "symbolic link loop (too many levels of symbolic links)"
    return (error.strerror or str(error)).strip()


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


def describe_libsndfile_error(error: Exception) -> str:
    """A short phrase, on one line, for libsndfile's refusal of a file."""
    message = " ".join(str(getattr(error, "error_string", "") or error).split()).rstrip(".")
    lowered = message.lower()
    if "format not recognised" in lowered or "unknown format" in lowered:
        return "not an audio file soundfile can read (format not recognised)"
    return f"corrupt or unreadable audio ({message})"
