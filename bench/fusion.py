"""Two models for one spotter: the classifier's detector against the phone model's keyword
search rescored by the classifier, on real continuous speech neither model trained on.

Prints ONE table, a row per system and operating point:

* ``detector``: ``kws predict --spot`` / ``kws listen`` as shipped (the classifier's
  streaming detector; its card's calibrated thresholds, then one threshold for every
  keyword swept as ``bench/stream.py`` sweeps it);
* ``phones``: the phone model's keyword search alone (``kws phones spot``'s search of each
  keyword's pronunciations in the recording's posteriors, rival words checked, its
  confidence as the score);
* ``fused``: the keyword search proposes (every place scoring at least ``--floor``), and
  each proposal is scored by the geometric mean of its phone confidence and the
  classifier's highest posterior for the keyword among windows centred within ``--margin``
  seconds of it (windows every ``--hop`` seconds; half a window of silence before and
  after the recording, so words at its edges have a centred window);
* ``classifier at proposals``: the same proposals scored by that classifier posterior
  alone (what the phone model adds beyond saying where to look);
* ``detector verified``: the other way round, ``kws listen --verify``'s detector (its
  candidates, each scored by the geometric mean of its probability and the phone model's
  confidence in its keyword from 1 s before it to 0.1 s after it; the card's
  verification), its combined score swept.

Files: AN4 utterances of speakers in the testing split of both models
(:func:`kws.recordings.split_of` with the classifier's default shares and with the phone
model's, read from its card), and CMU ARCTIC (cathy) utterances in both testing splits
whose transcripts say no Speech Commands word. Keywords: the classifier's words that AN4
says. Occurrences come from the transcripts (counts): in a recording, up to N detections of
a keyword said N times are hits, the rest false accepts.

Each row gives the threshold, AN4 recall and precision, and ARCTIC false accepts (and per
hour). Rows "ARCTIC FA <= n" are the swept threshold with the most AN4 hits among those
with at most n ARCTIC false accepts: chosen on these files, as ``bench/stream.py``'s miss
rates at a false-accept rate are, so they compare systems rather than promise a rate.

Usage::

    .venv/bin/python bench/fusion.py [--model models/default] [--phones models/phones]
        [--floor 0.02] [--margin 0.1] [--hop 0.05] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from stream import DATA, SC_WORDS, say

from kws import audio
from kws.dataset import TESTING
from kws.infer import NOT_WORDS, open_runner
from kws.infer.detector import DetectorSettings, detect
from kws.infer.spotting import sliding_windows
from kws.modelfolder import Task, read_card, resolve_model_dir
from kws.phones import ctc
from kws.phones.data import phone_ids
from kws.phones.recognizer import keyword_pronunciation, spot_in
from kws.phones.verify import PhoneVerifier
from kws.recordings import Recording, read_recordings, split_of
from kws.stream_eval import SWEEP_THRESHOLDS, Curve, Spot, Tally, Truth, spot_and_sweep

#: Thresholds swept for the phone confidence and the fused score.
SCORE_SWEEP = tuple(round(t, 2) for t in np.arange(0.98, 0.0, -0.02))
#: ARCTIC false accepts allowed in the matched rows.
MATCHED_FALSE_ACCEPTS = (0, 1, 2, 4)
#: Windows scored at once.
BATCH = 256


@dataclass
class Scored:
    """One recording's detections by each system, and what it truly says."""

    truth: Truth
    detector: tuple[list[Spot], dict[float, list[Spot]]]
    phones: list[Spot]
    fused: list[Spot]
    at_proposals: list[Spot]
    verified: list[Spot]


