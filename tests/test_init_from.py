"""``kws train --init-from MODEL``: fine-tune a trained classifier on new data and labels.

The weight transfer is tested on freshly built models (no training); the run end to end on
the ``seed`` architecture at 2 kHz, one step per epoch, on tiny synthetic datasets whose
label sets differ by one word each way (``up`` dropped, ``down`` added).
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import make_speech_commands
from rich.console import Console

from kws.classifier import ClassifierConfig, ClassifierTask
from kws.classifier import train as train_classifier
from kws.cli import main
from kws.cli._training import RichEvents
from kws.errors import UsageError
from kws.modelfolder import ModelCard, Task, load_keras_model, read_card, write_card
from kws.models.classifier import OUTPUT_LAYER, build_classifier, transfer_weights
from kws.train import check_run

SOURCE_LABELS = ["_silence_", "no", "up", "yes"]
TARGET_LABELS = ["_silence_", "down", "no", "yes"]
TINY = {"arch": "seed", "rate": 2000, "batch_size": 4, "epochs": 1, "steps_per_epoch": 1,
        "words": None, "workers": 1, "export": False}


def events() -> RichEvents:
    return RichEvents(Console(file=io.StringIO(), force_terminal=False, width=200))


def trained_like(arch: str, labels: list[str], input_length: int = 2000) -> keras.Model:
    """A model whose every weight (batch-norm statistics too) differs from a fresh one's."""
    model = build_classifier(arch, len(labels), 2000, input_length, seed=1)
    rng = np.random.default_rng(1)
    model.set_weights([weight + rng.normal(0.5, 0.1, weight.shape).astype(weight.dtype)
                       for weight in model.get_weights()])
    return model


def run_kws(args: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    return exit_info.value.code, capsys.readouterr().err


@pytest.mark.parametrize("arch", ["seed", "tcres"])
def test_transfer_copies_the_body_and_the_columns_of_kept_labels(arch):
    source = trained_like(arch, SOURCE_LABELS)
    target = build_classifier(arch, len(TARGET_LABELS), 2000, 2000, seed=2)
    fresh_output = [weight.copy() for weight in target.get_layer(OUTPUT_LAYER).get_weights()]
    moved = transfer_weights(source, target, SOURCE_LABELS, TARGET_LABELS)

    assert moved["labels_kept"] == ["_silence_", "no", "yes"]
    assert moved["labels_new"] == ["down"] and moved["labels_dropped"] == ["up"]
    assert moved["layers_fresh"] == []
    weighted = [layer.name for layer in target.layers
                if layer.weights and layer.name != OUTPUT_LAYER]
    assert moved["layers_copied"] == weighted
    for name in weighted:
        for mine, theirs in zip(target.get_layer(name).get_weights(),
                                source.get_layer(name).get_weights(), strict=True):
            np.testing.assert_array_equal(mine, theirs)
    kernel, bias = target.get_layer(OUTPUT_LAYER).get_weights()
    source_kernel, source_bias = source.get_layer(OUTPUT_LAYER).get_weights()
    for label in moved["labels_kept"]:
        mine, theirs = TARGET_LABELS.index(label), SOURCE_LABELS.index(label)
        np.testing.assert_array_equal(kernel[:, mine], source_kernel[:, theirs])
        assert bias[mine] == source_bias[theirs]
    new = TARGET_LABELS.index("down")
    np.testing.assert_array_equal(kernel[:, new], fresh_output[0][:, new])
    assert bias[new] == fresh_output[1][new]


def test_layers_whose_shapes_differ_keep_their_fresh_weights():
    """The seed model's output layer sees the flattened clip: a longer clip changes it."""
    source = trained_like("seed", SOURCE_LABELS, input_length=2000)
    target = build_classifier("seed", len(SOURCE_LABELS), 2000, 2400, seed=2)
    fresh = [weight.copy() for weight in target.get_layer(OUTPUT_LAYER).get_weights()]
    moved = transfer_weights(source, target, SOURCE_LABELS, SOURCE_LABELS)
    assert moved["labels_kept"] == [] and moved["labels_new"] == SOURCE_LABELS
    assert "conv0" in moved["layers_copied"]
    for mine, theirs in zip(target.get_layer(OUTPUT_LAYER).get_weights(), fresh, strict=True):
        np.testing.assert_array_equal(mine, theirs)


def test_labels_that_do_not_match_the_outputs_are_refused():
    source = trained_like("seed", SOURCE_LABELS)
    target = build_classifier("seed", 3, 2000, 2000)
    with pytest.raises(ValueError, match="3 outputs for 4 labels"):
        transfer_weights(source, target, SOURCE_LABELS, TARGET_LABELS)


@pytest.fixture(scope="module")
def source_model(tmp_path_factory, tiny_data) -> Path:
    """A classifier trained one step on yes, no and up."""
    out = tmp_path_factory.mktemp("models") / "source"
    train_classifier(ClassifierConfig(data=(str(tiny_data),), out=str(out), **TINY),
                     events=events())
    return out


@pytest.fixture(scope="module")
def new_words(tmp_path_factory) -> Path:
    """The tiny dataset with ``up`` renamed ``down``: one word dropped, one added."""
    root = make_speech_commands(tmp_path_factory.mktemp("new") / "speech_commands")
    shutil.move(root / "up", root / "down")
    for name in ("validation_list.txt", "testing_list.txt"):
        lists = root / name
        lists.write_text(lists.read_text().replace("up/", "down/"))
    return root


class FirstWeights(keras.callbacks.Callback):
    """Keeps the model's weights as training begins (after build, before any step)."""

    def on_train_begin(self, logs=None):
        self.weights = {layer.name: layer.get_weights() for layer in self.model.layers}


def test_a_run_starts_from_the_source_and_records_it(source_model, new_words, tmp_path):
    out = tmp_path / "fine_tuned"
    first = FirstWeights()
    config = ClassifierConfig(data=(str(new_words),), out=str(out), init_from=str(source_model),
                              **{**TINY, "arch": None, "rate": None})
    train_classifier(config, events=events(), callbacks=[first])

    card, source = read_card(out), load_keras_model(source_model)
    assert card.labels == TARGET_LABELS and card.sample_rate == 2000 and card.arch == "seed"
    assert card.recipe["init_from"] == {
        "model": str(source_model), "labels_kept": ["_silence_", "no", "yes"],
        "labels_new": ["down"], "labels_dropped": ["up"],
        "layers_copied": len([layer for layer in source.layers
                              if layer.weights and layer.name != OUTPUT_LAYER]),
        "layers_fresh": []}
    for mine, theirs in zip(first.weights["conv0"], source.get_layer("conv0").get_weights(),
                            strict=True):
        np.testing.assert_array_equal(mine, theirs)
    kernel = first.weights[OUTPUT_LAYER][0]
    np.testing.assert_array_equal(kernel[:, TARGET_LABELS.index("no")],
                                  source.get_layer(OUTPUT_LAYER).get_weights()[0][:, 1])


def test_arch_and_rate_default_to_the_source_models(source_model, new_words):
    config = check_run(ClassifierTask(), ClassifierConfig(
        data=(str(new_words),), init_from=str(source_model), words=None)).config
    assert (config.arch, config.rate, config.init_from) == ("seed", 2000, str(source_model))


def test_default_names_the_shipped_model(source_model, new_words, monkeypatch, tmp_path):
    monkeypatch.setenv("KWS_DEFAULT_MODEL", str(source_model))
    monkeypatch.chdir(tmp_path)
    config = check_run(ClassifierTask(), ClassifierConfig(
        data=(str(new_words),), init_from="default", out="tuned")).config
    assert config.init_from == str(source_model)


@pytest.mark.parametrize(("args", "message"), [
    (["--init-from", "{tmp}/nowhere"], "--init-from {tmp}/nowhere: no such model folder"),
    (["--init-from", "{data}"], "--init-from {data}: not a kws model folder (no card.json)"),
    (["--init-from", "{vae}"], "--init-from {vae}: a vae model, not a classifier model"),
    (["--init-from", "{model}", "--arch", "tcres"],
     "--arch tcres: the --init-from model {model} has arch seed"),
    (["--init-from", "{model}", "--rate", "4000"],
     "--rate 4000: the --init-from model {model} has rate 2000"),
    (["--init-from", "{model}", "--out", "{model}", "--overwrite"],
     "--out {model}: would write over the input {model}"),
])
def test_bad_init_from_is_a_one_line_usage_error(source_model, new_words, tmp_path, capsys,
                                                 args, message):
    vae = tmp_path / "vae"
    vae.mkdir()
    write_card(vae, ModelCard(labels=["_unknown_", "yes"], sample_rate=16000,
                              input_length=16000, arch="vae", task=Task.VAE))
    names = {"tmp": tmp_path, "data": new_words, "vae": vae, "model": source_model}
    args = [arg.format(**names) for arg in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "out")]
    code, err = run_kws(["train", "--data", str(new_words), "--no-export", *args], capsys)
    assert code == 2
    assert err.startswith(f"kws: error: {message.format(**names)}") and err.count("\n") == 1
    assert (source_model / "model.keras").is_file()
    assert not (tmp_path / "out").exists()


