"""kws.features: the numpy log-mel road and its inverse, checked against librosa.

The module reimplements librosa's mel filterbank, centred STFT/ISTFT, mel inversion and
fast Griffin-Lim in numpy so that ``kws vae sample`` never imports librosa or scipy;
these tests hold it to librosa's results (librosa is imported here only, as the reference).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from kws import features

#: The default settings and one that changes every filterbank and framing parameter.
SETTINGS = [
    features.DEFAULT_SETTINGS,
    features.MelSettings(sample_rate=16000, n_fft=400, hop_length=160, n_mels=64,
                         fmin=50.0, fmax=7000.0),
]


def chirps_with_noise(rate: int = 16000, seconds: float = 1.0) -> np.ndarray:
    """Two realistic test clips ``(2, samples)``: a loud rising and a quiet falling chirp, each
    with a little white noise, under a Hann envelope (float32)."""
    rng = np.random.default_rng(0)
    t = np.arange(int(rate * seconds)) / rate
    envelope = np.hanning(len(t))
    rising = 0.3 * np.sin(2 * np.pi * (200 * t + 1900 * t**2 / seconds))
    falling = 0.05 * np.sin(2 * np.pi * (3000 * t - 1350 * t**2 / seconds))
    clips = np.stack([rising * envelope + 0.01 * rng.standard_normal(len(t)),
                      falling * envelope + 0.003 * rng.standard_normal(len(t))])
    return clips.astype(np.float32)


def librosa_mel_power(waveform: np.ndarray, settings: features.MelSettings) -> np.ndarray:
    """librosa's mel power spectrogram ``(..., frames, n_mels)``."""
    import librosa

    mel = librosa.feature.melspectrogram(
        y=waveform, sr=settings.sample_rate, n_fft=settings.n_fft,
        hop_length=settings.hop_length, n_mels=settings.n_mels, fmin=settings.fmin,
        fmax=settings.fmax, power=2.0)
    return np.swapaxes(mel, -1, -2)


