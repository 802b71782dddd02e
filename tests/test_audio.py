"""The waveform pipeline: formats, channels, resampling, length rule and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
from conftest import tone, write_wav

from kws import audio
from kws.errors import AudioError


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
