"""The classifier architectures: shapes, probabilities, save/load, multiply-adds, training."""

from __future__ import annotations

import sys

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from kws.models import classifier  # noqa: E402
from kws.models.classifier import (  # noqa: E402
    ARCHITECTURES,
    DEFAULT_ARCH,
    build_classifier,
    count_multiply_adds,
    default_sample_rate,
)

NUM_LABELS = 5


def _waves(n: int, length: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(length) / length
    tones = np.sin(2 * np.pi * rng.uniform(100, 900, size=(n, 1)) * t)
    return (0.3 * tones + 0.05 * rng.standard_normal((n, length))).astype(np.float32)


CASES = [(arch, rate) for arch in sorted(ARCHITECTURES) for rate in (8000, 16000)]


@pytest.fixture(scope="module", params=CASES)
def built(request):
    arch, rate = request.param
    return arch, rate, build_classifier(arch, NUM_LABELS, rate, rate, seed=3)


def test_registry_and_default():
    assert DEFAULT_ARCH in ARCHITECTURES
    assert "seed" in ARCHITECTURES
    assert default_sample_rate("seed") == 8000
    assert default_sample_rate(DEFAULT_ARCH) in (8000, 16000)
    with pytest.raises(ValueError, match="unknown architecture"):
        build_classifier("nope", NUM_LABELS, 8000, 8000)
    with pytest.raises(ValueError):
        default_sample_rate("nope")


def test_output_is_probabilities(built):
    arch, rate, model = built
    assert model.name == arch
    assert model.input_shape == (None, rate)
    probs = np.asarray(model(_waves(3, rate), training=False))
    assert probs.shape == (3, NUM_LABELS)
    assert np.all(probs >= 0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_save_load_round_trip(built, tmp_path):
    arch, rate, model = built
    path = tmp_path / f"{arch}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, compile=False)
    x = _waves(2, rate, seed=1)
    np.testing.assert_allclose(
        np.asarray(loaded(x, training=False)), np.asarray(model(x, training=False)), atol=1e-6
    )
    assert count_multiply_adds(loaded) == count_multiply_adds(model)


def test_multiply_adds(built):
    arch, rate, model = built
    assert count_multiply_adds(model) > 0


def test_seed_matches_the_blog_post():
    model = build_classifier("seed", 30, 8000, 8000)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv1D)]
    assert [c.filters for c in convs] == [8, 16, 24, 32]
    assert [c.kernel_size[0] for c in convs] == [100, 60, 40, 20]
    # Conv layers by hand: output length x filters x kernel x input channels.
    expected_conv = 7901 * 8 * 100 + 2574 * 16 * 60 * 8 + 819 * 24 * 40 * 16 + 254 * 32 * 20 * 24
    expected_dense = 84 * (32 * 64 + 64 * 128) + 84 * 128 * 30
    assert count_multiply_adds(model) == expected_conv + expected_dense


def test_default_is_cheaper_than_seed():
    rate = default_sample_rate(DEFAULT_ARCH)
    default = build_classifier(DEFAULT_ARCH, 32, rate, rate)
    seed = build_classifier("seed", 32, 8000, 8000)
    assert 0 < count_multiply_adds(default) < count_multiply_adds(seed)


def test_filterbank_starts_as_a_mel_filterbank():
    rate = 16000
    inputs = keras.Input((rate,))
    layer = classifier.GaborFilterbank(filters=8, kernel_size=400, stride=160, sample_rate=rate)
    model = keras.Model(inputs, layer(inputs))
    t = np.arange(rate) / rate
    tone = np.sin(2 * np.pi * 1000 * t)[None, :].astype(np.float32)
    energies = np.asarray(model(tone))[0, 10:-10].mean(axis=0)
    centres = np.asarray(layer.centres) * rate
    assert np.all(np.diff(centres) > 0)
    assert np.argmax(energies) == np.argmin(np.abs(centres - 1000))


def test_feature_mask_only_in_training():
    layer = classifier.FeatureMask(time_masks=2, time_width=5, freq_masks=2, freq_width=3, seed=1)
    x = np.ones((4, 50, 20), dtype=np.float32)
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)
    masked = np.asarray(layer(x, training=True))
    assert masked.shape == x.shape
    assert masked.min() == 0.0 and masked.max() == 1.0


def test_one_training_step_runs():
    # A narrow two-block version of the default: the same layers, quicker to compile.
    keras.utils.set_random_seed(0)
    model = classifier.build_tcres(NUM_LABELS, 8000, 8000, channels=(16, 16), strides=(1, 2))
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    x = _waves(8, 8000)
    y = np.arange(8) % NUM_LABELS
    before = model.evaluate(x, y, verbose=0)
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert all(np.isfinite(history.history["loss"]))
    assert np.isfinite(before)


def _train_mixed(model, loss, x, y) -> list[float]:
    model.compile(keras.optimizers.Adam(1e-3), loss)
    return model.fit(x, y, batch_size=len(x), epochs=2, verbose=0).history["loss"]


def test_models_train_under_mixed_precision():
    # A GPU trains under mixed_float16 (kws.runtime.precision_for_device): the front end
    # and the softmax compute in float32, the rest in float16, and a step must run.
    from kws.models.phones import build_phone_model
    from kws.models.vae import build_vae, regularizer_loss
    from kws.phones.ctc import ctc_loss, encode_targets
    from kws.runtime import precision_policy

    keras.utils.set_random_seed(0)
    x = _waves(4, 8000)
    with precision_policy("mixed_float16"):
        tcres = classifier.build_tcres(NUM_LABELS, 8000, 8000, channels=(16, 16),
                                       strides=(1, 2))
        phones = build_phone_model(6, 8000, None, filters=8, channels=16, dilations=(1,))
        vae = build_vae(63, 40, 3, latent_dim=4, channels=(8, 8, 8), hidden=16, seed=1)
        assert tcres.get_layer("filterbank").compute_dtype == "float32"
        assert tcres.get_layer("stem").compute_dtype == "float16"
        assert tcres.output.dtype == phones.output.dtype == "float32"
        losses = [
            *_train_mixed(tcres, "sparse_categorical_crossentropy", x, np.arange(4) % 5),
            *_train_mixed(phones, ctc_loss, x, encode_targets([[[1, 2, 3]]] * 4)),
        ]
        features = np.random.default_rng(0).standard_normal((4, 63, 40)).astype(np.float32)
        labels = np.eye(3, dtype=np.float32)[[0, 1, 2, 0]]
        vae.compile(keras.optimizers.Adam(1e-3),
                    loss={"reconstruction": "mse", "regularizer": regularizer_loss})
        history = vae.fit([features, labels], {"reconstruction": features,
                                               "regularizer": np.zeros(4, np.float32)},
                          batch_size=4, epochs=1, verbose=0)
        losses += history.history["loss"]
    assert keras.mixed_precision.global_policy().name == "float32"
    assert np.all(np.isfinite(losses))


def test_replicas_known_without_tensorflow(monkeypatch):
    # Under KERAS_BACKEND=jax (a GPU machine without TensorFlow) building a model asks how
    # many replicas train: no tf.distribute strategy can be in scope without TensorFlow.
    from kws import runtime

    monkeypatch.setitem(sys.modules, "tensorflow", None)
    assert runtime.replicas_in_sync() == 1
