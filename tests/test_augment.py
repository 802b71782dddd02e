"""Waveform augmentation: shapes, determinism, SNR, shift, gain, speed, band limit,
neighbouring words."""

from __future__ import annotations

import numpy as np
import pytest

from kws.augment import (
    NO_AUGMENTATION,
    Augmentation,
    add_neighbours,
    add_noise,
    augment_batch,
    band_limit,
    change_speed,
    mix_background,
    random_gain,
    speed_perturb,
    time_shift,
    word_extents,
)

LENGTH = 4000


def _batch(n: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(LENGTH) / 8000
    freqs = rng.uniform(200, 1000, size=(n, 1))
    return (0.2 * np.sin(2 * np.pi * freqs * t)).astype(np.float32)


def _backgrounds() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [
        rng.standard_normal(3 * LENGTH).astype(np.float32) * 0.1,
        rng.uniform(-0.5, 0.5, LENGTH // 2).astype(np.float32),
    ]


def _power(x: np.ndarray) -> np.ndarray:
    return np.mean(np.square(x, dtype=np.float64), axis=1)


@pytest.mark.parametrize(
    "apply",
    [
        lambda b, r: add_noise(b, 0.01, r),
        lambda b, r: mix_background(b, _backgrounds(), (0, 10), r),
        lambda b, r: time_shift(b, 400, r),
        lambda b, r: random_gain(b, 6, r),
        lambda b, r: speed_perturb(b, 0.1, r),
        lambda b, r: add_neighbours(_words(), 0.5, r),
        lambda b, r: augment_batch(b, _backgrounds(), Augmentation(noise_factor=0.001), r),
    ],
)
def test_shape_dtype_determinism_and_no_nan(apply):
    batch = _batch()
    original = batch.copy()
    first = apply(batch, np.random.default_rng(5))
    second = apply(batch, np.random.default_rng(5))
    other = apply(batch, np.random.default_rng(6))
    assert first.shape == batch.shape and first.dtype == np.float32
    assert np.isfinite(first).all()
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, other)
    np.testing.assert_array_equal(batch, original)


def test_add_noise_strength():
    batch = np.zeros((64, LENGTH), dtype=np.float32)
    noisy = add_noise(batch, 0.05, np.random.default_rng(0))
    assert noisy.std() == pytest.approx(0.05, rel=0.02)


@pytest.mark.parametrize("snr", [0.0, 10.0, 20.0])
def test_mix_background_reaches_requested_snr(snr):
    batch = _batch(32)
    mixed = mix_background(batch, _backgrounds(), (snr, snr), np.random.default_rng(1), 1.0)
    measured = 10 * np.log10(_power(batch) / _power(mixed - batch))
    np.testing.assert_allclose(measured, snr, atol=0.01)


def test_mix_background_probability_and_silence():
    batch = _batch(400)
    mixed = mix_background(batch, _backgrounds(), (5, 5), np.random.default_rng(2), 0.25)
    touched = np.any(mixed != batch, axis=1).mean()
    assert 0.15 < touched < 0.35
    silent = np.zeros((8, LENGTH), dtype=np.float32)
    quiet = mix_background(silent, _backgrounds(), (20, 20), np.random.default_rng(3), 1.0)
    assert 0 < quiet.std() < 0.05
    assert np.array_equal(mix_background(batch, [], (0, 10), np.random.default_rng(0)), batch)


def test_time_shift_moves_and_zero_fills():
    batch = np.tile(np.arange(1, LENGTH + 1, dtype=np.float32), (50, 1))
    shifted = time_shift(batch, 100, np.random.default_rng(0))
    assert shifted.shape == batch.shape
    for row in shifted:
        nonzero = np.flatnonzero(row)
        shift = int(row[nonzero[0]] - 1) * -1 + int(nonzero[0])
        assert abs(shift) <= 100
        np.testing.assert_array_equal(row[nonzero], np.arange(nonzero.size) + row[nonzero[0]])
    assert np.array_equal(time_shift(batch, 0, np.random.default_rng(0)), batch)


def test_random_gain_in_range():
    batch = _batch(200) * 0.1
    gained = random_gain(batch, (-6, 3), np.random.default_rng(0))
    ratio_db = 10 * np.log10(_power(gained) / _power(batch))
    assert ratio_db.min() >= -6 - 1e-3 and ratio_db.max() <= 3 + 1e-3
    assert ratio_db.max() - ratio_db.min() > 5
    assert np.abs(random_gain(_batch() * 5, 20, np.random.default_rng(0))).max() <= 1.0


def test_change_speed_changes_length_and_pitch():
    rate = 8000
    tone = np.sin(2 * np.pi * 500 * np.arange(rate) / rate).astype(np.float32)
    faster = change_speed(tone, 1.25)
    assert len(faster) == 6400 and faster.dtype == np.float32
    peak = np.abs(np.fft.rfft(faster[:4000])).argmax() * rate / 4000
    assert abs(peak - 625) <= 4
    assert len(change_speed(tone, 0.8)) == 10000
    assert np.array_equal(change_speed(tone, 1.0), tone)
    with pytest.raises(ValueError, match="rate must be positive"):
        change_speed(tone, 0.0)


def test_speed_perturb_changes_pitch():
    rate = 8000
    t = np.arange(LENGTH) / rate
    tone = np.tile(np.sin(2 * np.pi * 500 * t).astype(np.float32), (20, 1))
    out = speed_perturb(tone, 0.2, np.random.default_rng(0))
    peaks = np.abs(np.fft.rfft(out[:, 1000:3000], axis=1)).argmax(axis=1) * rate / 2000
    assert peaks.min() >= 400 - 8 and peaks.max() <= 600 + 8
    assert peaks.max() - peaks.min() > 20


def test_augment_batch_none_is_identity_and_settings_round_trip():
    batch = _batch()
    same = augment_batch(batch, _backgrounds(), NO_AUGMENTATION, np.random.default_rng(0))
    np.testing.assert_array_equal(same, batch)
    settings = Augmentation(snr_db=(3.0, 9.0), speed=0.05)
    assert Augmentation.from_dict(settings.to_dict()) == settings


def test_rejects_wrong_rank():
    with pytest.raises(ValueError, match="batch"):
        time_shift(np.zeros(10, dtype=np.float32), 1, np.random.default_rng(0))


def test_band_limit_removes_what_lies_above_the_cutoff_and_keeps_what_lies_below():
    t = np.arange(LENGTH) / 8000
    low, high = np.sin(2 * np.pi * 500 * t), np.sin(2 * np.pi * 3500 * t)
    batch = np.stack([0.2 * (low + high)] * 4).astype(np.float32)
    rng = np.random.default_rng(0)
    out = band_limit(batch, 1.0, (0.5, 0.5), rng)  # 2 kHz of the 4 kHz band
    for clip in out:
        assert abs(np.dot(clip, high)) / np.dot(high, high) < 1e-3
        assert np.dot(clip, low) / np.dot(low, low) == pytest.approx(0.2, rel=1e-3)
    untouched = band_limit(batch, 0.0, (0.5, 0.5), rng)
    np.testing.assert_array_equal(untouched, batch)
    assert untouched is not batch


def test_band_limit_draws_a_share_of_the_clips():
    batch = 0.1 * np.random.default_rng(2).standard_normal((400, LENGTH)).astype(np.float32)
    out = band_limit(batch, 0.3, (0.2, 0.3), np.random.default_rng(1))
    changed = np.any(np.abs(out - batch) > 1e-4, axis=1)
    assert 0.2 < changed.mean() < 0.4
    kept = np.abs(np.fft.rfft(out[changed], axis=1)) ** 2
    assert kept[:, int(0.35 * LENGTH / 2):].sum() < 1e-6 * kept.sum()


def _words(n: int = 16) -> np.ndarray:
    """Clips of one 'word' each: a tone burst of 0.15-0.25 of the clip at a random place."""
    rng = np.random.default_rng(3)
    batch = np.zeros((n, LENGTH), dtype=np.float32)
    t = np.arange(LENGTH) / 8000
    for row in batch:
        width = int(rng.uniform(0.15, 0.25) * LENGTH)
        start = int(rng.integers(int(0.3 * LENGTH), int(0.7 * LENGTH) - width))
        row[start:start + width] = 0.3 * np.sin(2 * np.pi * rng.uniform(200, 900) * t[:width])
    return batch


def test_word_extents_finds_the_loud_part():
    batch = np.zeros((3, LENGTH), dtype=np.float32)
    batch[0, 1000:2000] = 0.5
    batch[1] = 0.01 * np.random.default_rng(0).standard_normal(LENGTH)
    batch[1, 3000:3600] = 0.8
    extents = word_extents(batch)
    assert tuple(extents[0]) == (1000, 2000)
    assert tuple(extents[1]) == (3000, 3600)
    assert tuple(extents[2]) == (0, 0)


def test_add_neighbours_places_a_word_beside_and_leaves_the_word_itself():
    batch = _words(40)
    before = word_extents(batch)
    out = add_neighbours(batch, 1.0, np.random.default_rng(0))
    after = word_extents(out)
    for row, (start, end) in enumerate(before):
        np.testing.assert_array_equal(out[row, start:end], batch[row, start:end])
    # every clip gained sound outside its own word, on one side, a small gap away
    grew = (after[:, 0] < before[:, 0]) | (after[:, 1] > before[:, 1])
    assert grew.mean() > 0.9
    np.testing.assert_array_equal(add_neighbours(batch, 0.0, np.random.default_rng(0)), batch)


def test_add_neighbours_only_between_speech_clips():
    batch = _words(10)
    speech = np.arange(10) < 5
    out = add_neighbours(batch, 1.0, np.random.default_rng(0), speech)
    np.testing.assert_array_equal(out[5:], batch[5:])
    assert all(not np.array_equal(out[i], batch[i]) for i in range(5))
    # a neighbour never comes from a clip that is not speech: silence the speech, nothing moves
    quiet = batch.copy()
    quiet[:5] = 0.0
    np.testing.assert_array_equal(add_neighbours(quiet, 1.0, np.random.default_rng(0), speech),
                                  quiet)
