"""Losses of kws's models that Keras does not have as such."""

from __future__ import annotations

from kws.runtime import import_keras

keras = import_keras()


@keras.saving.register_keras_serializable(package="kws")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy of probabilities against integer labels, with label smoothing.

    Keras's ``SparseCategoricalCrossentropy`` has no label smoothing and its
    ``CategoricalCrossentropy`` wants one-hot targets; this takes the integer labels the
    batches carry and smooths their one-hot form: the true class gets
    ``1 - smoothing + smoothing / classes``, every other ``smoothing / classes``.
    """

    def __init__(self, smoothing: float = 0.0, name: str = "smoothed_sparse_crossentropy",
                 **kwargs) -> None:
        super().__init__(name=name, **kwargs)
        self.smoothing = float(smoothing)

    def call(self, y_true, y_pred):
        ops = keras.ops
        classes = ops.shape(y_pred)[-1]
        labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        targets = ops.one_hot(labels, classes, dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(targets, y_pred,
                                                     label_smoothing=self.smoothing)

    def get_config(self) -> dict:
        return {**super().get_config(), "smoothing": self.smoothing}


def classification_loss(smoothing: float):
    """The classifier's loss: plain sparse cross-entropy, or its smoothed form."""
    if smoothing:
        return SmoothedSparseCrossentropy(smoothing)
    return keras.losses.SparseCategoricalCrossentropy()
