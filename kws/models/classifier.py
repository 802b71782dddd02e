"""Keyword classifiers on raw waveforms: the blog post's ``seed`` model and our default.

Every model takes a batch of raw waveforms ``(batch, input_length)`` (float32 in [-1, 1])
and returns softmax probabilities over the labels. Nothing is computed outside the model:
there is no fixed spectrogram; the default model *learns* its filterbank from the waveform.

Architectures
-------------
``seed``
    The blog post's model, reproduced faithfully: four Conv1D layers (8/16/24/32 filters,
    kernels 100/60/40/20), each followed by max pooling (3) and dropout (0.3), then Dense 64
    and Dense 128 with batch normalization applied to the 3-D conv output (per time step),
    Flatten and a softmax layer. Audio at 8 kHz.
``tcres``
    Our default. A learned Gabor filterbank front end (complex filters initialised on the
    mel scale, with learnable centre frequencies and bandwidths, as in Zeghidour et al. 2018
    and LEAF) evaluated every 5 ms, squared magnitude, learnable Gaussian low-pass pooling
    to 10 ms frames, log compression and per-clip normalisation; SpecAugment-style masking
    of that learned time x filter map during training; then residual depthwise-separable
    1-D conv blocks over time, global average pooling and a dense softmax head.

The custom layers use only ``keras.ops``, so the models run under any Keras backend, and
they are registered for :func:`keras.saving.load_model` when :mod:`kws.models` is imported.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import keras
from keras import ops

from kws import runtime

_PACKAGE = "kws"
#: Compute dtype of the layers that stay out of float16 under a mixed-precision policy (a
#: GPU's): the learned front end, the softmax, and what overflows or feeds a loss.
FULL_PRECISION = "float32"


def _mel(hz):
    return 2595.0 * math.log10(1.0 + hz / 700.0)


def _hz(mel):
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class GaborFilterbank(keras.layers.Layer):
    """Learnable complex Gabor filterbank over a raw waveform; returns squared magnitudes.

    Each filter is a Gaussian envelope (learnable width) times a complex sinusoid (learnable
    centre frequency), tapered by a fixed Hann window so the kernel ends smoothly. Centres
    start on the mel scale and bandwidths at twice the mel spacing, so the layer starts as a
    mel filterbank and training moves it. Only two numbers per filter are learned, which keeps
    the front end well regularised on small data.

    Input ``(batch, samples)`` or ``(batch, samples, 1)``; output ``(batch, frames, filters)``
    with ``frames = ceil(samples / stride)``.
    """

    def __init__(
        self,
        filters: int = 40,
        kernel_size: int = 400,
        stride: int = 40,
        sample_rate: int = 16000,
        min_hz: float = 60.0,
        max_hz: float | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = kernel_size
        self.stride = stride
        self.sample_rate = sample_rate
        self.min_hz = min_hz
        self.max_hz = max_hz

    def _initial_filters(self) -> tuple[list[float], list[float]]:
        """Mel-spaced centres (cycles per sample) and envelope widths (samples)."""
        top = self.max_hz or 0.95 * self.sample_rate / 2
        mels = [
            _mel(self.min_hz) + (_mel(top) - _mel(self.min_hz)) * i / (self.filters + 1)
            for i in range(self.filters + 2)
        ]
        hz = [_hz(m) for m in mels]
        centres, widths = [], []
        for i in range(1, self.filters + 1):
            fwhm = hz[i + 1] - hz[i - 1]
            sigma_f = fwhm / (2.0 * math.sqrt(2.0 * math.log(2.0)))
            sigma_t = self.sample_rate / (2.0 * math.pi * sigma_f)
            centres.append(hz[i] / self.sample_rate)
            widths.append(min(max(sigma_t, 1.0), self.kernel_size / 2))
        return centres, widths

    def build(self, input_shape) -> None:
        centres, widths = self._initial_filters()
        self.centres = self.add_weight(
            name="centres", shape=(self.filters,),
            initializer=keras.initializers.Constant(centres),
        )
        self.widths = self.add_weight(
            name="widths", shape=(self.filters,),
            initializer=keras.initializers.Constant(widths),
        )

    def kernel(self):
        """The ``(kernel_size, 1, 2 * filters)`` real and imaginary kernels."""
        half = (self.kernel_size - 1) / 2.0
        t = ops.expand_dims(ops.arange(self.kernel_size, dtype="float32") - half, 1)
        centres = ops.clip(self.centres, 0.0, 0.5)
        widths = ops.clip(self.widths, 1.0, self.kernel_size / 2.0)
        hann = 0.5 - 0.5 * ops.cos(
            2.0 * math.pi * (t + half + 1.0) / (self.kernel_size + 1.0)
        )
        envelope = hann * ops.exp(-0.5 * ops.square(t / widths))
        envelope = envelope / ops.sum(envelope, axis=0, keepdims=True)
        phase = 2.0 * math.pi * centres * t
        kernel = ops.concatenate([envelope * ops.cos(phase), envelope * ops.sin(phase)], axis=1)
        return ops.expand_dims(kernel, 1)

    def call(self, inputs):
        if len(inputs.shape) == 2:
            inputs = ops.expand_dims(inputs, -1)
        out = ops.conv(inputs, self.kernel(), strides=self.stride, padding="same")
        real, imag = out[..., : self.filters], out[..., self.filters :]
        return ops.square(real) + ops.square(imag)

    def compute_output_shape(self, input_shape):
        frames = None if input_shape[1] is None else -(-input_shape[1] // self.stride)
        return (input_shape[0], frames, self.filters)

    def multiply_adds(self, input_shape, output_shape) -> int:
        """Multiply-adds per clip: the complex convolution and the squared magnitude."""
        return output_shape[1] * (self.kernel_size * 2 * self.filters + 2 * self.filters)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "stride": self.stride,
            "sample_rate": self.sample_rate,
            "min_hz": self.min_hz,
            "max_hz": self.max_hz,
        }


@keras.saving.register_keras_serializable(package=_PACKAGE)
class GaussianLowpass(keras.layers.Layer):
    """Per-channel learnable Gaussian low-pass filter with decimation (LEAF's pooling).

    Smooths each filter's energy over time before taking one frame every ``stride`` steps,
    so decimation does not alias. Input and output ``(batch, time, channels)``.
    """

    def __init__(self, kernel_size: int = 9, stride: int = 4, **kwargs) -> None:
        super().__init__(**kwargs)
        self.kernel_size = kernel_size
        self.stride = stride

    def build(self, input_shape) -> None:
        self.channels = int(input_shape[-1])
        self.widths = self.add_weight(
            name="widths", shape=(self.channels,),
            initializer=keras.initializers.Constant(0.4),
        )

    def call(self, inputs):
        half = (self.kernel_size - 1) / 2.0
        t = ops.expand_dims(ops.arange(self.kernel_size, dtype="float32") - half, 1)
        sigma = ops.clip(self.widths, 0.05, 1.0) * max(half, 0.5)
        window = ops.exp(-0.5 * ops.square(t / sigma))
        window = window / ops.sum(window, axis=0, keepdims=True)
        kernel = ops.expand_dims(window, -1)
        return ops.depthwise_conv(inputs, kernel, strides=self.stride, padding="same")

    def compute_output_shape(self, input_shape):
        frames = None if input_shape[1] is None else -(-input_shape[1] // self.stride)
        return (input_shape[0], frames, input_shape[2])

    def multiply_adds(self, input_shape, output_shape) -> int:
        return output_shape[1] * output_shape[2] * self.kernel_size

    def get_config(self) -> dict:
        return {**super().get_config(), "kernel_size": self.kernel_size, "stride": self.stride}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FrameActivity(keras.layers.Layer):
    """Waveform ``(batch, samples)`` -> ``(batch, frames, 1)``: 1 where a frame of ``hop``
    samples holds any non-zero sample, 0 in digital silence (zero padding).

    ``frames = ceil(samples / hop)``, the front end's frames at the same hop.
    """

    def __init__(self, hop: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.hop = hop

    def call(self, inputs):
        magnitude = ops.abs(inputs)[..., None]
        peak = ops.max_pool(magnitude, pool_size=self.hop, strides=self.hop, padding="same")
        return ops.cast(peak > 0, inputs.dtype)

    def get_config(self) -> dict:
        return {**super().get_config(), "hop": self.hop}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LogCompression(keras.layers.Layer):
    """``log(x + floor)`` then per-clip normalisation of the learned time x filter map.

    ``norm="channel"`` subtracts each filter's mean over time (cepstral mean normalisation:
    a microphone's or room's colouring becomes a constant per filter and is removed) and
    divides by the clip's overall standard deviation; ``"masked"`` does the same over the
    frames :class:`FrameActivity` marks active only, and sets the others (digital
    silence: the zeros that pad a recording to a batch's or window's length) to 0, so
    padding changes little else (the smoothing across the recording's last frames);
    ``"none"`` leaves the log energies.
    """

    def __init__(self, floor: float = 1e-6, norm: str = "channel", **kwargs) -> None:
        super().__init__(**kwargs)
        self.floor = floor
        self.norm = norm

    def call(self, inputs):
        """``inputs``: energies ``(batch, frames, filters)``; with ``norm="masked"``, the
        list ``[energies, active]``, ``active`` ``(batch, frames, 1)`` from
        :class:`FrameActivity`."""
        active = None
        if self.norm == "masked":
            inputs, active = inputs
        x = ops.log(inputs + self.floor)
        if self.norm == "channel":
            x = x - ops.mean(x, axis=1, keepdims=True)
            x = x / ops.sqrt(ops.mean(ops.square(x), axis=(1, 2), keepdims=True) + 1e-3)
        elif self.norm == "masked":
            x = self._masked(x, active)
        return x

    def _masked(self, x, active):
        """Per-clip normalisation over the ``active`` frames (the others become 0)."""
        active = ops.cast(active, x.dtype)
        count = ops.maximum(ops.sum(active, axis=1, keepdims=True), 1.0)
        x = (x - ops.sum(x * active, axis=1, keepdims=True) / count) * active
        variance = ops.sum(ops.square(x), axis=(1, 2), keepdims=True) / (count * x.shape[-1])
        return x / ops.sqrt(variance + 1e-3)

    def get_config(self) -> dict:
        return {**super().get_config(), "floor": self.floor, "norm": self.norm}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FeatureMask(keras.layers.Layer):
    """SpecAugment on the learned time x filter map: random time and filter bands set to 0.

    Active only in training; an identity at inference. Each clip gets ``time_masks`` bands
    of up to ``time_width`` frames and ``freq_masks`` bands of up to ``freq_width`` filters.
    """

    def __init__(
        self,
        time_masks: int = 2,
        time_width: int = 10,
        freq_masks: int = 2,
        freq_width: int = 5,
        seed: int | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.time_masks = time_masks
        self.time_width = time_width
        self.freq_masks = freq_masks
        self.freq_width = freq_width
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _mask(self, batch, size, count: int, width: int):
        """``(batch, size)`` float mask with ``count`` random zeroed bands of ``width``."""
        positions = ops.arange(size, dtype="float32")[None, :]
        keep = ops.ones((batch, size), dtype="float32")
        size = ops.cast(size, "float32")
        for _ in range(count):
            w = keras.random.uniform((batch, 1), 0.0, width + 1.0, seed=self.seed_generator)
            w = ops.floor(w)
            start = keras.random.uniform((batch, 1), 0.0, 1.0, seed=self.seed_generator)
            start = ops.floor(start * (size - w + 1.0))
            inside = ops.logical_and(positions >= start, positions < start + w)
            keep = keep * (1.0 - ops.cast(inside, "float32"))
        return keep

    def call(self, inputs, training=None):
        if not training or (self.time_masks == 0 and self.freq_masks == 0):
            return inputs
        batch = ops.shape(inputs)[0]
        frames, channels = inputs.shape[1] or ops.shape(inputs)[1], inputs.shape[2]
        keep_t = self._mask(batch, frames, self.time_masks, self.time_width)
        keep_f = self._mask(batch, channels, self.freq_masks, self.freq_width)
        return inputs * keep_t[:, :, None] * keep_f[:, None, :]

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "time_masks": self.time_masks,
            "time_width": self.time_width,
            "freq_masks": self.freq_masks,
            "freq_width": self.freq_width,
            "seed": self.seed,
        }


def learned_frontend(
    inputs,
    sample_rate: int,
    filters: int = 40,
    window_ms: float = 25.0,
    hop_ms: float = 10.0,
    pool: int = 2,
    norm: str = "channel",
    masking: dict | None = None,
):
    """Waveform ``(batch, samples)`` -> log filterbank energies ``(batch, frames, filters)``.

    The filterbank is evaluated every ``hop_ms / pool`` and Gaussian-pooled to ``hop_ms``.
    Its layers compute in :data:`FULL_PRECISION` under a mixed-precision policy: their
    kernels are made in float32, and the energies of quiet audio underflow float16.
    """
    kernel = int(round(sample_rate * window_ms / 1000))
    stride = max(1, int(round(sample_rate * hop_ms / 1000 / pool)))
    x = GaborFilterbank(filters, kernel, stride, sample_rate, name="filterbank",
                        dtype=FULL_PRECISION)(inputs)
    if pool > 1:
        x = GaussianLowpass(2 * pool + 1, pool, name="lowpass", dtype=FULL_PRECISION)(x)
    if norm == "masked":
        active = FrameActivity(stride * pool, name="activity", dtype=FULL_PRECISION)(inputs)
        x = LogCompression(norm=norm, name="compression", dtype=FULL_PRECISION)([x, active])
    else:
        x = LogCompression(norm=norm, name="compression", dtype=FULL_PRECISION)(x)
    if masking:
        x = FeatureMask(**masking, name="feature_mask", dtype=FULL_PRECISION)(x)
    return x


def softmax_output(units: int, name: str) -> keras.layers.Dense:
    """A model's last layer: a dense softmax, computed in :data:`FULL_PRECISION` under a
    mixed-precision policy so that small probabilities keep their precision for the loss."""
    return keras.layers.Dense(units, activation="softmax", name=name, dtype=FULL_PRECISION)


def batch_normalization(name: str, momentum: float = 0.99,
                        **options) -> keras.layers.BatchNormalization:
    """A batch normalisation layer that normalises with the statistics of the global batch.

    Built under a ``tf.distribute`` strategy of several replicas (GPUs or workers), the
    layer averages its batch mean and variance over all replicas (``synchronized``), so
    every replica normalises alike and keeps the same moving statistics. Otherwise it is
    Keras's plain layer: same numerics, and a saved model's config is as before.
    """
    return keras.layers.BatchNormalization(momentum=momentum, name=name,
                                           synchronized=runtime.replicas_in_sync() > 1,
                                           **options)


def _bn(name: str):
    return batch_normalization(name, momentum=0.9)


def _residual_block(x, channels: int, kernel: int, stride: int, index: int):
    """Depthwise-separable 1-D residual block over time."""
    name = f"block{index}"
    y = keras.layers.DepthwiseConv1D(
        kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_dw"
    )(x)
    y = _bn(f"{name}_dw_bn")(y)
    y = keras.layers.ReLU(name=f"{name}_dw_relu")(y)
    y = keras.layers.Conv1D(channels, 1, use_bias=False, name=f"{name}_pw")(y)
    y = _bn(f"{name}_pw_bn")(y)
    if stride != 1 or x.shape[-1] != channels:
        x = keras.layers.Conv1D(
            channels, 1, strides=stride, use_bias=False, name=f"{name}_skip"
        )(x)
        x = _bn(f"{name}_skip_bn")(x)
    x = keras.layers.Add(name=f"{name}_add")([x, y])
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def build_tcres(
    num_labels: int,
    sample_rate: int,
    input_length: int,
    filters: int = 40,
    channels: tuple[int, ...] = (64, 64, 96, 96, 128, 128),
    strides: tuple[int, ...] = (1, 2, 1, 2, 1, 1),
    kernel: int = 9,
    dropout: float = 0.3,
    norm: str = "channel",
    masking: dict | None = None,
    pool: int = 2,
    name: str = "tcres",
) -> keras.Model:
    """Learned filterbank front end + residual depthwise-separable 1-D conv blocks."""
    if masking is None:
        masking = {"time_masks": 2, "time_width": 10, "freq_masks": 2, "freq_width": 5}
    inputs = keras.Input((input_length,), name="waveform")
    x = learned_frontend(
        inputs, sample_rate, filters=filters, pool=pool, norm=norm, masking=masking
    )
    x = keras.layers.Conv1D(channels[0], 5, padding="same", use_bias=False, name="stem")(x)
    x = _bn("stem_bn")(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    for index, (width, stride) in enumerate(zip(channels, strides, strict=True)):
        x = _residual_block(x, width, kernel, stride, index)
    x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = softmax_output(num_labels, "probabilities")(x)
    return keras.Model(inputs, outputs, name=name)


def _seed_bn(name: str) -> keras.layers.BatchNormalization:
    """The seed model's batch normalization, with moving statistics that settle at once.

    Its dense activations are tiny on speech (variance near 1e-6 after four ReLU
    convolutions of a raw waveform), far below batch normalization's epsilon (1e-3). With
    Keras's defaults (momentum 0.99, moving variance starting at 1) the moving variance
    stays hundreds of times too large for over a thousand steps: in inference mode the
    layer shrinks its input to nothing and the model answers one class whatever it hears,
    so validation accuracy sits at chance and early stopping ends the run. A moving
    variance starting at 0 (epsilon dominates either way) and momentum 0.9 fix that.
    """
    return batch_normalization(name, momentum=0.9, moving_variance_initializer="zeros")


def build_seed(num_labels: int, sample_rate: int, input_length: int) -> keras.Model:
    """The blog post's model (see the module docstring); ``sample_rate`` is not used."""
    inputs = keras.Input((input_length,), name="waveform")
    x = keras.layers.Reshape((input_length, 1), name="channels")(inputs)
    for index, (width, kernel) in enumerate(((8, 100), (16, 60), (24, 40), (32, 20))):
        x = keras.layers.Conv1D(width, kernel, activation="relu", name=f"conv{index}")(x)
        x = keras.layers.MaxPooling1D(3, name=f"pool{index}")(x)
        x = keras.layers.Dropout(0.3, name=f"dropout{index}")(x)
    x = keras.layers.Dense(64, activation="relu", name="dense64")(x)
    x = _seed_bn("dense64_bn")(x)
    x = keras.layers.Dense(128, activation="relu", name="dense128")(x)
    x = _seed_bn("dense128_bn")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = softmax_output(num_labels, "probabilities")(x)
    return keras.Model(inputs, outputs, name="seed")


#: Architecture name -> builder ``(num_labels, sample_rate, input_length) -> keras.Model``.
ARCHITECTURES: dict[str, Callable[..., keras.Model]] = {
    "seed": build_seed,
    "tcres": build_tcres,
}
#: The architecture ``kws train`` uses unless told otherwise.
DEFAULT_ARCH = "tcres"
_SAMPLE_RATES = {"seed": 8000, "tcres": 16000}


def default_sample_rate(arch: str) -> int:
    """The input sample rate an architecture is trained at by default (Hz)."""
    _check_arch(arch)
    return _SAMPLE_RATES[arch]


def build_classifier(
    arch: str,
    num_labels: int,
    sample_rate: int,
    input_length: int,
    seed: int | None = None,
) -> keras.Model:
    """Build an uncompiled classifier: raw waveform ``(batch, input_length)`` -> probabilities.

    ``seed`` makes the initial weights (and the training-time masking) reproducible.
    """
    _check_arch(arch)
    if num_labels < 2:
        raise ValueError(f"a classifier needs at least 2 labels, got {num_labels}")
    if seed is not None:
        keras.utils.set_random_seed(seed)
    return ARCHITECTURES[arch](num_labels, sample_rate, input_length)


def _check_arch(arch: str) -> None:
    if arch not in ARCHITECTURES:
        known = ", ".join(sorted(ARCHITECTURES))
        raise ValueError(f"unknown architecture {arch!r} (known: {known})")


def _shape(tensor) -> tuple:
    return tuple(tensor.shape)


def _layer_multiply_adds(layer, in_shape: tuple, out_shape: tuple) -> int:
    """Multiply-adds per clip of one layer (0 for layers that do no weighted sums)."""
    steps = math.prod(d for d in out_shape[1:-1] if d is not None) if len(out_shape) > 2 else 1
    if hasattr(layer, "multiply_adds"):
        return int(layer.multiply_adds(in_shape, out_shape))
    if isinstance(layer, keras.layers.SeparableConv1D | keras.layers.SeparableConv2D):
        kernel = math.prod(layer.kernel_size)
        depth = in_shape[-1] * layer.depth_multiplier
        return steps * (kernel * depth + depth * out_shape[-1])
    if isinstance(layer, keras.layers.DepthwiseConv1D | keras.layers.DepthwiseConv2D):
        return steps * math.prod(layer.kernel_size) * out_shape[-1]
    if isinstance(layer, keras.layers.Conv1D | keras.layers.Conv2D):
        kernel = math.prod(layer.kernel_size)
        return steps * kernel * (in_shape[-1] // layer.groups) * out_shape[-1]
    if isinstance(layer, keras.layers.Dense):
        return steps * in_shape[-1] * out_shape[-1]
    return 0


def count_multiply_adds(model: keras.Model) -> int:
    """Multiply-adds to classify one clip, counted analytically layer by layer.

    Counts Conv1D/Conv2D, DepthwiseConv1D/2D, SeparableConv1D/2D, Dense and the kws layers
    (filterbank and low-pass). Batch normalisation (foldable into the previous layer),
    activations, pooling and element-wise layers are not counted.
    """
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            total += count_multiply_adds(layer)
            continue
        try:
            in_shape, out_shape = _shape(layer.input), _shape(layer.output)
        except (AttributeError, ValueError):
            continue
        total += _layer_multiply_adds(layer, in_shape, out_shape)
    return int(total)


#: Name of every architecture's softmax layer (one column of weights per label).
OUTPUT_LAYER = "probabilities"


def transfer_weights(
    source: keras.Model,
    target: keras.Model,
    source_labels: list[str],
    target_labels: list[str],
) -> dict:
    """Start ``target`` from a trained ``source`` classifier, in place; return what moved.

    Every layer of ``target`` whose name and weight shapes match a layer of ``source`` gets
    its weights (front end, body, batch-norm statistics). The output layer gets the kernel
    column and bias of each label both label lists share and keeps its fresh initialisation
    for new labels, so a fine-tuned model starts knowing the words it knew. Returns the
    names of copied and fresh layers and the labels kept, new and dropped.
    """
    sources = {layer.name: layer for layer in source.layers}
    copied, fresh = [], []
    for layer in target.layers:
        if not layer.weights or layer.name == OUTPUT_LAYER:
            continue
        match = sources.get(layer.name)
        if match is not None and _weight_shapes(match) == _weight_shapes(layer):
            layer.set_weights(match.get_weights())
            copied.append(layer.name)
        else:
            fresh.append(layer.name)
    kept = _transfer_output(sources.get(OUTPUT_LAYER), _output_layer(target), source_labels,
                            target_labels)
    return {
        "layers_copied": copied,
        "layers_fresh": fresh,
        "labels_kept": kept,
        "labels_new": [label for label in target_labels if label not in kept],
        "labels_dropped": [label for label in source_labels if label not in target_labels],
    }


def _weight_shapes(layer) -> list[tuple]:
    return [tuple(weight.shape) for weight in layer.weights]


def _output_layer(model: keras.Model):
    try:
        return model.get_layer(OUTPUT_LAYER)
    except ValueError:
        raise ValueError(f"model {model.name!r} has no {OUTPUT_LAYER!r} layer") from None


def _transfer_output(source, target, source_labels: list[str],
                     target_labels: list[str]) -> list[str]:
    """Copy the output columns of shared labels; return those labels (in target order)."""
    (new_kernel, new_bias) = target.get_weights()
    if new_kernel.shape[-1] != len(target_labels):
        raise ValueError(f"the new model has {new_kernel.shape[-1]} outputs for "
                         f"{len(target_labels)} labels")
    if source is None or len(source.weights) != 2:
        return []
    kernel, bias = source.get_weights()
    if kernel.shape[-1] != len(source_labels):
        raise ValueError(f"the source model has {kernel.shape[-1]} outputs for "
                         f"{len(source_labels)} labels")
    if kernel.shape[:-1] != new_kernel.shape[:-1]:
        return []
    index = {label: i for i, label in enumerate(source_labels)}
    kept = [label for label in target_labels if label in index]
    for label in kept:
        column, new_column = index[label], target_labels.index(label)
        new_kernel[..., new_column] = kernel[..., column]
        new_bias[new_column] = bias[column]
    target.set_weights([new_kernel, new_bias])
    return kept
