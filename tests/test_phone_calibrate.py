"""Calibrating open-vocabulary spotting: confidence -> false accepts per hour (kws phones
calibrate), the card's curves, and kws phones spot --fa-per-hour."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_speech_commands, tone, write_wav

from kws.cli import cli
from kws.errors import KwsError, UsageError
from kws.modelfolder import (
    CARD_FILE,
    FaCalibration,
    FaGroup,
    ModelCard,
    Task,
    read_card,
    write_card,
)
from kws.phones import ctc
from kws.phones.calibrate import (
    PHONE_GROUPS,
    GroupScores,
    calibrate_phones,
    calibration_words,
    curve_points,
    fa_curve,
    fa_group,
    group_index,
    negative_recordings,
)
from kws.phones.phoneset import model_labels
from kws.phones.recognizer import pronunciation_thresholds

RATE = 8000
PHONE_MODEL = Path(__file__).resolve().parent.parent / "models" / "phones"


def _group(low=4, high=5, confidence=(0.1, 0.5, 0.9, 1.0), rates=(100.0, 10.0, 1.0, 0.0)):
    return FaGroup(low, high, 10, 5.0, 5.0, list(confidence), list(rates))


# ----------------------------------------------------------------------------- curves


def test_curve_from_synthetic_scores_gives_known_rates():
    # 5 false accepts over 2 keyword-hours.
    scores = [0.9, 0.8, 0.8, 0.6, 0.3]
    curve = fa_curve("test", scores, hours=2.0)
    assert list(curve.thresholds[:2]) == [1.0, 0.9975]  # descending sweep
    at = {round(float(t), 4): i for i, t in enumerate(curve.thresholds)}
    assert curve.point(at[0.8]).counts.false_accepts == 3
    assert curve.point(at[0.8]).counts.fa_per_hour == 1.5
    assert curve.point(at[0.3]).counts.fa_per_hour == 2.5
    assert curve.point(at[0.95]).counts.fa_per_hour == 0.0
    group = _group()
    group.confidence, group.fa_per_hour = curve_points(curve)
    assert group.fa_per_hour_at(0.8) == pytest.approx(1.5)
    assert group.fa_per_hour_at(0.7) == pytest.approx(1.5)
    assert group.fa_per_hour_at(0.85) == pytest.approx(0.5)
    assert group.fa_per_hour_at(0.2) == pytest.approx(2.5)
    # Above the highest false accept (0.9) the rate falls linearly to 0 at confidence 1.
    assert group.fa_per_hour_at(0.95) == pytest.approx(0.25)
    assert group.fa_per_hour_at(1.0) == 0.0
    assert group.threshold_for(1.5) == pytest.approx(0.6025)  # one grid step above 0.6
    assert group.threshold_for(0.5) == pytest.approx(0.8025)
    assert group.threshold_for(0.25) == pytest.approx(0.95)
    assert group.threshold_for(100.0) == group.confidence[0]


def test_curve_points_are_few_monotone_and_close_to_the_counts():
    rng = np.random.default_rng(0)
    scores = rng.beta(2, 5, size=20_000)
    curve = fa_curve("beta", scores, hours=10.0)
    confidence, rates = curve_points(curve)
    assert len(confidence) < 120 and confidence[-1] == 1.0 and rates[-1] == 0.0
    assert all(b > a for a, b in zip(confidence, confidence[1:], strict=False))
    assert all(b <= a for a, b in zip(rates, rates[1:], strict=False))
    assert rates[0] > 1000 >= rates[1]  # starts at the highest point above the cap
    group = _group(confidence=confidence, rates=rates)
    for index in range(0, len(curve.thresholds), 7):
        exact = curve.false_accepts[index] / curve.hours
        if 0 < exact <= 1000 and curve.thresholds[index] <= max(scores):
            assert group.fa_per_hour_at(float(curve.thresholds[index])) == pytest.approx(
                exact, rel=0.1)


def test_confidence_to_rate_is_monotone_and_thresholds_keep_their_promise():
    group = _group()
    grid = np.linspace(0, 1, 1001)
    rates = [group.fa_per_hour_at(c) for c in grid]
    assert all(b <= a for a, b in zip(rates, rates[1:], strict=False))
    assert group.fa_per_hour_at(0.0) == 100.0 and group.fa_per_hour_at(0.7) == pytest.approx(5.5)
    for target in (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 99.0):
        threshold = group.threshold_for(target)
        assert threshold == round(threshold, 4)
        assert group.fa_per_hour_at(threshold) <= target + 1e-9
        assert group.fa_per_hour_at(threshold - 0.001) > target  # the lowest such
    assert group.threshold_for(1000.0) == 0.1  # every swept confidence meets it
    stubborn = _group(rates=(100.0, 10.0, 4.0, 3.0))  # false accepts even at confidence 1
    assert stubborn.threshold_for(2.0) == 1.0


def test_fa_group_checks_its_thresholds_on_held_out_scores():
    fitted = GroupScores([0.9, 0.8, 0.8, 0.6, 0.3], seconds=7200.0)
    held_out = GroupScores([0.85, 0.5], seconds=3600.0)
    group = fa_group(4, 5, 3, fitted, held_out, targets=(0.5, 1.5))
    assert (group.name, group.words, group.hours, group.held_out_hours) == (
        "4-5 phones", 3, 2.0, 1.0)
    assert group.thresholds == {"0.5": 0.8025, "1.5": 0.6025}
    assert group.held_out_fa_per_hour == {"0.5": 1.0, "1.5": 1.0}


def test_thresholds_are_looked_up_by_the_keywords_phone_count():
    groups = [_group(low, high, rates=(100.0, 10.0 * (4 - i), 1.0, 0.0))
              for i, (low, high) in enumerate(PHONE_GROUPS)]
    calibration = FaCalibration(groups, [1.0, 2.0])
    assert [calibration.group(n).name for n in (1, 2, 3, 4, 7, 8, 30)] == [
        "2-3 phones", "2-3 phones", "2-3 phones", "4-5 phones", "6-7 phones", "8+ phones",
        "8+ phones"]
    assert [group_index(n) for n in (1, 3, 5, 6, 9)] == [0, 0, 1, 2, 3]
    # Each pronunciation of a keyword is held to the threshold of its own length.
    prons = [("t", "ah", "m", "ey", "t", "ow"), ("t", "ah", "m", "aa")]
    assert pronunciation_thresholds("tomato", prons, calibration, fa_per_hour=2.0) == [
        groups[2].threshold_for(2.0), groups[1].threshold_for(2.0)]
    assert pronunciation_thresholds("tomato", prons, calibration, threshold=0.4) == [0.4, 0.4]
    assert pronunciation_thresholds("tomato", prons, None) == [0.5, 0.5]
    # A length that false-accepts too often even at confidence 1 is named once.
    noisy = FaCalibration([_group(2, 3, rates=(100.0, 50.0, 20.0, 5.0)), *groups[1:]], [2.0])
    warned = []
    found = pronunciation_thresholds("to", [("t", "uw"), ("t", "ah")], noisy,
                                     warn=warned.append)
    assert found == [1.0, 1.0]
    assert len(warned) == 1 and warned[0].startswith("to: words of 2-3 phones false-accept 5")
    # Shorter keywords false-accept more: the same rate needs a higher threshold.
    thresholds = [calibration.group(n).threshold_for(5.0) for n in (2, 4, 6, 8)]
    assert thresholds == sorted(thresholds, reverse=True)


def test_calibration_words_are_seeded_and_spread_over_the_groups():
    words = calibration_words(20, seed=3)
    assert words == calibration_words(20, seed=3) != calibration_words(20, seed=4)
    assert len(words) == 20 and len({w.word for w in words}) == 20
    assert all(w.word.isalpha() and 2 <= w.phones <= 10 for w in words)
    per_group = [sum(group_index(w.phones) == g for w in words) for g in range(4)]
    assert per_group == [5, 5, 5, 5]
    assert {w.phones for w in words if w.phones >= 8} == {8, 9, 10}
    assert len(calibration_words(4, seed=0)) == 4
    first = {w.word for w in calibration_words(8, seed=3)}
    assert first.isdisjoint(w.word for w in calibration_words(8, seed=3, avoid=first))


# ----------------------------------------------------------------------------- scoring


def test_batched_alignment_scores_match_one_word_at_a_time():
    rng = np.random.default_rng(1)
    log_probs = ctc.log_posteriors(rng.dirichlet(np.full(40, 0.1), size=300))
    labels = [[3, 5, 7, 9], [4], [5, 5, 6], [], [7, 8], [1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]
    for ids, (confidence, starts) in zip(labels, ctc.keyword_scores_many(log_probs, labels),
                                         strict=True):
        alone, alone_starts = ctc.keyword_scores(log_probs, ids)
        np.testing.assert_array_equal(confidence, alone)
        np.testing.assert_array_equal(starts, alone_starts)
        for threshold, longest in ((0.01, None), (0.05, 20), (0.3, 8)):
            assert ctc.select_hits(confidence, starts, threshold, longest) == \
                ctc.keyword_search(log_probs, ids, threshold, longest)
    assert [len(c) for c, _ in ctc.keyword_scores_many(log_probs[:0], labels)] == [0] * 6


# ----------------------------------------------------------------------------- the card


def _phone_card(calibration: FaCalibration | None = None) -> ModelCard:
    return ModelCard(labels=model_labels(), sample_rate=RATE, input_length=2 * RATE,
                     arch="tcphones", task=Task.PHONES, recipe={"frame_ms": 20.0},
                     fa_calibration=calibration)


def test_negatives_the_model_trained_on_are_left_out(tmp_path):
    from kws.dataset import TESTING, TRAINING
    from kws.recordings import read_recordings, split_of

    talk, other = tmp_path / "talk", tmp_path / "other"
    for root in (talk, other):
        lines = ["file\tspeaker\ttranscript"]
        for index in range(24):
            write_wav(root / f"s{index}" / "a.wav", tone(300, 0.5, RATE), RATE)
            lines.append(f"s{index}/a.wav\ts{index}\thello")
        (root / "transcripts.tsv").write_text("\n".join(lines) + "\n")
    card = _phone_card()
    card.recipe.update(data=[str(talk)], validation_percent=30.0, testing_percent=30.0)
    recordings, held_out, notes = negative_recordings([talk, other], card)
    split = {r.path: split_of(r, 30.0, 30.0) for r in read_recordings(talk).recordings}
    kept = {r.path for r in recordings}
    assert {p for p, s in split.items() if s != TRAINING} == kept & set(split)
    assert all(held_out[p] == (split[p] == TESTING) for p in kept & set(split))
    assert any("trained on left out" in note for note in notes)
    others = read_recordings(other).recordings  # not a training folder: kws calibrate's split
    assert all(held_out[r.path] == (split_of(r) == TESTING) for r in others)


def test_card_round_trip_and_old_cards(tmp_path):
    calibration = FaCalibration(
        [fa_group(low, high, 2, GroupScores([0.9, 0.4, 0.3], 3600.0),
                  GroupScores([0.5], 1800.0), (1.0, 2.0)) for low, high in PHONE_GROUPS],
        targets=[1.0, 2.0], hours=0.5, held_out_hours=0.25, recordings=3,
        held_out_recordings=2, words=["abc", "def"], seed=7, folders=["negs"],
        command="kws phones calibrate")
    write_card(tmp_path / "cal", _phone_card(calibration))
    again = read_card(tmp_path / "cal")
    assert again.fa_calibration == calibration
    assert again.fa_calibration.group(9).thresholds == calibration.groups[3].thresholds
    write_card(tmp_path / "old", _phone_card())
    raw = json.loads((tmp_path / "old" / CARD_FILE).read_text())
    assert "fa_calibration" not in raw  # cards without one are written as before
    assert read_card(tmp_path / "old").fa_calibration is None


@pytest.mark.parametrize(("change", "message"), [
    (lambda c: c.update(groups=[]), "'fa_calibration.groups' must be a non-empty list"),
    (lambda c: c["groups"][0].update(fa_per_hour=[1.0, 2.0]), "is not a monotone curve"),
    (lambda c: c["groups"][0].update(confidence=[0.1, 2.0]),
     r"'fa_calibration.groups\[0\].confidence\[1\]' must be a number in 0..1"),
    (lambda c: c["groups"][1].pop("words"), r"'fa_calibration.groups\[1\].words' is missing"),
    (lambda c: c["groups"][0]["thresholds"].update(x=0.5), "not a rate"),
])
def test_a_damaged_calibration_is_one_line(tmp_path, change, message):
    group = {"min_phones": 2, "max_phones": 3, "words": 1, "confidence": [0.1, 1.0],
             "fa_per_hour": [2.0, 0.0], "thresholds": {"1": 0.55}}
    raw = json.loads(_phone_card().to_json())
    raw["fa_calibration"] = {"groups": [group, dict(group, min_phones=4, max_phones=None)]}
    read_card(_write_raw(tmp_path / "fine", raw))
    change(raw["fa_calibration"])
    with pytest.raises(KwsError, match=message):
        read_card(_write_raw(tmp_path / "bad", raw))


def _write_raw(folder, raw):
    folder.mkdir()
    (folder / CARD_FILE).write_text(json.dumps(raw))
    return folder


@pytest.mark.parametrize(("args", "code", "message"), [
    (["--fa-per-hour", "2"], 2, "no false-accept calibration for --fa-per-hour; run "
                                "`kws phones calibrate --model"),
    (["--fa-per-hour", "0"], 2, "--fa-per-hour must be a positive number"),
])
def test_spot_fa_per_hour_refuses_an_uncalibrated_model_before_tensorflow(
        tmp_path, project_env, args, code, message):
    write_card(tmp_path / "model", _phone_card())
    clip = write_wav(tmp_path / "clip.wav", tone(300, 1.0, RATE), RATE)
    script = ("import sys\nfrom kws.cli import main\n"
              "try:\n    main(sys.argv[1:])\nexcept SystemExit as stop:\n"
              "    heavy = sorted(m for m in ('tensorflow', 'keras') if m in sys.modules)\n"
              "    print('STATUS', stop.code, *heavy, file=sys.stderr)\n")
    result = subprocess.run([sys.executable, "-c", script, "phones", "spot", "-m",
                             str(tmp_path / "model"), "-k", "marvin", *args, str(clip)],
                            capture_output=True, text=True, env=project_env, timeout=120)
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == f"STATUS {code}", result.stderr
    assert len(lines) == 2 and lines[0].startswith("kws: error: ") and message in lines[0]


def test_calibrate_checks_its_arguments(tmp_path, capsys):
    from kws.cli import main

    with pytest.raises(UsageError, match="--words must be at least 4"):
        calibrate_phones(tmp_path, [tmp_path], words=3)
    with pytest.raises(SystemExit) as exited:
        main(["phones", "calibrate", "-m", str(tmp_path), "--negatives",
              str(tmp_path / "nowhere")])
    assert exited.value.code == 2
    assert capsys.readouterr().err.strip() == (f"kws: error: --negatives {tmp_path}/nowhere: "
                                               "no such folder or file")


def test_calibrate_names_every_unreadable_negative_before_its_error(tmp_path, capsys):
    from test_recordings import write_unreadable

    from kws.cli import main

    model = tmp_path / "phones"
    shutil.copytree(PHONE_MODEL, model)  # never calibrate the shipped folder itself
    bad = write_unreadable(tmp_path / "bad")
    with pytest.raises(SystemExit) as exited:
        main(["phones", "calibrate", "-m", str(model), "--negatives", str(tmp_path / "bad")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert exited.value.code == 1
    assert sorted(line.split(": ")[2] for line in lines[:-1]) == [str(p) for p in bad]
    assert lines[-1] == "kws: error: --negatives: none of the 4 recording(s) could be read"
    assert read_card(model).fa_calibration == read_card(PHONE_MODEL).fa_calibration


# ----------------------------------------------------------------------------- end to end


#: Speakers of the negative recordings (their hash puts some on each side of the split).
SPEAKERS = ("anna", "bert", "cara", "dave", "emil", "fred")


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """A phone model trained one epoch at 8 kHz, calibrated on tone-and-noise recordings
    (one of which says a calibration word); ``(model, negatives, --json summary)``."""
    from kws.phones.recognizer import model_lexicon

    base = tmp_path_factory.mktemp("phone-calibrate")
    data = make_speech_commands(base / "data", rate=RATE)
    out = base / "model"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KWS_CACHE_DIR", str(base / "cache"))
        trained = CliRunner().invoke(cli, [
            "phones", "train", "--data", str(data), "--out", str(out), "--epochs", "1",
            "--rate", str(RATE), "--json"])
    assert trained.exit_code == 0, trained.output
    shutil.copytree(out, base / "uncalibrated")
    # The words calibration draws (the model's own words are avoided); the first is said.
    said = calibration_words(8, seed=5, avoid=model_lexicon(out).words)[0].word
    rng = np.random.default_rng(0)
    lines = ["file\tspeaker\ttranscript"]
    for index, speaker in enumerate(SPEAKERS):
        for take in range(2):
            noise = 0.1 * rng.standard_normal(3 * RATE).astype(np.float32)
            waveform = noise + tone(150 + 60 * index + 20 * take, 3.0, RATE, 0.3)
            write_wav(base / "negs" / speaker / f"{take}.wav", waveform, RATE)
            text = said if (index, take) == (0, 0) else "nothing here"
            lines.append(f"{speaker}/{take}.wav\t{speaker}\t{text}")
    (base / "negs" / "transcripts.tsv").write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(cli, ["phones", "calibrate", "-m", str(out), "--negatives",
                                      str(base / "negs"), "--words", "8", "--seed", "5",
                                      "--json"])
    assert result.exit_code == 0, result.output
    return out, base, json.loads(result.stdout)


def test_calibrate_records_curves_in_the_card(calibrated):
    out, base, summary = calibrated
    assert summary["written"] and summary["skipped_saying_the_word"] == 1
    assert summary["recordings"] + summary["held_out_recordings"] == 12
    assert summary["recordings"] and summary["held_out_recordings"]
    cal = read_card(out).fa_calibration
    assert cal is not None and len(cal.words) == 8 and cal.seed == 5
    assert cal.command.startswith("kws phones calibrate --model")
    assert [(g.min_phones, g.max_phones, g.words) for g in cal.groups] == [
        (2, 3, 2), (4, 5, 2), (6, 7, 2), (8, None, 2)]
    for group in cal.groups:
        assert set(group.thresholds) == set(group.held_out_fa_per_hour) == {
            "0.5", "1", "2", "5", "10", "20"}
        assert group.hours > 0 and group.held_out_hours > 0
        assert group.confidence[-1] == 1.0
    # Without --dry-run nothing else of the card changed.
    uncalibrated = read_card(base / "uncalibrated")
    assert read_card(out).metrics == uncalibrated.metrics


def test_spot_on_a_calibrated_model_reports_fa_per_hour(calibrated, monkeypatch):
    out, base, _ = calibrated
    group = read_card(out).fa_calibration.group(4)
    recording = base / "negs" / "anna" / "1.wav"
    # Four phones no dictionary word is one phone away from (see test_phones' CLI test).
    result = CliRunner().invoke(cli, ["phones", "spot", "-m", str(out), "--phones",
                                      "ah p oy zh", "-t", "0.0001", "--fa-per-hour", "1",
                                      "-f", "jsonl", str(recording)])
    assert result.exit_code == 0, result.output
    found = [json.loads(line) for line in result.stdout.splitlines()]
    assert found and all(d["fa_per_hour"] == round(group.fa_per_hour_at(d["confidence"]), 4)
                         for d in found)
    uncalibrated = CliRunner().invoke(cli, ["phones", "spot", "-m", str(base / "uncalibrated"),
                                            "-k", "stop", "-t", "0.05", "-f", "jsonl",
                                            str(recording)])
    assert all(json.loads(line)["fa_per_hour"] is None
               for line in uncalibrated.stdout.splitlines())

    # The threshold: --threshold wins; else --fa-per-hour's; else 2 FA/h's.
    import kws.phones.recognizer as recognizer

    used = []
    real = recognizer.spot_in

    def spy(log_probs, path, name, prons, ids, threshold, *rest, **options):
        used.append(threshold)
        return real(log_probs, path, name, prons, ids, threshold, *rest, **options)

    monkeypatch.setattr(recognizer, "spot_in", spy)
    for options in ({}, {"fa_per_hour": 5.0}, {"fa_per_hour": 5.0, "threshold": 0.3}):
        list(recognizer.spot_phones([str(recording)], out, "stop", **options))
    # One threshold per pronunciation ("stop" has one, of 4 phones).
    assert [list(t) for t in used] == [[group.threshold_for(2.0)], [group.threshold_for(5.0)],
                                       [0.3]]


def test_a_false_accept_counts_in_the_group_of_the_reading_that_made_it(calibrated,
                                                                         monkeypatch):
    # As `kws phones spot` holds each pronunciation to its own length's threshold, a word
    # said in 2 or in 5 phones is searched for in both groups' hours, and a detection of
    # its long reading is a false accept of 4-5-phone words.
    import kws.phones.calibrate as calibrate
    from kws.infer import Detection

    out, base, _ = calibrated
    mixed = calibrate.CalibrationWord("mixed", (("ah", "p"), ("ah", "p", "s", "ay", "d")))
    longest = calibrate.CalibrationWord("longest", (tuple("s t r eh ng k th s".split()),))
    monkeypatch.setattr(calibrate, "calibration_words",
                        lambda count, seed, avoid: [mixed, longest])

    def long_reading_hits(log_probs, path, name, prons, ids, threshold, *rest, **options):
        return [Detection(name, 0.9, 0.0, 0.5, path=path, pronunciation=prons[-1])]

    monkeypatch.setattr(calibrate, "spot_in", long_reading_hits)
    groups = calibrate.calibrate_phones(out, [base / "negs"], words=4).calibration.groups
    assert [g.words for g in groups] == [1, 1, 0, 1]
    short, five, six, eight = groups
    assert short.hours == five.hours == eight.hours > 0 and six.hours == 0
    assert short.fa_per_hour_at(0.5) == 0.0
    assert five.fa_per_hour_at(0.9) > 0
    assert five.fa_per_hour_at(0.9) == pytest.approx(eight.fa_per_hour_at(0.9))
