"""``kws calibrate``: thresholds for a target false-accept rate, chosen and checked on
separate speakers, written into the card.

The model is a stand-in whose posteriors are read off the audio: a positive burst of
amplitude ``a`` in a window is ``yes`` with probability ``a``, a negative one ``no``. The
negative recordings hold bursts of random amplitude (false accepts waiting to happen).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import write_wav

from kws import audio
from kws.calibrate import EARLIER_RUNS, calibrate, calibration_runs, record_calibration
from kws.cli import main
from kws.infer import DetectorSettings, detect
from kws.modelfolder import ModelCard, Verification, read_card, write_card
from kws.recordings import read_recordings, split_of

RATE = 2000


def run_kws(args: list[str], capsys):
    """Run the CLI in this process; return ``(exit code, stdout, stderr)``."""
    with pytest.raises(SystemExit) as exited:
        main(args)
    out, err = capsys.readouterr()
    return exited.value.code, out, err

LABELS = ["_silence_", "_unknown_", "yes", "no"]


class BurstRunner:
    """``yes`` = the highest sample of a window, ``no`` = minus the lowest (clipped)."""

    labels = LABELS
    sample_rate = RATE
    input_length = RATE
    batch_size = 32
    name = "burst"
    notes: list[str] = []

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        out = np.zeros((len(batch), len(LABELS)), dtype=np.float32)
        out[:, 2] = np.clip(batch.max(axis=1), 0, 1)
        out[:, 3] = np.clip(-batch.min(axis=1), 0, 1)
        out[:, 0] = np.clip(1 - out[:, 2] - out[:, 3], 0, 1)
        return out


def write_negatives(root, speakers: int = 16, files: int = 2, seconds: float = 60.0):
    """AN4 layout: ``<speaker>/<n>.wav`` with bursts every ~3 s, and transcripts.tsv; one
    more recording says ``yes`` (and holds the loudest bursts of all)."""
    rng = np.random.default_rng(0)
    rows = ["file\tspeaker\ttranscript"]
    for s in range(speakers):
        for n in range(files):
            wave = 0.001 * rng.standard_normal(int(seconds * RATE))
            for start in np.arange(1.0, seconds - 2, 3.0):
                sign = 1 if rng.random() < 0.5 else -1
                first = int((start + rng.uniform(0, 1)) * RATE)
                wave[first : first + RATE // 10] = sign * rng.uniform(0.1, 0.95)
            name = f"spk{s:02d}/utt{n}.wav"
            write_wav(root / name, wave.astype(np.float32), RATE, subtype="FLOAT")
            rows.append(f"{name}\tspk{s:02d}\tthe cat sat on the mat")
    loud = np.full(int(10 * RATE), 0.001, dtype=np.float32)
    loud[RATE : 2 * RATE] = 0.999
    write_wav(root / "said/yes.wav", loud, RATE, subtype="FLOAT")
    rows.append("said/yes.wav\tsaid\tyes I said yes")
    (root / "transcripts.tsv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture(scope="module")
def negatives(tmp_path_factory):
    return write_negatives(tmp_path_factory.mktemp("negatives") / "talk")


@pytest.fixture
def model(tmp_path, monkeypatch):
    folder = tmp_path / "model"
    folder.mkdir()
    write_card(folder, ModelCard(labels=LABELS, sample_rate=RATE, input_length=RATE,
                                 arch="bursts"))
    monkeypatch.setattr("kws.calibrate.open_runner", lambda *args, **kwargs: BurstRunner())
    return folder


def count_false_accepts(negatives, thresholds: dict[str, float], held_out: bool):
    """Detections per keyword and hours, by the detector itself, on one half."""
    recordings = [r for r in read_recordings(negatives).recordings
                  if r.speaker != "said" and (split_of(r) == "testing") == held_out]
    settings = DetectorSettings(thresholds=thresholds)
    counts, seconds = {"yes": 0, "no": 0}, 0.0
    for recording in recordings:
        wave = audio.load(recording.path, RATE)
        seconds += len(wave) / RATE
        for detection in detect(BurstRunner(), wave, settings):
            counts[detection.label] += 1
    return counts, seconds / 3600


@pytest.mark.parametrize("target", [5.0, 60.0])
def test_thresholds_meet_the_target_on_the_chosen_half(model, negatives, target):
    result = calibrate(model, [negatives], target, min_threshold=0.0)
    thresholds = {k.keyword: k.threshold for k in result.keywords}
    counts, hours = count_false_accepts(negatives, thresholds, held_out=False)
    assert hours == pytest.approx(result.hours)
    for row in result.keywords:
        assert row.reached and 0.1 < row.threshold < 0.95
        assert counts[row.keyword] == row.false_accepts
        assert counts[row.keyword] / hours <= target
        # one grid step lower lets too many through: the threshold is the lowest that works
        lower = {**thresholds, row.keyword: row.threshold - 0.0025}
        assert count_false_accepts(negatives, lower, held_out=False)[0][row.keyword] / hours \
            > target
    held, held_hours = count_false_accepts(negatives, thresholds, held_out=True)
    assert held_hours == pytest.approx(result.held_out_hours) and held_hours > 0.1
    assert [k.held_out_false_accepts for k in result.keywords] == [held["yes"], held["no"]]
    assert result.with_keywords == 1  # the recording that says `yes` is left out


def test_a_stricter_target_gives_higher_thresholds(model, negatives):
    loose = {k.keyword: k.threshold
             for k in calibrate(model, [negatives], 60.0, min_threshold=0.0).keywords}
    strict = {k.keyword: k.threshold
              for k in calibrate(model, [negatives], 5.0, min_threshold=0.0).keywords}
    assert all(strict[w] > loose[w] for w in ("yes", "no"))


def test_thresholds_never_go_below_the_floor(model, negatives):
    free = {k.keyword: k.threshold
            for k in calibrate(model, [negatives], 60.0, min_threshold=0.0).keywords}
    floored = {k.keyword: k.threshold for k in calibrate(model, [negatives], 60.0).keywords}
    assert floored == {word: max(0.7, value) for word, value in free.items()}
    high = max(free.values()) + 0.01
    assert {k.keyword: k.threshold
            for k in calibrate(model, [negatives], 60.0, min_threshold=high).keywords} \
        == {word: pytest.approx(high, abs=0.0025) for word in free}


def test_calibration_is_recorded_in_the_card(model, negatives):
    result = calibrate(model, [negatives], 10.0, keywords=["no"])
    card = read_card(model)
    card.thresholds = {"yes": 0.33}
    write_card(model, card)
    record_calibration(result, "kws calibrate test")
    card = read_card(model)
    assert card.thresholds == {"yes": 0.33, "no": result.keywords[0].threshold}
    entry = card.metrics["calibration"]
    assert entry["target_fa_per_hour"] == 10.0 and entry["command"] == "kws calibrate test"
    assert entry["hours"] == pytest.approx(result.hours, abs=1e-3)
    assert entry["keywords"][0]["held_out_fa_per_hour"] == result.keywords[0].held_out_fa_per_hour
    assert entry["detector"]["hop"] == DetectorSettings.hop


@pytest.mark.parametrize("verify", [False, True])
def test_a_partial_calibration_keeps_how_the_other_thresholds_were_chosen(model, negatives,
                                                                          verify):
    verifier = FixedVerifier() if verify else None
    key = "verified_calibration" if verify else "calibration"

    def run(target, keywords, command):
        record_calibration(calibrate(model, [negatives], target, keywords,
                                     verifier=verifier), command)
        card = read_card(model)
        return card.metrics[key], card.verification.thresholds if verify else card.thresholds

    run(10.0, None, "all")
    record, thresholds = run(20.0, ["no"], "no")
    assert record["command"] == "no" and [k["keyword"] for k in record["keywords"]] == ["no"]
    earlier, = record[EARLIER_RUNS]
    assert earlier["command"] == "all" and earlier["target_fa_per_hour"] == 10.0
    assert [k["keyword"] for k in earlier["keywords"]] == ["yes"]
    assert earlier["held_out_fa_per_hour"] == pytest.approx(
        earlier["keywords"][0]["held_out_fa_per_hour"], abs=0.01)
    # every threshold in the card is explained by exactly one run
    explained = [(k["keyword"], k["threshold"]) for run in calibration_runs(record)
                 for k in run["keywords"]]
    assert sorted(explained) == sorted(thresholds.items())
    # the first run explains nothing once both keywords were calibrated again
    record, thresholds = run(30.0, ["yes"], "yes")
    assert [r["command"] for r in calibration_runs(record)] == ["yes", "no"]
    assert sorted((k["keyword"], k["threshold"]) for r in calibration_runs(record)
                  for k in r["keywords"]) == sorted(thresholds.items())
    record, _ = run(10.0, None, "all again")
    assert EARLIER_RUNS not in record and calibration_runs(record) == [record]


def test_cli_prints_a_table_or_json_and_writes_the_card(model, negatives, capsys):
    code, out, err = run_kws(["calibrate", str(model), "--negatives", str(negatives),
                              "--target-fa-per-hour", "20", "--dry-run"], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[1].split("\t") == ["keyword", "threshold", "FA/h chosen", "FA/h held out"]
    assert [line.split("\t")[0] for line in lines[2:]] == ["yes", "no"]
    assert read_card(model).thresholds == {}
    code, out, err = run_kws(["calibrate", str(model), "--negatives", str(negatives),
                              "--target-fa-per-hour", "20", "--json"], capsys)
    assert code == 0, err
    record = json.loads(out)
    assert record["written"] and [k["keyword"] for k in record["keywords"]] == ["yes", "no"]
    assert read_card(model).thresholds == {k["keyword"]: k["threshold"]
                                           for k in record["keywords"]}


@pytest.mark.parametrize("args,message", [
    (["--negatives", "{missing}", "--target-fa-per-hour", "1"], "no such folder"),
    (["--negatives", "{negatives}", "--target-fa-per-hour", "0"], "positive"),
    (["--negatives", "{negatives}", "--target-fa-per-hour", "nan"], "positive"),
    (["--negatives", "{negatives}", "--target-fa-per-hour", "1", "--keywords", "maybe"],
     "not a keyword"),
    (["--target-fa-per-hour", "1"], "--negatives"),
])
def test_cli_usage_errors(model, negatives, tmp_path, capsys, args, message):
    args = [a.format(missing=tmp_path / "nowhere", negatives=negatives) for a in args]
    code, out, err = run_kws(["calibrate", str(model), *args], capsys)
    assert code == 2 and message in err and "Traceback" not in err and out == ""


def test_cli_names_every_unreadable_negative_before_its_error(model, tmp_path, capsys):
    from test_recordings import write_unreadable

    bad = write_unreadable(tmp_path / "bad", RATE)
    code, out, err = run_kws(["calibrate", str(model), "--negatives", str(tmp_path / "bad"),
                              "--target-fa-per-hour", "1"], capsys)
    lines = err.strip().splitlines()
    assert code == 1 and out == "" and "Traceback" not in err
    assert sorted(line.split(": ")[2] for line in lines[:-1]) == [str(path) for path in bad]
    assert f"{bad[1]}: empty file (0 bytes)" in err and "format not recognised" in err
    assert lines[-1] == "kws: error: --negatives: none of the 4 recording(s) could be read"
    assert read_card(model).metrics == {}


def test_cli_warns_of_listed_recordings_it_left_out(model, negatives, tmp_path, capsys):
    import shutil

    copy = tmp_path / "talk"
    shutil.copytree(negatives, copy)
    (copy / "spk00" / "utt0.wav").unlink()
    code, _, err = run_kws(["calibrate", str(model), "--negatives", str(copy),
                            "--target-fa-per-hour", "20", "--dry-run"], capsys)
    assert code == 0, err
    assert f"kws: warning: {copy / 'spk00' / 'utt0.wav'}: listed in transcripts.tsv but " \
           "missing" in err.splitlines()


def test_cli_warns_when_the_audio_is_too_short_for_the_target(model, negatives, capsys):
    code, _, err = run_kws(["calibrate", str(model), "--negatives", str(negatives),
                            "--target-fa-per-hour", "0.5", "--dry-run"], capsys)
    assert code == 0
    assert "allow no false accept" in err and "more negative audio" in err


class FixedVerifier:
    """A second opinion of a fixed confidence per keyword."""

    opinions = {"yes": 1.0, "no": 0.5}

    def __call__(self, keyword, samples, rate, start, end):
        from kws.infer.detector import Opinion

        return Opinion(self.opinions[keyword])


def count_verified(negatives, thresholds: dict[str, float], held_out: bool):
    """The verified detector's detections per keyword on one half, by the detector."""
    from kws.modelfolder import Verification

    recordings = [r for r in read_recordings(negatives).recordings
                  if r.speaker != "said" and (split_of(r) == "testing") == held_out]
    settings = DetectorSettings(thresholds=thresholds, verification=Verification())
    counts = {"yes": 0, "no": 0}
    for recording in recordings:
        wave = audio.load(recording.path, RATE)
        for detection in detect(BurstRunner(), wave, settings, verifier=FixedVerifier()):
            counts[detection.label] += 1
    return counts


