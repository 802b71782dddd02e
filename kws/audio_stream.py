"""Audio streams: live sources read chunk by chunk, mixed and resampled on the fly.

A source (:func:`open_source`) is standard input (``-``), a path or the default
microphone. It yields :class:`Chunk` objects: float32 mono samples at the rate asked for,
with their stream time, whatever the input's rate and channel count. Mixing takes the
mean of the channels and resampling uses soxr's streaming resampler with the quality of
:func:`kws.audio.resample`, so the samples (and anything computed from them) are the same
whatever the size of the pieces the input arrives in, and the same as reading the whole
file with :func:`kws.audio.load`.

* standard input and FIFOs: a WAV stream, recognised by its RIFF header (the data chunk
  size may be 0 or 0xFFFFFFFF, as ``arecord`` and ``sox`` write to pipes), or raw PCM
  described by :class:`RawFormat` (as ``ffmpeg -f s16le -`` writes it);
* a regular file: any format libsndfile reads, in blocks (raw PCM with a ``RawFormat``);
* the microphone: ``sounddevice`` (PortAudio), imported only when it is used.

A source also remembers when (monotonic wall time) each piece of input arrived
(:meth:`AudioSource.arrival`), so a consumer can measure its latency. Problems raise
:class:`~kws.errors.AudioError` (the stream ended mid-sample, a WAV header announces a
format kws does not read, no data came for ``stall_timeout`` seconds) or
:class:`~kws.errors.KwsError` (no microphone), with one-line messages.
"""

from __future__ import annotations

import abc
import bisect
import os
import queue
import select
import stat
import struct
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kws.audio import (
    MAX_ABS_SAMPLE,
    MAX_CHANNELS,
    MAX_RATE,
    MIN_RATE,
    NOT_FINITE,
    RESAMPLE_QUALITY,
    ZERO_LENGTH,
    check_file,
    describe_libsndfile_error,
    open_soundfile,
)
from kws.errors import AudioError, KwsError, MissingInputError, UsageError

#: The name of standard input on the command line.
STDIN = "-"
#: Seconds without data after which a pipe, FIFO or microphone counts as stalled.
DEFAULT_STALL_TIMEOUT = 10.0
#: Seconds of input per read: as fast as possible, and at the input's own pace.
FAST_BLOCK_S = 0.5
REALTIME_BLOCK_S = 0.01
#: What to suggest when the microphone cannot be used.
PIPE_ALTERNATIVE = ("or pipe audio into standard input: "
                    "arecord -f S16_LE -r 16000 -c 1 -t wav | kws listen -")
MIC_EXTRA = 'pip install "kws[mic]"'
#: What to suggest for raw PCM read without ``--raw``.
RAW_HINT = "for raw PCM give --raw with --rate, --channels and --sample-format"
#: Seconds of arrival history kept for :meth:`AudioSource.arrival`.
_ARRIVAL_HISTORY_S = 120.0
#: WAV format tags (fmt chunk) and their names, for messages.
_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE
_TAG_NAMES = {2: "Microsoft ADPCM", 6: "A-law", 7: "mu-law", 0x11: "IMA ADPCM",
              0x31: "GSM 6.10", 0x50: "MPEG", 0x55: "MP3"}


@dataclass(frozen=True)
class SampleFormat:
    """How one sample is stored: numpy dtype (``None`` for 24-bit), bytes, scale, offset."""

    name: str
    dtype: str | None
    width: int
    scale: float
    offset: float = 0.0

    def decode(self, data: bytes | memoryview) -> np.ndarray:
        """Samples of ``data`` (a whole number of samples) as float32 in [-1, 1]."""
        if self.dtype is None:
            raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3)
            wide = np.zeros((len(raw), 4), dtype=np.uint8)
            wide[:, 1:] = raw
            values = wide.view("<i4")[:, 0]
        else:
            values = np.frombuffer(data, dtype=self.dtype)
        with np.errstate(over="ignore", invalid="ignore"):
            # float64 beyond float32's range becomes infinite, refused by _check_samples.
            out = values.astype(np.float32)
        if self.offset:
            out -= np.float32(self.offset)
        if self.scale != 1.0:
            out *= np.float32(1.0 / self.scale)
        return out


