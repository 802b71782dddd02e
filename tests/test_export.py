"""``kws export``: TFLite float and int8, parity with Keras, card record, failure handling."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from test_predict import tone_clip, train_tone_model, write_tone_dataset

from kws import export
from kws.cli import main
from kws.errors import KwsError, UsageError
from kws.infer import LiteRTRunner, open_runner
from kws.modelfolder import TFLITE_FILE, TFLITE_INT8_FILE, file_sha256, read_card, write_card


@pytest.fixture(scope="module")
def tone_data(tmp_path_factory):
    return write_tone_dataset(tmp_path_factory.mktemp("tones") / "data")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A trained tone model folder, never exported (tests copy it before exporting)."""
    return train_tone_model(tmp_path_factory.mktemp("trained") / "tones")


@pytest.fixture
def model_dir(trained, tmp_path):
    return shutil.copytree(trained, tmp_path / "model")


def test_float_export_matches_keras_and_is_recorded(model_dir, tone_data):
    result = export.export_tflite(model_dir, data=[tone_data])
    assert result.path == model_dir / TFLITE_FILE and result.path.is_file()
    assert result.quantization == "float32"
    assert result.agreement >= 0.99 and result.parity_clips > 10
    assert result.max_probability_difference < 1e-3
    card = read_card(model_dir)
    assert card.metrics["tflite_top1_agreement"] == pytest.approx(result.agreement)
    record = card.exports[TFLITE_FILE]
    assert record.keras_sha256 == file_sha256(model_dir / "model.keras")
    assert record.bytes == result.path.stat().st_size
    assert "export" not in card.metrics
    assert isinstance(open_runner(model_dir), LiteRTRunner)
    assert [p.name for p in model_dir.iterdir() if p.name.startswith(".")] == []


def test_int8_export_is_calibrated_and_close(model_dir, tone_data):
    result = export.export_tflite(model_dir, int8=True, data=[tone_data], calibration_clips=40)
    assert result.path.name == TFLITE_INT8_FILE
    assert result.quantization == export.FULL_INT8
    assert result.calibration_clips == 40
    assert result.agreement >= 0.97
    runner = open_runner(model_dir, "tflite-int8")
    rng = np.random.default_rng(5)
    clips = np.stack([tone_clip(label, rng) for label in ("low", "high", "_silence_")])
    assert [runner.labels[i] for i in runner(clips).argmax(axis=1)] == ["low", "high",
                                                                        "_silence_"]
    assert "tflite_int8_top1_agreement" in read_card(model_dir).metrics


def test_int8_falls_back_to_int8_weights(model_dir, tone_data, monkeypatch):
    convert = export.convert

    def no_full_int8(model, length, quantization=export.FLOAT32, calibration=None):
        if quantization == export.FULL_INT8:
            raise KwsError("TFLite conversion failed: no int8 kernel")
        return convert(model, length, quantization, calibration)

    monkeypatch.setattr(export, "convert", no_full_int8)
    result = export.export_tflite(model_dir, int8=True, data=[tone_data])
    assert result.quantization == export.WEIGHTS_INT8 and result.agreement >= 0.97
    assert result.rejected == (f"{export.FULL_INT8}: TFLite conversion failed: no int8 kernel",)
    record = read_card(model_dir).exports[TFLITE_INT8_FILE]
    assert record.quantization == export.WEIGHTS_INT8


def test_failed_parity_leaves_no_file(model_dir, tone_data, monkeypatch):
    monkeypatch.setitem(export.MIN_AGREEMENT, False, 1.01)
    with pytest.raises(KwsError, match=r"no conversion reaches the 101% top-1 agreement"):
        export.export_tflite(model_dir, data=[tone_data])
    assert sorted(p.name for p in model_dir.iterdir()) == ["card.json", "model.keras"]
    card = read_card(model_dir)
    assert "export" not in card.metrics and card.exports == {}


def test_data_is_required_unless_recorded(model_dir, tone_data):
    with pytest.raises(UsageError, match="--data"):
        export.export_tflite(model_dir)
    card = read_card(model_dir)
    card.data["folders"] = [str(tone_data)]
    write_card(model_dir, card)
    assert export.export_tflite(model_dir, parity_clips=20).parity_clips == 20


def test_cli_prints_result_and_exit_codes(model_dir, tone_data, tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["export", str(model_dir), "--data", str(tone_data), "--json"])
    out, err = capsys.readouterr()
    assert exited.value.code == 0, err
    record = json.loads(out)
    assert record["path"] == str(model_dir / TFLITE_FILE) and record["top1_agreement"] >= 0.99
    with pytest.raises(SystemExit) as exited:
        main(["export", str(tmp_path / "nowhere"), "--data", str(tone_data)])
    out, err = capsys.readouterr()
    assert exited.value.code == 2 and out == ""  # a missing folder is a usage error
    assert err.strip() == f"kws: error: {tmp_path / 'nowhere'}: no such model folder"
    with pytest.raises(SystemExit) as exited:
        main(["export", str(model_dir)])
    assert exited.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_cli_table_is_tab_separated_when_piped(model_dir, tone_data, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["export", str(model_dir), "--data", str(tone_data), "--clips", "50"])
    out, err = capsys.readouterr()
    assert exited.value.code == 0, err
    rows = dict(line.split("\t") for line in out.splitlines() if not line.startswith("#"))
    assert rows["quantization"] == "float32" and rows["size"].endswith("KiB")
    assert "┃" not in out and "│" not in out
