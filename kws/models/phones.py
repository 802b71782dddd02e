"""The phone model: raw waveform in, per-frame phone posteriors (with the CTC blank) out.

Architecture ``tcphones``: the classifier's learned front end
(:func:`kws.models.classifier.learned_frontend`: a Gabor filterbank initialised on the mel
scale, Gaussian low-pass pooling to 10 ms frames, log compression and per-recording
normalisation over the frames with signal, so zero padding barely matters, SpecAugment-
style masking in training), a strided convolution to ``frame_ms`` frames (20 ms by default),
then residual blocks of dilated depthwise-separable 1-D convolutions over time whose
dilations double (1, 2, 4, twice by default), so each frame sees about 0.3 s of context on
both sides (short on purpose: a longer view learns the training words' phone strings).
A dense softmax per frame gives the posteriors over the blank (output 0) and the phones.

The convolutions are not causal: a frame's posteriors use context after it, which suits
files (``kws phones predict``) rather than live streams. Only built-in Keras layers and the
classifier's registered layers are used, so :func:`kws.modelfolder.load_keras_model` loads
the model as it loads a classifier.
"""

from __future__ import annotations

import keras

from kws.models.classifier import batch_normalization, learned_frontend, softmax_output

#: Name of the default (and only) phone architecture.
PHONE_ARCH = "tcphones"


def _bn(name: str):
    return batch_normalization(name, momentum=0.9)


def _dilated_block(x, kernel: int, dilation: int, dropout: float, index: int):
    """Residual dilated depthwise-separable block; keeps the frame rate and width."""
    name = f"block{index}"
    channels = x.shape[-1]
    y = keras.layers.DepthwiseConv1D(kernel, dilation_rate=dilation, padding="same",
                                     use_bias=False, name=f"{name}_dw")(x)
    y = _bn(f"{name}_dw_bn")(y)
    y = keras.layers.ReLU(name=f"{name}_dw_relu")(y)
    y = keras.layers.Conv1D(channels, 1, use_bias=False, name=f"{name}_pw")(y)
    y = _bn(f"{name}_pw_bn")(y)
    if dropout:
        y = keras.layers.Dropout(dropout, name=f"{name}_dropout")(y)
    x = keras.layers.Add(name=f"{name}_add")([x, y])
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def frame_stride(frame_ms: float, hop_ms: float = 10.0) -> int:
    """How many front-end frames (``hop_ms`` each) make one output frame."""
    stride = int(round(frame_ms / hop_ms))
    if stride < 1 or abs(stride * hop_ms - frame_ms) > 1e-6:
        raise ValueError(f"frame_ms must be a multiple of {hop_ms:g} ms, got {frame_ms:g}")
    return stride


def build_phone_model(
    num_classes: int,
    sample_rate: int,
    input_length: int | None,
    frame_ms: float = 20.0,
    filters: int = 40,
    pool: int = 4,
    channels: int = 192,
    dilations: tuple[int, ...] = (1, 2, 4) * 2,
    kernel: int = 3,
    dropout: float = 0.1,
    masking: dict | None = None,
    seed: int | None = None,
    name: str = PHONE_ARCH,
) -> keras.Model:
    """Build an uncompiled phone model.

    Parameters
    ----------
    num_classes
        Outputs per frame: the CTC blank plus the phones.
    sample_rate, input_length
        Rate (Hz) and length (samples) of the input waveforms; ``None`` takes any length
        (utterances batched by length, zero-padded: the front end's normalisation
        ignores the padding).
    frame_ms
        Output frame period, a multiple of the front end's 10 ms.
    filters, pool
        Front end: learned filters, and how many filterbank steps its Gaussian low-pass
        pools into one 10 ms frame (4, as the classifier: a filterbank step every 2.5 ms).
    channels, dilations, kernel, dropout
        Sequence head: width, one residual block per dilation, kernel size, dropout.
    seed
        Makes the initial weights (and the training-time masking) reproducible.

    Returns
    -------
    keras.Model
        ``(batch, input_length)`` waveforms -> ``(batch, frames, num_classes)`` posteriors,
        ``frames = ceil(input_length / (sample_rate * frame_ms / 1000))``.
    """
    if num_classes < 2:
        raise ValueError(f"a phone model needs the blank and at least one phone, got "
                         f"{num_classes} classes")
    if seed is not None:
        keras.utils.set_random_seed(seed)
    if masking is None:
        masking = {"time_masks": 2, "time_width": 8, "freq_masks": 2, "freq_width": 5}
    stride = frame_stride(frame_ms)
    inputs = keras.Input((input_length,), name="waveform")
    x = learned_frontend(inputs, sample_rate, filters=filters, pool=pool, norm="masked",
                         masking=masking)
    x = keras.layers.Conv1D(channels, 2 * stride + 1, strides=stride, padding="same",
                            use_bias=False, name="stem")(x)
    x = _bn("stem_bn")(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    for index, dilation in enumerate(dilations):
        x = _dilated_block(x, kernel, dilation, dropout, index)
    outputs = softmax_output(num_classes, "posteriors")(x)
    return keras.Model(inputs, outputs, name=name)

