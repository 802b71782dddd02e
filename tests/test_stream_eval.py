"""Measuring a spotter on streams: hits, misses, false accepts per hour, DET, synthetic streams."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import tone, write_wav

from kws import stream_eval as se
from kws.cli import cli, main
from kws.infer import Runner
from kws.modelfolder import ModelCard, read_card, write_card
from kws.stream_eval import Occurrence, Spot, Truth


def synthetic_truth() -> Truth:
    """A 60 s stream: yes at 5 s and 30 s, no at 12 s."""
    return Truth.from_occurrences("s", 60.0, [
        Occurrence("yes", 5.0, 5.6), Occurrence("no", 12.0, 12.4), Occurrence("yes", 30.0, 30.5),
    ])


def tally(items, keywords) -> se.StreamScore:
    """Counts of the operating detections of ``(truth, spots)`` items."""
    counter = se.Tally(keywords)
    for truth, spots in items:
        counter.add(truth, spots)
    return counter.result(dict.fromkeys(keywords, 0.5))


def test_counting_on_a_synthetic_stream_with_known_times():
    spots = [
        Spot("yes", 0.9, 4.9, 5.5),    # hit (yes at 5 s)
        Spot("yes", 0.8, 5.2, 5.8),    # second detection of the same yes: false accept
        Spot("no", 0.95, 20.0, 20.5),  # no said at 12 s, not here: false accept
        Spot("yes", 0.7, 40.0, 40.6),  # nothing said: false accept
        Spot("up", 0.99, 30.0, 30.5),  # wrong word at the second yes: not measured
    ]
    assert se.judge(synthetic_truth(), spots) == [True, False, False, False, False]
    result = tally([(synthetic_truth(), spots)], ["yes", "no"])
    yes, no, overall = (result.counts[k] for k in ("yes", "no", se.OVERALL))
    assert (yes.occurrences, yes.hits, yes.misses, yes.false_accepts) == (2, 1, 1, 2)
    assert (no.occurrences, no.hits, no.misses, no.false_accepts) == (1, 0, 1, 1)
    assert (overall.occurrences, overall.hits, overall.false_accepts) == (3, 1, 3)
    assert yes.recall == 0.5 and yes.precision == pytest.approx(1 / 3)
    assert no.precision == 0.0
    assert overall.fa_per_hour == pytest.approx(3 / (60 / 3600))


def test_the_better_detection_takes_an_occurrence_and_tolerance_is_honoured():
    truth = synthetic_truth()
    weak_first, strong_second = Spot("yes", 0.6, 4.5, 5.0), Spot("yes", 0.9, 5.1, 5.7)
    assert se.judge(truth, [weak_first, strong_second]) == [False, True]
    near = Spot("no", 0.9, 12.6, 13.0)   # 0.2 s after the word ends
    assert se.judge(truth, [near]) == [True]
    assert se.judge(truth, [near], tolerance=0.1) == [False]


def test_transcript_counts_allow_n_hits_and_the_rest_are_false_accepts():
    truth = Truth.from_transcript("a.flac", 7.2, "go yes go stop seven go".split(),
                                  ["yes", "go", "no"])
    assert dict(truth.counts) == {"go": 3, "yes": 1}
    spots = [Spot("go", s, t, t + 0.5) for s, t in ((0.9, 0), (0.8, 1), (0.7, 2), (0.95, 3))]
    spots += [Spot("yes", 0.6, 4, 4.5), Spot("yes", 0.9, 5, 5.5), Spot("no", 0.99, 6, 6.4)]
    # The three best go detections are hits (the 0.7 one is the fourth); the better yes is.
    assert se.judge(truth, spots) == [True, True, False, True, False, True, False]
    result = tally([(truth, spots)], ["yes", "go", "no"])
    assert (result.counts["go"].hits, result.counts["go"].false_accepts) == (3, 1)
    assert (result.counts["no"].occurrences, result.counts["no"].false_accepts) == (0, 1)
    assert result.counts["no"].recall is None


def test_false_accepts_per_hour_arithmetic_over_several_recordings():
    quiet = Truth.from_transcript("q", 1800.0, ["hello"], ["yes"])
    other = Truth.from_transcript("o", 5400.0, ["yes"], ["yes"])
    spots_q = [Spot("yes", 0.9, 1, 2), Spot("yes", 0.8, 9, 10)]
    spots_o = [Spot("yes", 0.9, 1, 2), Spot("yes", 0.7, 5, 6)]
    result = tally([(quiet, spots_q), (other, spots_o)], ["yes"])
    counts = result.counts["yes"]
    assert result.hours == pytest.approx(2.0) and result.recordings == 2
    assert (counts.hits, counts.false_accepts) == (1, 3)
    assert counts.fa_per_hour == pytest.approx(1.5)
    assert se.Counts(1, 0, 2, 0.0).fa_per_hour == math.inf
    assert se.Counts(1, 0, 0, 0.0).fa_per_hour == 0.0


def test_miss_rate_at_a_rate_of_false_accepts_on_a_crafted_sweep():
    # Ten keyword occurrences over two hours, hits and false accepts at each threshold
    # (not monotonic at 0.7, as separate detector runs may be).
    thresholds = [0.99, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    hits = [2, 4, 5, 4, 7, 8, 9]
    false = [0, 1, 1, 2, 2, 6, 12]
    curve = se.Curve("yes", np.array(thresholds), np.array(hits), np.array(false), 10, 2.0)
    at_half = curve.at_fa_per_hour(0.5)     # one false accept allowed: 0.8 has most hits
    assert at_half.threshold == 0.8 and at_half.counts.hits == 5
    assert at_half.miss_rate == pytest.approx(0.5)
    at_one = curve.at_fa_per_hour(1.0)      # two allowed: 0.6
    assert at_one.threshold == 0.6 and at_one.miss_rate == pytest.approx(0.3)
    at_five = curve.at_fa_per_hour(5.0)     # ten allowed: 0.5 (0.4 has 12)
    assert at_five.threshold == 0.5 and at_five.counts.fa_per_hour == 3.0
    at_zero = curve.at_fa_per_hour(0.0)
    assert at_zero.threshold == 0.99 and at_zero.counts.hits == 2
    never = se.Curve("no", np.array([0.9]), np.array([3]), np.array([1]), 4, 10.0)
    point = never.at_fa_per_hour(0.05)      # even the top threshold makes 0.1 FA/h
    assert point.threshold == math.inf and point.miss_rate == 1.0
    fa, miss = curve.det()
    assert fa[0] == 0.0 and miss[0] == 1.0
    assert fa[-1] == pytest.approx(6.0) and miss[-1] == pytest.approx(0.1)


def test_sweep_runs_give_per_keyword_and_pooled_curves_and_json_is_complete():
    truth = synthetic_truth()
    high = [Spot("yes", 0.9, 5, 5.5)]
    low = [Spot("yes", 0.9, 5, 5.5), Spot("no", 0.4, 12, 12.4), Spot("no", 0.3, 50, 50.4)]
    t = se.Tally(["yes", "no", "up"], sweep=[0.8, 0.3])
    t.add(truth, operating=low[:2], swept={0.8: high, 0.3: low})
    result = t.result({"yes": 0.5, "no": 0.35, "up": 0.5})
    assert set(result.curves) == {"yes", "no", se.OVERALL}
    overall = result.curves[se.OVERALL]
    assert overall.thresholds.tolist() == [0.8, 0.3]
    assert overall.hits.tolist() == [1, 2] and overall.false_accepts.tolist() == [0, 1]
    data = result.to_json()
    assert data["per_keyword"]["overall"]["hits"] == 2
    assert data["per_keyword"]["overall"]["false_accepts"] == 0
    assert data["per_keyword"]["overall"]["misses"] == 1
    assert "up" not in data["det"] and "up" in data["per_keyword"]
    det = data["det"]["overall"]
    assert det["miss_rate"] == [pytest.approx(2 / 3), pytest.approx(1 / 3)]
    assert det["fa_per_hour"] == [0.0, pytest.approx(60.0)]
    assert data["per_keyword"]["yes"]["at_fa_per_hour"]["1.0"]["miss_rate"] == 0.5
    assert data["thresholds"]["no"] == 0.35
    for wrong in ({0.5: [], 0.8: []}, {0.8: []}, None):
        with pytest.raises(ValueError, match="the sweep is"):
            t.add(truth, operating=[], swept=wrong)
    assert t.recordings == 1


def test_synthetic_streams_are_reproducible_and_place_words_where_they_say(tmp_path):
    rate = 8000
    clips = []
    for n in range(7):
        word = ("yes", "no", "cat")[n % 3]
        wave = np.zeros(rate)
        wave[2000:5000] = tone(300 + 100 * n, 3000 / rate, rate)
        clips.append((write_wav(tmp_path / word / f"s{n}_nohash_0.wav", wave, rate), word))
    noise = write_wav(tmp_path / "noise.wav", 0.1 * np.random.default_rng(0).standard_normal(
        3 * rate), rate)
    plans = se.plan_synthetic(clips, [noise], snrs=(10.0, 0.0), seed=4, stream_seconds=10.0)
    assert plans == se.plan_synthetic(clips, [noise], snrs=(10.0, 0.0), seed=4,
                                      stream_seconds=10.0)
    assert plans != se.plan_synthetic(clips, [noise], snrs=(10.0, 0.0), seed=5,
                                      stream_seconds=10.0)
    assert sorted(p.path.name for plan in plans for p in plan.placements) == sorted(
        path.name for path, _ in clips)
    bank = se.NoiseBank(rate)
    for plan in plans:
        waveform, placed, failed = se.render_stream(plan, rate, bank)
        assert failed == [] and len(waveform) == round(plan.duration * rate)
        for occurrence, placement in zip(placed, plan.placements, strict=True):
            # The tone (samples 2000..5000 of the clip) is where the occurrence says.
            assert occurrence.start == pytest.approx(placement.start + 2000 / rate, abs=0.011)
            assert occurrence.end == pytest.approx(placement.start + 5000 / rate, abs=0.011)
            inside = waveform[int(occurrence.start * rate) + 80 : int(occurrence.end * rate) - 80]
            before = waveform[int(placement.start * rate) : int(placement.start * rate) + 1500]
            ratio_db = 10 * np.log10(np.mean(inside.astype(float) ** 2)
                                     / np.mean(before.astype(float) ** 2))
            assert ratio_db == pytest.approx(10 * np.log10(1 + 10 ** (occurrence.snr_db / 10)),
                                             abs=1.0)
        truth = se.synthetic_truth(plan, placed, ["yes", "no"])
        assert all(o.keyword in ("yes", "no") for o in truth.occurrences)


def test_a_clip_longer_than_its_slot_is_cut_so_words_never_overlap(tmp_path):
    rate = 8000
    long = write_wav(tmp_path / "yes" / "l_nohash_0.wav", tone(500, 2.5, rate), rate)
    noise = write_wav(tmp_path / "noise.wav", 0.125 * (-1.0) ** np.arange(rate), rate)
    plan, = se.plan_synthetic([(long, "yes"), (long, "yes")], [noise], stream_seconds=30.0,
                              gap_seconds=(0.5, 0.5))
    _, placed, _ = se.render_stream(plan, rate, se.NoiseBank(rate))
    assert [o.end - o.start for o in placed] == [pytest.approx(1.0)] * 2
    assert placed[0].end < placed[1].start


def test_an_unreadable_clip_leaves_noise_and_is_reported(tmp_path):
    rate = 8000
    bad = tmp_path / "yes" / "bad_nohash_0.wav"
    bad.parent.mkdir()
    bad.write_bytes(b"RIFF....WAVEnot really")
    noise = write_wav(tmp_path / "noise.wav", 0.125 * (-1.0) ** np.arange(rate), rate)
    plan, = se.plan_synthetic([(bad, "yes")], [noise], stream_seconds=10.0)
    waveform, placed, failed = se.render_stream(plan, rate, se.NoiseBank(rate))
    assert placed == [] and len(failed) == 1 and failed[0][0] == str(bad)
    assert np.allclose(np.abs(waveform), 10 ** (se.NOISE_DBFS / 20), rtol=1e-3)


# --- a model's detector on streams, with a fake model ---------------------------------

RATE = 8000
LABELS = ["_silence_", "_unknown_", "no", "yes"]


class SignRunner(Runner):
    """A fake model: 'yes' when the middle of a window has a positive offset, 'no' when a
    negative one, silence otherwise (clips are constant stretches of either sign)."""

    name = "fake"

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        middle = batch[:, int(0.3 * RATE) : int(0.7 * RATE)].mean(axis=1)
        out = np.full((len(batch), len(LABELS)), 0.02, dtype=np.float32)
        out[:, 3] = np.where(middle > 0.005, 0.94, 0.02)
        out[:, 2] = np.where(middle < -0.005, 0.94, 0.02)
        out[:, 0] = np.where(np.abs(middle) <= 0.005, 0.94, 0.02)
        return out


def constant(sign: float, seconds: float = 0.5) -> np.ndarray:
    """A clip: ``seconds`` of a constant offset, with silence around it."""
    wave = np.zeros(RATE, dtype=np.float32)
    wave[int(0.2 * RATE) : int((0.2 + seconds) * RATE)] = 0.5 * sign
    return wave


@pytest.fixture
def fake_model(tmp_path, monkeypatch) -> Path:
    """A model folder whose card is real and whose model is :class:`SignRunner`."""
    folder = tmp_path / "model"
    folder.mkdir()
    write_card(folder, ModelCard(labels=LABELS, sample_rate=RATE, input_length=RATE,
                                 arch="fake"))
    monkeypatch.setattr(se, "open_runner", lambda model, runner="auto", threads=None:
                        SignRunner(Path(model), read_card(model)))
    return folder


@pytest.fixture
def clip_data(tmp_path) -> Path:
    """yes (+), no (-) and cat (+, not a keyword: a false 'yes') clips, and white noise."""
    root = tmp_path / "clips"
    for n in range(4):
        write_wav(root / "yes" / f"y{n}_nohash_0.wav", constant(1.0), RATE)
        write_wav(root / "no" / f"n{n}_nohash_0.wav", constant(-1.0), RATE)
    write_wav(root / "cat" / "c0_nohash_0.wav", constant(1.0), RATE)
    noise = np.random.default_rng(0).standard_normal(5 * RATE).astype(np.float32)
    write_wav(root / "_background_noise_" / "white.wav", 0.1 * noise, RATE)
    return root


@pytest.fixture
def recordings(tmp_path) -> Path:
    """One recording saying 'yes hello yes no': two yes, a hello, no 'no' (said too quietly)."""
    root = tmp_path / "recordings"
    wave = np.zeros(8 * RATE, dtype=np.float32)
    wave[1 * RATE : int(1.5 * RATE)] = 0.2
    wave[4 * RATE : int(4.5 * RATE)] = 0.2
    write_wav(root / "spk" / "a.wav", wave, RATE)
    (root / "transcripts.tsv").write_text("file\tspeaker\ttranscript\nspk/a.wav\tspk\t"
                                          "yes hello yes no\n")
    return root


def test_the_detector_on_synthetic_streams_and_recordings_counts_exactly(
        fake_model, clip_data, recordings):
    settings = se.StreamSettings(split="all", snrs=(20.0,), stream_seconds=12.0,
                                 sweep=(0.99, 0.9, 0.5))
    result = se.evaluate_stream(fake_model, [recordings], [clip_data], settings)
    counts = result.score.counts
    assert (counts["yes"].occurrences, counts["yes"].hits, counts["yes"].false_accepts) == (
        6, 6, 1)                                   # 4 clips + 2 in the recording; the cat
    assert (counts["no"].occurrences, counts["no"].hits, counts["no"].false_accepts) == (
        5, 4, 0)                                   # the recording's 'no' is missed
    synthetic, = [s for s in result.sources if s.kind == "synthetic"]
    assert synthetic.tally.recordings == len(se.plan_synthetic(
        [(p, p.parent.name) for p in sorted(clip_data.glob("[!_]*/*.wav"))],
        [clip_data / "_background_noise_" / "white.wav"], stream_seconds=12.0))
    assert result.score.hours == pytest.approx(
        sum(s.tally.seconds for s in result.sources) / 3600)
    # 47 s of audio: the cat's false accept alone is 77 per hour. 0.99 finds nothing;
    # 0.9 and 0.5 find the same (the higher threshold is reported).
    rates = result.score.miss_rates(targets=(1.0, 100.0))[se.OVERALL]
    assert rates[1.0].threshold == 0.99 and rates[1.0].counts.hits == 0
    assert rates[100.0].threshold == 0.9 and rates[100.0].counts.hits == 10
    assert result.failed == [] and result.runner == "fake"


def test_kws_evaluate_stream_json_and_det_png(fake_model, clip_data, recordings, tmp_path):
    png = tmp_path / "out" / "det.png"
    outcome = CliRunner().invoke(cli, [
        "evaluate", str(fake_model), "--stream", "--data", str(recordings),
        "--synthetic-from", str(clip_data), "--split", "all", "--snr", "20",
        "--det-png", str(png), "--json"])
    assert outcome.exit_code == 0, outcome.output
    data = json.loads(outcome.stdout)
    assert data["per_keyword"]["overall"]["hits"] == 10
    assert data["per_keyword"]["overall"]["false_accepts"] == 1
    assert data["per_keyword"]["overall"]["occurrences"] == 11
    assert set(data["per_keyword"]["overall"]["at_fa_per_hour"]) == {"0.5", "1.0", "5.0"}
    assert [s["kind"] for s in data["sources"]] == ["recordings", "synthetic"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list(png.parent.iterdir()) == [png]


def test_unreadable_background_noise_is_named_and_never_streamed_over(fake_model, clip_data,
                                                                      tmp_path, run_cli):
    from test_recordings import write_unreadable

    noisy = tmp_path / "noise"
    bad = write_unreadable(noisy, RATE)
    write_wav(noisy / "good.wav", 0.1 * tone(300, 5.0, RATE), RATE)
    settings = se.StreamSettings(split="all", snrs=(20.0,), stream_seconds=4.0,
                                 backgrounds=(str(noisy),))
    result = se.evaluate_stream(fake_model, (), [clip_data], settings)
    # named once each, and every stream was built, over readable noise
    assert sorted(path for path, _ in result.failed) == [str(p) for p in bad]
    assert result.score.recordings == len(se.plan_synthetic(
        [(p, p.parent.name) for p in clip_data.glob("[!_]*/*.wav")], [noisy], stream_seconds=4.0))
    outcome = run_cli(["evaluate", str(fake_model), "--stream", "--synthetic-from",
                       str(clip_data), "--split", "all", "--background", str(noisy)])
    assert outcome.exit_code == 1 and "empty.wav: empty file (0 bytes)" in outcome.stderr
    # Without a readable noise file, no stream: one line per file, then one error line.
    (noisy / "good.wav").unlink()
    (clip_data / "_background_noise_" / "white.wav").write_bytes(b"")
    outcome = run_cli(["evaluate", str(fake_model), "--stream", "--synthetic-from",
                       str(clip_data), "--split", "all", "--background", str(noisy)])
    lines = outcome.stderr.strip().splitlines()
    assert outcome.exit_code == 1 and outcome.stdout == ""
    assert len(lines) == 6 and all(line.startswith("kws: error: ") for line in lines)
    assert lines[-1] == (f"kws: error: --background {noisy}, {clip_data}/_background_noise_: "
                         "none of the 5 background noise file(s) is readable, so no stream "
                         "can be built")


def test_recordings_none_of_which_can_be_read_are_no_report(fake_model, tmp_path, run_cli):
    from test_recordings import write_unreadable

    bad = write_unreadable(tmp_path / "talk" / "spk", RATE)
    (tmp_path / "talk" / "transcripts.tsv").write_text("file\tspeaker\ttranscript\n" + "".join(
        f"spk/{path.name}\tspk\tyes\n" for path in bad))
    outcome = run_cli(["evaluate", str(fake_model), "--stream", "--data", str(tmp_path / "talk"),
                       "--split", "all"])
    lines = outcome.stderr.strip().splitlines()
    assert outcome.exit_code == 1 and outcome.stdout == ""
    assert sorted(line.split(": ")[2] for line in lines[:-1]) == [str(p) for p in bad]
    assert lines[-1] == "kws: error: nothing to score: none of the 4 recording(s) could be read"


def test_kws_evaluate_stream_refuses_bad_arguments(fake_model, clip_data, recordings, capsys):
    def run(*args: str) -> tuple[int, str]:
        """Run ``kws`` as the console script does: one-line errors, exit codes."""
        with pytest.raises(SystemExit) as exited:
            main(["evaluate", str(fake_model), *args])
        out, err = capsys.readouterr()
        return exited.value.code, out + err

    code, output = run("--stream", "--data", str(recordings), "--det-png",
                       str(recordings / "det.png"))
    assert code == 2 and "would write over the input" in output
    assert not (recordings / "det.png").exists()
    code, output = run("--det-png", "x.png")
    assert code == 2 and "--det-png applies to --stream only" in output
    code, output = run("--stream")
    assert code == 2 and "--stream needs" in output
    code, output = run("--stream", "--data", str(recordings / "missing"))
    assert code == 2 and "no such folder of recordings" in output
    code, output = run("--stream", "--data", str(recordings), "--keywords", "maybe")
    assert code == 2 and "'maybe' is not a keyword" in output
    code, output = run("--stream", "--synthetic-from", str(recordings))
    assert code == 1 and "no word clips" in output
    for snr in ("1000", "-1000", "41", "nan"):
        code, output = run("--stream", "--synthetic-from", str(clip_data), "--snr", snr)
        assert code == 2 and "--snr" in output and len(output.strip().splitlines()) == 1