def main() -> None:
    args = parse_args()
    folder = resolve_model_dir(args.model)
    card = read_card(folder)
    phones_folder = resolve_model_dir(args.phones, Task.PHONES)
    recipe = read_card(phones_folder).recipe
    shares = (float(recipe.get("validation_percent", 10.0)),
              float(recipe.get("testing_percent", 25.0)))

    def held_out(recording: Recording) -> bool:
        return split_of(recording) == TESTING and split_of(recording, *shares) == TESTING

    an4 = read_recordings(args.data / "an4").recordings
    said = {w for r in an4 for w in r.words}
    keywords = [k for k in card.labels if k not in NOT_WORDS and k in said]
    parts = {
        "an4": [r for r in an4 if held_out(r)],
        "arctic": [r for r in read_recordings(args.data / "arctic_cathy").recordings
                   if r.transcript is not None and not r.contains_any(SC_WORDS)
                   and held_out(r)],
    }
    say(f"keywords: {', '.join(keywords)}; AN4: {len(parts['an4'])} utterances, ARCTIC: "
        f"{len(parts['arctic'])} (held out from both models)")
    scorer = Scorer(folder, card, phones_folder, keywords, args)
    scored = {name: [scorer(r) for r in recordings] for name, recordings in parts.items()}
    rows = table(scored, keywords, scorer.settings)
    print_table(rows)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="classifier folder [default: shipped]")
    parser.add_argument("--phones", default=None, help="phone model folder [default: shipped]")
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    parser.add_argument("--floor", type=float, default=0.02,
                        help="phone confidence a proposal needs [default: %(default)s]")
    parser.add_argument("--margin", type=float, default=0.1,
                        help="seconds around a proposal whose windows rescore it "
                             "[default: %(default)s]")
    parser.add_argument("--hop", type=float, default=0.05,
                        help="seconds between the rescoring windows [default: %(default)s]")
    parser.add_argument("--json", default=None, help="also write the rows here")
    return parser.parse_args()


