"""``kws predict``: batches, formats, bad inputs, spotting, and the Keras and LiteRT runners.

A tiny tone classifier is trained once per module (``low`` = 300 Hz, ``high`` = 2 kHz,
``_silence_`` = faint noise, 8 kHz, one-second input), and exported to TFLite.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import MODEL_DAMAGE, damage_model_folder, tone, write_wav

from kws import audio
from kws.cli import main
from kws.errors import KwsError, UsageError
from kws.infer import (
    KerasRunner,
    LiteRTRunner,
    open_runner,
    sliding_windows,
    window_starts,
)
from kws.modelfolder import (
    TFLITE_FILE,
    TFLITE_INT8_FILE,
    ModelCard,
    read_card,
    save_keras_model,
    write_card,
)
from kws.predict import PredictOptions, predict

RATE = 8000
LABELS = ["_silence_", "high", "low"]
FREQUENCIES = {"low": 300.0, "high": 2000.0}


def tone_clip(label: str, rng: np.random.Generator, rate: int = RATE) -> np.ndarray:
    """One second of faint noise, with a tone of random length, place and level for a word."""
    wave = 0.01 * rng.standard_normal(rate).astype(np.float32)
    if label in FREQUENCIES:
        length = int(rng.integers(rate // 4, rate + 1))
        start = int(rng.integers(0, rate - length + 1))
        frequency = FREQUENCIES[label] * rng.uniform(0.95, 1.05)
        t = np.arange(length) / rate
        wave[start : start + length] += rng.uniform(0.1, 0.8) * np.sin(2 * np.pi * frequency * t)
    return wave


def train_tone_model(folder: Path) -> Path:
    """Train the tone classifier for 30 small steps and save it as a model folder."""
    import keras

    rng = np.random.default_rng(0)
    targets = rng.integers(0, len(LABELS), 600)
    clips = np.stack([tone_clip(LABELS[i], rng) for i in targets])
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((RATE,)),
        keras.layers.Reshape((RATE, 1)),
        keras.layers.Conv1D(8, 16, strides=4, activation="relu"),
        keras.layers.Conv1D(8, 8, strides=4, activation="relu"),
        keras.layers.GlobalAveragePooling1D(),
        keras.layers.Dense(len(LABELS), activation="softmax"),
    ])
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    model.fit(clips, targets, batch_size=50, epochs=3, verbose=0)
    save_keras_model(folder, model)
    write_card(folder, ModelCard(labels=LABELS, sample_rate=RATE, input_length=RATE,
                                 arch="tone-test"))
    return folder


def write_tone_dataset(root: Path, speakers: int = 12) -> Path:
    """Speech Commands layout: ``low``/``high`` word folders and background noise (16 kHz)."""
    rng = np.random.default_rng(1)
    for word in FREQUENCIES:
        for speaker in range(speakers):
            for n in range(2):
                clip = tone_clip(word, rng, rate=16000)
                write_wav(root / word / f"spk{speaker:04d}_nohash_{n}.wav", clip)
    noise = (0.01 * rng.standard_normal(5 * 16000)).astype(np.float32)
    write_wav(root / "_background_noise_" / "noise.wav", noise)
    return root


@pytest.fixture(scope="module")
def tone_data(tmp_path_factory) -> Path:
    return write_tone_dataset(tmp_path_factory.mktemp("tones") / "data")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tone_data) -> Path:
    """The trained tone model with an exported (current) model.tflite."""
    from kws.export import export_tflite

    folder = train_tone_model(tmp_path_factory.mktemp("model") / "tones")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KWS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "kws-cache"))
        export_tflite(folder, data=[tone_data])
    return folder


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    """A low and a high tone (16 kHz, so they are resampled), and a 5 s two-word recording."""
    folder = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(2)
    paths = {
        "low": write_wav(folder / "low.wav", tone(300.0, 1.0, 16000)),
        "high": write_wav(folder / "nested" / "high.wav", tone(2000.0, 0.8, 16000)),
    }
    long = (0.01 * rng.standard_normal(5 * 16000)).astype(np.float32)
    long[16000:24000] += tone(300.0, 0.5, 16000)
    long[48000:56000] += tone(2000.0, 0.5, 16000)
    paths["long"] = write_wav(tmp_path_factory.mktemp("long") / "two_words.wav", long)
    return paths


def run_kws(args: list[str], capsys, stdin: str | None = None, monkeypatch=None):
    """Run the CLI in this process; return ``(exit code, stdout, stderr)``."""
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    with pytest.raises(SystemExit) as exited:
        main(args)
    out, err = capsys.readouterr()
    return exited.value.code, out, err


def jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def test_single_file_defaults_to_json_lines(model_dir, clips, capsys):
    code, out, err = run_kws(["predict", "-m", str(model_dir), str(clips["low"])], capsys)
    assert code == 0, err
    assert jsonl(out) == [{"path": str(clips["low"]), "label": "low",
                           "probability": pytest.approx(1.0, abs=0.2)}]


def test_directory_is_searched_recursively_in_order(model_dir, clips, capsys):
    folder = clips["low"].parent
    code, out, err = run_kws(["predict", "-m", str(model_dir), str(folder)], capsys)
    assert code == 0, err
    rows = jsonl(out)
    assert [(r["path"], r["label"]) for r in rows] == [
        (str(folder / "low.wav"), "low"), (str(folder / "nested" / "high.wav"), "high")]


def test_paths_from_stdin(model_dir, clips, capsys, monkeypatch):
    listing = f"{clips['high']}\n\n{clips['low']}\n"
    code, out, err = run_kws(["predict", "-m", str(model_dir), "-"], capsys, listing, monkeypatch)
    assert code == 0, err
    assert [r["label"] for r in jsonl(out)] == ["high", "low"]


@pytest.mark.parametrize("fmt,delimiter", [("csv", ","), ("tsv", "\t")])
def test_delimited_formats_with_top_k(model_dir, clips, capsys, fmt, delimiter):
    args = ["predict", "-m", str(model_dir), "-f", fmt, "-k", "3", str(clips["low"]),
            str(clips["high"])]
    code, out, err = run_kws(args, capsys)
    assert code == 0, err
    rows = list(csv.reader(io.StringIO(out), delimiter=delimiter))
    assert rows[0] == ["path", "label", "probability", "label_1", "probability_1", "label_2",
                       "probability_2", "label_3", "probability_3"]
    assert [row[1] for row in rows[1:]] == ["low", "high"]
    for row in rows[1:]:
        assert sorted(row[3::2]) == sorted(LABELS)
        probabilities = [float(p) for p in row[4::2]]
        assert probabilities == sorted(probabilities, reverse=True)
        assert sum(probabilities) == pytest.approx(1.0, abs=2e-3)


def test_json_lines_top_k_and_table(model_dir, clips, capsys):
    code, out, _ = run_kws(["predict", "-m", str(model_dir), "-k", "2", str(clips["high"])],
                           capsys)
    assert code == 0
    (row,) = jsonl(out)
    assert [t["label"] for t in row["top"]][0] == "high" and len(row["top"]) == 2
    code, out, _ = run_kws(["predict", "-m", str(model_dir), "-f", "table", str(clips["high"])],
                           capsys)
    assert code == 0
    header, line = out.splitlines()
    assert header.split() == ["label", "prob", "path"]
    assert line.split()[0] == "high" and line.split()[-1] == str(clips["high"])


def test_threshold_turns_unsure_results_into_unknown(model_dir, tmp_path, capsys):
    both = write_wav(tmp_path / "both.wav", 0.5 * tone(300.0, 1.0, 16000)
                     + 0.5 * tone(2000.0, 1.0, 16000))
    base = ["predict", "-m", str(model_dir), "-k", "3", str(both)]
    (row,) = jsonl(run_kws(base, capsys)[1])
    probability = row["probability"]
    assert probability < 0.999  # two tones at once: the model is unsure
    (above,) = jsonl(run_kws([*base, "--threshold", str(probability - 0.001)], capsys)[1])
    (below,) = jsonl(run_kws([*base, "--threshold", str(probability + 0.001)], capsys)[1])
    assert above["label"] == row["label"] != "_unknown_"
    assert below["label"] == "_unknown_"
    assert below["probability"] == probability and below["top"] == row["top"]
    # issue 11: say which word was rejected
    assert below["rejected"] == row["label"] and "rejected" not in above
    code, out, _ = run_kws(["predict", "-m", str(model_dir), "-f", "csv", "-t",
                            str(probability + 0.001), str(both)], capsys)
    (rejected,) = csv.DictReader(io.StringIO(out))
    assert (rejected["label"], rejected["rejected"]) == ("_unknown_", row["label"])


def write_bad_files(folder: Path) -> list[Path]:
    """Inputs that must fail, one line each: missing, empty, truncated, not audio, NaN,
    a folder without audio."""
    folder.mkdir(parents=True, exist_ok=True)
    empty = folder / "empty.wav"
    empty.write_bytes(b"")
    truncated = write_wav(folder / "truncated.wav", tone(300.0, 1.0, 16000))
    truncated.write_bytes(truncated.read_bytes()[:5000])
    text = folder / "notes.wav"
    text.write_text("this is not audio\n" * 20)
    nan = folder / "nan.wav"
    soundfile.write(nan, np.full(8000, np.nan, dtype=np.float32), 8000, subtype="FLOAT")
    no_audio = folder / "no_audio"
    no_audio.mkdir()
    (no_audio / "readme.txt").write_text("nothing here")
    return [folder / "missing.wav", empty, truncated, text, nan, no_audio]


def test_bad_inputs_are_reported_once_and_skipped(model_dir, clips, tmp_path, capsys):
    bad = write_bad_files(tmp_path / "bad")
    inputs = [str(clips["low"]), *map(str, bad), str(clips["high"])]
    code, out, err = run_kws(["predict", "-m", str(model_dir), *inputs], capsys)
    assert code == 1
    assert [r["label"] for r in jsonl(out)] == ["low", "high"]
    lines = err.splitlines()
    assert "Traceback" not in err
    assert len(lines) == len(bad)
    for path, line in zip(bad, lines, strict=True):
        assert line.startswith(f"kws: error: {path}: ")


@pytest.mark.parametrize("args", [[], ["-k", "0", "x.wav"], ["--hop", "0", "x.wav"],
                                  ["--threshold", "2", "x.wav"], ["--format", "xml", "x.wav"],
                                  ["--spot", "-k", "2", "x.wav"],
                                  ["--batch-size", "99999999999", "x.wav"],
                                  ["--batch-size", "0", "x.wav"]])
def test_usage_errors_exit_2(model_dir, capsys, args):
    code, _, err = run_kws(["predict", "-m", str(model_dir), *args], capsys)
    assert code == 2
    assert "Traceback" not in err


def test_missing_default_model_is_one_clear_line(tmp_path, clips, capsys, monkeypatch):
    monkeypatch.setenv("KWS_DEFAULT_MODEL", str(tmp_path / "no-model"))
    code, out, err = run_kws(["predict", str(clips["low"])], capsys)
    assert code == 1 and out == ""
    assert len(err.splitlines()) == 1
    assert "kws train" in err and "--model" in err


def test_longer_file_is_classified_on_its_loudest_window(model_dir, tmp_path):
    wave = (0.01 * np.random.default_rng(3).standard_normal(3 * 16000)).astype(np.float32)
    wave[30000:38000] += tone(2000.0, 0.5, 16000)
    path = write_wav(tmp_path / "three_seconds.wav", wave)
    (result,) = list(predict([str(path)], model_dir))
    assert result.label == "high"


def test_spotting_finds_both_words_at_their_times(model_dir, clips, capsys):
    # The tone model is sure of a tone from its first 50 ms; the detector decides at most
    # --max-delay after that (latency), so it needs 1 s to hear all of a 0.5 s tone.
    code, out, err = run_kws(["predict", "-m", str(model_dir), "--spot", "--max-delay", "1",
                              str(clips["long"])], capsys)
    assert code == 0, err
    rows = jsonl(out)
    assert [r["label"] for r in rows] == ["low", "high"]
    for row, (start, end) in zip(rows, [(1.0, 1.5), (3.0, 3.5)], strict=True):
        assert row["start"] == pytest.approx(start, abs=0.1)
        assert row["end"] == pytest.approx(end, abs=0.1)
        assert row["probability"] >= 0.7


@pytest.mark.parametrize("fmt", ["csv", "tsv", "table"])
def test_spotting_in_every_format(model_dir, clips, capsys, fmt):
    code, out, _ = run_kws(["predict", "-m", str(model_dir), "--spot", "-f", fmt,
                            str(clips["long"])], capsys)
    assert code == 0
    lines = out.splitlines()
    if fmt == "table":
        assert lines[0].split() == ["label", "prob", "start", "end", "path"]
        assert [line.split()[0] for line in lines[1:]] == ["low", "high"]
        assert lines[1].split()[2].startswith("1.0")
    else:
        rows = list(csv.DictReader(io.StringIO(out), delimiter="," if fmt == "csv" else "\t"))
        assert [r["label"] for r in rows] == ["low", "high"]
        assert float(rows[1]["start"]) == pytest.approx(3.0, abs=0.1)


def test_batching_does_not_change_results(model_dir, clips):
    inputs = [str(clips["low"]), str(clips["long"]), str(clips["high"])]
    for spot in (False, True):
        small = list(predict(inputs, model_dir, options=PredictOptions(batch_size=3, spot=spot)))
        large = list(predict(inputs, model_dir, options=PredictOptions(batch_size=64, spot=spot)))
        assert [(r.label, r.start) for r in small] == [(r.label, r.start) for r in large]
        assert np.allclose([r.probability for r in small], [r.probability for r in large],
                           atol=1e-3)


def test_keras_and_tflite_runners_agree(model_dir, clips):
    inputs = [str(clips["low"]), str(clips["high"]), str(clips["long"])]
    keras_results = list(predict(inputs, model_dir, runner="keras"))
    tflite_results = list(predict(inputs, model_dir, runner="tflite"))
    assert [r.label for r in keras_results] == [r.label for r in tflite_results]
    assert np.allclose([r.probability for r in keras_results],
                       [r.probability for r in tflite_results], atol=1e-3)


def test_auto_runner_prefers_a_current_tflite_file(model_dir, tmp_path):
    assert isinstance(open_runner(model_dir), LiteRTRunner)
    stale = shutil.copytree(model_dir, tmp_path / "stale")
    card = read_card(stale)
    card.exports[TFLITE_FILE].keras_sha256 = "0" * 64
    write_card(stale, card)
    runner = open_runner(stale)
    assert isinstance(runner, KerasRunner)
    assert "older model.keras" in runner.notes[0]
    (stale / TFLITE_FILE).unlink()
    with pytest.raises(KwsError, match="kws export"):
        open_runner(stale, "tflite")
    with pytest.raises(UsageError):
        open_runner(stale, "onnx")


def test_missing_int8_file_suggests_the_int8_export(model_dir, tmp_path):
    folder = shutil.copytree(model_dir, tmp_path / "no-int8")
    (folder / TFLITE_INT8_FILE).unlink(missing_ok=True)
    with pytest.raises(KwsError) as caught:
        open_runner(folder, "tflite-int8")
    assert str(caught.value) == (f"{folder}: no {TFLITE_INT8_FILE} "
                                 f"(run `kws export {folder} --format tflite --int8`)")


def run_in_fresh_process(args: list[str]) -> subprocess.CompletedProcess:
    """Run ``kws ARGS`` in a new Python; its stderr ends with ``STATUS <exit code> <heavy
    modules imported>`` (TensorFlow, Keras, librosa)."""
    code = (
        "import sys\n"
        "from kws.cli import main\n"
        "try:\n"
        f"    main({args!r})\n"
        "except SystemExit as exit:\n"
        "    status = exit.code\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'librosa') if m in sys.modules]\n"
        "print('STATUS', status, heavy, file=sys.stderr)\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def test_tflite_path_never_imports_tensorflow(model_dir, clips):
    done = run_in_fresh_process(["predict", "-m", str(model_dir), "--runner", "tflite",
                                 str(clips["low"])])
    assert "STATUS 0 []" in done.stderr, done.stderr
    assert json.loads(done.stdout)["label"] == "low"
    assert done.stderr.splitlines() == ["STATUS 0 []"]


def test_window_arithmetic():
    assert window_starts(100, 100, 10).tolist() == [0]
    assert window_starts(50, 100, 10).tolist() == [0]
    assert window_starts(125, 100, 10).tolist() == [0, 10, 20, 30]
    windows = sliding_windows(np.arange(125, dtype=np.float32), 100, 10)
    assert windows.shape == (4, 100)
    assert windows[3, 0] == 30 and windows[3, -1] == 0  # zero-padded past the end
    # with an edge of silence: the first window starts before the recording
    assert window_starts(125, 100, 10, edge=20).tolist() == list(range(-20, 60, 10))
    windows = sliding_windows(np.arange(1, 126, dtype=np.float32), 100, 10, edge=20)
    assert windows.shape == (8, 100)
    assert not windows[0, :20].any() and windows[0, 20] == 1 and windows[-1, 74] == 125
    assert not windows[-1, 75:].any()


def test_spotting_runs_the_stream_detector_on_each_file(model_dir, clips):
    """--spot gives what the streaming detector gives on the decoded recording."""
    from kws.infer import DetectorSettings, detect

    runner = open_runner(model_dir)
    wave = audio.load(clips["long"], runner.sample_rate)
    expected = detect(runner, wave, DetectorSettings())
    found = list(predict([str(clips["long"])], model_dir, options=PredictOptions(spot=True)))
    assert [(r.label, r.probability, r.start, r.end) for r in found] == \
        [(d.label, d.probability, d.start, d.end) for d in expected]
    assert [r.label for r in found] == ["low", "high"]


@pytest.mark.parametrize("runner", ["tflite", "keras"])
def test_a_stream_fed_in_any_chunks_gives_the_files_detections(model_dir, clips, runner):
    """The real (tone) model through the streaming detector: 1-, 37- and 16000-sample
    chunks find what --spot finds in the whole file."""
    from kws.infer import StreamDetector

    loaded = open_runner(model_dir, runner)
    wave = audio.load(clips["long"], loaded.sample_rate)
    whole = list(predict([str(clips["long"])], model_dir, runner,
                         options=PredictOptions(spot=True)))
    for chunk in (1, 37, 16000) if runner == "tflite" else (37,):
        detector = StreamDetector(loaded)
        found = []
        for start in range(0, len(wave), chunk):
            found += detector.feed(wave[start : start + chunk])
        found += detector.finish()
        assert [(d.label, d.start, d.end) for d in found] == \
            [(r.label, r.start, r.end) for r in whole]
        assert np.allclose([d.probability for d in found], [r.probability for r in whole],
                           atol=1e-3)


def test_spotting_uses_the_cards_calibrated_thresholds(model_dir, clips, tmp_path, capsys):
    calibrated = shutil.copytree(model_dir, tmp_path / "calibrated")
    card = read_card(calibrated)
    card.thresholds = {"high": 1.0, "low": 0.5}  # `high` would need a perfect score
    write_card(calibrated, card)
    long = str(clips["long"])
    code, out, err = run_kws(["predict", "-m", str(calibrated), "--spot", long], capsys)
    assert code == 0, err
    assert [r["label"] for r in jsonl(out)] == ["low"]
    code, out, _ = run_kws(["predict", "-m", str(calibrated), "--spot", "-t", "0.7", long],
                           capsys)
    assert [r["label"] for r in jsonl(out)] == ["low", "high"]  # --threshold overrides all
    code, out, _ = run_kws(["predict", "-m", str(model_dir), "--spot", "--keywords", "high",
                            long], capsys)
    assert [r["label"] for r in jsonl(out)] == ["high"]


def test_spotting_with_verify_rescores_the_detectors_candidates(model_dir, clips, capsys):
    # At --threshold 0 every candidate is reported, with the geometric mean of its
    # probability (weight 0.8) and the shipped phone model's confidence in "low" / "high"
    # there (0.2): the same detections as the detector alone at the candidate threshold,
    # lower scores.

    args = ["predict", "-m", str(model_dir), "--spot", "--max-delay", "1", str(clips["long"])]
    _, alone, _ = run_kws([*args, "-t", "0.5"], capsys)
    code, verified, err = run_kws([*args, "--verify", "-t", "0"], capsys)
    assert code == 0, err
    alone, verified = jsonl(alone), jsonl(verified)
    assert [(r["label"], r["start"], r["end"]) for r in verified] == [
        (r["label"], r["start"], r["end"]) for r in alone] and len(alone) == 2
    for mine, theirs in zip(verified, alone, strict=True):
        assert mine["probability"] <= theirs["probability"] ** 0.8 + 1e-4


def test_verify_refuses_a_model_with_a_word_it_cannot_pronounce_before_listening(tmp_path):
    from kws.errors import KwsError
    from kws.modelfolder import ModelCard, write_card
    from kws.phones.verify import detector_verifier

    write_card(tmp_path, ModelCard(labels=["_silence_", "_unknown_", "yes", "r2d2"],
                                   sample_rate=16000, input_length=16000, arch="test"))
    assert detector_verifier(tmp_path, verify=False) is None
    with pytest.raises(KwsError, match=r"^--verify: cannot pronounce 'r2d2'"):
        detector_verifier(tmp_path)


@pytest.mark.parametrize("args,message", [
    (["--spot", "--keywords", "banana"], "not a keyword"),
    (["--keywords", "high"], "--spot only"),
    (["--verify"], "--verify applies to --spot only"),
    (["--spot", "--cooldown", "-1"], "--cooldown"),
    (["--spot", "--max-delay", "-1"], "--max-delay"),
    (["--spot", "--hop", "inf"], "--hop must be from 0.01 s to the model's window"),
    (["--spot", "--hop", "1e-9"], "--hop must be from 0.01 s"),
    (["--spot", "--hop", "2"], "the model's window (1 s), not 2"),
    (["--spot", "--cooldown", "nan"], "--cooldown must be from 0 s to 60 s, not nan"),
    (["--spot", "--max-delay", "1e300"], "--max-delay must be from 0 s to 60 s"),
])
def test_spot_usage_errors(model_dir, capsys, args, message):
    code, _, err = run_kws(["predict", "-m", str(model_dir), *args, "x.wav"], capsys)
    assert code == 2 and message in err and "Traceback" not in err


# ----------------------------------------------------------------------------- reliability


def test_huge_float_samples_are_an_error_and_the_output_stays_json(model_dir, clips, tmp_path,
                                                                    capsys):
    huge = tmp_path / "huge.wav"
    soundfile.write(huge, np.full(8000, 1e30, dtype=np.float32), 8000, subtype="FLOAT")
    code, out, err = run_kws(["predict", "-m", str(model_dir), str(clips["low"]), str(huge),
                              str(clips["high"])], capsys)
    assert code == 1
    assert "NaN" not in out and "Infinity" not in out
    assert [r["label"] for r in jsonl(out)] == ["low", "high"]  # every line is valid JSON
    assert err.splitlines() == [line for line in err.splitlines()
                                if line.startswith(f"kws: error: {huge}: ")]
    assert len(err.splitlines()) == 1


class _NaNRunner:
    """A runner whose model overflows on loud input (what a real model does at 1e30)."""

    sample_rate = RATE
    input_length = RATE
    labels = LABELS
    batch_size = 2

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        out = np.full((len(batch), len(LABELS)), 1 / len(LABELS), dtype=np.float32)
        out[np.abs(batch).max(axis=1) > 10] = np.nan
        return out


def test_pipeline_turns_non_finite_model_output_into_a_failure(tmp_path):
    from kws.infer import Failure, Pipeline, Scored

    quiet = write_wav(tmp_path / "quiet.wav", tone(300.0, 1.0, RATE), RATE)
    loud = tmp_path / "loud.wav"
    soundfile.write(loud, np.full(RATE, 100.0, dtype=np.float32), RATE, subtype="FLOAT")
    pipeline = Pipeline(_NaNRunner(), decode=lambda path: soundfile.read(path,
                                                                          dtype="float32")[0])
    results = list(pipeline.run([quiet, loud, quiet]))
    assert [type(r) for r in results] == [Scored, Failure, Scored]
    assert results[1].path == str(loud) and "not finite" in results[1].message
    assert (pipeline.succeeded, pipeline.failed) == (2, 1)


def _binary_stdin(monkeypatch, data: bytes) -> None:
    """Standard input holding ``data`` as bytes (``sys.stdin.buffer``), as a pipe does."""
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


def test_a_nul_byte_in_a_listed_name_fails_that_name_alone(model_dir, clips, capsys,
                                                            monkeypatch):
    _binary_stdin(monkeypatch, f"{clips['low']}\0\n{clips['high']}\n".encode())
    code, out, err = run_kws(["predict", "-m", str(model_dir), "-"], capsys)
    assert code == 1 and [r["label"] for r in jsonl(out)] == ["high"]
    assert err == f"kws: error: {clips['low']}\\x00: not a valid path (contains a NUL byte)\n"


@pytest.mark.parametrize("kind", ["wav", "flac", "raw"])
def test_audio_on_stdin_instead_of_paths_is_one_error(model_dir, clips, tmp_path, capsys,
                                                      monkeypatch, kind):
    if kind == "raw":  # headerless: told apart from names by its control bytes
        data = (tone(300.0, 0.5, 16000) * 32767).astype("<i2").tobytes()
    else:
        path = tmp_path / f"low.{kind}"
        soundfile.write(path, tone(300.0, 0.5, 16000), 16000)
        data = path.read_bytes()
    _binary_stdin(monkeypatch, data)
    code, out, err = run_kws(["predict", "-m", str(model_dir), "-", str(clips["high"])],
                             capsys)
    assert code == 1 and [r["label"] for r in jsonl(out)] == ["high"]
    (line,) = err.splitlines()
    held = "binary data" if kind == "raw" else "audio"
    assert line == (f"kws: error: stdin: holds {held}, not file paths"
                    f"{' (one per line)' if kind == 'raw' else ''}; to spot keywords in an "
                    "audio stream use `kws listen -`")


def test_an_unreadable_subfolder_does_not_hide_the_others(model_dir, clips, tmp_path, capsys,
                                                           monkeypatch):
    folder = tmp_path / "recordings"
    for name in ("aa/first.wav", "mid.wav", "zz/last.wav"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(clips["low"], folder / name)
    real_scandir = os.scandir

    def scandir(path="."):  # as chmod 000 does for anyone but root
        if os.fspath(path) == str(folder / "zz"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    code, out, err = run_kws(["predict", "-m", str(model_dir), str(folder)], capsys)
    assert code == 1
    assert [r["path"] for r in jsonl(out)] == [str(folder / "mid.wav"),
                                               str(folder / "aa" / "first.wav")]
    assert err == f"kws: error: {folder / 'zz'}: permission denied\n"


def test_an_empty_path_is_not_the_current_folder(model_dir, clips, capsys):
    code, out, err = run_kws(["predict", "-m", str(model_dir), "", str(clips["low"])], capsys)
    assert code == 1 and [r["label"] for r in jsonl(out)] == ["low"]
    assert err == "kws: error: an empty path names no file\n"


def test_stdin_names_keep_their_spaces(model_dir, clips, tmp_path, capsys, monkeypatch):
    spaced = tmp_path / " low tone.wav "
    spaced.write_bytes(clips["low"].read_bytes())
    listing = f"{spaced}\r\n{clips['high']}\n"
    code, out, err = run_kws(["predict", "-m", str(model_dir), "-"], capsys, listing,
                             monkeypatch)
    assert code == 0, err
    assert [(r["path"], r["label"]) for r in jsonl(out)] == [(str(spaced), "low"),
                                                             (str(clips["high"]), "high")]


def _answers_before_eof(command: list[str], paths: list[Path], timeout: float = 120.0) -> list:
    """Feed paths one at a time on a stdin pipe kept open; return the line read after each."""
    import selectors

    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    answers = []
    try:
        selector = selectors.DefaultSelector()
        selector.register(process.stdout, selectors.EVENT_READ)
        for path in paths:
            process.stdin.write(f"{path}\n")
            process.stdin.flush()
            ready = selector.select(timeout)
            answers.append(process.stdout.readline() if ready else None)
    finally:
        process.stdin.close()
        process.wait(timeout)
        process.stderr.close()
        process.stdout.close()
    return answers


#: The ``kws`` command run in a subprocess.
KWS = [sys.executable, "-m", "kws"]


def test_each_stdin_path_is_answered_as_it_arrives(model_dir, clips):
    answers = _answers_before_eof([*KWS, "predict", "-m", str(model_dir), "-"],
                                  [clips["low"], clips["high"]])
    assert [json.loads(a)["label"] if a else None for a in answers] == ["low", "high"]


@pytest.mark.parametrize("damage", MODEL_DAMAGE)
def test_a_damaged_model_folder_is_one_line(model_dir, clips, tmp_path, capsys, damage):
    broken = shutil.copytree(model_dir, tmp_path / "broken")
    damage_model_folder(broken, damage)
    if damage == "flipped":
        (broken / TFLITE_FILE).unlink()  # else LiteRT runs the intact export
    code, out, err = run_kws(["predict", "-m", str(broken), str(clips["low"])], capsys)
    assert code == 1 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith(f"kws: error: {broken}")
    assert "Traceback" not in err


def test_missing_model_folder_is_a_usage_error(tmp_path, clips, capsys):
    code, _, err = run_kws(["predict", "-m", str(tmp_path / "nowhere"), str(clips["low"])],
                           capsys)
    assert code == 2 and "no such model folder" in err
    code, _, err = run_kws(["predict", "-m", str(clips["low"]), str(clips["low"])], capsys)
    assert (code, err) == (2, f"kws: error: {clips['low']}: is a file, not a model folder\n")


def test_one_detection_class_and_one_threshold_per_task():
    import kws.infer
    from kws.modelfolder import Task

    assert kws.infer.DEFAULT_SPOT_THRESHOLD[Task.CLASSIFIER] == 0.7
    assert kws.infer.DEFAULT_SPOT_THRESHOLD[Task.PHONES] == 0.5
    from kws.infer import detect

    (found,) = detect(_LowRunner(), np.zeros(3 * RATE, np.float32))
    assert type(found) is kws.infer.Detection and found.label == "low"


class _LowRunner:
    """Hears ``low`` in every window."""

    sample_rate = RATE
    input_length = RATE
    labels = LABELS
    batch_size = 4

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return np.tile(np.array([0.05, 0.05, 0.9], np.float32), (len(batch), 1))


def test_inputs_that_come_quickly_fill_whole_batches(tmp_path):
    """Few inputs decoded ahead (long recordings) must not shrink the batches: the batcher
    scores a partial batch only when no input comes for a moment (paths on stdin)."""
    from kws.infer import Pipeline

    class Counting(_NaNRunner):
        calls: list[int] = []

        def __call__(self, batch: np.ndarray) -> np.ndarray:
            self.calls.append(len(batch))
            return super().__call__(batch)

    runner = Counting()
    pipeline = Pipeline(runner, decode=lambda n: np.zeros(RATE, np.float32), batch_size=8,
                        ahead=2)
    assert len(list(pipeline.run(range(32)))) == 32
    assert sum(runner.calls) == 32 and len(runner.calls) <= 6, runner.calls


def test_a_recording_is_answered_when_the_batch_that_ends_it_is_scored(model_dir):
    """Its results do not wait for the windows of the next recordings (a reader that
    stopped after the first line would otherwise cost a whole further recording)."""
    from kws.infer import Pipeline

    class Counting(_NaNRunner):
        def __init__(self) -> None:
            self.windows = 0

        def __call__(self, batch: np.ndarray) -> np.ndarray:
            self.windows += len(batch)
            return super().__call__(batch)

    runner = Counting()
    pipeline = Pipeline(runner, cut=lambda wave: wave.reshape(-1, RATE),
                        decode=lambda n: np.zeros(10 * RATE, np.float32), batch_size=4)
    results = pipeline.run(range(5))
    next(results)
    assert runner.windows <= 12  # the first recording's 10 windows, in batches of 4
    results.close()


def test_a_reader_gone_away_stops_the_run_at_the_first_failed_write(model_dir, clips,
                                                                      monkeypatch):
    from kws.cli import predict as cli_predict

    class Gone(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    stream = predict([str(clips["long"])] * 5, model_dir, options=PredictOptions(spot=True))
    scored = []
    score = stream.pipeline.runner
    monkeypatch.setattr(stream.pipeline, "runner", lambda batch: scored.append(len(batch))
                        or score(batch))
    monkeypatch.setattr(sys, "stdout", Gone())
    writer = cli_predict._JsonLines(stream.runner.labels, 1, True)
    with pytest.raises(BrokenPipeError):
        cli_predict._render(stream, writer, show_progress=False)
    windows = len(sliding_windows(audio.load(clips["long"], RATE), RATE, RATE // 20,
                                  edge=RATE // 5))
    assert stream.succeeded == 1 and sum(scored) < windows + score.batch_size