#: Sample formats of raw PCM (``--sample-format``) and of WAV streams, by name.
SAMPLE_FORMATS = {f.name: f for f in (
    SampleFormat("u8", "u1", 1, 128.0, 128.0),
    SampleFormat("s8", "i1", 1, 128.0),
    SampleFormat("s16le", "<i2", 2, 32768.0),
    SampleFormat("s16be", ">i2", 2, 32768.0),
    SampleFormat("s24le", None, 3, 2.0 ** 31),
    SampleFormat("s32le", "<i4", 4, 2.0 ** 31),
    SampleFormat("s32be", ">i4", 4, 2.0 ** 31),
    SampleFormat("f32le", "<f4", 4, 1.0),
    SampleFormat("f32be", ">f4", 4, 1.0),
    SampleFormat("f64le", "<f8", 8, 1.0),
)}


@dataclass(frozen=True)
class RawFormat:
    """Raw PCM input: sample rate (Hz), channels and a :data:`SAMPLE_FORMATS` name."""

    rate: int = 16000
    channels: int = 1
    sample_format: str = "s16le"

    def check(self) -> None:
        """Raise UsageError for values no stream has."""
        problem = rate_and_channels_problem(self.rate, self.channels)
        if problem:
            raise UsageError(f"--rate/--channels: {problem}")
        if self.sample_format not in SAMPLE_FORMATS:
            raise UsageError(f"--sample-format must be one of {', '.join(SAMPLE_FORMATS)}, "
                             f"not {self.sample_format!r}")


@dataclass(frozen=True)
class SourceOptions:
    """How a source is read.

    ``raw``: the input is raw PCM of this format (standard input, FIFO or file), else WAV
    (pipes) or any libsndfile format (files). ``realtime``: deliver a path's audio at its
    own pace rather than as fast as possible. ``stall_timeout``: seconds without data
    from a pipe, FIFO or microphone before giving up (``None``: wait for ever).
    """

    raw: RawFormat | None = None
    realtime: bool = False
    stall_timeout: float | None = DEFAULT_STALL_TIMEOUT


@dataclass(frozen=True)
class Chunk:
    """Consecutive samples of a stream: float32 mono at the source's rate.

    ``start`` is the stream time (s) of the first sample: samples delivered before it,
    divided by the rate.
    """

    samples: np.ndarray
    start: float


def rate_and_channels_problem(rate: int, channels: int) -> str | None:
    """What is wrong with a sample rate (Hz) and channel count no stream has, or ``None``."""
    if not MIN_RATE <= rate <= MAX_RATE:
        return f"sample rate {rate} Hz is not one kws reads ({MIN_RATE} to {MAX_RATE} Hz)"
    if not 1 <= channels <= MAX_CHANNELS:
        return f"channel count {channels} is not one kws reads (1 to {MAX_CHANNELS})"
    return None


