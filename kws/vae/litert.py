"""A ``kws vae`` model's encoder and decoder as LiteRT files, and running them.

``kws vae train`` ends with :func:`export_networks`: the decoder (``decoder.tflite``) and
the encoder's mean (``encoder.tflite``) are converted from ``model.keras``, checked
against Keras on a few latent codes (the decoder) and on the spectrograms they decode to
(the encoder), written atomically and recorded in the card's ``exports`` with the largest
output difference. :class:`LiteRTNetwork` runs such a file with the LiteRT interpreter
(``ai-edge-litert``), which loads in milliseconds and never imports TensorFlow: that is
what makes ``kws vae sample``, ``reconstruct`` and ``interpolate`` answer in a second or
two instead of the many seconds TensorFlow takes to import.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kws import files
from kws.errors import KwsError
from kws.export import run_converter
from kws.modelfolder import (
    KERAS_FILE,
    ExportRecord,
    file_sha256,
    load_keras_model,
    read_card,
    write_card,
)
from kws.runtime import import_tensorflow, silenced_fd

DECODER_FILE = "decoder.tflite"
ENCODER_FILE = "encoder.tflite"
#: The exported files, in the order they are written.
NETWORK_FILES = (DECODER_FILE, ENCODER_FILE)
#: The name of the one signature of every exported network.
_SIGNATURE = "serve"
#: Largest output difference (standardised units) accepted between LiteRT and Keras.
MAX_DIFFERENCE = 1e-3


class LiteRTNetwork:
    """A network exported by :func:`export_networks`: ``(inputs, labels) -> outputs``.

    The batch size of each call is free (the signature runner resizes its inputs).
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.path = Path(path)
        try:
            # The interpreter prints an INFO line on stderr when it creates its CPU delegate.
            with silenced_fd(2):
                interpreter = Interpreter(model_path=str(self.path),
                                          num_threads=threads or os.cpu_count() or 1)
                interpreter.allocate_tensors()
                self._run = interpreter.get_signature_runner(_SIGNATURE)
        except (ValueError, RuntimeError) as error:
            raise KwsError(f"{self.path}: cannot load TFLite model ({error})") from None
        details = self._run.get_input_details()
        if set(details) != {"x", "label"}:
            raise KwsError(f"{self.path}: not a kws vae network (inputs {sorted(details)})")
        self.input_shape = tuple(int(d) for d in details["x"]["shape_signature"][1:])
        self.num_labels = int(details["label"]["shape_signature"][-1])

    def __call__(self, x: np.ndarray, labels: np.ndarray) -> np.ndarray:
        outputs = self._run(x=np.ascontiguousarray(x, dtype=np.float32),
                            label=np.ascontiguousarray(labels, dtype=np.float32))
        return np.asarray(next(iter(outputs.values())), dtype=np.float32)


def convert_network(network, input_shape: tuple[int, ...], num_labels: int) -> bytes:
    """TFLite flatbuffer of a two-input network ``[x, label] -> output`` (builtin ops only).

    The signature ``serve`` takes ``x`` ``(batch, *input_shape)`` and ``label``
    ``(batch, num_labels)``, batch left free; a network with several outputs (the VAE's
    encoder: mean and log variance) keeps the first.
    """
    tf = import_tensorflow()
    import keras

    def serve(x, label):
        outputs = network([x, label], training=False)
        return outputs[0] if isinstance(outputs, list | tuple) else outputs

    signature = [tf.TensorSpec([None, *input_shape], tf.float32, name="x"),
                 tf.TensorSpec([None, num_labels], tf.float32, name="label")]
    with tempfile.TemporaryDirectory(prefix="kws-vae-export-") as saved:
        archive = keras.export.ExportArchive()
        archive.track(network)
        archive.add_endpoint(_SIGNATURE, serve, input_signature=signature)
        archive.write_out(saved, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved, signature_keys=[_SIGNATURE])
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        return run_converter(converter)


@dataclass(frozen=True)
class NetworkExport:
    """One exported network: its file, size and parity with Keras."""

    file: str
    bytes: int
    #: Largest absolute output difference from Keras (standardised units).
    max_difference: float
    #: Inputs the parity was measured on.
    parity_inputs: int


def export_networks(folder: str | os.PathLike, parity_codes: int = 8,
                    seed: int = 0) -> list[NetworkExport]:
    """Write ``decoder.tflite`` and ``encoder.tflite`` of a ``kws vae`` folder; record them.

    Parity: the decoder on ``parity_codes`` codes drawn from ``N(0, I)`` (one label each,
    in turn), the encoder on the spectrograms the Keras decoder makes of them. A file
    whose outputs differ from Keras's by more than :data:`MAX_DIFFERENCE` is not kept
    (``KwsError``), nor are any after it.
    """
    folder = Path(folder)
    card = read_card(folder)
    model = load_keras_model(folder)
    decoder, encoder = model.get_layer("decoder"), model.get_layer("encoder")
    latent_dim, num_labels = int(decoder.inputs[0].shape[-1]), len(card.labels)
    rng = np.random.default_rng(seed)
    codes = rng.standard_normal((parity_codes, latent_dim)).astype(np.float32)
    labels = np.eye(num_labels, dtype=np.float32)[np.arange(parity_codes) % num_labels]
    spectrograms = np.asarray(decoder.predict([codes, labels], verbose=0), dtype=np.float32)
    checks = ((DECODER_FILE, decoder, codes), (ENCODER_FILE, encoder, spectrograms))
    written = []
    for name, network, inputs in checks:
        expected = network.predict([inputs, labels], verbose=0)
        expected = np.asarray(expected[0] if isinstance(expected, list) else expected)
        content = convert_network(network, inputs.shape[1:], num_labels)
        with files.atomic_write(folder / name, suffix=".tflite") as temporary:
            temporary.write_bytes(content)
            got = LiteRTNetwork(temporary)(inputs, labels)
            difference = float(np.max(np.abs(got - expected)))
            if not difference <= MAX_DIFFERENCE:
                raise KwsError(f"{folder / name}: outputs differ from the Keras model's by "
                               f"{difference:.3g} (more than {MAX_DIFFERENCE}); not written")
        written.append(NetworkExport(name, len(content), difference, len(inputs)))
    _record(folder, written)
    return written


def _record(folder: Path, exports: list[NetworkExport]) -> None:
    """Record the exports in the card, tied to the current ``model.keras`` by its SHA-256."""
    card = read_card(folder)
    digest = file_sha256(folder / KERAS_FILE)
    for export in exports:
        card.exports[export.file] = ExportRecord(
            keras_sha256=digest, quantization="float32", bytes=export.bytes,
            parity_clips=export.parity_inputs,
            max_output_difference=round(export.max_difference, 8))
    write_card(folder, card)


def remove_exports(folder: str | os.PathLike) -> None:
    """Delete the exported networks of a folder (stale once ``model.keras`` changes)."""
    for name in NETWORK_FILES:
        (Path(folder) / name).unlink(missing_ok=True)
