"""Training: data preparation, batches, checkpoints, resume and the model folder.

Models are the ``seed`` architecture at 2 kHz trained for one or two steps per epoch on a
tiny synthetic dataset, so the whole file runs in seconds.
"""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import SYNTHETIC_WORDS, make_speech_commands
from rich.console import Console

from kws import training
from kws.cli import cli, main
from kws.errors import UsageError
from kws.modelfolder import load_keras_model, read_card

TINY = {"arch": "seed", "rate": 2000, "batch_size": 4, "epochs": 2, "words": None,
        "workers": 1}
#: The same run as TINY, as command-line options.
TINY_ARGS = ["--words", "all", "--arch", "seed", "--rate", "2000", "--batch-size", "4",
             "--epochs", "2", "--workers", "1"]


def quiet() -> Console:
    """A console writing to memory (not a terminal), to read what was printed."""
    return Console(file=io.StringIO(), force_terminal=False, width=200)


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
        f"--batch-size 4 --out {out} --workers 1 --json"
    )
    for key in ("train_accuracy", "validation_accuracy", "test_accuracy"):
        assert 0.0 <= card.metrics[key] <= 1.0
    assert card.metrics["epochs"] == 2 and len(card.metrics["history"]["loss"]) == 2
    assert card.parameters > 0 and card.multiply_adds > 0
    assert summary["metrics"]["test_accuracy"] == card.metrics["test_accuracy"]
    assert summary["labels"] == card.labels
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (out / training.CHECKPOINT_FOLDER).exists()
    model = load_keras_model(out)
    probabilities = model.predict(np.zeros((3, 2000), np.float32), verbose=0)
    assert probabilities.shape == (3, len(card.labels))


def test_cli_refuses_to_replace_a_model(trained, tiny_data, capsys):
    out, _ = trained
    code, _, err = run_kws(["train", "--data", str(tiny_data), *TINY_ARGS, "--out", str(out)],
                           capsys)
    assert code == 2
    message = f"kws: error: {out}: already holds a model; pass --overwrite to replace it"
    assert err.strip() == message


def test_interrupted_run_resumes_to_the_same_model(trained, tiny_data, tmp_path, monkeypatch,
                                                   capsys):
    reference, _ = trained
    out = tmp_path / "resumed"
    original = training.write_checkpoint

    def interrupt_after_first_epoch(folder, epoch, *args, **kwargs):
        path = original(folder, epoch, *args, **kwargs)
        if epoch == 1:
            raise KeyboardInterrupt
        return path

    monkeypatch.setattr(training, "write_checkpoint", interrupt_after_first_epoch)
    run = training.TrainConfig(data=(str(tiny_data),), out=str(out), **TINY)
    console = quiet()
    with pytest.raises(KeyboardInterrupt):
        training.train(run, console=console)
    assert "--resume" in console.file.getvalue()
    assert [p.name for p in (out / "checkpoint").iterdir()] == ["epoch-0001"]
    assert not (out / "card.json").exists()
    monkeypatch.setattr(training, "write_checkpoint", original)

    with pytest.raises(UsageError, match="unfinished run"):
        training.train(run, console=quiet())
    with pytest.raises(UsageError, match="--batch-size"):
        training.train(training.TrainConfig(**{**run.__dict__, "batch_size": 2}),
                       resume=True, console=quiet())
    code, stdout, err = run_kws(["train", "--out", str(out), "--resume", "--json"], capsys)
    assert code == 0, err
    assert "resuming" in err and "epoch 2/2" in err and "epoch 1/2" not in err
    card, expected = read_card(out), read_card(reference)
    assert card.metrics["history"] == expected.metrics["history"]
    for mine, theirs in zip(load_keras_model(out).get_weights(),
                            load_keras_model(reference).get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)


def test_resume_needs_a_checkpoint(trained, tiny_data, tmp_path):
    out, _ = trained
    config = training.TrainConfig(data=(str(tiny_data),), **TINY)
    with pytest.raises(UsageError, match="no checkpoint"):
        training.train(training.TrainConfig(**{**config.__dict__, "out": str(tmp_path / "x")}),
                       resume=True, console=quiet())
    with pytest.raises(UsageError, match="has finished"):
        training.train(training.TrainConfig(**{**config.__dict__, "out": str(out)}),
                       resume=True, console=quiet())


