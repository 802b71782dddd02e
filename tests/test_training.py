"""Training: the engine (resume, checkpoints, locks, multi-worker) and the classifier task.

The engine's tests use a tiny fake task (``fake_task.py``: a ten-parameter Keras model on
random arrays); the classifier's are the ``seed`` architecture at 2 kHz trained for a few
steps per epoch on a tiny synthetic dataset, so the whole file runs in about a minute.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import SYNTHETIC_WORDS, make_speech_commands
from fake_task import WORKER_VALIDATION, FakeTask, fake_config
from rich.console import Console

from kws import files
from kws.classifier import ClassifierConfig, ClassifierTask
from kws.classifier import train as train_classifier
from kws.cli import cli, main
from kws.cli._training import RichEvents
from kws.errors import KwsError, UsageError
from kws.infer import open_runner
from kws.modelfolder import TFLITE_FILE, export_is_current, load_keras_model, read_card
from kws.report import training_summary_table
from kws.train import batch_dataset, check_run, fit
from kws.train import checkpoints as ckpt
from kws.train.checkpoints import CheckpointState
from kws.train.events import TrainEvents
from kws.train.optim import learning_rate_schedule, weight_average

TINY = {"arch": "seed", "rate": 2000, "batch_size": 4, "epochs": 2, "words": None,
        "workers": 1, "export": False, "augment": True}
#: The same run as TINY, as command-line options, but exporting model.tflite (the default:
#: only the shared ``trained`` run trains with these).
TINY_ARGS = ["--words", "all", "--arch", "seed", "--rate", "2000", "--batch-size", "4",
             "--epochs", "2", "--workers", "1", "--augment"]


def quiet() -> Console:
    """A console writing to memory (not a terminal), to read what was printed."""
    return Console(file=io.StringIO(), force_terminal=False, width=200)


def events(console: Console | None = None) -> RichEvents:
    """The CLI's renderer of training events on ``console`` (a quiet one by default)."""
    return RichEvents(console or quiet())


def resolved(config: ClassifierConfig) -> ClassifierConfig:
    """A classifier configuration with its defaults filled in and checked."""
    return check_run(ClassifierTask(), config).config


class InterruptAfter(keras.callbacks.Callback):
    """Ctrl-C at the end of an epoch (after the engine wrote its checkpoint)."""

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epoch:
            raise KeyboardInterrupt


def run_kws(args: list[str], capsys) -> tuple[int, str, str]:
    """Run ``kws`` in-process through :func:`kws.cli.main`; return (code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_data):
    """One uninterrupted two-epoch run of ``kws train``, shared by the tests."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KWS_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        out = tmp_path_factory.mktemp("models") / "tiny"
        args = ["train", "--data", str(tiny_data), *TINY_ARGS, "--out", str(out), "--json"]
        result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout)


def test_model_folder_has_card_curves_and_loadable_model(trained, tiny_data):
    out, summary = trained
    card = read_card(out)
    assert card.labels == ["_silence_", *sorted(SYNTHETIC_WORDS)]
    assert (card.arch, card.sample_rate, card.input_length) == ("seed", 2000, 2000)
    assert card.data["folders"] == [str(tiny_data)]
    assert card.data["counts"]["validation"]["yes"] == 2
    assert card.data["words"] == "all"
    assert card.recipe["batch_size"] == 4 and card.recipe["augmentation"]["shift"] > 0
    assert card.recipe["command"] == (
        f"kws train --data {tiny_data} --words all --arch seed --rate 2000 --epochs 2 "
        f"--batch-size 4 --out {out} --augment --workers 1 --json"
    )
    for key in ("train_accuracy", "validation_accuracy", "test_accuracy"):
        assert 0.0 <= card.metrics[key] <= 1.0
    assert card.metrics["epochs"] == 2 and len(card.metrics["history"]["loss"]) == 2
    assert card.parameters > 0 and card.multiply_adds > 0
    assert summary["metrics"]["test_accuracy"] == card.metrics["test_accuracy"]
    assert summary["labels"] == card.labels
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (out / ckpt.CHECKPOINT_FOLDER).exists()
    model = load_keras_model(out)
    probabilities = model.predict(np.zeros((3, 2000), np.float32), verbose=0)
    assert probabilities.shape == (3, len(card.labels))


