"""Balanced batches: label and speaker weights, the --words unknown share, smoothed loss."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import write_wav

from kws.classifier import ClassifierConfig, ClassifierTask
from kws.classifier.sampling import batch_shares, sampling_weights
from kws.dataset import SILENCE, TRAINING, UNKNOWN, VALIDATION
from kws.train.batches import WaveformBatches
from kws.train.events import TrainEvents

LABELS = [SILENCE, UNKNOWN, "no", "yes"]


def clips_of(counts: dict[str, int]) -> tuple[np.ndarray, list[str | None]]:
    """Label indices and one speaker per clip (``<label>-<n>``), ``counts`` per label."""
    y = np.concatenate([np.full(count, LABELS.index(label)) for label, count in counts.items()])
    speakers = [f"{label}-{n}" for label, count in counts.items() for n in range(count)]
    return y, speakers


def test_labels_balance_gives_every_word_the_same_share_and_unknown_its_percent():
    y, speakers = clips_of({SILENCE: 10, UNKNOWN: 500, "no": 20, "yes": 80})
    weights = sampling_weights(LABELS, y, speakers, "labels", unknown_percent=10,
                               silence_percent=20)
    shares = batch_shares(LABELS, weights, y)
    total = 1 + 0.1 + 0.2
    assert shares["yes"] == pytest.approx(0.5 / total, abs=1e-4)
    assert shares["no"] == pytest.approx(0.5 / total, abs=1e-4)
    assert shares[UNKNOWN] == pytest.approx(0.1 / total, abs=1e-4)
    assert shares[SILENCE] == pytest.approx(0.2 / total, abs=1e-4)
    assert weights.sum() == pytest.approx(1.0)
    # Within a label every clip is equally likely.
    assert len(set(np.round(weights[y == LABELS.index("yes")], 12))) == 1


def test_none_balance_keeps_the_words_in_proportion_to_their_clips():
    y, speakers = clips_of({UNKNOWN: 5, "no": 20, "yes": 80})
    shares = batch_shares(LABELS, sampling_weights(LABELS, y, speakers, "none", 10, 10), y)
    assert shares["yes"] / shares["no"] == pytest.approx(4.0, rel=1e-3)
    assert shares[UNKNOWN] / (shares["yes"] + shares["no"]) == pytest.approx(0.1, rel=1e-3)


def test_speakers_balance_weighs_a_speaker_of_many_takes_as_one_speaker():
    # "yes": 50 takes of one speaker (like fsdd_commands) and 10 speakers saying it once.
    y = np.full(60, LABELS.index("yes"))
    speakers = ["fsdd"] * 50 + [f"speaker{n}" for n in range(10)]
    weights = sampling_weights(LABELS, y, speakers, "speakers", 10, 10)
    assert weights[:50].sum() == pytest.approx(1 / 11)
    assert weights[50] == pytest.approx(1 / 11)
    # Clips without a speaker count as their own speakers.
    y = np.full(3, LABELS.index("yes"))
    weights = sampling_weights(LABELS, y, [None, None, "a"], "speakers", 10, 10)
    assert np.allclose(weights, 1 / 3)


def test_bad_weights_and_balance_are_refused():
    y, speakers = clips_of({"yes": 2})
    with pytest.raises(ValueError, match="balance"):
        sampling_weights(LABELS, y, speakers, "sideways", 10, 10)
    with pytest.raises(ValueError, match="finite non-negative"):
        WaveformBatches(np.zeros((2, 4)), y, 1, [], None, 0, weights=np.array([1.0, -1.0]))


def test_weighted_batches_draw_the_shares_and_stay_pure_functions_of_their_step():
    y, speakers = clips_of({UNKNOWN: 400, "no": 20, "yes": 80})
    weights = sampling_weights(LABELS, y, speakers, "labels", 10, 10)
    x = np.arange(len(y), dtype=np.float32)[:, None].repeat(4, axis=1)
    batches = WaveformBatches(x, y, 50, [], None, seed=3, weights=weights)
    drawn = np.concatenate([batches.batch(epoch, i)[1] for epoch in range(4)
                            for i in range(batches.steps)])
    share = np.bincount(drawn, minlength=len(LABELS)) / len(drawn)
    assert share[LABELS.index(UNKNOWN)] == pytest.approx(0.1 / 1.1, abs=0.03)
    assert share[LABELS.index("no")] == pytest.approx(0.5 / 1.1, abs=0.05)
    again = WaveformBatches(x, y, 50, [], None, seed=3, weights=weights)
    assert np.array_equal(batches.batch(2, 1)[0], again.batch(2, 1)[0])


def make_words(root, words: dict[str, int], speakers: int = 6) -> None:
    """``count`` clips per speaker of each word, 6 speakers, plus background noise."""
    rng = np.random.default_rng(0)
    for word, count in words.items():
        for speaker in range(speakers):
            for n in range(count):
                wave = 0.1 * rng.standard_normal(1600).astype(np.float32)
                write_wav(root / word / f"s{speaker:03d}ab_nohash_{n}.wav", wave, 1600)
    write_wav(root / "_background_noise_" / "noise.wav",
              (0.1 * rng.standard_normal(8000)).astype(np.float32), 1600)


def test_words_keep_every_unknown_training_clip_and_batches_take_the_unknown_percent(tmp_path):
    words = {"yes": 2, "no": 2, "cat": 3, "dog": 3, "bird": 3, "tree": 3}
    make_words(tmp_path / "data", words, speakers=20)
    config = ClassifierConfig(data=(str(tmp_path / "data"),), words=("yes", "no"), arch="seed",
                              rate=1600, unknown_percent=10, silence_percent=10,
                              validation_percent=20, testing_percent=20,
                              out=str(tmp_path / "model"), export=False)
    task = ClassifierTask()
    data = task.prepare(task.resolve(config), TrainEvents())
    y, labels = data.y[TRAINING], data.labels
    unknown = int(np.sum(y == labels.index(UNKNOWN)))
    known = int(np.sum((y == labels.index("yes")) | (y == labels.index("no"))))
    assert unknown == 3 * known  # all 12 other-word takes per speaker kept, not 10%
    # Validation keeps TensorFlow's convention: unknown clips sampled at 10% of the words.
    validation = data.y[VALIDATION]
    known_validation = int(np.sum(validation >= labels.index("no")))
    assert int(np.sum(validation == labels.index(UNKNOWN))) == int(
        np.ceil(known_validation * 0.1))
    shares = data.summary["sampling"]["batch_shares"]
    assert shares[UNKNOWN] == pytest.approx(0.1 / 1.2, abs=1e-3)
    batches = task.batches(config, data)
    drawn = np.concatenate([batches.batch(epoch, i)[1] for epoch in range(20)
                            for i in range(batches.steps)])
    assert np.mean(drawn == labels.index(UNKNOWN)) == pytest.approx(0.1 / 1.2, abs=0.04)


def test_smoothed_loss_is_categorical_crossentropy_with_label_smoothing():
    from kws.models.losses import SmoothedSparseCrossentropy
    from kws.runtime import import_keras

    keras = import_keras()
    probabilities = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], dtype=np.float32)
    labels = np.array([0, 1])
    expected = keras.losses.CategoricalCrossentropy(label_smoothing=0.1)(
        np.eye(3)[labels], probabilities)
    got = SmoothedSparseCrossentropy(0.1)(labels, probabilities)
    assert float(got) == pytest.approx(float(expected), rel=1e-5)
    plain = keras.losses.SparseCategoricalCrossentropy()(labels, probabilities)
    assert float(SmoothedSparseCrossentropy(0.0)(labels, probabilities)) == pytest.approx(
        float(plain), rel=1e-5)
    restored = SmoothedSparseCrossentropy.from_config(SmoothedSparseCrossentropy(0.2).get_config())
    assert restored.smoothing == 0.2


def test_classifier_batches_place_neighbouring_words_only_among_speech_clips(tmp_path):
    rng = np.random.default_rng(0)
    for word in ("yes", "no"):
        for speaker in range(10):
            wave = np.zeros(1600, dtype=np.float32)
            wave[600:1000] = 0.3 * rng.standard_normal(400)  # a word in the middle
            write_wav(tmp_path / "data" / word / f"s{speaker:03d}ab_nohash_0.wav", wave, 1600)
    write_wav(tmp_path / "data" / "_background_noise_" / "noise.wav",
              (0.01 * rng.standard_normal(8000)).astype(np.float32), 1600)
    config = ClassifierConfig(data=(str(tmp_path / "data"),), arch="tcres", rate=1600,
                              silence_percent=50, validation_percent=20, testing_percent=20,
                              out=str(tmp_path / "model"), export=False, lowpass=0,
                              augmentation={"neighbours": 1.0, "background_probability": 0.0,
                                            "shift": 0.0, "gain_db": (0, 0)})
    task = ClassifierTask()
    config = task.resolve(config)
    data = task.prepare(config, TrainEvents())
    batches = task.batches(config, data)
    rows = batches.rows(0, 0)
    waveforms = batches.waveforms(0, 0)
    silence = data.y[TRAINING][rows] == data.labels.index(SILENCE)
    original = data.x[TRAINING][rows]
    assert silence.any() and (~silence).any()
    np.testing.assert_array_equal(waveforms[silence], original[silence])
    assert not np.array_equal(waveforms[~silence], original[~silence])
