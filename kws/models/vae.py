"""A conditional convolutional auto-encoder of log-mel spectrograms (CVAE or WAE).

The encoder maps a standardised log-mel spectrogram ``(frames, mels)`` and a word label to
a latent code; the decoder maps a latent code and a word label back to a spectrogram.
Labels enter as one-hot vectors (a mixture of two is a label "between" two words, which
interpolation uses) through a learned embedding, tiled over time and frequency at the
input of the encoder and before every up-sampling block of the decoder. Since the label
is given, the latent space is free to hold what it does not say: speaker, timing,
loudness.

Two objectives regularise the latent codes towards the prior ``N(0, I)``:

``vae``
    Kingma and Welling's evidence lower bound: a stochastic encoder (mean and log
    variance), the reparameterisation trick, and the KL divergence to the prior.
``wae``
    Tolstikhin et al.'s Wasserstein auto-encoder (WAE-MMD): a deterministic encoder and
    the maximum mean discrepancy between the batch of codes and samples of the prior, with
    the inverse multiquadratic kernel at several scales.

The training model has two outputs: ``reconstruction`` (to be compared with the input by
mean squared error) and ``regularizer`` (the KL or MMD term of each clip, used as its own
loss), so Keras reports both terms per epoch on any backend. The custom layers use only
``keras.ops`` and :mod:`keras.random`, and are registered for
:func:`keras.saving.load_model` when :mod:`kws.models` is imported.
"""

from __future__ import annotations

import keras
from keras import ops

from kws.models.classifier import FULL_PRECISION, batch_normalization

_PACKAGE = "kws"
OBJECTIVES = ("vae", "wae")
#: Widths of the encoder's convolution blocks (the decoder's, reversed).
DEFAULT_CHANNELS = (128, 192, 256)
#: Scales of the inverse multiquadratic kernel, as multiples of ``2 * latent_dim``.
_IMQ_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LabelMap(keras.layers.Layer):
    """Concatenate a per-clip vector to every position of a feature map.

    Inputs ``[features (batch, ..., channels), vector (batch, width)]``; output
    ``(batch, ..., channels + width)``.
    """

    def call(self, inputs):
        features, vector = inputs
        shape = ops.shape(features)
        for _ in range(len(features.shape) - 2):
            vector = ops.expand_dims(vector, 1)
        tiled = ops.broadcast_to(vector, (*shape[:-1], ops.shape(vector)[-1]))
        return ops.concatenate([features, ops.cast(tiled, features.dtype)], axis=-1)

    def compute_output_shape(self, input_shape):
        features, vector = input_shape
        return (*features[:-1], features[-1] + vector[-1])


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Sampling(keras.layers.Layer):
    """The reparameterisation trick: ``mean + exp(log_var / 2) * eps`` in training.

    At inference it returns the mean, so reconstructions are deterministic.
    """

    def __init__(self, seed: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        mean, log_var = inputs
        if not training:
            return mean
        eps = keras.random.normal(ops.shape(mean), seed=self.seed_generator)
        return mean + ops.exp(0.5 * log_var) * eps

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self) -> dict:
        return {**super().get_config(), "seed": self.seed}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class KLDivergence(keras.layers.Layer):
    """KL divergence of ``N(mean, exp(log_var))`` from ``N(0, I)``, per clip, in nats."""

    def call(self, inputs):
        mean, log_var = inputs
        return -0.5 * ops.sum(1.0 + log_var - ops.square(mean) - ops.exp(log_var), axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0],)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MaximumMeanDiscrepancy(keras.layers.Layer):
    """MMD between a batch of codes and as many samples of ``N(0, I)`` (WAE-MMD).

    Unbiased estimate with the inverse multiquadratic kernel ``C / (C + |x - y|^2)``
    summed over ``C = 2 * latent_dim * s`` for the scales of the WAE paper. The batch
    value is returned for every clip, so the mean over clips is the batch MMD.
    """

    def __init__(self, seed: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, codes):
        n = ops.shape(codes)[0]
        dim = codes.shape[-1]
        prior = keras.random.normal(ops.shape(codes), seed=self.seed_generator)
        nf = ops.cast(n, codes.dtype)
        pairs = ops.maximum(nf * (nf - 1.0), 1.0)
        off_diagonal = 1.0 - ops.eye(n, dtype=codes.dtype)
        d_qq = _squared_distances(codes, codes)
        d_pp = _squared_distances(prior, prior)
        d_pq = _squared_distances(prior, codes)
        total = ops.zeros((), dtype=codes.dtype)
        for scale in _IMQ_SCALES:
            c = 2.0 * dim * scale
            k_qq = ops.sum(off_diagonal * c / (c + d_qq)) / pairs
            k_pp = ops.sum(off_diagonal * c / (c + d_pp)) / pairs
            k_pq = ops.sum(c / (c + d_pq)) / (nf * nf)
            total = total + k_qq + k_pp - 2.0 * k_pq
        return ops.ones((n,), dtype=codes.dtype) * total

    def compute_output_shape(self, input_shape):
        return (input_shape[0],)

    def get_config(self) -> dict:
        return {**super().get_config(), "seed": self.seed}


