"""The classifier's recipe: each architecture's optimizer defaults and the seed model learning."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import write_wav

from kws.classifier import ClassifierConfig, ClassifierTask
from kws.classifier import train as train_classifier
from kws.errors import UsageError
from kws.train import check_run


def resolved(data, **options) -> ClassifierConfig:
    config = ClassifierConfig(data=(str(data),), out=str(data.parent / "m"), **options)
    return check_run(ClassifierTask(), config).config


@pytest.mark.parametrize(("arch", "rate", "learning_rate", "optimizer", "epochs", "augment"),
                         [("tcres", 16000, 3e-3, "adamw", 80, True),
                          ("seed", 8000, 1e-3, "adam", 30, False)])
def test_each_architecture_gets_its_own_recipe(tiny_data, arch, rate, learning_rate,
                                               optimizer, epochs, augment):
    config = resolved(tiny_data, arch=arch)
    assert (config.rate, config.learning_rate, config.optimizer, config.epochs,
            config.augment) == (rate, learning_rate, optimizer, epochs, augment)
    given = resolved(tiny_data, arch=arch, learning_rate=5e-4, optimizer="adamw", epochs=3,
                     augment=not augment)
    assert (given.learning_rate, given.optimizer, given.epochs, given.augment) == (
        5e-4, "adamw", 3, not augment)
    assert config.patience is None, "runs every epoch unless --patience is given"
    assert resolved(tiny_data, arch=arch, patience=5).patience == 5


def test_tcres_low_passes_a_third_of_clips_unless_told_otherwise(tiny_data):
    assert resolved(tiny_data).augmentation_settings().lowpass_probability == 0.3
    assert resolved(tiny_data, lowpass=0).augmentation_settings().lowpass_probability == 0
    assert resolved(tiny_data, lowpass=1).augmentation_settings().lowpass_probability == 1
    named = resolved(tiny_data, augmentation={"lowpass_probability": 0.1, "speed": 0.1})
    settings = named.augmentation_settings()
    assert (settings.lowpass_probability, settings.speed) == (0.1, 0.1)
    assert resolved(tiny_data, arch="seed").augmentation_settings().lowpass_probability == 0


@pytest.mark.parametrize(("options", "message"), [
    ({"lowpass": 1.5}, "--lowpass"),
    ({"lowpass": -0.1}, "--lowpass"),
    ({"label_smoothing": 1.0}, "--label-smoothing"),
    ({"label_smoothing": -0.1}, "--label-smoothing"),
    ({"balance": "words"}, "--balance"),
    ({"optimizer": "sgd"}, "--optimizer"),
    ({"learning_rate": 0.0}, "--learning-rate"),
])
def test_bad_recipe_options_are_usage_errors(tiny_data, options, message):
    with pytest.raises(UsageError, match=message):
        resolved(tiny_data, **options)


def quiet_words(root, rate: int = 2000):
    """Three words as quiet tones (speech-like levels, peak 0.03), six speakers."""
    rng = np.random.default_rng(1)
    for word, frequency in (("yes", 220.0), ("no", 440.0), ("up", 660.0)):
        for speaker in range(6):
            for take in range(3):
                t = np.arange(rate) / rate
                wave = 0.03 * np.sin(2 * np.pi * frequency * (1 + 0.03 * speaker) * t)
                wave += 0.002 * rng.standard_normal(rate)
                write_wav(root / word / f"spk{speaker}_nohash_{take}.wav",
                          wave.astype(np.float32), rate)
    return root


def test_the_seed_model_learns_below_the_prior(tmp_path):
    """Under its recipe (Adam at 1e-3) the blog's model's loss leaves the uniform prior."""
    data = quiet_words(tmp_path / "data")
    config = ClassifierConfig(data=(str(data),), arch="seed", rate=2000, batch_size=6,
                              epochs=8, validation_percent=0, testing_percent=0,
                              augment=False, workers=1, export=False,
                              out=str(tmp_path / "seed"))
    result = train_classifier(config)  # no validation: the last epoch is kept
    prior = math.log(len(result.card.labels))
    assert result.history["loss"][-1] < 0.8 * prior
    assert result.history["accuracy"][-1] >= 0.5  # chance: 1/3


def test_the_seed_models_moving_statistics_settle_at_once():
    """Its batch norms start from zero moving variance and follow batches at momentum 0.9.

    With Keras's defaults the moving variance stayed far above the tiny variance of its
    dense activations for over a thousand steps, and the saved model answered one class.
    """
    from kws.models.classifier import build_seed

    model = build_seed(3, 2000, 2000)
    norms = [layer for layer in model.layers if layer.name.endswith("_bn")]
    assert len(norms) == 2
    for layer in norms:
        assert layer.momentum == pytest.approx(0.9)
        assert np.all(np.asarray(layer.moving_variance) == 0)