def test_training_on_a_gpu_uses_mixed_precision_and_saves_float32(tiny_data, tmp_path,
                                                                  monkeypatch):
    # What a GPU run does (runtime.precision_for_device), on the CPU: the default
    # architecture trains under mixed_float16 and the saved model computes in float32.
    from kws import runtime

    monkeypatch.setenv("KWS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(runtime, "precision_for_device", lambda: "mixed_float16")
    out = tmp_path / "gpu"
    config = ClassifierConfig(data=(str(tiny_data),), **{**TINY, "arch": "tcres", "epochs": 1},
                              out=str(out))
    train_classifier(config, events=events())
    card = read_card(out)
    assert card.recipe["precision"] == "mixed_float16"
    assert np.isfinite(card.metrics["history"]["loss"]).all()
    assert {layer.compute_dtype for layer in load_keras_model(out).layers} == {"float32"}


def test_training_ends_with_a_current_tflite_model(trained, tiny_data, capsys):
    """`kws train` writes model.tflite, parity-checked and recorded; predict runs it."""
    out, summary = trained
    card = read_card(out)
    record = card.exports[TFLITE_FILE]
    assert record.quantization == "float32" and record.top1_agreement >= 0.99
    assert record.parity_clips > 0
    assert (out / TFLITE_FILE).stat().st_size == record.bytes
    assert summary["export"] == {"file": TFLITE_FILE, "bytes": record.bytes,
                                 "top1_agreement": record.top1_agreement}
    assert card.metrics["tflite_top1_agreement"] == record.top1_agreement
    assert summary["metrics"]["tflite_top1_agreement"] == record.top1_agreement
    assert export_is_current(out, card, TFLITE_FILE) == (True, "")
    runner = open_runner(out)
    assert runner.name == "tflite" and runner.notes == []
    clips = sorted(str(path) for path in (tiny_data / "yes").glob("*.wav"))[:3]
    labels = {}
    for choice in ("auto", "keras"):
        code, stdout, err = run_kws(["predict", "--model", str(out), "--runner", choice,
                                     "--format", "jsonl", *clips], capsys)
        assert code == 0 and err == "", err
        labels[choice] = [json.loads(line)["label"] for line in stdout.splitlines()]
    assert len(labels["auto"]) == 3 and labels["auto"] == labels["keras"]


def test_summary_table_shows_the_export(trained):
    _, summary = trained
    console = quiet()
    console.print(training_summary_table(summary))
    row = next(line for line in console.file.getvalue().splitlines() if "TFLite export" in line)
    kilobytes = summary["export"]["bytes"] / 1000
    agreement = 100 * summary["export"]["top1_agreement"]
    assert f"model.tflite, {kilobytes:.1f} kB, {agreement:.2f}% top-1 agreement" in row
    console = quiet()
    console.print(training_summary_table({**summary, "export": None}))
    assert "TFLite export" not in console.file.getvalue()


def test_a_failed_export_warns_and_keeps_the_model(trained, tmp_path):
    out = shutil.copytree(trained[0], tmp_path / "model")
    (out / TFLITE_FILE).unlink()
    empty = tmp_path / "empty"
    empty.mkdir()
    config = ClassifierConfig(data=(str(empty),), out=str(out), **{**TINY, "export": True})
    console = quiet()
    figures = ClassifierTask().finish(out, config, events(console))
    assert figures["export"]["file"] is None and str(empty) in figures["export"]["error"]
    printed = console.file.getvalue()
    assert printed.count("warning") == 1
    assert "model.tflite not written" in printed and f"kws export {out}" in printed
    assert not (out / TFLITE_FILE).exists()
    assert open_runner(out).name == "keras"
    console = quiet()
    console.print(training_summary_table({**trained[1], **figures}))
    assert "not written" in console.file.getvalue()


def test_export_may_change_on_resume():
    saved = ClassifierConfig(**TINY)
    assert ClassifierConfig(**{**TINY, "export": True}).resume_differences(saved) == []
    assert ClassifierConfig(**{**TINY, "seed": 1}).resume_differences(saved) == ["--seed"]


def test_a_configuration_resumes_against_its_own_checkpoint_json():
    config = ClassifierConfig(**{**TINY, "augmentation": {"snr_db": (5.0, 25.0)}})
    saved = ClassifierConfig.from_json(json.loads(json.dumps(config.to_json())))
    assert config.resume_differences(saved) == []
    louder = ClassifierConfig(**{**TINY, "augmentation": {"snr_db": (0.0, 25.0)}})
    assert louder.resume_differences(saved) == ["--augmentation"]


def test_cli_refuses_to_replace_a_model(trained, tiny_data, capsys):
    out, _ = trained
    code, _, err = run_kws(["train", "--data", str(tiny_data), *TINY_ARGS, "--out", str(out)],
                           capsys)
    assert code == 2
    message = f"kws: error: {out}: already holds a model; pass --overwrite to replace it"
    assert err.strip() == message


def test_interrupted_run_resumes_to_the_same_model(trained, tiny_data, tmp_path, capsys):
    reference, _ = trained
    out = tmp_path / "resumed"
    run = ClassifierConfig(data=(str(tiny_data),), out=str(out), **TINY)
    console = quiet()
    with pytest.raises(KeyboardInterrupt):
        train_classifier(run, events=events(console), callbacks=[InterruptAfter(1)])
    assert "--resume" in console.file.getvalue()
    assert [p.name for p in (out / "checkpoint").iterdir()] == ["epoch-0001"]
    assert not (out / "card.json").exists()

    with pytest.raises(UsageError, match="unfinished run"):
        train_classifier(run, events=events())
    with pytest.raises(UsageError, match="--batch-size"):
        train_classifier(ClassifierConfig(**{**run.__dict__, "batch_size": 2}), resume=True,
                         events=events())
    code, stdout, err = run_kws(["train", "--out", str(out), "--resume", "--no-export", "--json"],
                                capsys)
    assert code == 0, err
    assert "resuming" in err and "epoch 2/2" in err and "epoch 1/2" not in err
    card, expected = read_card(out), read_card(reference)
    assert not (out / TFLITE_FILE).exists() and card.exports == {}
    assert "export" not in json.loads(stdout)
    assert card.metrics["history"] == expected.metrics["history"]
    for mine, theirs in zip(load_keras_model(out).get_weights(),
                            load_keras_model(reference).get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)


def test_resume_needs_a_checkpoint(trained, tiny_data, tmp_path):
    out, _ = trained
    config = ClassifierConfig(data=(str(tiny_data),), **TINY)
    with pytest.raises(UsageError, match="no checkpoint"):
        train_classifier(ClassifierConfig(**{**config.__dict__, "out": str(tmp_path / "x")}),
                         resume=True, events=events())
    with pytest.raises(UsageError, match="has finished"):
        train_classifier(ClassifierConfig(**{**config.__dict__, "out": str(out)}),
                         resume=True, events=events())


def test_out_inside_the_data_is_refused(tiny_data):
    config = ClassifierConfig(data=(str(tiny_data),), out=str(tiny_data / "model"), **TINY)
    with pytest.raises(UsageError, match="inside the dataset"):
        train_classifier(config, events=events())
    same = ClassifierConfig(data=(str(tiny_data),), out=str(tiny_data), **TINY)
    with pytest.raises(UsageError, match="inside the dataset"):
        train_classifier(same, events=events())
    assert not (tiny_data / "model").exists()


def test_unreadable_files_are_skipped_with_one_warning(tmp_path):
    root = make_speech_commands(tmp_path / "data")
    for n in range(5):
        (root / "yes" / f"broken{n}_nohash_0.wav").write_bytes(b"RIFF nonsense")
    config = resolved(ClassifierConfig(data=(str(root),), **TINY))
    console = quiet()
    data = ClassifierTask().prepare(config, events(console))
    printed = console.file.getvalue()
    warnings = [line for line in printed.splitlines() if "warning" in line]
    # One warning for the five files (the tiny data also gets the small-validation one).
    assert sum("unreadable" in line for line in warnings) == 1
    assert all("unreadable" in line or "small validation split" in line for line in warnings)
    assert "skipped 5 unreadable file(s)" in printed and "and 2 more" in printed
    assert len(data.extra["failed"]) == 5
    assert data.summary["skipped_files"] == 5
    assert len(data.x["training"]) == len(data.y["training"]) == 14
    assert data.x["training"].shape[1] == 2000


def test_batches_are_pure_functions_of_their_step(tmp_path):
    root = make_speech_commands(tmp_path / "data")
    config = resolved(ClassifierConfig(data=(str(root),), **TINY))
    data = ClassifierTask().prepare(config, events())
    first = ClassifierTask().batches(config, data)
    again = ClassifierTask().batches(config, data)
    assert first.steps == len(data.x["training"]) // 4
    x0, y0 = first[0]
    x1, y1 = again[0]
    np.testing.assert_array_equal(x0, x1)
    np.testing.assert_array_equal(y0, y1)
    assert x0.shape == (4, 2000) and x0.dtype == np.float32 and y0.dtype == np.int32
    clean = data.x["training"][np.sort(first.order(0)[:4])]
    assert not np.allclose(x0, clean)
    assert not np.array_equal(first.order(1), first.order(0))
    np.testing.assert_array_equal(first[first.steps][0], first.batch(1, 0)[0])
    streamed = list(batch_dataset(first, 1, 2, workers=3).as_numpy_iterator())
    assert len(streamed) == first.steps
    for index, (x, y) in enumerate(streamed):
        expected_x, expected_y = first.batch(1, index)
        np.testing.assert_array_equal(x, expected_x)
        np.testing.assert_array_equal(y, expected_y)


def test_checkpoint_writing_is_atomic(tmp_path, monkeypatch):
    state = CheckpointState(epoch=1, labels=[], config={}, task="classifier")
    arrays = {"model": [np.ones(3)], "optimizer": [np.zeros(2)]}
    ckpt.write_checkpoint(tmp_path, state, arrays)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ckpt.write_checkpoint(tmp_path, CheckpointState(**{**state.to_json(), "epoch": 2}),
                              arrays)
    folder = tmp_path / ckpt.CHECKPOINT_FOLDER
    assert sorted(os.listdir(folder)) == ["epoch-0001"]
    latest = ckpt.latest_checkpoint(tmp_path)
    assert ckpt.read_state(latest).epoch == 1
    restored = ckpt.read_arrays(latest)
    np.testing.assert_array_equal(restored["model"][0], np.ones(3))


def test_learning_rate_warms_up_then_decays_to_zero():
    config = ClassifierConfig(learning_rate=0.01, warmup_epochs=1.0, epochs=4)
    schedule = learning_rate_schedule(config, steps_per_epoch=10)
    values = [float(schedule(step)) for step in (0, 5, 10, 25, 40)]
    assert values[0] == 0.0
    assert values[1] == pytest.approx(0.005)
    assert values[2] == pytest.approx(0.01)
    assert 0.0 < values[3] < 0.01
    assert values[4] == pytest.approx(0.0, abs=1e-9)


def test_config_round_trips_through_json():
    config = ClassifierConfig(data=("a", "b"), words=("yes", "no"), augmentation={"speed": 0})
    assert ClassifierConfig.from_json(json.loads(json.dumps(config.to_json()))) == config


@pytest.mark.parametrize("change, message", [
    ({"arch": "nonexistent"}, "unknown architecture"),
    ({"epochs": 0}, "--epochs"),
    ({"validation_percent": 60, "testing_percent": 50}, "under 100"),
    ({"augmentation": {"volume": 1}}, "unknown augmentation"),
])
def test_bad_options_are_usage_errors(change, message):
    with pytest.raises(UsageError, match=message):
        check_run(ClassifierTask(), ClassifierConfig(**change))


# ----------------------------------------------------------------------------- the engine


def weights_of(out) -> list[np.ndarray]:
    return load_keras_model(out).get_weights()


@pytest.fixture(scope="module")
def fake_runs(tmp_path_factory):
    """The fake task run straight through, and the same run interrupted after epoch 1."""
    tmp = tmp_path_factory.mktemp("fake")
    whole = fit(FakeTask(), fake_config(tmp / "whole"))
    with pytest.raises(KeyboardInterrupt):
        fit(FakeTask(), fake_config(tmp / "cut"), callbacks=[InterruptAfter(1)])
    return whole, fake_config(tmp / "cut")


def test_a_resumed_run_equals_an_uninterrupted_one(fake_runs, tmp_path):
    whole, cut = fake_runs
    copy = tmp_path / "resumed"
    shutil.copytree(cut.out, copy)
    resumed = fit(FakeTask(), type(cut)(**{**cut.__dict__, "out": str(copy)}), resume=True)
    assert resumed.history == whole.history and len(whole.history["loss"]) == 3
    for mine, theirs in zip(weights_of(resumed.out), weights_of(whole.out), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    assert read_card(resumed.out).metrics["test_mse"] == read_card(whole.out).metrics["test_mse"]
    assert not (copy / "checkpoint").exists()


def _validation_mse(out) -> float:
    """Mean squared error of a saved fake-task model on the fake task's validation split."""
    data = FakeTask().prepare(None, TrainEvents())
    predicted = load_keras_model(out).predict(data.x["validation"], verbose=0)
    return float(np.mean((predicted - data.y["validation"]) ** 2))


def test_weight_average_momentum_spans_the_epochs_asked():
    assert weight_average(fake_config(Path("/tmp")), 100) == {}
    options = weight_average(fake_config(Path("/tmp"), average_epochs=2.5), 40)
    assert options == {"use_ema": True, "ema_momentum": pytest.approx(0.99)}
    assert weight_average(fake_config(Path("/tmp"), average_epochs=0.1), 1)["ema_momentum"] == 0


def test_the_weight_average_is_what_is_validated_and_kept(fake_runs, tmp_path):
    whole, _ = fake_runs
    averaged = fit(FakeTask(), fake_config(tmp_path / "avg", average_epochs=2))
    best = int(np.argmin(averaged.history["val_loss"]))
    assert _validation_mse(averaged.out) == pytest.approx(averaged.history["val_loss"][best],
                                                          rel=1e-5)
    # The raw weights train alike (to float rounding: TensorFlow's threaded CPU reductions
    # may sum in another order on a busy machine).
    assert averaged.history["loss"] == pytest.approx(whole.history["loss"], rel=1e-6)
    assert averaged.history["val_loss"] != whole.history["val_loss"]
    raw = weights_of(whole.out)
    assert any(not np.allclose(a, b) for a, b in zip(weights_of(averaged.out), raw, strict=True))


def test_a_resumed_averaging_run_equals_an_uninterrupted_one(tmp_path):
    config = fake_config(tmp_path / "whole", average_epochs=2)
    whole = fit(FakeTask(), config)
    cut = fake_config(tmp_path / "cut", average_epochs=2)
    with pytest.raises(KeyboardInterrupt):
        fit(FakeTask(), cut, callbacks=[InterruptAfter(1)])
    resumed = fit(FakeTask(), cut, resume=True)
    assert resumed.history == whole.history
    for mine, theirs in zip(weights_of(resumed.out), weights_of(whole.out), strict=True):
        np.testing.assert_array_equal(mine, theirs)


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _object_array(path):
    with open(path, "wb") as handle:
        np.savez(handle, model_00000=np.array([{"a": 1}], dtype=object))


def _wrong_shape(path):
    with np.load(path) as stored:
        arrays = {key: stored[key] for key in stored.files}
    arrays["model_00000"] = np.zeros((7, 7), np.float32)
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def _missing_array(path):
    with np.load(path) as stored:
        arrays = {key: stored[key] for key in stored.files}
    last = max(key for key in arrays if key.startswith("optimizer_"))
    del arrays[last]
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


DAMAGE = {
    "truncated variables": ("variables.npz", _truncate),
    "empty variables": ("variables.npz", lambda path: path.write_bytes(b"")),
    "garbage variables": ("variables.npz", lambda path: path.write_bytes(os.urandom(300))),
    "object array": ("variables.npz", _object_array),
    "wrong shape": ("variables.npz", _wrong_shape),
    "wrong count": ("variables.npz", _missing_array),
    "state is a list": ("state.json", lambda path: path.write_text("[]")),
    "state lacks fields": ("state.json", lambda path: path.write_text('{"epoch": 1}')),
    "state is garbage": ("state.json", lambda path: path.write_bytes(b"\xff{not json")),
    "state.json missing": ("state.json", lambda path: path.unlink()),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_checkpoint_is_one_line_error(fake_runs, tmp_path, damage):
    _, cut = fake_runs
    copy = tmp_path / "out"
    shutil.copytree(cut.out, copy)
    name, spoil = DAMAGE[damage]
    spoil(copy / "checkpoint" / "epoch-0001" / name)
    config = type(cut)(**{**cut.__dict__, "out": str(copy)})
    with pytest.raises(KwsError) as caught:
        fit(FakeTask(), config, resume=True)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{copy / 'checkpoint' / 'epoch-0001'}: damaged checkpoint (")
    assert message.endswith("; start over with --overwrite")
    restarted = fit(FakeTask(), config, overwrite=True)
    assert restarted.summary["epochs"] == 3


def test_user_files_in_the_checkpoint_folder_survive(tmp_path):
    config = fake_config(tmp_path, epochs=1)
    notes = Path(config.out) / "checkpoint" / "notes.txt"
    notes.parent.mkdir(parents=True)
    notes.write_text("mine")
    (Path(config.out) / "checkpoint" / "epoch-old").mkdir()
    fit(FakeTask(), config)
    assert notes.read_text() == "mine" and (notes.parent / "epoch-old").is_dir()
    assert [p.name for p in notes.parent.iterdir() if p.name.startswith("epoch-0")] == []
    fit(FakeTask(), config, overwrite=True)
    assert notes.read_text() == "mine"


def test_a_second_run_on_the_same_folder_is_refused(tmp_path):
    config = fake_config(tmp_path, epochs=1)
    with files.locked_folder(config.out):
        with pytest.raises(KwsError, match="another kws run is writing there") as caught:
            fit(FakeTask(), config)
    assert "\n" not in str(caught.value)
    assert not (Path(config.out) / "card.json").exists()
    fit(FakeTask(), config)
    assert (Path(config.out) / "card.json").exists()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _run_two_workers(tmp_path: Path, project_env: dict, size: int) -> None:
    """Two worker processes on free 127.0.0.1 ports training the fake task together."""
    cluster = [f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"]
    tests = Path(__file__).resolve().parent
    workers = []
    for index in range(2):
        env = {**project_env, "PYTHONPATH": str(tests), "TF_CPP_MIN_LOG_LEVEL": "3",
               "TF_CONFIG": json.dumps({"cluster": {"worker": cluster},
                                        "task": {"type": "worker", "index": index}})}
        workers.append(subprocess.Popen(
            [sys.executable, str(tests / "fake_task.py"), str(tmp_path / f"work{size}"),
             str(tmp_path / f"out{index}" / f"v{size}"), str(size)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    outputs = []
    for worker in workers:
        try:
            outputs.append(worker.communicate(timeout=180)[0].decode(errors="replace"))
        finally:
            worker.kill()
    codes = [worker.returncode for worker in workers]
    assert codes == [0, 0], "\n".join(f"worker {i}: {out[-2000:]}"
                                       for i, out in enumerate(outputs))


def test_multiworker_two_local_workers_train_the_same_model(tmp_path, project_env):
    """MULTI-WORKER: two worker processes on 127.0.0.1 train one step, twice (about 40 s).

    The model has batch normalisation; the validation sets (9 examples, then 1) split
    unevenly between the workers (5 + 4, then 1 + 0). Both workers must end with the same
    weights, the moving statistics included, and the same card metrics, and the validation
    loss must be the whole validation set's.
    """
    for size in WORKER_VALIDATION:
        _run_two_workers(tmp_path, project_env, size)
    for size in WORKER_VALIDATION:
        folders = [tmp_path / f"out{index}" / f"v{size}" for index in range(2)]
        first, second = (json.loads((folder / "weights.json").read_text())
                         for folder in folders)
        assert len(first) == 6  # gamma, beta, moving mean and variance, kernel, bias
        assert first == second
        cards = [read_card(folder) for folder in folders]
        measured = [{key: value for key, value in card.metrics.items()
                     if key not in ("fit_time_s", "clips_per_s")} for card in cards]
        assert measured[0] == measured[1]
        metrics = measured[0]
        assert metrics["epochs"] == 1 and cards[0].recipe["distribute"] == "multiworker"
        assert metrics["history"]["val_loss"] == pytest.approx([metrics["validation_mse"]],
                                                               abs=2e-6)


# ----------------------------------------------------------------------------- the CLI


@pytest.mark.parametrize("args, code, message", [
    (["--arch", "nope"], 2, "'nope' is not one of 'seed', 'tcres'"),
    (["--data", "/nonexistent/kws-data"], 2, "/nonexistent/kws-data: no such dataset folder"),
    (["--out", "{data}/model"], 2, "inside the dataset folder"),
    (["--out", "{model}"], 2, "already holds a model; pass --overwrite"),
    (["--epochs", "0"], 2, "--epochs must be at least 1"),
])
def test_cli_checks_arguments_before_importing_tensorflow(trained, tiny_data, project_env,
                                                          args, code, message):
    model, _ = trained
    args = [arg.format(data=tiny_data, model=model) for arg in args]
    if "--data" not in args:
        args = ["--data", str(tiny_data), *args]
    script = ("import sys\nfrom kws.cli import main\ntry:\n    main(sys.argv[1:])\n"
              "finally:\n    print('tensorflow' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", script, "train", *args], env=project_env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == code, done.stderr
    assert message in done.stderr
    assert done.stderr.count("\n") == 1 or done.stderr.startswith("Usage:")
    assert done.stdout.strip() == "False"


def test_cli_says_interrupted_once(tiny_data, tmp_path, capsys, monkeypatch):
    from kws.cli import _training

    def interrupted_fit(task, config, *, events, **options):
        events.interrupted(1, Path(config.out) / "checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(_training, "fit", interrupted_fit)
    code, _, err = run_kws(["train", "--data", str(tiny_data), *TINY_ARGS, "--out",
                            str(tmp_path / "m")], capsys)
    assert code == 130
    assert err.count("kws: interrupted") == 1 and "--resume" in err


def test_a_run_without_background_warns_that_no_silence_is_made(tmp_path):
    root = make_speech_commands(tmp_path / "data")
    shutil.rmtree(root / "_background_noise_")
    console = quiet()
    data = ClassifierTask().prepare(resolved(ClassifierConfig(data=(str(root),), **TINY)),
                                    events(console))
    assert "no _silence_ class is made" in console.file.getvalue()
    assert "_silence_" not in data.labels


def test_cli_options_come_from_the_configuration():
    from kws.cli.train import command

    names = {option.name for option in command.params}
    assert {"data", "words", "arch", "epochs", "batch_size", "learning_rate", "patience",
            "seed", "out", "resume", "overwrite", "distribute", "workers", "as_json",
            "silence_percent", "validation_percent", "augment"} <= names
    arch = next(option for option in command.params if option.name == "arch")
    assert tuple(arch.type.choices) == ("seed", "tcres")


def test_architectures_listed_without_keras_match_the_models():
    from kws.classifier import ARCHITECTURES, DEFAULT_ARCH
    from kws.models import classifier as models

    assert set(ARCHITECTURES) == set(models.ARCHITECTURES)
    assert DEFAULT_ARCH == models.DEFAULT_ARCH
    assert all(models.default_sample_rate(arch) == rate for arch, rate in ARCHITECTURES.items())


def test_a_run_of_one_step_records_no_speed(tmp_path):
    """One epoch of one batch times no step: the speed is null, printed as '-', not 0."""
    from kws.report import training_summary_table

    result = fit(FakeTask(), fake_config(tmp_path, epochs=1, batch_size=32))
    assert result.summary["clips_per_s"] is None
    assert read_card(result.out).metrics["clips_per_s"] is None
    console = quiet()
    console.print(training_summary_table(result.summary))
    rows = [line for line in console.file.getvalue().splitlines() if "clips/s" in line]
    assert len(rows) == 1
    assert [cell.strip() for cell in rows[0].strip(" │|").split("│")] == ["training clips/s", "-"]