def _squared_distances(a, b):
    """``(n, m)`` squared Euclidean distances between rows of ``a`` and ``b``."""
    a2 = ops.sum(ops.square(a), axis=1, keepdims=True)
    b2 = ops.sum(ops.square(b), axis=1, keepdims=True)
    return ops.maximum(a2 + ops.transpose(b2) - 2.0 * ops.matmul(a, ops.transpose(b)), 0.0)


@keras.saving.register_keras_serializable(package=_PACKAGE)
def regularizer_loss(y_true, y_pred):
    """The model's own regularizer output taken as a loss (the target is ignored)."""
    return y_pred


def _embedding(width: int):
    """A label embedding that takes one-hot (or mixed) label vectors: a dense map, no bias."""
    return keras.layers.Dense(width, use_bias=False, name="label_embedding")


def _padded(size: int, blocks: int) -> int:
    step = 2**blocks
    return -(-size // step) * step


def build_encoder(
    frames: int,
    mels: int,
    num_labels: int,
    latent_dim: int = 16,
    channels: tuple[int, ...] = DEFAULT_CHANNELS,
    hidden: int = 256,
    embed_dim: int = 16,
    objective: str = "vae",
    kernel: int = 5,
) -> keras.Model:
    """Encoder: ``[features (batch, frames, mels), label (batch, labels)]`` -> code.

    Convolutions run over time with the mel bands as channels (a spectrogram is not
    shift-invariant in frequency, and this is ten times cheaper than 2-D convolutions).
    The frames are zero-padded to a multiple of ``2 ** len(channels)``; each block halves
    them (conv with stride 2, batch norm, leaky ReLU). For ``objective='vae'`` the outputs
    are ``[mean, log_var]``; for ``'wae'`` only the (deterministic) code.
    """
    _check_objective(objective)
    features = keras.Input((frames, mels), name="features")
    label = keras.Input((num_labels,), name="label")
    embedding = _embedding(embed_dim)(label)
    x = features
    pad = _padded(frames, len(channels)) - frames
    if pad:
        x = keras.layers.ZeroPadding1D((0, pad), name="pad")(x)
    x = LabelMap(name="condition")([x, embedding])
    for index, width in enumerate(channels):
        x = keras.layers.Conv1D(width, kernel, strides=2, padding="same", name=f"conv{index}")(x)
        x = batch_normalization(f"conv{index}_bn")(x)
        x = keras.layers.LeakyReLU(0.2, name=f"conv{index}_act")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Concatenate(name="with_label")([x, embedding])
    x = keras.layers.Dense(hidden, name="hidden")(x)
    x = keras.layers.LeakyReLU(0.2, name="hidden_act")(x)
    mean = keras.layers.Dense(latent_dim, name="mean")(x)
    if objective == "wae":
        return keras.Model([features, label], mean, name="encoder")
    log_var = keras.layers.Dense(
        latent_dim, kernel_initializer="zeros", bias_initializer="zeros", name="log_var"
    )(x)
    return keras.Model([features, label], [mean, log_var], name="encoder")


def build_decoder(
    frames: int,
    mels: int,
    num_labels: int,
    latent_dim: int = 16,
    channels: tuple[int, ...] = DEFAULT_CHANNELS,
    hidden: int = 256,
    embed_dim: int = 16,
    kernel: int = 5,
) -> keras.Model:
    """Decoder: ``[code (batch, latent_dim), label (batch, labels)]`` -> ``(batch, frames, mels)``.

    Mirrors the encoder: dense layers to the coarsest time map, transposed convolutions
    over time that double it (the label embedding is concatenated before each), a linear
    convolution to the mel bands, and a crop to ``frames``.
    """
    code = keras.Input((latent_dim,), name="code")
    label = keras.Input((num_labels,), name="label")
    embedding = _embedding(embed_dim)(label)
    size = _padded(frames, len(channels))
    small = size // 2 ** len(channels)
    x = keras.layers.Concatenate(name="with_label")([code, embedding])
    x = keras.layers.Dense(hidden, name="hidden")(x)
    x = keras.layers.LeakyReLU(0.2, name="hidden_act")(x)
    x = keras.layers.Dense(small * channels[-1], name="expand")(x)
    x = keras.layers.LeakyReLU(0.2, name="expand_act")(x)
    x = keras.layers.Reshape((small, channels[-1]), name="map")(x)
    for index, width in enumerate(reversed(channels)):
        x = LabelMap(name=f"condition{index}")([x, embedding])
        x = keras.layers.Conv1DTranspose(
            width, kernel, strides=2, padding="same", name=f"deconv{index}"
        )(x)
        x = batch_normalization(f"deconv{index}_bn")(x)
        x = keras.layers.LeakyReLU(0.2, name=f"deconv{index}_act")(x)
    x = keras.layers.Conv1D(mels, kernel, padding="same", name="output")(x)
    if size != frames:
        x = keras.layers.Cropping1D((0, size - frames), name="crop")(x)
    return keras.Model([code, label], x, name="decoder")


def build_vae(
    frames: int,
    mels: int,
    num_labels: int,
    latent_dim: int = 16,
    objective: str = "vae",
    channels: tuple[int, ...] = DEFAULT_CHANNELS,
    hidden: int = 256,
    embed_dim: int = 16,
    seed: int | None = None,
) -> keras.Model:
    """The training model: ``[features, label]`` -> ``{reconstruction, regularizer}``.

    The nested models named ``encoder`` and ``decoder`` are what sampling, reconstruction
    and interpolation use (``model.get_layer("encoder")``). ``seed`` makes the initial
    weights and the sampling noise reproducible.
    """
    _check_objective(objective)
    if seed is not None:
        keras.utils.set_random_seed(seed)
    encoder = build_encoder(frames, mels, num_labels, latent_dim, channels, hidden, embed_dim,
                            objective)
    decoder = build_decoder(frames, mels, num_labels, latent_dim, channels, hidden, embed_dim)
    features = keras.Input((frames, mels), name="features")
    label = keras.Input((num_labels,), name="label")
    # The sampling, the regularizer and the output compute in FULL_PRECISION under a mixed
    # precision policy: exp(log_var) and the kernel sums overflow float16, and the losses
    # need full precision.
    if objective == "vae":
        mean, log_var = encoder([features, label])
        code = Sampling(seed=seed, name="sampling", dtype=FULL_PRECISION)([mean, log_var])
        regularizer = KLDivergence(name="regularizer", dtype=FULL_PRECISION)([mean, log_var])
    else:
        code = encoder([features, label])
        regularizer = MaximumMeanDiscrepancy(seed=seed, name="regularizer",
                                             dtype=FULL_PRECISION)(code)
    reconstruction = keras.layers.Identity(name="reconstruction", dtype=FULL_PRECISION)(
        decoder([code, label]))
    return keras.Model(
        [features, label],
        {"reconstruction": reconstruction, "regularizer": regularizer},
        name=f"c{objective}",
    )


def _check_objective(objective: str) -> None:
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, not {objective!r}")