def test_verified_thresholds_are_of_the_combined_score(model, negatives):
    target = 20.0
    result = calibrate(model, [negatives], target, min_threshold=0.0,
                       verifier=FixedVerifier())
    assert result.verified and result.settings.verification.candidate_threshold == 0.5
    thresholds = {k.keyword: k.threshold for k in result.keywords}
    counts = count_verified(negatives, thresholds, held_out=False)
    for row in result.keywords:
        assert row.reached and counts[row.keyword] == row.false_accepts
        assert counts[row.keyword] / result.hours <= target
        lower = {**thresholds, row.keyword: row.threshold - 0.0025}
        assert count_verified(negatives, lower, held_out=False)[row.keyword] \
            / result.hours > target
    # 'no' is believed half as much: its combined scores, and threshold, are lower
    assert thresholds["no"] < thresholds["yes"]
    held = count_verified(negatives, thresholds, held_out=True)
    assert [k.held_out_false_accepts for k in result.keywords] == [held["yes"], held["no"]]
    floored = calibrate(model, [negatives], target, verifier=FixedVerifier())
    assert all(k.threshold >= 0.6 for k in floored.keywords)


def test_verified_calibration_is_recorded_in_the_cards_verification(model, negatives):
    card = read_card(model)
    card.thresholds = {"yes": 0.33}
    write_card(model, card)
    # A card verified before the phone weight and the quiet floor were recorded: its
    # thresholds are of the plain geometric mean without a floor, and are read so.
    raw = json.loads((model / "card.json").read_text())
    raw["verification"] = {"thresholds": {"no": 0.7}}
    (model / "card.json").write_text(json.dumps(raw))
    assert read_card(model).verification.phone_weight == 0.5
    assert read_card(model).verification.quiet_floor == 0.0
    record_calibration(calibrate(model, [negatives], 10.0, verifier=FixedVerifier()),
                       "kws calibrate --verify test")
    card = read_card(model)
    assert card.thresholds == {"yes": 0.33}
    assert set(card.verification.thresholds) == {"yes", "no"}
    assert card.verification.candidate_threshold == 0.5
    # calibrated for today's weighting of the two scores, recorded beside the thresholds
    assert card.verification.phone_weight == Verification.phone_weight == 0.2
    assert card.verification.quiet_floor == Verification.quiet_floor == 0.3
    entry = card.metrics["verified_calibration"]
    assert entry["verification"]["phone_weight"] == 0.2
    assert entry["verification"]["quiet_floor"] == 0.3
    assert entry["command"] == "kws calibrate --verify test"
    assert entry["verification"]["lookahead"] == 0.1 and "calibration" not in card.metrics
    settings = DetectorSettings.from_card(card, verify=True)
    assert settings.threshold("no") == card.verification.thresholds["no"]


def test_cli_verify_calibrates_with_the_shipped_phone_model(model, negatives, capsys,
                                                            monkeypatch):
    # The bursts are no words: the phone model rarely hears "yes" in them, so the
    # combined scores, and the thresholds, sit at the floor.
    heard = []
    import kws.phones.verify as verify

    real = verify.PhoneVerifier.__call__
    monkeypatch.setattr(verify.PhoneVerifier, "__call__",
                        lambda self, *args: heard.append(args[0]) or real(self, *args))
    code, out, err = run_kws(["calibrate", str(model), "--negatives", str(negatives),
                              "--target-fa-per-hour", "20", "--keywords", "yes", "--verify",
                              "--json"], capsys)
    assert code == 0, err
    record = json.loads(out)
    assert record["verification"]["candidate_threshold"] == 0.5
    assert heard and set(heard) == {"yes"}
    card = read_card(model)
    assert card.thresholds == {} and card.verification.thresholds == {
        "yes": record["keywords"][0]["threshold"]}
    assert record["keywords"][0]["threshold"] >= 0.6
