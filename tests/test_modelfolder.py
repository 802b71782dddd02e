"""The typed model card: validated field by field, upgraded from version 1, written safely."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from kws import modelfolder
from kws.errors import KwsError, UsageError
from kws.modelfolder import CARD_FILE, ExportRecord, ModelCard, Task

SHIPPED = Path(__file__).resolve().parent.parent / "models" / "default"


def _folder_with(tmp_path: Path, raw) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / CARD_FILE).write_text(raw if isinstance(raw, str) else json.dumps(raw))
    return folder


def _valid() -> dict:
    return {"labels": ["yes", "no"], "sample_rate": 16000, "input_length": 16000,
            "arch": "tcres", "task": "classifier"}


def test_the_shipped_card_reads_as_a_typed_card():
    card = modelfolder.read_card(SHIPPED)
    assert card.task is Task.CLASSIFIER
    assert card.sample_rate == 16000 and len(card.labels) == 32
    assert "export" not in card.metrics
    record = card.exports[modelfolder.TFLITE_FILE]
    assert isinstance(record, ExportRecord) and len(record.keras_sha256) == 64
    assert modelfolder.export_is_current(SHIPPED, card, modelfolder.TFLITE_FILE) == (True, "")


@pytest.mark.parametrize(("raw", "message"), [
    ([], "not a model card"),
    (None, "not a model card"),
    ("{", "unreadable model card"),
    ({**_valid(), "metrics": []}, "field 'metrics' must be an object"),
    ({**_valid(), "metrics": {"export": "yes"}}, "field 'exports' must be an object"),
    ({**_valid(), "sample_rate": "sixteen"}, "field 'sample_rate' must be a whole number"),
    ({**_valid(), "sample_rate": 1}, "field 'sample_rate'"),
    ({**_valid(), "labels": []}, "field 'labels'"),
    ({**_valid(), "labels": ["a", "a"]}, "has a label twice"),
    ({**_valid(), "task": "regression"}, "field 'task' must be one of"),
    ({**_valid(), "thresholds": {"yes": 2}}, "field 'thresholds.yes'"),
    ({**_valid(), "verification": []}, "field 'verification' must be an object"),
    ({**_valid(), "verification": {"thresholds": {"yes": -1}}},
     "field 'verification.thresholds.yes'"),
    ({**_valid(), "verification": {"lookahead": "soon"}}, "field 'verification.lookahead'"),
    ({**_valid(), "verification": {"phones": 3}}, "field 'verification.phones'"),
    ({**_valid(), "exports": {"model.tflite": {"bytes": 3}}}, "keras_sha256"),
    ({k: v for k, v in _valid().items() if k != "arch"}, "field 'arch' is missing"),
    ('{"labels": ["a"], "sample_rate": NaN}', "unreadable model card"),
])
def test_a_damaged_card_is_one_line_naming_the_field(tmp_path, raw, message):
    folder = _folder_with(tmp_path, raw)
    with pytest.raises(KwsError, match=message) as caught:
        modelfolder.read_card(folder)
    assert "\n" not in str(caught.value)
    assert str(folder / CARD_FILE) in str(caught.value)


def test_missing_folders_are_usage_errors_and_tasks_are_checked(tmp_path):
    with pytest.raises(UsageError, match="no such model folder"):
        modelfolder.read_card(tmp_path / "absent")
    folder = _folder_with(tmp_path, {**_valid(), "task": "vae"})
    with pytest.raises(KwsError, match="a vae model, not a classifier model"):
        modelfolder.read_card(folder, Task.CLASSIFIER)


def test_a_file_given_as_the_model_folder_is_named_as_a_file(tmp_path):
    model_file = tmp_path / "model.tflite"
    model_file.write_bytes(b"TFL3")
    with pytest.raises(UsageError) as caught:
        modelfolder.resolve_model_dir(model_file)
    assert str(caught.value) == f"{model_file}: is a file, not a model folder"
    assert modelfolder.resolve_model_dir(tmp_path / "absent") == tmp_path / "absent"


def test_cards_round_trip_and_refuse_non_finite_metrics(tmp_path):
    card = ModelCard(labels=["a", "b"], sample_rate=8000, input_length=8000, arch="x",
                     task=Task.PHONES, thresholds={"a": 0.5},
                     exports={"model.tflite": ExportRecord("0" * 64, "float32", 10)})
    modelfolder.write_card(tmp_path, card)
    assert modelfolder.read_card(tmp_path) == card
    assert "verification" not in (tmp_path / CARD_FILE).read_text()
    card.verification = modelfolder.Verification(phones="../phones", lookahead=0.2,
                                                 thresholds={"a": 0.65})
    modelfolder.write_card(tmp_path, card)
    assert modelfolder.read_card(tmp_path) == card
    card.metrics["accuracy"] = float("nan")
    with pytest.raises(KwsError, match="metrics.accuracy"):
        modelfolder.write_card(tmp_path, card)
    assert modelfolder.read_card(tmp_path).metrics == {}


def test_a_stale_export_is_detected(tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(SHIPPED, folder)
    card = modelfolder.read_card(folder)
    with open(folder / modelfolder.KERAS_FILE, "ab") as handle:
        handle.write(b"\0")
    current, reason = modelfolder.export_is_current(folder, card, modelfolder.TFLITE_FILE)
    assert not current and "older model.keras" in reason


@pytest.mark.parametrize(("content", "reason"), [
    (b"", "empty file"),
    (b"this is not a zip archive", "not a .keras file: not a zip archive"),
])
def test_a_broken_keras_file_is_named_in_one_line(tmp_path, content, reason):
    folder = _folder_with(tmp_path, _valid())
    (folder / modelfolder.KERAS_FILE).write_bytes(content)
    with pytest.raises(KwsError) as raised:
        modelfolder.load_keras_model(folder)
    message = str(raised.value)
    assert message == f"{folder / modelfolder.KERAS_FILE}: cannot load Keras model ({reason})"
    assert "\n" not in message and "File not found" not in message


def test_a_damaged_zip_keras_file_is_one_line(tmp_path):
    folder = _folder_with(tmp_path, _valid())
    shutil.copy(SHIPPED / modelfolder.KERAS_FILE, folder / modelfolder.KERAS_FILE)
    with (folder / modelfolder.KERAS_FILE).open("r+b") as handle:
        handle.seek(200)
        handle.write(b"\0" * 4000)
    with pytest.raises(KwsError) as raised:
        modelfolder.load_keras_model(folder)
    assert "cannot load Keras model" in str(raised.value) and "\n" not in str(raised.value)