class AudioSource(abc.ABC):
    """Audio arriving piece by piece; iterate :meth:`chunks` for mono chunks at a rate.

    Subclasses open their input in :meth:`_open` (returning its rate and channel count)
    and yield ``(frames, channels)`` float32 blocks from :meth:`_blocks`. This class
    mixes, resamples, checks the samples, paces ``realtime`` reading and records arrival
    times. Use it as a context manager (or call :meth:`close`).
    """

    #: Whether ``realtime`` pacing applies (a microphone is real time already).
    paced = True

    def __init__(self, name: str, options: SourceOptions) -> None:
        self.name = name
        self.options = options
        self.input_rate = 0
        self.input_channels = 0
        self._arrival_ends: list[float] = []
        self._arrival_times: list[float] = []

    def chunks(self, rate: int) -> Iterator[Chunk]:
        """Mono float32 chunks at ``rate`` Hz until the input ends (then the resampler's tail)."""
        self.input_rate, self.input_channels = self._open(rate)
        problem = rate_and_channels_problem(self.input_rate, self.input_channels)
        if problem:
            raise AudioError(self.name, problem)
        resampler = _Resampler(self.input_rate, rate)
        received = delivered = 0
        began = time.monotonic()
        for block in self._blocks():
            mono = _check_samples(self.name, block, received / self.input_rate)
            received += len(mono)
            end = received / self.input_rate
            if self.options.realtime and self.paced:
                wait = began + end - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            self._arrived(end, time.monotonic())
            out = resampler.push(mono)
            if len(out):
                yield Chunk(out, delivered / rate)
                delivered += len(out)
        if not received:
            raise AudioError(self.name, ZERO_LENGTH)
        out = resampler.finish()
        if len(out):
            yield Chunk(out, delivered / rate)

    def arrival(self, time_s: float) -> float:
        """Monotonic wall time at which the input sample at stream time ``time_s`` arrived.

        Times after the input received so far give the last arrival; times older than the
        history kept (two minutes) give the oldest one kept.
        """
        if not self._arrival_ends:
            return time.monotonic()
        index = bisect.bisect_left(self._arrival_ends, time_s - 1e-9)
        return self._arrival_times[min(index, len(self._arrival_times) - 1)]

    def _arrived(self, end: float, when: float) -> None:
        self._arrival_ends.append(end)
        self._arrival_times.append(when)
        if len(self._arrival_ends) > 4096 and self._arrival_ends[0] < end - _ARRIVAL_HISTORY_S:
            keep = bisect.bisect_left(self._arrival_ends, end - _ARRIVAL_HISTORY_S)
            del self._arrival_ends[:keep], self._arrival_times[:keep]

    @abc.abstractmethod
    def _open(self, rate: int) -> tuple[int, int]:
        """Open the input (``rate``: the rate wanted, a hint); return its rate and channels."""

    @abc.abstractmethod
    def _blocks(self) -> Iterator[np.ndarray]:
        """``(frames, channels)`` float32 blocks of input until it ends."""

    def close(self) -> None:
        """Release the input (idempotent)."""
        return None

    def __enter__(self) -> AudioSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _Resampler:
    """Streaming soxr resampling of a mono signal (identity when the rates agree)."""

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self._stream = None
        if in_rate != out_rate:
            import soxr

            self._stream = soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32",
                                               quality=RESAMPLE_QUALITY)

    def push(self, samples: np.ndarray) -> np.ndarray:
        if self._stream is None:
            return samples
        return self._stream.resample_chunk(samples, last=False)

    def finish(self) -> np.ndarray:
        if self._stream is None:
            return np.zeros(0, dtype=np.float32)
        return self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)


def _check_samples(name: str, block: np.ndarray, at: float) -> np.ndarray:
    """The block mixed to mono; AudioError for NaN, infinite or absurd samples."""
    if len(block):
        peak = float(np.max(np.abs(block)))
        if not peak <= MAX_ABS_SAMPLE:
            what = f"peak {peak:.3g}" if np.isfinite(peak) else NOT_FINITE
            raise AudioError(name, f"samples out of range after {at:.2f} s ({what}; "
                                   "audio samples lie within ±1)")
    mono = block[:, 0] if block.shape[1] == 1 else block.mean(axis=1)
    return np.ascontiguousarray(mono, dtype=np.float32)