def test_out_inside_the_data_is_refused(tiny_data):
    config = training.TrainConfig(data=(str(tiny_data),), out=str(tiny_data / "model"), **TINY)
    with pytest.raises(UsageError, match="inside the dataset"):
        training.train(config, console=quiet())


def test_unreadable_files_are_skipped_with_one_warning(tmp_path):
    root = make_speech_commands(tmp_path / "data")
    for n in range(5):
        (root / "yes" / f"broken{n}_nohash_0.wav").write_bytes(b"RIFF nonsense")
    config = training.resolve(training.TrainConfig(data=(str(root),), **TINY))
    console = quiet()
    data = training.prepare_data(config, console)
    printed = console.file.getvalue()
    assert printed.count("warning") == 1
    assert "skipped 5 unreadable file(s)" in printed and "and 2 more" in printed
    assert len(data.failed) == 5
    assert data.summary["skipped_files"] == 5
    assert len(data.x["training"]) == len(data.y["training"]) == 14
    assert data.x["training"].shape[1] == 2000


def test_batches_are_pure_functions_of_their_step(tmp_path):
    root = make_speech_commands(tmp_path / "data")
    config = training.resolve(training.TrainConfig(data=(str(root),), **TINY))
    data = training.prepare_data(config, quiet())
    first = training.training_batches(data, config)
    again = training.training_batches(data, config)
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
    streamed = list(first.dataset(1, 2, workers=3).as_numpy_iterator())
    assert len(streamed) == first.steps
    for index, (x, y) in enumerate(streamed):
        expected_x, expected_y = first.batch(1, index)
        np.testing.assert_array_equal(x, expected_x)
        np.testing.assert_array_equal(y, expected_y)


def test_checkpoint_writing_is_atomic(tmp_path, monkeypatch):
    state = {"epoch": 1, "config": {}, "labels": []}
    arrays = {"model": [np.ones(3)], "optimizer": [np.zeros(2)]}
    training.write_checkpoint(tmp_path, 1, state, arrays)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        training.write_checkpoint(tmp_path, 2, {**state, "epoch": 2}, arrays)
    folder = tmp_path / training.CHECKPOINT_FOLDER
    assert sorted(os.listdir(folder)) == ["epoch-0001"]
    latest = training.latest_checkpoint(tmp_path)
    assert training.read_checkpoint(latest)["epoch"] == 1
    restored = training.read_checkpoint_arrays(latest)
    np.testing.assert_array_equal(restored["model"][0], np.ones(3))


def test_learning_rate_warms_up_then_decays_to_zero():
    config = training.TrainConfig(learning_rate=0.01, warmup_epochs=1.0, epochs=4)
    schedule = training._learning_rate(config, steps_per_epoch=10)
    values = [float(schedule(step)) for step in (0, 5, 10, 25, 40)]
    assert values[0] == 0.0
    assert values[1] == pytest.approx(0.005)
    assert values[2] == pytest.approx(0.01)
    assert 0.0 < values[3] < 0.01
    assert values[4] == pytest.approx(0.0, abs=1e-9)


def test_config_round_trips_through_json():
    config = training.TrainConfig(data=("a", "b"), words=("yes", "no"), augmentation={"speed": 0})
    assert training.TrainConfig.from_json(json.loads(json.dumps(config.to_json()))) == config


@pytest.mark.parametrize("change, message", [
    ({"arch": "nonexistent"}, "unknown architecture"),
    ({"epochs": 0}, "--epochs"),
    ({"validation_percent": 60, "testing_percent": 50}, "under 100"),
    ({"augmentation": {"volume": 1}}, "unknown augmentation"),
])
def test_bad_options_are_usage_errors(change, message):
    with pytest.raises(UsageError, match=message):
        training.resolve(training.TrainConfig(**change))
