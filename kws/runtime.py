"""The only module that touches TensorFlow's process state.

TensorFlow is imported here, once and quietly (its C++ libraries log through absl on the
raw stderr before any Python setting can hide them); the GPU check, the Keras precision
policy and the ``tf.distribute`` strategy of a training run live here too. Nothing in this
module is imported by ``kws --help`` or by the LiteRT inference paths.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

#: Choices of ``--distribute``.
DISTRIBUTE_CHOICES = ("none", "mirrored", "multiworker")


@contextlib.contextmanager
def silenced_fd(fd: int) -> Iterator[None]:
    """Send a file descriptor to /dev/null for the duration (silences C libraries' logs)."""
    try:
        saved = os.dup(fd)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


@contextlib.contextmanager
def quiet_native_output() -> Iterator[None]:
    """Silence what native libraries print on stdout and stderr inside the block."""
    sys.stdout.flush()
    sys.stderr.flush()
    with silenced_fd(1), silenced_fd(2):
        yield


def _quiet_environment() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")


def import_tensorflow():
    """Import TensorFlow (and Keras on it) without the log lines it prints at start-up.

    Errors still surface as Python exceptions. Cheap after the first call.
    """
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    _quiet_environment()
    sys.stderr.flush()
    with silenced_fd(2):
        import tensorflow

        tensorflow.get_logger().setLevel("ERROR")
        with contextlib.suppress(Exception):
            tensorflow.config.list_physical_devices("GPU")
    return tensorflow


def import_keras():
    """Import Keras after TensorFlow was imported quietly (Keras imports its backend)."""
    if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
        import_tensorflow()
    import keras

    return keras


def has_gpu() -> bool:
    """Whether the Keras backend sees a GPU."""
    keras = import_keras()
    if keras.backend.backend() == "tensorflow":
        return bool(import_tensorflow().config.list_physical_devices("GPU"))
    if keras.backend.backend() == "jax":
        import jax

        return any(device.platform == "gpu" for device in jax.devices())
    return False


def precision_for_device() -> str:
    """The Keras dtype policy a run uses: mixed float16 on a GPU, float32 on a CPU."""
    return "mixed_float16" if has_gpu() else "float32"


@contextlib.contextmanager
def precision_policy(name: str) -> Iterator[None]:
    """Use a Keras dtype policy inside the block and restore the previous one after."""
    keras = import_keras()
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def distribution_strategy(name: str):
    """The ``tf.distribute`` strategy named by ``--distribute`` (None for ``none``)."""
    if name == "none":
        return None
    tf = import_tensorflow()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown distribution strategy {name!r}")


def replicas_in_sync() -> int:
    """How many replicas the ``tf.distribute`` strategy in scope trains on (1 without one).

    No strategy can be in scope before TensorFlow is imported, so this does not import it:
    models build under another Keras backend (``KERAS_BACKEND=jax``) without TensorFlow.
    """
    tensorflow = sys.modules.get("tensorflow")
    if tensorflow is None:
        return 1
    return tensorflow.distribute.get_strategy().num_replicas_in_sync


def strategy_scope(strategy) -> contextlib.AbstractContextManager:
    """The strategy's scope, or a no-op context without a strategy."""
    return strategy.scope() if strategy is not None else contextlib.nullcontext()
