"""The waveform pipeline: formats, channels, resampling, length rule and bad input."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile
from conftest import tone, write_wav

from kws import audio
from kws.errors import AudioError, KwsError


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT"])
def test_reads_wav_sample_formats(tmp_path, subtype):
    path = write_wav(tmp_path / "a.wav", tone(440, 0.5), 16000, subtype)
    waveform = audio.load(path)
    assert waveform.dtype == np.float32
    assert waveform.shape == (8000,)
    tolerance = 0.02 if subtype == "PCM_U8" else 1e-3
    np.testing.assert_allclose(waveform, tone(440, 0.5), atol=tolerance)


@pytest.mark.parametrize("suffix,fmt", [(".flac", "FLAC"), (".ogg", "OGG")])
def test_reads_flac_and_ogg(tmp_path, suffix, fmt):
    path = tmp_path / f"a{suffix}"
    soundfile.write(path, tone(440, 0.5), 16000, format=fmt)
    waveform = audio.load(path)
    assert abs(len(waveform) - 8000) < 100
    assert np.abs(waveform).max() > 0.3


def test_stereo_is_mixed_to_mono(tmp_path):
    left, right = tone(440, 0.25), np.zeros(4000, np.float32)
    path = write_wav(tmp_path / "s.wav", np.stack([left, right], axis=1), 16000, "FLOAT")
    np.testing.assert_allclose(audio.load(path), left / 2, atol=1e-6)


def test_resamples_to_requested_rate(tmp_path):
    path = write_wav(tmp_path / "a.wav", tone(300, 1.0, rate=16000), 16000, "FLOAT")
    waveform = audio.load(path, rate=8000)
    assert waveform.shape == (8000,)
    spectrum = np.abs(np.fft.rfft(waveform))
    assert np.argmax(spectrum) == pytest.approx(300, abs=2)
    upsampled = audio.load(write_wav(tmp_path / "b.wav", tone(300, 1.0, 8000), 8000), 16000)
    assert upsampled.shape == (16000,)


def test_fix_length_pads_at_end_and_crops_to_loudest_window():
    short = np.ones(10, np.float32)
    padded = audio.fix_length(short, 16)
    assert padded.shape == (16,) and padded[:10].all() and not padded[10:].any()
    long = np.zeros(100, np.float32)
    long[60:70] = 1.0
    cropped = audio.fix_length(long, 20)
    assert cropped.shape == (20,) and cropped.sum() == 10
    assert audio.fix_length(short, 10) is short


def test_write_is_atomic_and_readable(tmp_path):
    path = tmp_path / "out" / "a.wav"
    audio.write(path, tone(440, 0.1), 16000)
    assert soundfile.info(path).samplerate == 16000
    assert not list(path.parent.glob(".*tmp"))


def _bad_files(tmp_path):
    good = write_wav(tmp_path / "good.wav", tone(440, 0.5), 16000)
    data = good.read_bytes()
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(data[: len(data) // 2])
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(data[:12] + b"\x00" * 64)
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio at all, just some text in a file\n" * 10)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    zero = write_wav(tmp_path / "zero.wav", np.zeros(0, np.float32), 16000)
    nan = tmp_path / "nan.wav"
    soundfile.write(nan, np.array([0.0, np.nan, 0.5], np.float32), 16000, subtype="FLOAT")
    return {
        tmp_path / "missing.wav": "no such file",
        tmp_path: "is a directory",
        empty: "empty file",
        zero: "zero length",
        truncated: "truncated",
        corrupt: "corrupt",
        text: "not an audio file",
        nan: "NaN or infinite",
    }


def test_bad_input_raises_one_line_audio_error_naming_file(tmp_path):
    for path, problem in _bad_files(tmp_path).items():
        with pytest.raises(AudioError) as caught:
            audio.load(path)
        message = str(caught.value)
        assert str(path) in message, message
        assert problem in message, message
        assert "\n" not in message


def _wav_with_rate(path, rate: int, seconds_of_bytes: int = 32000):
    """A 16-bit WAV holding ``seconds_of_bytes`` bytes of samples whose header claims ``rate``."""
    samples = (tone(440, seconds_of_bytes / 2 / 16000) * 32767).astype("<i2").tobytes()
    header = b"RIFF" + (36 + len(samples)).to_bytes(4, "little") + b"WAVEfmt "
    header += (16).to_bytes(4, "little") + (1).to_bytes(2, "little") + (1).to_bytes(2, "little")
    header += rate.to_bytes(4, "little") + (2 * rate).to_bytes(4, "little")
    header += (2).to_bytes(2, "little") + (16).to_bytes(2, "little")
    path.write_bytes(header + b"data" + len(samples).to_bytes(4, "little") + samples)
    return path


@pytest.mark.parametrize("rate", [1, 999, 400_000])
def test_implausible_sample_rate_is_refused_before_any_work(tmp_path, rate):
    path = _wav_with_rate(tmp_path / "odd.wav", rate)
    with pytest.raises(AudioError, match="implausible sample rate") as caught:
        audio.load(path, 16000)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_plausible_low_rate_is_read_and_resampled(tmp_path):
    path = _wav_with_rate(tmp_path / "low.wav", 1000, seconds_of_bytes=2000)
    assert audio.load(path, 16000).shape == (16000,)


@pytest.mark.parametrize("value", [1e30, np.inf, -np.inf, 5e3])
def test_absurd_or_infinite_samples_are_out_of_range(tmp_path, value):
    waveform = tone(440, 0.1)
    waveform[100] = value
    path = write_wav(tmp_path / "loud.wav", waveform, 16000, "FLOAT")
    with pytest.raises(AudioError, match="samples out of range"):
        audio.load(path, 8000)


def test_finite_samples_beyond_the_float_range_are_not_called_infinite(tmp_path):
    waveform = tone(440, 0.1).astype(np.float64)
    waveform[100] = 1e300  # a float64 file: infinite once read as float32
    path = write_wav(tmp_path / "huge.wav", waveform, 16000, "DOUBLE")
    with pytest.raises(AudioError, match="beyond the float range"):
        audio.load(path)


def test_loud_but_plausible_float_samples_are_read(tmp_path):
    path = write_wav(tmp_path / "hot.wav", 3 * tone(440, 0.1), 16000, "FLOAT")
    assert np.abs(audio.load(path)).max() == pytest.approx(1.5, rel=1e-3)


def test_symlink_loop_is_one_line_audio_error(tmp_path):
    (tmp_path / "a.wav").symlink_to(tmp_path / "b.wav")
    (tmp_path / "b.wav").symlink_to(tmp_path / "a.wav")
    with pytest.raises(AudioError, match="symbolic link loop"):
        audio.load(tmp_path / "a.wav")


def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    with pytest.raises(AudioError, match="not a regular file"):
        audio.load(fifo)


def test_name_that_is_not_utf8_reads_fine(tmp_path):
    name = os.fsdecode(b"caf\xe9_\xff.wav")
    path = write_wav(tmp_path / "good.wav", tone(440, 0.1), 16000).rename(tmp_path / name)
    np.testing.assert_allclose(audio.load(path), tone(440, 0.1), atol=1e-3)


def test_a_name_with_a_nul_byte_is_one_error_naming_it(tmp_path):
    name = f"{write_wav(tmp_path / 'a.wav', tone(440, 0.1))}\0"
    with pytest.raises(AudioError) as caught:
        audio.load(name)
    assert str(caught.value) == f"{name}: not a valid path (contains a NUL byte)"


def test_headerless_raw_pcm_is_named_as_such(tmp_path):
    """soundfile takes a .raw file for headerless PCM and asks for a rate kws cannot know."""
    path = tmp_path / "speech.raw"
    path.write_bytes((tone(440, 0.1) * 32767).astype("<i2").tobytes())
    with pytest.raises(AudioError) as caught:
        audio.load(path)
    assert str(caught.value).startswith(f"{path}: no audio header (headerless raw PCM?); ")


def _refuse_listing(monkeypatch, locked) -> None:
    """Make ``os.scandir`` of ``locked`` fail as a folder without read permission does
    (tests run as root, for whom chmod 000 changes nothing)."""
    real_scandir = os.scandir

    def scandir(path="."):
        if os.fspath(path) == os.fspath(locked):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)


def test_find_audio_files_reports_an_unreadable_folder(tmp_path, monkeypatch):
    write_wav(tmp_path / "d" / "a.wav", tone(440, 0.1))
    write_wav(tmp_path / "d" / ".hidden.wav", tone(440, 0.1))
    assert audio.find_audio_files(tmp_path / "d") == [tmp_path / "d" / "a.wav"]
    locked = tmp_path / "locked"
    locked.mkdir()
    _refuse_listing(monkeypatch, locked)
    with pytest.raises(AudioError, match="permission denied") as caught:
        audio.find_audio_files(locked)
    assert str(locked) in str(caught.value)


def test_scan_audio_files_keeps_every_file_beside_an_unreadable_folder(tmp_path, monkeypatch):
    first = write_wav(tmp_path / "aa" / "first.wav", tone(440, 0.1))
    middle = write_wav(tmp_path / "mid.wav", tone(440, 0.1))
    last = write_wav(tmp_path / "zz" / "z.wav", tone(440, 0.1))
    _refuse_listing(monkeypatch, tmp_path / "mm")
    (tmp_path / "mm").mkdir()
    found = audio.scan_audio_files(tmp_path)
    assert found[:2] == [middle, first] and found[3:] == [last]
    assert isinstance(found[2], AudioError)
    assert str(found[2]) == f"{tmp_path / 'mm'}: permission denied"


def test_write_never_follows_a_planted_temporary_name(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "out.wav"
    for pid in range(os.getpid(), os.getpid() + 3):
        (tmp_path / f".out.wav.{pid}.tmp").symlink_to(victim)
    audio.write(out, tone(440, 0.1), 16000)
    assert victim.read_text() == "precious"
    assert out.is_file() and not out.is_symlink()
    assert soundfile.info(out).frames == 1600


def test_write_into_a_place_without_files_is_one_line(tmp_path):
    with pytest.raises(KwsError, match="cannot write audio") as caught:
        audio.write("/proc/x.wav", tone(440, 0.1), 16000)
    assert "/proc/x.wav" in str(caught.value)


def test_write_to_a_full_disk_says_so(tmp_path, monkeypatch):
    """libsndfile says only "System error"; the message names the full disk."""
    real_statvfs = os.statvfs

    def full(path):
        result = real_statvfs(path)
        return os.statvfs_result((result.f_bsize, result.f_frsize, result.f_blocks, 0, 0,
                                  *result[5:]))

    def failing_write(file, *args, **kwargs):
        with open(file, "wb") as handle:
            handle.write(b"RIFF")
        raise soundfile.LibsndfileError(2)

    monkeypatch.setattr(os, "statvfs", full)
    monkeypatch.setattr(soundfile, "write", failing_write)
    out = tmp_path / "out.wav"
    with pytest.raises(KwsError) as caught:
        audio.write(out, tone(440, 0.1), 16000)
    assert str(caught.value) == f"{out}: cannot write audio (no space left on device)"
    assert list(tmp_path.iterdir()) == []


def test_write_failure_is_one_line_naming_the_output_and_the_cause(tmp_path):
    code = (
        "import resource, signal\n"
        "import numpy as np\n"
        "from kws import audio\n"
        "from kws.errors import KwsError\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4000, 4000))\n"
        "try:\n"
        f"    audio.write({str(tmp_path / 'big.wav')!r}, np.zeros(16000, np.float32), 16000)\n"
        "except KwsError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{tmp_path / 'big.wav'}: cannot write audio (file too large)\n"
    assert list(tmp_path.iterdir()) == []


def test_loud_spans_cover_the_frames_near_the_loudest():
    batch = np.zeros((3, 1000), dtype=np.float32)
    batch[0, 200:400] = 0.5
    batch[0, 600:700] = 0.05  # 20 dB below: inside a 30 dB span, outside a 10 dB one
    batch[2, :] = 0.1
    np.testing.assert_array_equal(audio.loud_spans(batch, 100, 30.0),
                                  [[200, 700], [0, 1000], [0, 1000]])
    np.testing.assert_array_equal(audio.loud_spans(batch, 100, 10.0)[0], [200, 400])
    np.testing.assert_array_equal(audio.loud_spans(batch[:, :50], 100, 30.0)[0], [0, 50])