class ByteStreamSource(AudioSource):
    """A WAV stream or raw PCM read from a file descriptor (standard input, FIFO, file).

    Without ``options.raw`` the stream must start with a RIFF (or RF64) WAV header;
    the samples of its data chunk are read until the chunk's size or, for the sizes
    streams announce (0, 0xFFFFFFFF), until the end of input. ``stalls``: whether a read
    may wait (pipes, FIFOs), and so whether ``stall_timeout`` applies.
    """

    def __init__(self, name: str, fd: int, options: SourceOptions, stalls: bool = True,
                 owns_fd: bool = False) -> None:
        super().__init__(name, options)
        self._fd = fd
        self._stalls = stalls
        self._owns_fd = owns_fd
        self._format = SAMPLE_FORMATS["s16le"]
        self._remaining: int | None = None
        self._pending = b""

    def _open(self, rate: int) -> tuple[int, int]:
        raw = self.options.raw
        if raw is not None:
            self._format = SAMPLE_FORMATS[raw.sample_format]
            return raw.rate, raw.channels
        header = _WavHeader.read(self.name, self._read_exact)
        self._format = header.sample_format
        self._remaining = header.data_bytes
        return header.rate, header.channels

    def _blocks(self) -> Iterator[np.ndarray]:
        channels = self.input_channels
        frame = self._format.width * channels
        block_s = REALTIME_BLOCK_S if self.options.realtime else FAST_BLOCK_S
        size = max(frame, int(self.input_rate * block_s) * frame)
        while self._remaining is None or self._remaining > 0:
            wanted = size if self._remaining is None else min(size, self._remaining)
            data = self._read(wanted)
            if not data:
                break
            if self._remaining is not None:
                self._remaining -= len(data)
            data = self._pending + data if self._pending else data
            whole = len(data) - len(data) % frame
            self._pending = data[whole:]
            if whole:
                yield self._format.decode(memoryview(data)[:whole]).reshape(-1, channels)
        if self._pending:
            raise AudioError(self.name, f"the stream ended in the middle of a sample "
                                        f"({len(self._pending)} byte(s) of a {frame}-byte "
                                        "frame left over)")

    def _read(self, size: int) -> bytes:
        """Up to ``size`` bytes (``b""`` at the end); AudioError after a stall."""
        if self._stalls:
            # Also waits for a FIFO's first writer (a read before it would be an end).
            timeout = self.options.stall_timeout
            ready, _, _ = select.select([self._fd], [], [], timeout)
            if not ready:
                raise AudioError(self.name, f"no data for {timeout:g} s: the source stalled "
                                            "(--stall-timeout sets how long to wait)")
        try:
            return os.read(self._fd, size)
        except OSError as error:
            raise AudioError(self.name, f"cannot read ({error.strerror or error})") from None

    def _read_exact(self, size: int) -> bytes:
        """Exactly ``size`` bytes, or fewer when the input ends first."""
        parts: list[bytes] = []
        missing = size
        while missing:
            data = self._read(missing)
            if not data:
                break
            parts.append(data)
            missing -= len(data)
        return b"".join(parts)

    def close(self) -> None:
        if self._owns_fd and self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


@dataclass(frozen=True)
class _WavHeader:
    """What a WAV stream's header says about its samples."""

    sample_format: SampleFormat
    rate: int
    channels: int
    #: Bytes in the data chunk, ``None`` for a stream of unknown length.
    data_bytes: int | None

    @classmethod
    def read(cls, name: str, read_exact) -> _WavHeader:
        """Parse the header up to the start of the samples; AudioError when it is not WAV."""
        riff = read_exact(12)
        if len(riff) < 4 or riff[:4] not in (b"RIFF", b"RF64"):
            if riff[:4] == b"RIFX":
                raise AudioError(name, "unsupported WAV format: big-endian (RIFX)")
            raise AudioError(name, f"not a WAV stream (no RIFF header); {RAW_HINT}")
        if len(riff) < 12 or riff[8:12] != b"WAVE":
            raise AudioError(name, "not a WAV stream (RIFF but not WAVE)")
        fmt = None
        while True:
            head = read_exact(8)
            if len(head) < 8:
                raise AudioError(name, "the stream ended inside its WAV header")
            chunk_id, size = struct.unpack("<4sI", head)
            if chunk_id == b"data":
                if fmt is None:
                    raise AudioError(name, "corrupt WAV header: data before the fmt chunk")
                return cls(*fmt, None if size in (0, 0xFFFFFFFF) else size)
            if size == 0xFFFFFFFF or (chunk_id == b"fmt " and not 16 <= size <= 1024):
                raise AudioError(name, f"corrupt WAV header: {chunk_id!r} chunk of "
                                       f"{size} bytes")
            if chunk_id == b"fmt ":
                body = read_exact(size + (size & 1))
                if len(body) < size:
                    raise AudioError(name, "the stream ended inside its WAV header")
                fmt = _parse_fmt(name, body[:size])
            else:
                _skip(name, read_exact, size + (size & 1))


def _skip(name: str, read_exact, size: int) -> None:
    """Read and drop ``size`` bytes of a chunk kws does not use, a block at a time."""
    while size > 0:
        got = len(read_exact(min(size, 1 << 16)))
        if not got:
            raise AudioError(name, "the stream ended inside its WAV header")
        size -= got


