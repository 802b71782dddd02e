"""The streaming detector: decisions on scripted posteriors, chunk-size invariance, settings.

A scripted runner reads each window's start from the waveform (sample ``n`` holds the value
``n``), so the posteriors are a function of window position alone; a tone runner scores
real audio by the energy of two frequency bands, for chunking tests on a real waveform.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import tone

from kws.errors import KwsError, UsageError
from kws.infer import (
    Detection,
    DetectorSettings,
    StreamDetector,
    detect,
)
from kws.infer.detector import Opinion
from kws.modelfolder import ModelCard

LABELS = ["_silence_", "_unknown_", "yes", "no"]
RATE = 100  # samples per second: a hop of 0.05 s is 5 samples, a window 1 s


class ScriptedRunner:
    """Posteriors by window start (seconds): ``script[word] = [(from_s, to_s, p), ...]``."""

    labels = LABELS
    sample_rate = RATE
    input_length = RATE
    batch_size = 4

    def __init__(self, script: dict[str, list[tuple[float, float, float]]]) -> None:
        self.script = script
        self.calls: list[int] = []

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.calls.append(len(batch))
        out = np.zeros((len(batch), len(LABELS)), dtype=np.float32)
        for row, window in zip(out, batch, strict=True):
            start = float(window[0]) / RATE
            for word, spans in self.script.items():
                for first, last, p in spans:
                    if first <= start < last:
                        row[LABELS.index(word)] = p
            row[0] = max(0.0, 1.0 - row.sum())
        return out


def positions(seconds: float) -> np.ndarray:
    """A waveform whose sample ``n`` is ``n``: the scripted runner reads window starts."""
    return np.arange(int(seconds * RATE), dtype=np.float32)


def run(script, settings=None, seconds: float = 10.0) -> list[Detection]:
    return detect(ScriptedRunner(script), positions(seconds), settings or DetectorSettings())


def labels_of(found: list[Detection]) -> list[str]:
    return [d.label for d in found]


def test_one_detection_per_keyword_occurrence_decided_soon_after_onset():
    found = run({"yes": [(2.0, 2.6, 0.9)], "no": [(5.0, 5.5, 0.95)]})
    assert labels_of(found) == ["yes", "no"]
    settings = DetectorSettings()
    for detection, onset in zip(found, (2.0, 5.0), strict=True):
        # window starting at the onset ends 1 s later; smoothing and max_delay bound the wait
        assert onset + 1.0 <= detection.decided_at
        assert detection.decided_at <= onset + 1.0 + settings.smoothing + settings.max_delay
    assert found[1].probability == pytest.approx(0.95)


def test_a_flicker_and_an_early_blip_do_not_report_a_word_twice():
    # issue 11: at -t 0.9 one `stop` came out twice (a blip, then the word 0.6 s later)
    script = {"yes": [(2.0, 2.05, 0.95), (2.6, 3.0, 0.95), (3.0, 3.05, 0.5),
                      (3.05, 3.4, 0.95)]}
    assert labels_of(run(script, DetectorSettings(default_threshold=0.9))) == ["yes"]


def test_cooldown_merges_repeats_of_one_word():
    script = {"yes": [(2.0, 2.4, 0.9), (2.8, 3.2, 0.9)]}
    assert labels_of(run(script, DetectorSettings(cooldown=1.0))) == ["yes"]
    assert labels_of(run(script, DetectorSettings(cooldown=0.0))) == ["yes", "yes"]
    later = {"yes": [(2.0, 2.4, 0.9), (4.0, 4.4, 0.9)]}
    assert labels_of(run(later, DetectorSettings(cooldown=1.0))) == ["yes", "yes"]


def test_thresholds_are_per_keyword():
    script = {"yes": [(2.0, 2.5, 0.6)], "no": [(5.0, 5.5, 0.6)]}
    assert run(script) == []
    settings = DetectorSettings(thresholds={"yes": 0.5})
    assert labels_of(run(script, settings)) == ["yes"]
    assert settings.threshold("no") == 0.7
    assert labels_of(run(script, DetectorSettings(default_threshold=0.55))) == ["yes", "no"]


def test_smoothing_ignores_a_single_window_spike():
    script = {"no": [(3.0, 3.05, 0.99)]}
    assert run(script, DetectorSettings(smoothing=0.15)) == []
    assert labels_of(run(script, DetectorSettings(smoothing=0.0))) == ["no"]


def test_overlapping_different_words_keep_the_stronger():
    script = {"yes": [(2.0, 2.5, 0.8)], "no": [(2.1, 2.5, 0.95)]}
    (found,) = run(script)
    assert found.label == "no" and found.probability == pytest.approx(0.95)


def test_a_word_right_after_another_is_held_off():
    # the new default model heard "up" in the end of "stop", 0.3 s after deciding "stop"
    script = {"yes": [(2.0, 2.4, 0.95)], "no": [(2.6, 2.9, 0.75)]}
    held = DetectorSettings(holdoff=0.5)
    assert labels_of(run(script, held)) == ["yes"]
    assert labels_of(run(script, DetectorSettings(holdoff=0.0))) == ["yes", "no"]
    later = {"yes": [(2.0, 2.4, 0.95)], "no": [(3.4, 3.8, 0.75)]}
    assert labels_of(run(later, held)) == ["yes", "no"]


def test_keywords_restrict_what_is_reported():
    script = {"yes": [(2.0, 2.5, 0.9)], "no": [(5.0, 5.5, 0.9)]}
    assert labels_of(run(script, DetectorSettings(keywords=("no",)))) == ["no"]


def test_max_delay_bounds_the_decision_of_a_long_peak():
    script = {"yes": [(2.0, 6.0, 0.9)]}
    (found,) = run(script, DetectorSettings(max_delay=0.2, smoothing=0.0))
    assert found.decided_at == pytest.approx(3.0 + 0.2)
    (found,) = run(script, DetectorSettings(max_delay=10.0, smoothing=0.0))
    assert found.decided_at == pytest.approx(7.0)  # the first window below threshold


def test_a_word_at_the_very_end_is_decided_by_finish():
    runner = ScriptedRunner({"yes": [(1.3, 9.0, 0.9)]})
    detector = StreamDetector(runner, DetectorSettings(max_delay=5.0))
    wave = positions(2.53)
    assert detector.feed(wave) == []
    (found,) = detector.finish()
    assert found.label == "yes" and found.decided_at == pytest.approx(len(wave) / RATE)
    assert detector.finish() == []
    with pytest.raises(KwsError, match="finished"):
        detector.feed(wave[:10])
    with pytest.raises(KwsError, match="mono"):
        StreamDetector(runner).feed(np.zeros((10, 2), np.float32))


def test_windows_ready_together_are_scored_in_batches_and_hooks_see_each_hop():
    runner = ScriptedRunner({"yes": [(2.0, 2.5, 0.9)]})
    hops = []
    detector = StreamDetector(runner, DetectorSettings(), on_hop=hops.append)
    detector.feed(positions(5.0))
    detector.finish()
    assert max(runner.calls) == runner.batch_size
    # the first window starts in the 0.2 s of silence before the stream, the last ends in
    # the 0.2 s after it
    assert [h.time for h in hops] == pytest.approx([0.8 + 0.05 * i for i in range(89)])
    assert hops[46].posteriors.shape == (len(LABELS),) and hops[46].smoothed[2] > 0
    assert detector.position == pytest.approx(5.0) and detector.scored_until == 5.2


def test_a_word_at_the_very_end_is_heard_in_windows_past_it():
    # windows starting after 4 s of a 5 s recording exist only with the edge's silence
    script = {"yes": [(4.05, 4.3, 0.95)]}
    assert run(script, DetectorSettings(edge=0.0), seconds=5.0) == []
    (found,) = run(script, seconds=5.0)
    assert found.label == "yes" and found.decided_at == 5.0
    with pytest.raises(UsageError, match="edge"):
        DetectorSettings(edge=-1.0).check(LABELS)


@pytest.mark.parametrize("values, message", [
    ({"hop": float("inf")}, "--hop must be from 0.01 s to the model's window (1 s), not inf"),
    ({"hop": float("nan")}, "--hop must be from 0.01 s"),
    ({"hop": 1e-9}, "not 1e-09"),  # ~1e9 windows a second: would never finish
    ({"hop": 1.5}, "the model's window (1 s)"),
    ({"cooldown": float("inf")}, "--cooldown must be from 0 s to 60 s, not inf"),
    ({"cooldown": float("nan")}, "--cooldown must be from 0 s to 60 s, not nan"),
    ({"max_delay": float("inf")}, "--max-delay must be from 0 s to 60 s, not inf"),
    ({"max_delay": 1e300}, "--max-delay must be from 0 s to 60 s, not 1e+300"),
    ({"smoothing": -0.1}, "--smoothing"),
])
def test_timing_settings_must_be_finite_and_sensible(values, message):
    with pytest.raises(UsageError) as caught:
        DetectorSettings(**values).check(LABELS, window=1.0)
    assert message in str(caught.value)
    with pytest.raises(UsageError):  # the detector checks against its runner's window
        StreamDetector(ScriptedRunner({}), DetectorSettings(**values))


def test_documented_timing_values_are_accepted():
    for values in ({"hop": 0.01}, {"hop": 1.0}, {"cooldown": 0.0}, {"cooldown": 2.0},
                   {"max_delay": 0.0}, {"max_delay": 10.0}, {"edge": 0.0}):
        DetectorSettings(**values).check(LABELS, window=1.0)
    DetectorSettings(hop=30.0).check_timing()  # the window is checked once it is known


def test_non_finite_model_output_is_an_error():
    class NaNRunner(ScriptedRunner):
        def __call__(self, batch):
            return np.full((len(batch), len(LABELS)), np.nan, dtype=np.float32)

    with pytest.raises(KwsError, match="not finite"):
        detect(NaNRunner({}), positions(2.0))

    class OneLabelShort(ScriptedRunner):
        def __call__(self, batch):
            return super().__call__(batch)[:, 1:]

    with pytest.raises(KwsError, match="shape"):
        detect(OneLabelShort({}), positions(2.0))


# ----------------------------------------------------------------------------- real audio

TONE_RATE = 8000
TONE_LABELS = ["_silence_", "_unknown_", "low", "high"]


class ToneRunner:
    """A tiny 'model' of real audio: the share of energy near 300 Hz and near 2 kHz."""

    labels = TONE_LABELS
    sample_rate = TONE_RATE
    input_length = TONE_RATE
    batch_size = 8

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        spectrum = np.abs(np.fft.rfft(batch, axis=1)) ** 2
        frequencies = np.fft.rfftfreq(batch.shape[1], 1 / TONE_RATE)
        low = spectrum[:, (frequencies > 250) & (frequencies < 350)].sum(axis=1)
        high = spectrum[:, (frequencies > 1900) & (frequencies < 2100)].sum(axis=1)
        total = spectrum.sum(axis=1) + 1e-9
        out = np.zeros((len(batch), len(TONE_LABELS)), dtype=np.float32)
        out[:, 2], out[:, 3] = low / total, high / total
        out[:, 0] = 1 - out[:, 2] - out[:, 3]
        return out


def two_tones() -> np.ndarray:
    """6.3 s of faint noise with a 300 Hz tone at 1.0-1.5 s and a 2 kHz tone at 3.0-3.4 s."""
    wave = (0.01 * np.random.default_rng(0).standard_normal(int(6.3 * TONE_RATE)))
    wave = wave.astype(np.float32)
    wave[TONE_RATE : int(1.5 * TONE_RATE)] += tone(300.0, 0.5, TONE_RATE)
    wave[3 * TONE_RATE : int(3.4 * TONE_RATE)] += tone(2000.0, 0.4, TONE_RATE)
    return wave


def test_detections_on_real_audio_have_the_words_extent():
    # this runner is sure of a tone from its first samples; given the time to hear the
    # whole tone before deciding, the extent is the tone's
    found = detect(ToneRunner(), two_tones(), DetectorSettings(max_delay=1.0))
    assert labels_of(found) == ["low", "high"]
    for detection, (start, end) in zip(found, [(1.0, 1.5), (3.0, 3.4)], strict=True):
        assert detection.start == pytest.approx(start, abs=0.05)
        assert detection.end == pytest.approx(end, abs=0.05)
        assert detection.end <= detection.decided_at


@pytest.mark.parametrize("chunk", [1, 37, TONE_RATE, 3 * TONE_RATE + 5])
def test_detections_do_not_depend_on_chunk_size(chunk):
    wave = two_tones()
    whole = detect(ToneRunner(), wave)
    hops_whole, hops_chunked = [], []
    StreamDetector(ToneRunner(), on_hop=hops_whole.append).feed(wave)
    detector = StreamDetector(ToneRunner(), on_hop=hops_chunked.append)
    found = []
    for start in range(0, len(wave), chunk):
        found += detector.feed(wave[start : start + chunk])
    found += detector.finish()
    assert found == whole and len(whole) == 2
    assert [h.time for h in hops_chunked][: len(hops_whole)] == [h.time for h in hops_whole]


def test_recorded_outputs_replay_to_the_same_detections():
    runner, wave = ToneRunner(), two_tones()
    settings = DetectorSettings(hop=0.1)
    outputs = runner(settings.cutter(TONE_RATE, runner.input_length)(wave))
    assert detect(runner, wave, settings, outputs) == detect(runner, wave, settings)
    with pytest.raises(KwsError, match="recorded outputs"):
        detect(runner, wave, settings, outputs[:-3])


# ----------------------------------------------------------------------------- verified


class LoudVerifier:
    """A second opinion from the audio it is given: the detection's own stretch must be
    louder than the rest (``opinions[label]`` scales the answer); records what it heard."""

    def __init__(self, opinions: dict[str, float], after_quiet: bool = False) -> None:
        self.opinions = opinions
        self.after_quiet = after_quiet
        self.heard: list[tuple[str, int, float, float]] = []

    def __call__(self, keyword, samples, rate, start, end) -> Opinion:
        self.heard.append((keyword, len(samples), round(start, 3), round(end, 3)))
        inside = samples[int(start * rate) : int(end * rate)]
        louder = np.sqrt(np.mean(inside ** 2)) > np.sqrt(np.mean(samples ** 2))
        return Opinion(self.opinions.get(keyword, 0.0) if louder else 0.0, self.after_quiet)


def verified(candidate: float = 0.3, lookahead: float = 0.1, phone_weight: float = 0.5,
             quiet_floor: float = 0.5, **values) -> DetectorSettings:
    """Verified settings; the combined score a plain geometric mean unless told."""
    from kws.modelfolder import Verification

    return DetectorSettings(verification=Verification(
        candidate_threshold=candidate, context=1.0, lookahead=lookahead,
        phone_weight=phone_weight, quiet_floor=quiet_floor), **values)


def test_a_verified_detector_reports_what_the_second_opinion_confirms():
    wave = two_tones()
    plain = detect(ToneRunner(), wave, DetectorSettings(default_threshold=0.3))
    verifier = LoudVerifier({"low": 1.0, "high": 0.25})
    found = detect(ToneRunner(), wave, verified(default_threshold=0.6), verifier=verifier)
    # 'high' is combined to sqrt(p * 0.25) < 0.6; 'low' keeps sqrt(p * 1) = sqrt(p)
    assert labels_of(plain) == ["low", "high"] and labels_of(found) == ["low"]
    assert found[0].probability == pytest.approx(np.sqrt(plain[0].probability), abs=1e-4)
    assert (found[0].start, found[0].end) == (plain[0].start, plain[0].end)
    # it heard 1 s before each candidate to 0.1 s after it
    for (label, samples, start, end), candidate in zip(verifier.heard, plain, strict=True):
        assert label == candidate.label and start == pytest.approx(1.0, abs=1e-3)
        assert end == pytest.approx(start + candidate.end - candidate.start, abs=1e-3)
        assert samples == pytest.approx((candidate.end - candidate.start + 1.1) * TONE_RATE,
                                        abs=2)
    # a candidate is decided once its lookahead has been heard
    assert found[0].decided_at >= round(found[0].end + 0.1, 3)
    assert found[0].decided_at == max(plain[0].decided_at, found[0].decided_at)


@pytest.mark.parametrize("chunk", [1, 37, TONE_RATE, 3 * TONE_RATE + 5])
def test_verified_detections_do_not_depend_on_chunk_size(chunk):
    wave = two_tones()
    settings = verified(default_threshold=0.0)
    whole = detect(ToneRunner(), wave, settings, verifier=LoudVerifier({"low": 1, "high": 1}))
    detector = StreamDetector(ToneRunner(), settings,
                              verifier=LoudVerifier({"low": 1, "high": 1}))
    found = []
    for start in range(0, len(wave), chunk):
        found += detector.feed(wave[start : start + chunk])
    found += detector.finish()
    assert found == whole and labels_of(whole) == ["low", "high"]


def test_a_verified_candidate_waits_for_its_lookahead():
    wave = two_tones()
    verifier = LoudVerifier({"low": 1.0, "high": 1.0})
    detector = StreamDetector(ToneRunner(), verified(lookahead=0.5, default_threshold=0.0),
                              verifier=verifier)
    whole = detect(ToneRunner(), wave, verified(lookahead=0.5, default_threshold=0.0),
                   verifier=LoudVerifier({"low": 1.0, "high": 1.0}))
    low = whole[0]
    early = detector.feed(wave[: int((low.end + 0.45) * TONE_RATE)])
    assert early == [] and verifier.heard == []
    assert detector.feed(wave[int((low.end + 0.45) * TONE_RATE):])[0] == low


def test_the_phone_models_opinion_weighs_its_share_of_the_combined_score():
    wave = two_tones()
    plain = detect(ToneRunner(), wave, DetectorSettings(default_threshold=0.3))
    assert labels_of(plain) == ["low", "high"]
    opinions = {"low": 1.0, "high": 0.25}
    for weight in (0.0, 0.2, 0.5, 1.0):
        found = detect(ToneRunner(), wave, verified(phone_weight=weight, default_threshold=0.0),
                       verifier=LoudVerifier(opinions))
        assert labels_of(found) == ["low", "high"]
        assert [d.probability for d in found] == pytest.approx(
            [d.probability ** (1 - weight) * opinions[d.label] ** weight for d in plain],
            abs=1e-4)


def test_a_keyword_said_alone_has_at_least_the_quiet_floor_as_its_phone_score():
    wave = two_tones()
    plain = detect(ToneRunner(), wave, DetectorSettings(default_threshold=0.3))
    opinions = {"low": 0.8, "high": 0.1}
    for floor in (0.0, 0.5):
        settings = verified(quiet_floor=floor, default_threshold=0.0)
        alone = detect(ToneRunner(), wave, settings,
                       verifier=LoudVerifier(opinions, after_quiet=True))
        in_speech = detect(ToneRunner(), wave, settings, verifier=LoudVerifier(opinions))
        assert [d.probability for d in alone] == pytest.approx(
            [np.sqrt(d.probability * max(opinions[d.label], floor)) for d in plain], abs=1e-4)
        assert [d.probability for d in in_speech] == pytest.approx(
            [np.sqrt(d.probability * opinions[d.label]) for d in plain], abs=1e-4)


def test_spot_and_sweep_verifies_each_candidate_once_and_sweeps_the_combined_score():
    from kws.stream_eval import spot_and_sweep

    verifier = LoudVerifier({"low": 1.0, "high": 0.25})
    operating, swept = spot_and_sweep(ToneRunner(), two_tones(), verified(default_threshold=0.6),
                                      (0.9, 0.3), verifier)
    assert [s.keyword for s in operating] == ["low"] and len(verifier.heard) == 2
    assert [s.keyword for s in swept[0.3]] == ["low", "high"]
    assert [s.keyword for s in swept[0.9]] == [s.keyword for s in operating
                                               if s.score >= 0.9]
    assert swept[0.3][1].score < 0.6 <= swept[0.3][0].score


def test_verification_needs_both_settings_and_a_verifier():
    with pytest.raises(KwsError, match="needs both"):
        StreamDetector(ToneRunner(), verified())
    with pytest.raises(KwsError, match="needs both"):
        StreamDetector(ToneRunner(), DetectorSettings(), verifier=LoudVerifier({}))


def test_verified_settings_from_card_use_its_verification():
    from kws.infer.detector import DEFAULT_VERIFIED_THRESHOLD
    from kws.modelfolder import Verification

    card = ModelCard(labels=LABELS, sample_rate=RATE, input_length=RATE, arch="test",
                     thresholds={"yes": 0.42})
    assert DetectorSettings.from_card(card, verify=True).verification == Verification()
    bare = DetectorSettings.from_card(card, verify=True)
    assert bare.threshold("yes") == bare.threshold("no") == DEFAULT_VERIFIED_THRESHOLD
    card.verification = Verification(candidate_threshold=0.4, thresholds={"no": 0.66})
    settings = DetectorSettings.from_card(card, verify=True)
    assert settings.verification.candidate_threshold == 0.4
    assert settings.threshold("no") == 0.66 and settings.threshold("yes") == 0.6
    assert DetectorSettings.from_card(card, threshold=0.8, verify=True).threshold("no") == 0.8
    assert DetectorSettings.from_card(card).threshold("yes") == 0.42


# ----------------------------------------------------------------------------- settings


def test_settings_from_card_use_calibrated_thresholds_unless_overridden():
    card = ModelCard(labels=LABELS, sample_rate=RATE, input_length=RATE, arch="test",
                     thresholds={"yes": 0.42})
    settings = DetectorSettings.from_card(card)
    assert settings.threshold("yes") == 0.42 and settings.threshold("no") == 0.7
    forced = DetectorSettings.from_card(card, threshold=0.9)
    assert forced.threshold("yes") == forced.threshold("no") == 0.9
    assert DetectorSettings.from_card(card, keywords=["no"]).keywords == ("no",)


@pytest.mark.parametrize("values,message", [
    ({"keywords": ["maybe"]}, "not a keyword"),
    ({"keywords": ["_silence_"]}, "not a keyword"),
    ({"keywords": []}, "at least one"),
    ({"threshold": 1.5}, "between 0 and 1"),
    ({"hop": 0.0}, "--hop"),
    ({"cooldown": -1.0}, "--cooldown"),
])
def test_bad_settings_are_usage_errors(values, message):
    card = ModelCard(labels=LABELS, sample_rate=RATE, input_length=RATE, arch="test")
    with pytest.raises(UsageError, match=message):
        DetectorSettings.from_card(card, **values)