@pytest.mark.parametrize("settings", SETTINGS)
def test_mel_filterbank_is_librosas(settings):
    import librosa

    expected = librosa.filters.mel(sr=settings.sample_rate, n_fft=settings.n_fft,
                                   n_mels=settings.n_mels, fmin=settings.fmin,
                                   fmax=settings.fmax)
    bank = features.mel_filterbank(settings)
    assert bank.shape == (settings.n_mels, 1 + settings.n_fft // 2) and bank.dtype == np.float32
    assert np.allclose(bank, expected, rtol=1e-6, atol=1e-9)
    assert not bank.flags.writeable, "the cached matrix is shared, so it must be read-only"


def test_slaney_mel_scale_is_linear_below_1_khz_and_invertible():
    hz = np.array([0.0, 200.0, 999.0, 1000.0, 4000.0, 8000.0])
    np.testing.assert_allclose(features.hz_to_mel([200.0, 1000.0]), [3.0, 15.0])
    np.testing.assert_allclose(features.mel_to_hz(features.hz_to_mel(hz)), hz, rtol=1e-12)


@pytest.mark.parametrize("settings", SETTINGS)
def test_log_mel_is_librosas_melspectrogram_in_decibels(settings):
    clips = np.concatenate([chirps_with_noise(), np.zeros((1, 16000), np.float32)])
    expected = features.power_to_db(librosa_mel_power(clips, settings), settings.floor_db)
    spectrogram = features.log_mel(clips, settings)
    assert spectrogram.shape == expected.shape == (3, features.num_frames(16000, settings),
                                                   settings.n_mels)
    assert spectrogram.dtype == np.float32
    np.testing.assert_allclose(spectrogram, expected, atol=1e-3)
    np.testing.assert_allclose(features.log_mel(clips[1], settings), spectrogram[1])


def test_stft_is_librosas_and_istft_inverts_it():
    import librosa

    settings = SETTINGS[1]
    clips = chirps_with_noise().astype(np.float64)
    spectrum = features.stft(clips, settings)
    expected = librosa.stft(clips, n_fft=settings.n_fft, hop_length=settings.hop_length,
                            pad_mode="constant")
    np.testing.assert_allclose(spectrum, np.swapaxes(expected, -1, -2), atol=1e-9)
    for length in (16000, 15950):
        rebuilt = features.istft(spectrum, settings, length)
        assert rebuilt.shape == (2, length)
        inner = slice(settings.n_fft, length - settings.n_fft)
        np.testing.assert_allclose(rebuilt[:, inner], clips[:, inner], atol=1e-9)
        np.testing.assert_allclose(rebuilt, clips[:, :length], atol=1e-6)
    padded = features.istft(spectrum, settings, 16400)
    np.testing.assert_allclose(padded, librosa.istft(
        np.swapaxes(spectrum, -1, -2), n_fft=settings.n_fft, hop_length=settings.hop_length,
        length=16400), atol=1e-9)
    np.testing.assert_allclose(padded[:, 16000:], 0.0, atol=1e-9)
    assert not padded[:, 16000 + settings.n_fft // 2 :].any(), "past the last frame is silence"


def test_mel_inversion_fits_the_mel_power_at_least_as_well_as_librosa():
    import librosa

    settings = features.DEFAULT_SETTINGS
    mel = librosa_mel_power(chirps_with_noise(), settings)
    bank = features.mel_filterbank(settings)
    reference = librosa.feature.inverse.mel_to_stft(
        np.swapaxes(mel, -1, -2), sr=settings.sample_rate, n_fft=settings.n_fft, power=2.0)
    magnitude = features.mel_to_magnitude(mel, settings)
    assert magnitude.shape == (2, 63, 257) and np.all(magnitude >= 0)

    def error(linear_magnitude: np.ndarray) -> float:
        return float(np.linalg.norm(linear_magnitude**2 @ bank.T - mel))

    assert error(magnitude) <= 1.1 * error(np.swapaxes(reference, -1, -2))
    assert error(magnitude) < error(features.mel_to_magnitude(mel, settings, iterations=0))
    np.testing.assert_allclose(features.mel_to_magnitude(mel[1], settings), magnitude[1],
                               rtol=1e-6, atol=1e-12)


def spectral_convergence(waveform: np.ndarray, magnitude: np.ndarray,
                         settings: features.MelSettings) -> float:
    """``|| |STFT(waveform)| - magnitude || / ||magnitude||``."""
    rebuilt = np.abs(features.stft(waveform, settings))
    return float(np.linalg.norm(rebuilt - magnitude) / np.linalg.norm(magnitude))


def test_griffin_lim_converges_as_librosas():
    import librosa

    settings = features.DEFAULT_SETTINGS
    clips = chirps_with_noise()
    magnitude = np.abs(features.stft(clips, settings))
    reference = librosa.griffinlim(
        np.swapaxes(magnitude, -1, -2).astype(np.float32), n_iter=16,
        hop_length=settings.hop_length, n_fft=settings.n_fft, length=16000, random_state=3)
    waveform = features.griffin_lim(magnitude, settings, length=16000, n_iter=16, seed=3)
    assert waveform.shape == (2, 16000) and np.isfinite(waveform).all()
    ours = spectral_convergence(waveform, magnitude, settings)
    theirs = spectral_convergence(reference, magnitude, settings)
    assert ours <= 1.1 * theirs
    assert ours < spectral_convergence(
        features.griffin_lim(magnitude, settings, 16000, n_iter=0, seed=3), magnitude, settings)
    np.testing.assert_array_equal(
        features.griffin_lim(magnitude, settings, 16000, n_iter=2, seed=5),
        features.griffin_lim(magnitude, settings, 16000, n_iter=2, seed=5))
    with pytest.raises(ValueError, match="frames"):
        features.griffin_lim(magnitude, settings, length=12000)


def test_inverse_log_mel_resynthesises_as_closely_as_librosas_road():
    import librosa

    settings = features.DEFAULT_SETTINGS
    spectrogram = features.log_mel(chirps_with_noise(), settings)
    waveform = features.inverse_log_mel(spectrogram, settings, length=16000, n_iter=32)
    assert waveform.shape == (2, 16000) and waveform.dtype == np.float32
    magnitude = librosa.feature.inverse.mel_to_stft(
        np.swapaxes(features.db_to_power(spectrogram), -1, -2).astype(np.float32),
        sr=settings.sample_rate, n_fft=settings.n_fft, power=2.0)
    reference = librosa.griffinlim(magnitude, n_iter=32, hop_length=settings.hop_length,
                                   n_fft=settings.n_fft, length=16000, random_state=0)
    loud = spectrogram > spectrogram.max(axis=(1, 2), keepdims=True) - 40.0

    def error(audio: np.ndarray) -> float:
        return float(np.mean(np.square(features.log_mel(audio, settings) - spectrogram)[loud]))

    assert error(waveform) <= 1.1 * error(reference)


def test_the_feature_road_imports_neither_librosa_nor_scipy(project_env):
    code = ("import sys\nimport numpy as np\nfrom kws import features\n"
            "x = features.log_mel(np.sin(np.arange(16000) / 5.0).astype('float32'))\n"
            "y = features.inverse_log_mel(x, length=16000, n_iter=2)\n"
            "print(y.shape, *sorted(m for m in ('librosa', 'scipy') if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=project_env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["(16000,)"]