def _parse_fmt(name: str, body: bytes) -> tuple[SampleFormat, int, int]:
    """Sample format, rate and channels of a fmt chunk; AudioError for unsupported ones."""
    tag, channels, rate, _, block_align, bits = struct.unpack("<HHIIHH", body[:16])
    if tag == _EXTENSIBLE and len(body) >= 26:
        tag = struct.unpack("<H", body[24:26])[0]
    problem = rate_and_channels_problem(rate, channels)
    if problem:
        raise AudioError(name, f"implausible WAV header: {problem}")
    formats = {(_PCM, 8): "u8", (_PCM, 16): "s16le", (_PCM, 24): "s24le",
               (_PCM, 32): "s32le", (_FLOAT, 32): "f32le", (_FLOAT, 64): "f64le"}
    chosen = formats.get((tag, bits))
    if chosen is None or block_align != channels * bits // 8:
        kind = {_PCM: "PCM", _FLOAT: "float"}.get(tag) or _TAG_NAMES.get(tag) \
            or f"format tag 0x{tag:04x}"
        raise AudioError(name, f"unsupported WAV format: {kind}, {bits} bits per sample, "
                               f"block align {block_align} (kws reads 8/16/24/32-bit PCM "
                               "and 32/64-bit float)")
    return SAMPLE_FORMATS[chosen], rate, channels


class FileSource(AudioSource):
    """A regular audio file in any format libsndfile reads, decoded block by block."""

    def __init__(self, path: Path, options: SourceOptions) -> None:
        super().__init__(str(path), options)
        self._path = path
        self._handle = None

    def _open(self, rate: int) -> tuple[int, int]:
        check_file(self._path)
        self._handle = open_soundfile(self._path, raw_hint=RAW_HINT)
        return int(self._handle.samplerate), int(self._handle.channels)

    def _blocks(self) -> Iterator[np.ndarray]:
        import soundfile

        block_s = REALTIME_BLOCK_S if self.options.realtime else FAST_BLOCK_S
        frames = max(1, int(self.input_rate * block_s))
        while True:
            try:
                block = self._handle.read(frames, dtype="float32", always_2d=True)
            except soundfile.LibsndfileError as error:
                raise AudioError(self.name, describe_libsndfile_error(error)) from None
            except (RuntimeError, ValueError) as error:
                raise AudioError(self.name, f"corrupt audio ({error})") from None
            if not len(block):
                return
            yield block

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


class MicrophoneSource(AudioSource):
    """The default input device through ``sounddevice`` (PortAudio), imported lazily.

    The device is asked for the model's rate in mono; when it refuses, its own default
    rate (and, failing that, its channel count) is used and converted here. PortAudio's
    callback thread queues each block with its arrival time.
    """

    paced = False

    def __init__(self, options: SourceOptions) -> None:
        super().__init__("microphone", options)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._stream = None
        #: Blocks PortAudio reported as overflowed (audio lost because kws fell behind).
        self.overflows = 0

    def _open(self, rate: int) -> tuple[int, int]:
        sounddevice = import_sounddevice()
        try:
            device = sounddevice.query_devices(kind="input")
        except (sounddevice.PortAudioError, ValueError) as error:
            raise KwsError(f"no audio input device ({_one_line(error)}): connect one "
                           f"(the microphone needs {MIC_EXTRA}), {PIPE_ALTERNATIVE}") from None
        default_rate = int(device.get("default_samplerate") or rate)
        channels = max(1, int(device.get("max_input_channels") or 1))
        problem: Exception | None = None
        for wanted_rate, wanted_channels in dict.fromkeys(
                [(rate, 1), (default_rate, 1), (default_rate, channels)]):
            try:
                self._stream = sounddevice.InputStream(
                    samplerate=wanted_rate, channels=wanted_channels, dtype="float32",
                    blocksize=max(1, int(wanted_rate * REALTIME_BLOCK_S * 2)),
                    callback=self._callback)
            except (sounddevice.PortAudioError, ValueError) as error:
                problem = error
                continue
            self._stream.start()
            return wanted_rate, wanted_channels
        raise KwsError(f"cannot open the audio input device {device.get('name', '')!r} "
                       f"({_one_line(problem)}); {PIPE_ALTERNATIVE}")

    def _callback(self, indata, frames, time_info, status) -> None:
        if status and getattr(status, "input_overflow", False):
            self.overflows += 1
        self._queue.put(np.array(indata, dtype=np.float32, copy=True))

    def _blocks(self) -> Iterator[np.ndarray]:
        timeout = self.options.stall_timeout
        waited_since = time.monotonic()
        while True:
            try:
                block = self._queue.get(timeout=0.25)
            except queue.Empty:
                if timeout is not None and time.monotonic() - waited_since > timeout:
                    raise AudioError(self.name, f"no audio for {timeout:g} s: the input "
                                                "device stalled (--stall-timeout sets how "
                                                "long to wait)") from None
                continue
            waited_since = time.monotonic()
            yield block.reshape(len(block), -1)

    def close(self) -> None:
        if self._stream is not None:
            stream, self._stream = self._stream, None
            try:
                stream.stop()
                stream.close()
            except Exception:  # noqa: BLE001 - closing a dying device must not mask the cause
                pass