def test_init_from_is_checked_before_tensorflow_loads(source_model, new_words, project_env,
                                                      tmp_path):
    script = ("import sys\nfrom kws.cli import main\ntry:\n    main(sys.argv[1:])\n"
              "finally:\n    print('tensorflow' in sys.modules)\n")
    args = ["train", "--data", str(new_words), "--init-from", str(source_model), "--arch",
            "tcres", "--out", str(tmp_path / "out")]
    done = subprocess.run([sys.executable, "-c", script, *args], env=project_env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "--arch tcres: the --init-from model" in done.stderr
    assert done.stdout.strip() == "False"


def test_a_resumed_run_keeps_its_checkpoint(source_model, new_words, tmp_path):
    """On --resume the checkpoint's weights, not the source's, continue training."""
    out = tmp_path / "resumed"
    config = ClassifierConfig(data=(str(new_words),), out=str(out), init_from=str(source_model),
                              **{**TINY, "epochs": 2})

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.weights = self.model.get_layer("conv0").get_weights()
            raise KeyboardInterrupt

    interrupt = Interrupt()
    with pytest.raises(KeyboardInterrupt):
        train_classifier(config, events=events(), callbacks=[interrupt])
    with pytest.raises(UsageError, match="cannot resume with different --init-from"):
        train_classifier(ClassifierConfig(**{**config.__dict__, "init_from": None}),
                         resume=True, events=events())
    first = FirstWeights()
    train_classifier(config, resume=True, events=events(), callbacks=[first])
    for mine, checkpointed in zip(first.weights["conv0"], interrupt.weights, strict=True):
        np.testing.assert_array_equal(mine, checkpointed)
    assert read_card(out).recipe["init_from"]["labels_new"] == ["down"]
