"""A tiny task for the training engine's tests: a few-parameter Keras model on random arrays.

Importable by the tests and by the worker processes of the multi-worker test.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from kws.modelfolder import Task as TaskKind
from kws.train import Batches, Prepared, RunConfig, Task, TrainEvents, fit
from kws.train.optim import adamw

#: Examples per split and features per example.
SIZES = {"training": 32, "validation": 8, "testing": 8}
FEATURES = 4


class ArrayBatches(Batches):
    """Seeded shuffles of the training arrays, one permutation per epoch."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, seed: int) -> None:
        self.x, self.y, self.seed = x, y, seed
        self.batch_size = batch_size
        self.steps = len(x) // batch_size

    def batch(self, epoch: int, index: int):
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.x))
        rows = np.sort(order[index * self.batch_size:(index + 1) * self.batch_size])
        return self.x[rows], self.y[rows]


class FakeTask(Task):
    """Linear regression of a fixed random map, as a 'classifier' with two labels."""

    kind = TaskKind.CLASSIFIER
    monitor, mode = "val_loss", "min"
    progress = (("loss", "loss", ""), ("val_loss", "val_loss", ""))

    def prepare(self, config: RunConfig, events: TrainEvents) -> Prepared:
        rng = np.random.default_rng(1234)
        weights = rng.standard_normal((FEATURES, 2)).astype(np.float32)
        x = {split: rng.standard_normal((n, FEATURES)).astype(np.float32)
             for split, n in SIZES.items()}
        y = {split: values @ weights for split, values in x.items()}
        with events.counting("reading clips", 3) as advance:
            advance(3)
        return Prepared(["a", "b"], x, y, {"clips": dict(SIZES)}, sample_rate=1000,
                        input_length=FEATURES)

    def batches(self, config: RunConfig, data: Prepared) -> ArrayBatches:
        return ArrayBatches(data.x["training"], data.y["training"], config.batch_size,
                            config.seed)

    def build(self, config: RunConfig, data: Prepared):
        import keras

        inputs = keras.Input((FEATURES,))
        return keras.Model(inputs, keras.layers.Dense(2, name="dense")(inputs))

    def compile(self, model, config: RunConfig, steps_per_epoch: int) -> None:
        model.compile(optimizer=adamw(config, steps_per_epoch), loss="mse")

    def metrics(self, model, config: RunConfig, data: Prepared) -> dict:
        predicted = model.predict(data.x["testing"], verbose=0)
        return {"test_mse": round(float(np.mean((predicted - data.y["testing"]) ** 2)), 6)}


class NormTask(FakeTask):
    """The fake task with batch normalisation (as the real models have, through
    :func:`kws.models.classifier.batch_normalization`) and ``validation`` examples, an odd
    number that the workers cannot split evenly."""

    def __init__(self, validation: int) -> None:
        self.validation_size = validation

    def prepare(self, config: RunConfig, events: TrainEvents) -> Prepared:
        data = super().prepare(config, events)
        rng = np.random.default_rng(5678)
        x = rng.standard_normal((self.validation_size, FEATURES)).astype(np.float32)
        data.x["validation"], data.y["validation"] = x, 3 * x[:, :2] + 1
        return data

    def build(self, config: RunConfig, data: Prepared):
        import keras

        from kws.models.classifier import batch_normalization

        inputs = keras.Input((FEATURES,))
        x = keras.layers.Dense(2, name="dense")(batch_normalization("norm")(inputs))
        return keras.Model(inputs, x)

    def metrics(self, model, config: RunConfig, data: Prepared) -> dict:
        predicted = model.predict(data.x["validation"], verbose=0)
        errors = (predicted - data.y["validation"]) ** 2
        return {**super().metrics(model, config, data),
                "validation_mse": round(float(np.mean(errors)), 6)}


def fake_config(tmp: Path, **changes) -> RunConfig:
    """A run of the fake task in ``tmp`` (its 'data' folder is made empty)."""
    data = tmp / "data"
    data.mkdir(parents=True, exist_ok=True)
    values = {"data": (str(data),), "epochs": 3, "batch_size": 8, "learning_rate": 0.05,
              "patience": None, "workers": 1, "out": str(tmp / "out"), **changes}
    return RunConfig(**values)


#: Validation sizes of the multi-worker test: on two workers 5 + 4 examples, then 1 + 0.
WORKER_VALIDATION = (9, 1)


def run_worker(tmp: str, out: str, size: int) -> None:
    """One worker of the multi-worker test: train one step of :class:`NormTask` with
    ``size`` validation examples into ``out`` and write all the saved model's weights (the
    moving statistics too) there as ``weights.json``. One run per process: TensorFlow's
    collective ops take one multi-worker strategy per program."""
    from kws.modelfolder import load_keras_model

    config = fake_config(Path(tmp), out=out, epochs=1, distribute="multiworker",
                         steps_per_epoch=1)
    result = fit(NormTask(size), config)
    weights = [w.tolist() for w in load_keras_model(result.out).get_weights()]
    (Path(out) / "weights.json").write_text(json.dumps(weights))


if __name__ == "__main__":
    run_worker(sys.argv[1], sys.argv[2], int(sys.argv[3]))