def import_sounddevice():
    """The ``sounddevice`` module; KwsError naming the extra when it or PortAudio is missing."""
    try:
        import sounddevice
    except ImportError:
        raise KwsError(f"the microphone needs the sounddevice package: {MIC_EXTRA}, "
                       f"{PIPE_ALTERNATIVE}") from None
    except OSError as error:
        raise KwsError(f"the microphone needs the PortAudio library ({_one_line(error)}): "
                       f"install it (Debian, Ubuntu: apt install libportaudio2) and "
                       f"{MIC_EXTRA}, {PIPE_ALTERNATIVE}") from None
    return sounddevice


def _one_line(error: BaseException | None) -> str:
    return " ".join(str(error).split()).rstrip(".") or type(error).__name__


def check_source(spec: str | None, options: SourceOptions) -> None:
    """Raise UsageError for a source and options that cannot work, before anything loads.

    ``spec``: ``None`` (microphone), ``-`` (standard input) or a path.
    """
    if options.raw is not None:
        options.raw.check()
    if options.stall_timeout is not None and not options.stall_timeout > 0:
        raise UsageError("--stall-timeout must be a positive number of seconds")
    if spec is None:
        if options.raw is not None:
            raise UsageError("--raw describes standard input or a file, not the microphone")
        if options.realtime:
            raise UsageError("--realtime paces a file; the microphone is real time already")
        return
    if not spec:
        raise MissingInputError("an empty path names no file (give a file, a FIFO or -)")
    if spec == STDIN:
        if sys.stdin is None or sys.stdin.isatty():
            raise UsageError("standard input is a terminal: pipe audio into it (e.g. "
                             "arecord -f S16_LE -r 16000 -c 1 -t wav | kws listen -)")
        return
    try:
        mode = os.stat(spec).st_mode
    except FileNotFoundError:
        raise MissingInputError(f"{spec}: no such file") from None
    except OSError as error:
        raise MissingInputError(f"{spec}: {error.strerror or error}") from None
    if stat.S_ISDIR(mode):
        raise MissingInputError(f"{spec}: is a directory, not an audio file or FIFO")


def open_source(spec: str | None, options: SourceOptions) -> AudioSource:
    """The source ``spec`` names: ``None`` the microphone, ``-`` standard input, or a path.

    Nothing is read yet: the microphone and a path's header are opened by the first call
    of :meth:`AudioSource.chunks`. A FIFO is opened without waiting for its writer (the
    wait for data counts towards the stall timeout).
    """
    check_source(spec, options)
    if spec is None:
        return MicrophoneSource(options)
    if spec == STDIN:
        fd = sys.stdin.fileno()
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
        return ByteStreamSource("stdin", fd, options, stalls=not regular)
    if stat.S_ISREG(os.stat(spec).st_mode):
        if options.raw is None:
            return FileSource(Path(spec), options)
        fd = _open_fd(spec, 0)
        return ByteStreamSource(spec, fd, options, stalls=False, owns_fd=True)
    fd = _open_fd(spec, os.O_NONBLOCK)
    os.set_blocking(fd, True)
    return ByteStreamSource(spec, fd, options, stalls=True, owns_fd=True)


def _open_fd(path: str, flags: int) -> int:
    try:
        return os.open(path, os.O_RDONLY | flags)
    except OSError as error:
        raise AudioError(path, f"cannot open ({error.strerror or error})") from None