class Scorer:
    """Runs both models on a recording and scores every system's detections."""

    def __init__(self, folder: Path, card, phones_folder: Path, keywords: list[str],
                 args: argparse.Namespace) -> None:
        self.runner = open_runner(folder, "auto")
        self.rate = self.runner.sample_rate
        self.labels = list(self.runner.labels)
        self.keywords = keywords
        self.settings = DetectorSettings.from_card(card, keywords=keywords)
        self.every_candidate = DetectorSettings.from_card(
            card, keywords=keywords, verify=True).reporting_everything()
        self.verifier = PhoneVerifier(phones_folder)
        self.recognizer = self.verifier.recognizer
        lexicon = self.recognizer.lexicon
        self.prons = {k: keyword_pronunciation(k, None, lexicon).phones for k in keywords}
        self.ids = {k: [phone_ids(p) for p in prons] for k, prons in self.prons.items()}
        self.floor, self.margin, self.hop = args.floor, args.margin, args.hop

    def __call__(self, recording: Recording) -> Scored:
        waveform = audio.load(recording.path, self.rate)
        seconds = len(waveform) / self.rate
        counts = recording.keyword_counts(self.keywords)
        truth = Truth(str(recording.path), seconds, {k: n for k, n in counts.items() if n})
        detector = spot_and_sweep(self.runner, waveform, self.settings, SWEEP_THRESHOLDS)
        proposals = self.search(waveform, seconds)
        best = self.window_posteriors(waveform)
        classifier = [self.classifier_score(best, s) for s in proposals]
        fused = [Spot(s.keyword, float(np.sqrt(s.score * c)), s.start, s.end)
                 for s, c in zip(proposals, classifier, strict=True)]
        at_proposals = [Spot(s.keyword, c, s.start, s.end)
                        for s, c in zip(proposals, classifier, strict=True)]
        verified = [Spot.of(d) for d in detect(self.runner, waveform, self.every_candidate,
                                                verifier=self.verifier)]
        return Scored(truth, detector, proposals, fused, at_proposals, verified)

    def search(self, waveform: np.ndarray, seconds: float) -> list[Spot]:
        """The keyword search's places scoring at least the floor, every keyword."""
        rec = self.recognizer
        samples = audio.resample(waveform, self.rate, rec.sample_rate)
        log_probs = ctc.log_posteriors(rec.posteriors([samples])[0])
        found = []
        for keyword, prons in self.prons.items():
            found += [Spot.of(d) for d in spot_in(log_probs, "", keyword, prons,
                                                   self.ids[keyword], self.floor,
                                                   rec.frame_seconds, seconds)]
        return found

    def window_posteriors(self, waveform: np.ndarray) -> np.ndarray:
        """The classifier's outputs on windows centred every hop (row i at i * hop s)."""
        half = np.zeros(self.runner.input_length // 2, dtype=np.float32)
        padded = np.concatenate([half, waveform, half])
        windows = sliding_windows(padded, self.runner.input_length,
                                  int(round(self.hop * self.rate)))
        return np.concatenate([self.runner(windows[i : i + BATCH])
                               for i in range(0, len(windows), BATCH)])

    def classifier_score(self, outputs: np.ndarray, spot: Spot) -> float:
        first = max(0, int(np.floor((spot.start - self.margin) / self.hop)))
        last = min(len(outputs), int(np.ceil((spot.end + self.margin) / self.hop)) + 1)
        if last <= first:
            return 0.0
        return float(outputs[first:last, self.labels.index(spot.keyword)].max())


def table(scored: dict[str, list[Scored]], keywords: list[str],
          settings: DetectorSettings) -> list[dict]:
    """The rows: each system's operating or matched points."""
    rows = []
    detector = {name: tally(items, keywords, SWEEP_THRESHOLDS,
                            lambda s: s.detector[0], lambda s, t: s.detector[1][t])
                for name, items in scored.items()}
    cards = {k: settings.threshold(k) for k in keywords}
    rows.append(row("detector", "card thresholds", detector, None))
    rows += matched("detector", detector)
    for system, name in (("phones", "phones"), ("at_proposals", "classifier at proposals"),
                         ("fused", "fused"), ("verified", "detector verified")):
        curves = {name: tally(items, keywords, SCORE_SWEEP, None,
                              lambda s, t, system=system: [
                                  x for x in getattr(s, system) if x.score >= t])
                  for name, items in scored.items()}
        rows += matched(name, curves)
    say(f"card thresholds: {', '.join(f'{k} {v:g}' for k, v in cards.items())}")
    return rows


def tally(items: Sequence[Scored], keywords: list[str], sweep: Sequence[float],
          operating: Callable[[Scored], list[Spot]] | None,
          at: Callable[[Scored, float], list[Spot]]) -> tuple:
    """``(operating counts, overall curve)`` of one system on one part."""
    counter = Tally(keywords, sweep)
    for item in items:
        counter.add(item.truth, operating(item) if operating else [],
                    {t: at(item, t) for t in counter.sweep})
    result = counter.result({k: 0.0 for k in keywords})
    return result.counts["overall"], result.curves["overall"]


def row(system: str, point: str, parts: dict[str, tuple], index: int | None) -> dict:
    """One row: ``index`` into the swept curves, or ``None`` for the operating counts."""
    an4, arctic = parts["an4"], parts["arctic"]
    if index is None:
        hits, false, occurrences = an4[0].hits, an4[0].false_accepts, an4[0].occurrences
        arctic_false, threshold = arctic[0].false_accepts, None
    else:
        curve: Curve = an4[1]
        hits, false = int(curve.hits[index]), int(curve.false_accepts[index])
        occurrences = curve.occurrences
        arctic_false, threshold = int(arctic[1].false_accepts[index]), float(
            curve.thresholds[index])
    hours = arctic[1].hours
    return {"system": system, "point": point, "threshold": threshold,
            "an4_recall": hits / occurrences if occurrences else None,
            "an4_precision": hits / (hits + false) if hits + false else None,
            "arctic_false_accepts": arctic_false, "arctic_hours": hours,
            "arctic_fa_per_hour": arctic_false / hours if hours else None,
            "an4_occurrences": occurrences}


def matched(system: str, parts: dict[str, tuple]) -> list[dict]:
    """The most AN4 hits with at most n ARCTIC false accepts, for each n."""
    an4, arctic = parts["an4"][1], parts["arctic"][1]
    rows = []
    for allowed in MATCHED_FALSE_ACCEPTS:
        meeting = [i for i in range(len(an4.thresholds)) if arctic.false_accepts[i] <= allowed]
        if meeting:
            best = max(meeting, key=lambda i: (an4.hits[i], an4.thresholds[i]))
            rows.append(row(system, f"ARCTIC FA <= {allowed}", parts, best))
    return rows


def print_table(rows: list[dict]) -> None:
    def number(value: float | None, digits: int = 3) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    hours = rows[0]["arctic_hours"]
    occurrences = rows[0]["an4_occurrences"]
    print(f"| system | operating point | threshold | AN4 recall ({occurrences} keywords) "
          f"| AN4 precision | ARCTIC false accepts ({hours:.3f} h) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['system']} | {r['point']} | {number(r['threshold'], 2)} "
              f"| {number(r['an4_recall'])} | {number(r['an4_precision'])} "
              f"| {r['arctic_false_accepts']} ({number(r['arctic_fa_per_hour'], 0)}/h) |")


if __name__ == "__main__":
    main()
