"""Evaluation: metrics, confusion, label folding, the ``kws evaluate`` command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import MODEL_DAMAGE, damage_model_folder, make_speech_commands, tone, write_wav

from kws import evaluate as evaluation
from kws.cli import cli
from kws.errors import KwsError, UsageError
from kws.modelfolder import ModelCard, save_keras_model, write_card

TWELVE = ["_silence_", "_unknown_", "down", "go", "left", "no", "off", "on", "right", "stop",
          "up", "yes"]
RATE = 2000


def make_model_folder(folder: Path, labels: list[str], recipe: dict | None = None) -> Path:
    """An untrained ``seed`` model at 2 kHz with a card: enough to exercise evaluation."""
    from kws.models.classifier import build_classifier

    model = build_classifier("seed", len(labels), RATE, RATE, seed=1)
    save_keras_model(folder, model)
    write_card(folder, ModelCard(labels=labels, sample_rate=RATE, input_length=RATE,
                                 arch="seed", recipe=recipe or {}))
    return folder


def make_test_layout(root: Path) -> Path:
    """A tiny 12-label test layout: yes/, no/, _silence_/ and _unknown_/ (cat, dog)."""
    rng = np.random.default_rng(3)
    for word, frequency in (("yes", 440.0), ("no", 880.0)):
        for n in range(3):
            write_wav(root / word / f"spk{n}abc_nohash_0.wav", tone(frequency * (1 + n / 50)))
    for n in range(2):
        write_wav(root / "_silence_" / f"{n}.wav", (0.05 * rng.standard_normal(16000)))
    for word in ("cat", "dog"):
        write_wav(root / "_unknown_" / f"{word}_spk9abc_nohash_0.wav", tone(300.0))
    return root


@pytest.fixture(scope="module")
def superset_model(tmp_path_factory) -> Path:
    """A model knowing more words than the test layout: cat, dog and up fold to _unknown_."""
    labels = ["_silence_", "_unknown_", "cat", "dog", "no", "up", "yes"]
    return make_model_folder(tmp_path_factory.mktemp("models") / "superset", labels)


@pytest.fixture
def test_layout(tmp_path) -> Path:
    return make_test_layout(tmp_path / "test_set")


def test_model_labels_outside_the_dataset_fold_into_unknown():
    model_labels = TWELVE[:2] + ["bed", "bird", "cat"] + TWELVE[2:] + ["zero"]
    labels, index, folded = evaluation.label_mapping(model_labels, TWELVE)
    assert labels == TWELVE
    assert folded == {"bed": "_unknown_", "bird": "_unknown_", "cat": "_unknown_",
                      "zero": "_unknown_"}
    assert [labels[i] for i in index] == [
        "_silence_", "_unknown_", "_unknown_", "_unknown_", "_unknown_", *TWELVE[2:],
        "_unknown_",
    ]


def test_without_an_unknown_label_extra_model_labels_get_their_own_column():
    labels, index, folded = evaluation.label_mapping(["a", "b", "c"], ["b", "a"])
    assert labels == ["b", "a", "c"]
    assert index.tolist() == [1, 0, 2]
    assert folded == {}


def test_class_metrics_match_hand_computation():
    confusion = np.array([[3, 1, 0], [2, 4, 0], [0, 0, 0]])
    precision, recall, f1, support = evaluation.class_metrics(confusion)
    np.testing.assert_allclose(precision, [3 / 5, 4 / 5, 0.0])
    np.testing.assert_allclose(recall, [3 / 4, 4 / 6, 0.0])
    np.testing.assert_allclose(f1[0], 2 * (3 / 5) * (3 / 4) / (3 / 5 + 3 / 4))
    assert support.tolist() == [4, 6, 0]


def test_confusion_matrix_counts_pairs():
    confusion = evaluation.confusion_matrix(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 1]), 3)
    assert confusion.tolist() == [[1, 1, 0], [0, 1, 0], [0, 1, 0]]


def test_folded_prediction_of_an_unknown_clip_is_correct():
    model_labels = ["_unknown_", "cat", "yes"]
    probabilities = np.array([[0.1, 0.8, 0.1],   # an unknown clip predicted "cat": right
                              [0.1, 0.7, 0.2],   # a "yes" clip predicted "cat": wrong
                              [0.1, 0.1, 0.8]])  # a "yes" clip predicted "yes": right
    labels, confusion, folded = evaluation.score(
        probabilities, ["_unknown_", "yes", "yes"], model_labels, ["_unknown_", "yes"])
    assert labels == ["_unknown_", "yes"]
    assert confusion.tolist() == [[1, 0], [1, 1]]
    assert folded == {"cat": "_unknown_"}


def test_evaluate_on_the_test_layout(superset_model, test_layout):
    result = evaluation.evaluate(superset_model, [test_layout], split="all")
    assert result.labels == ["_silence_", "_unknown_", "no", "yes"]
    assert result.confusion.shape == (4, 4)
    assert result.confusion.sum(axis=1).tolist() == [2, 2, 3, 3]
    assert result.folded == {"cat": "_unknown_", "dog": "_unknown_", "up": "_unknown_"}
    assert result.unknown_to_model == {}
    assert 0.0 <= result.accuracy <= 1.0


def test_labels_the_model_cannot_predict_are_reported(tmp_path, test_layout):
    model = make_model_folder(tmp_path / "small", ["_silence_", "_unknown_", "yes"])
    result = evaluation.evaluate(model, [test_layout], split="all")
    assert result.unknown_to_model == {"no": 3}
    assert result.confusion[result.labels.index("no"), result.labels.index("no")] == 0


def test_unknown_is_predictable_through_folded_words(tmp_path, test_layout):
    model = make_model_folder(tmp_path / "words", ["_silence_", "cat", "no", "yes"])
    result = evaluation.evaluate(model, [test_layout], split="all")
    assert result.folded == {"cat": "_unknown_"}
    assert result.unknown_to_model == {}


def test_training_layout_is_labelled_like_the_models_data(tmp_path):
    data = make_speech_commands(tmp_path / "sc")
    model = make_model_folder(tmp_path / "m", ["_silence_", "_unknown_", "no", "yes"],
                              recipe={"silence_percent": 50.0, "unknown_percent": 100.0})
    result = evaluation.evaluate(model, [data], split="test")
    counts = dict(zip(result.labels, result.confusion.sum(axis=1).tolist(), strict=True))
    assert counts == {"_silence_": 2, "_unknown_": 2, "no": 2, "yes": 2}


def test_cli_json_and_confusion_png(superset_model, test_layout, tmp_path):
    png = tmp_path / "confusion.png"
    result = CliRunner().invoke(cli, ["evaluate", str(superset_model), "--data",
                                      str(test_layout), "--split", "all", "--json",
                                      "--confusion-png", str(png)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) >= {"accuracy", "per_class", "confusion", "labels", "folded",
                           "unknown_to_model", "clips", "macro_f1", "failed"}
    assert np.array(report["confusion"]).shape == (4, 4)
    assert report["clips"] == 10
    assert set(report["per_class"]["yes"]) == {"precision", "recall", "f1", "support"}
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_cli_table_and_exit_code_for_unreadable_files(superset_model, test_layout):
    (test_layout / "yes" / "broken_nohash_0.wav").write_bytes(b"RIFF0000WAVEjunk")
    result = CliRunner().invoke(cli, ["evaluate", str(superset_model), "--data",
                                      str(test_layout), "--split", "all"])
    assert result.exit_code == 1
    assert "accuracy:" in result.stdout and "precision" in result.stdout
    assert "skipped 1 unreadable file(s)" in result.stderr
    assert "counted as _unknown_: cat, dog, up" in result.stderr


def test_no_readable_clip_names_each_before_the_error(superset_model, tmp_path, run_cli):
    from test_recordings import write_unreadable

    bad = write_unreadable(tmp_path / "data" / "yes")
    result = run_cli(["evaluate", str(superset_model), "--data", str(tmp_path / "data"),
                      "--split", "all"])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1 and result.stdout == ""
    assert sorted(line.split(": ")[2] for line in lines[:-1]) == [str(p) for p in bad]
    assert lines[-1] == f"kws: error: {tmp_path / 'data'}: none of the clips is readable"


def test_bad_requests_are_errors(superset_model, test_layout, tmp_path):
    with pytest.raises(UsageError, match="--split"):
        evaluation.evaluate(superset_model, [test_layout], split="everything")
    folder = make_model_folder(tmp_path / "vae", ["a", "b"])
    card = json.loads((folder / "card.json").read_text())
    (folder / "card.json").write_text(json.dumps({**card, "task": "vae"}))
    with pytest.raises(KwsError, match="needs a classifier"):
        evaluation.evaluate(folder, [test_layout], split="all")


# ----------------------------------------------------------------------------- reliability


def test_confusion_png_never_overwrites_an_input(superset_model, test_layout, run_cli):
    clip = test_layout / "yes" / "spk0abc_nohash_0.wav"
    before = clip.read_bytes()
    for target in (clip, test_layout / "new.png", superset_model / "card.json"):
        result = run_cli(["evaluate", str(superset_model), "--data", str(test_layout),
                          "--split", "all", "--confusion-png", str(target)])
        assert result.exit_code == 2, result.output
        assert "would write over the input" in result.stderr
    assert clip.read_bytes() == before
    assert not (test_layout / "new.png").exists()


def test_confusion_png_is_written_atomically(superset_model, test_layout, tmp_path, run_cli):
    png = tmp_path / "out" / "confusion.png"
    result = run_cli(["evaluate", str(superset_model), "--data", str(test_layout), "--split",
                      "all", "--json", "--confusion-png", str(png)])
    assert result.exit_code == 0, result.output
    assert [p.name for p in png.parent.iterdir()] == ["confusion.png"]


def test_entries_that_cannot_be_clips_are_warned_about(superset_model, test_layout, run_cli):
    import os

    words = test_layout / "yes"
    (words / "dangling_nohash_0.wav").symlink_to(words / "gone.wav")
    os.mkfifo(words / "fifo_nohash_0.wav")
    (words / "folder_nohash_0.wav").mkdir()
    result = run_cli(["evaluate", str(superset_model), "--data", str(test_layout), "--split",
                      "all", "--json"])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if "kws: warning:" in line]
    for name in ("dangling", "fifo", "folder"):
        assert sum(f"{name}_nohash_0.wav" in line for line in warnings) == 1, result.stderr
    report = json.loads(result.stdout)
    assert sorted(Path(item["path"]).name for item in report["skipped"]) == [
        "dangling_nohash_0.wav", "fifo_nohash_0.wav", "folder_nohash_0.wav"]
    assert report["clips"] == 10


def test_a_folder_the_model_trained_on_part_of_is_scored_whole_with_a_warning(
        tmp_path, test_layout, run_cli):
    model = make_model_folder(tmp_path / "resplit", ["_silence_", "_unknown_", "no", "yes"],
                              recipe={"resplit": ["/elsewhere/test_set"]})
    warning = f"{test_layout}: the model was trained on part of it (--resplit)"
    whole = run_cli(["evaluate", str(model), "--data", str(test_layout), "--split", "all"])
    assert whole.exit_code == 0, whole.output
    assert warning in " ".join(whole.stderr.split()) and f"--resplit {test_layout}" in whole.stderr
    split = run_cli(["evaluate", str(model), "--data", str(test_layout), "--split", "all",
                     "--resplit", str(test_layout)])
    assert split.exit_code == 0, split.output
    assert "--resplit" not in split.stderr
    other = make_model_folder(tmp_path / "plain", ["_silence_", "_unknown_", "no", "yes"])
    plain = run_cli(["evaluate", str(other), "--data", str(test_layout), "--split", "all"])
    assert plain.exit_code == 0 and "--resplit" not in plain.stderr


@pytest.mark.parametrize("damage", MODEL_DAMAGE)
def test_a_damaged_model_folder_is_one_line(superset_model, test_layout, tmp_path, damage,
                                            run_cli):
    import shutil

    broken = damage_model_folder(shutil.copytree(superset_model, tmp_path / "broken"), damage)
    result = run_cli(["evaluate", str(broken), "--data", str(test_layout), "--split", "all"])
    assert result.exit_code == 1 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(f"kws: error: {broken}")


def test_missing_folders_are_usage_errors(superset_model, test_layout, tmp_path, run_cli):
    missing_model = run_cli(["evaluate", str(tmp_path / "none"), "--data", str(test_layout)])
    missing_data = run_cli(["evaluate", str(superset_model), "--data", str(tmp_path / "none")])
    assert (missing_model.exit_code, missing_data.exit_code) == (2, 2)
    assert "no such model folder" in missing_model.stderr
    assert "no such dataset folder" in missing_data.stderr


def test_a_current_export_is_evaluated_with_litert_without_tensorflow(tmp_path_factory):
    """With a current model.tflite, kws evaluate never imports TensorFlow, and agrees with
    the Keras model's evaluation."""
    from test_predict import run_in_fresh_process, train_tone_model, write_tone_dataset

    from kws.export import export_tflite

    data = write_tone_dataset(tmp_path_factory.mktemp("tones") / "data")
    model = train_tone_model(tmp_path_factory.mktemp("model") / "tones")
    export_tflite(model, data=[data])
    done = run_in_fresh_process(["evaluate", str(model), "--data", str(data), "--split", "all",
                                 "--json"])
    assert "STATUS 0 []" in done.stderr, done.stderr
    report = json.loads(done.stdout)
    assert report["runner"] == "tflite"
    keras = evaluation.evaluate(model, [data], split="all", runner="keras")
    assert keras.runner == "keras"
    assert abs(report["accuracy"] - keras.accuracy) <= 0.02
