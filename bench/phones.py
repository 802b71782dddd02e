"""Open-vocabulary spotting with the phone model, against PocketSphinx keyword search.

Trains a phone model with ``kws phones train``'s defaults (through :func:`kws.train.fit`) on
the shared data: real continuous speech (``an4/``, 74 speakers; ``arctic_cathy/``, one
speaker reading phonetically rich prompts) and Speech Commands clips (``sc_extra``,
``sc_v1_sample``, ``tts_commands``, and the speakers of ``sc_v2_test_half`` that a salted
speaker hash puts in its training and validation halves; the other half is never seen).
The ``--holdout`` words are never trained on: every clip of them and every utterance that
says one is left out, in every folder.

Then evaluates the model (the splits are those of its training run, read from its card):

1. **PER** (39 phones; ``kws phones evaluate``'s default decoding, the CTC prefix beam
   search) on held-out real speakers: AN4's ``testing``
   speakers (utterances of trained words; utterances saying a held-out word apart, for
   held-out speakers and for all speakers, since those utterances were never trained on),
   ARCTIC's ``testing`` files, and the held-out speakers of ``sc_v2_test_half`` on trained
   words, with word accuracy by the closest of the 35 Speech Commands words.
2. **Open vocabulary on clips**: every clip of a held-out Speech Commands word in every clip
   folder (never trained): detection rate at the calibrated and the default threshold;
   false alarms on held-out speakers' clips of other words.
3. **Open vocabulary on continuous speech**: positives are the utterances saying a
   held-out word (all speakers, and the held-out speakers alone), scored per utterance from
   the transcript's counts (up to N detections of a word said N times are hits, the rest
   false accepts); negatives for false accepts are the held-out audio not saying the
   keyword: AN4 and ARCTIC ``testing`` utterances and the held-out clips (``testing``
   split, ``_silence_`` included). False accepts per hour are per keyword: all false
   accepts / (hours scanned for each keyword, summed over keywords); positive utterances
   count in those hours as in :mod:`kws.stream_eval`.
4. **DET curves and a calibrated threshold**: the search runs once per file and keyword
   at confidence 0.01 and keeps every candidate; detections at a higher threshold are
   exactly the candidates reaching it (the search keeps non-overlapping candidates best
   first), so the sweep is exact. Detection rate at 0.5, 1, 2 and 5 false accepts per
   hour; the threshold for 2 false accepts per hour is chosen on validation data only
   (AN4 and ARCTIC ``validation`` utterances and ``validation`` clips, none saying a
   held-out word) with calibration words that are not the held-out words (random CMUdict
   words of 3 to 8 phones no transcript says, seeded), then applied to the test keywords.
5. **PocketSphinx** keyword-list search (``bench/pocketsphinx_peer.py``) on the same files:
   the same positives, negatives, calibration and DET (its threshold swept from one
   permissive run by its reports' scores, plus an exact run at its calibrated threshold),
   and both systems' real-time factors (CPU time / audio time, one process each).
6. **What ``kws phones spot -k WORD`` gives** on a model calibrated by ``kws phones
   calibrate``: the continuous-speech figures of 3 with each keyword's pronunciations held
   to the card's thresholds for their lengths at the rate ``spot`` uses by default
   (thresholds not chosen here).

Posteriors come from the whole recording in one pass
(:func:`kws.phones.decoding.predict_posteriors`) and are kept in memory; PocketSphinx runs
in worker processes (``--peer-workers``) at the same time.

Usage::

    nice -n 5 .venv/bin/python bench/phones.py [--epochs N] [--out models/bench-phones]
        [--holdout WORD,...] [--reuse] [--train-only]
        [--json FILE] [--plot FILE.png] [--no-peer] [--no-peer-exact] [--peer-workers 2]
        [--calibration-words 20]
    .venv/bin/python bench/phones.py --model models/bench-phones --json out.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
#: Continuous speech with transcripts.
TRANSCRIBED = ("an4", "arctic_cathy")
#: Speech Commands folders used whole (their own splits).
CLIP_FOLDERS = ("sc_extra", "sc_v1_sample", "tts_commands")
V2 = "sc_v2_test_half"
BACKGROUND = "sc_background_noise"
#: Words never trained on: Speech Commands words and AN4 words, short and long.
HOLDOUT = ("happy", "marvin", "sheila", "house", "tree",
           "enter", "repeat", "rubout", "erase", "help")
#: Share of the transcribed folders' speakers (an4) or files (arctic) held out for testing.
TESTING_PERCENT = 25.0


def clip_dataset(shared: Path):
    """The Speech Commands clips: three folders as they are, ``sc_v2_test_half`` split by
    speaker (half its speakers held out)."""
    from kws.dataset import combine, open_datasets, resplit_by_speaker, scan

    parts = [open_datasets([shared / name for name in CLIP_FOLDERS],
                           backgrounds=[shared / BACKGROUND])]
    parts.append(resplit_by_speaker(scan(shared / V2), 10, 50, salt="kws-v2-holdout"))
    return combine(parts)


def train_config(args):
    """The benchmark's training run: ``kws phones train``'s defaults, the data, the hold-out."""
    from kws.phones.config import PhoneTrainConfig

    options = {"epochs": args.epochs} if args.epochs else {}
    return PhoneTrainConfig(
        data=(*(str(args.shared / name) for name in (*TRANSCRIBED, *CLIP_FOLDERS, V2)),
              *map(str, args.extra_data)),
        background=(str(args.shared / BACKGROUND),), exclude=tuple(args.holdout),
        testing_percent=TESTING_PERCENT, out=str(args.out), seed=args.seed, **options)


def train(args):
    """Train (or reuse) the benchmark's phone model; returns its folder and training time."""
    from kws.cli import _console
    from kws.cli._training import RichEvents
    from kws.phones.train import PhonesTask
    from kws.train import fit

    out = Path(args.out)
    if args.reuse and (out / "card.json").is_file():
        return out, None
    started = time.perf_counter()
    fit(PhonesTask(dataset=clip_dataset(args.shared)), train_config(args), overwrite=True,
        events=RichEvents(_console.stderr()),
        command="bench/phones.py " + " ".join(sys.argv[1:]))
    return out, time.perf_counter() - started


# ============================================================================ evaluation

#: Rates of false accepts (per keyword per hour) at which detection is reported.
FA_POINTS = (0.5, 1.0, 2.0, 5.0)
#: The search runs once per file and keyword down to this confidence.
SEARCH_FLOOR = 0.01
#: The calibrated threshold: false accepts per keyword-hour allowed on validation data.
CALIBRATION_FA = 2.0
CALIBRATION_WORDS = 20
#: Target of the phone error rate (section 1).
PER_TARGET = 0.20
#: Most points of a DET curve written to the JSON.
DET_POINTS = 300
OURS, PEER = "kws phones", "PocketSphinx"


def say(message: str) -> None:
    print(f"[phones bench] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Item:
    """One evaluated file: an utterance (its transcript's words) or a clip (its word; no
    word for ``_silence_``)."""

    clip: Any  # kws.dataset.Clip: path, speaker, split
    source: str
    words: tuple[str, ...]
    utterance: bool

    @property
    def key(self) -> str:
        return str(self.clip.path)

    @property
    def split(self) -> str:
        return self.clip.split


@dataclass
class Sets:
    """The files of the evaluation, by role (see the module's docstring)."""

    holdout: list[str]
    cont_test: list[Item]
    cont_pos: list[Item]
    cont_val: list[Item]
    clip_test: list[Item]
    clip_pos: list[Item]
    clip_val: list[Item]
    #: Every word a transcript says (calibration words avoid them).
    said: set[str]

    @property
    def test(self) -> list[Item]:
        """Every file the test keywords are searched in."""
        seen: dict[str, Item] = {}
        for item in (*self.cont_test, *self.cont_pos, *self.clip_test, *self.clip_pos):
            seen.setdefault(item.key, item)
        return sorted(seen.values(), key=lambda item: item.key)

    @property
    def validation(self) -> list[Item]:
        return sorted([*self.cont_val, *self.clip_val], key=lambda item: item.key)

    def negatives(self, word: str) -> list[Item]:
        """Held-out audio not saying ``word``: test utterances and test clips."""
        return [item for item in (*self.cont_test, *self.clip_test) if word not in item.words]


def gather(shared: Path, holdout: Sequence[str], validation_percent: float,
           testing_percent: float) -> Sets:
    """The evaluation's files, split as the training run split them."""
    from kws.dataset import SILENCE, TESTING, UNKNOWN, VALIDATION
    from kws.phones.utterances import scan_transcripts

    held = set(holdout)
    utterances: list[Item] = []
    for name in TRANSCRIBED:
        found, _ = scan_transcripts(shared / name, validation_percent, testing_percent)
        utterances += [Item(u.clip(), name, u.words, True) for u in found]
    clips = [Item(c, c.path.parent.parent.name, () if c.word == SILENCE else (c.word,), False)
             for c in clip_dataset(shared).clips if not c.is_segment and c.word != UNKNOWN]

    def says(item: Item) -> bool:
        return bool(held.intersection(item.words))

    return Sets(
        holdout=list(holdout),
        cont_test=[u for u in utterances if u.split == TESTING],
        cont_pos=[u for u in utterances if says(u)],
        cont_val=[u for u in utterances if u.split == VALIDATION and not says(u)],
        clip_test=[c for c in clips if c.split == TESTING],
        clip_pos=[c for c in clips if says(c)],
        clip_val=[c for c in clips if c.split == VALIDATION and not says(c)],
        said={w for u in utterances for w in u.words},
    )


def seconds_of(items: Iterable[Item], seconds: Mapping[str, float]) -> float:
    return sum(seconds.get(item.key, 0.0) for item in items)


# ----------------------------------------------------------------------------- kws phones

@dataclass
class Keyword:
    """A word to spot: its pronunciations (and where they came from) and their phone ids."""

    word: str
    phones: tuple[tuple[str, ...], ...]
    source: str
    ids: list[list[int]]


def keywords_of(words: Sequence[str], lexicon) -> dict[str, Keyword]:
    """The pronunciations ``kws phones spot`` would use (the model's lexicon, CMUdict, G2P)."""
    from kws.phones.data import phone_ids
    from kws.phones.recognizer import keyword_pronunciation

    out = {}
    for word in words:
        found = keyword_pronunciation(word, None, lexicon)
        out[word] = Keyword(word, found.phones, found.source,
                            [phone_ids(pron) for pron in found.phones])
    return out


def posteriors_of(recognizer, items: Sequence[Item], chunk: int = 600
                  ) -> tuple[dict[str, np.ndarray], dict[str, float], dict[str, str], float]:
    """Per-frame posteriors and length (s) of every file; failures; CPU seconds of the
    model alone."""
    from kws.cache import AudioCache
    from kws.phones.decoding import predict_posteriors

    rate = recognizer.sample_rate
    cache = AudioCache(rate)
    posteriors: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    failed: dict[str, str] = {}
    cpu = 0.0
    for start in range(0, len(items), chunk):
        part = items[start : start + chunk]
        found, errors = cache.get_many([item.clip.path for item in part])
        failed.update({str(path): str(error) for path, error in errors.items()})
        kept = [item for item in part if item.clip.path in found]
        waveforms = [np.asarray(found[item.clip.path], dtype=np.float32) for item in kept]
        clock = time.process_time()
        outputs = predict_posteriors(recognizer.model, waveforms, recognizer.frame_samples,
                                     rate)
        cpu += time.process_time() - clock
        for item, waveform, output in zip(kept, waveforms, outputs, strict=True):
            posteriors[item.key] = output
            seconds[item.key] = len(waveform) / rate
    return posteriors, seconds, failed, cpu


Scores = dict[tuple[str, str], np.ndarray]


def search(posteriors: Mapping[str, np.ndarray], seconds: Mapping[str, float],
           items: Sequence[Item], keywords: Mapping[str, Keyword], frame_seconds: float,
           floor: float = SEARCH_FLOOR) -> tuple[Scores, float]:
    """Every detection's confidence (descending) per ``(file, keyword)`` down to ``floor``
    (:func:`kws.phones.recognizer.spot_in`, as ``kws phones spot``); CPU seconds."""
    from kws.phones import ctc
    from kws.phones.recognizer import spot_in

    scores: Scores = {}
    clock = time.process_time()
    for item in items:
        if item.key not in posteriors:
            continue
        log_probs = ctc.log_posteriors(posteriors[item.key])
        for word, keyword in keywords.items():
            found = spot_in(log_probs, item.key, word, keyword.phones, keyword.ids, floor,
                            frame_seconds, seconds[item.key])
            scores[(item.key, word)] = np.sort([d.probability for d in found])[::-1]
    return scores, time.process_time() - clock


# ----------------------------------------------------------------------------- sweeps

@dataclass
class Sweep:
    """A detector's hits and false accepts at every threshold, over a set of keywords.

    Built from each ``(file, keyword)``'s detection scores: of a keyword said N times in a
    file, the N best detections are hits and the others false accepts, so at threshold
    ``t`` the hits are the hit scores ``>= t`` (and likewise the false accepts). ``hours``
    are keyword-hours (the audio scanned for each keyword, summed), so false accepts per
    hour are per keyword.
    """

    name: str
    keywords: list[str]
    hit_scores: np.ndarray
    fa_scores: np.ndarray
    occurrences: int
    hours: float
    negative_hours: float
    files: int
    floor: float

    @classmethod
    def build(cls, name: str, keywords: Sequence[str], scores: Scores,
              jobs: Callable[[str], Iterable[tuple[Item, int, bool]]],
              seconds: Mapping[str, float], floor: float, best_only: bool = False) -> Sweep:
        """``jobs(keyword)`` yields ``(file, times said, whether a negative)``;
        ``best_only`` counts a file once (its best detection): clips alarmed."""
        hits, false, occurrences, total, negative, files = [], [], 0, 0.0, 0.0, 0
        empty = np.zeros(0)
        for word in keywords:
            for item, said, is_negative in jobs(word):
                if item.key not in seconds:
                    continue
                found = scores.get((item.key, word), empty)
                if best_only:
                    found = found[:1]
                hits.append(found[:said])
                false.append(found[said:])
                occurrences += said
                total += seconds[item.key]
                negative += seconds[item.key] if is_negative else 0.0
                files += 1
        return cls(name, list(keywords), np.sort(np.concatenate([empty, *hits])),
                   np.sort(np.concatenate([empty, *false])), occurrences, total / 3600,
                   negative / 3600, files, floor)

    def counts(self, threshold: float):
        """:class:`kws.stream_eval.Counts` at ``threshold`` (detections scoring ``>= t``)."""
        from kws.stream_eval import Counts

        hits = len(self.hit_scores) - int(np.searchsorted(self.hit_scores, threshold, "left"))
        false = len(self.fa_scores) - int(np.searchsorted(self.fa_scores, threshold, "left"))
        return Counts(self.occurrences, hits, false, self.hours)

    def curve(self):
        """The sweep as a :class:`kws.stream_eval.Curve` (every distinct score a threshold)."""
        from kws.stream_eval import Curve

        thresholds = np.unique(np.concatenate([self.hit_scores, self.fa_scores]))[::-1]
        hits = len(self.hit_scores) - np.searchsorted(self.hit_scores, thresholds, "left")
        false = len(self.fa_scores) - np.searchsorted(self.fa_scores, thresholds, "left")
        return Curve(self.name, thresholds, hits, false, self.occurrences, self.hours)

    def at_fa(self, targets: Sequence[float] = FA_POINTS) -> dict[float, Any]:
        """The best swept operating point within each rate of false accepts per hour."""
        curve = self.curve()
        return {target: curve.at_fa_per_hour(target) for target in targets}

    def det_json(self, limit: int = DET_POINTS) -> dict[str, list]:
        """The DET staircase (at most ``limit`` points, spread over the false accepts)."""
        curve = self.curve()
        if not len(curve.thresholds):
            return {"threshold": [], "fa_per_hour": [], "detection_rate": []}
        # The last threshold of each count of false accepts has the most hits.
        last = np.flatnonzero(np.diff(np.append(curve.false_accepts, np.inf)) != 0)
        if len(last) > limit:
            last = last[np.unique(np.geomspace(1, len(last), limit).astype(int) - 1)]
        fa = curve.false_accepts[last] / self.hours if self.hours else curve.false_accepts[last]
        rate = (curve.hits[last] / self.occurrences if self.occurrences
                else np.full(len(last), np.nan))
        return {"threshold": [_r(t) for t in curve.thresholds[last]],
                "fa_per_hour": [_r(v) for v in fa],
                "detection_rate": [_r(v) for v in rate]}

    def to_json(self, thresholds: Mapping[str, float]) -> dict[str, Any]:
        return {
            "keywords": self.keywords, "occurrences": self.occurrences,
            "files_scanned": self.files, "keyword_hours": _r(self.hours),
            "negative_keyword_hours": _r(self.negative_hours),
            "search_floor": _r(self.floor),
            "at_thresholds": {name: {"threshold": _r(t), **self.counts(t).to_json()}
                              for name, t in thresholds.items()},
            "at_fa_per_hour": ({str(target): point.to_json()
                                for target, point in self.at_fa().items()}
                               if self.occurrences else None),
            "det": self.det_json(),
        }


def _r(value: float | None, digits: int = 6) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def continuous_jobs(sets: Sets, held_only: bool
                    ) -> Callable[[str], Iterable[tuple[Item, int, bool]]]:
    """:meth:`Sweep.build`'s jobs of continuous speech: the utterances saying the word (of
    held-out speakers only, or all) and the word's negatives."""
    from kws.dataset import TESTING

    def jobs(word: str) -> Iterable[tuple[Item, int, bool]]:
        for item in sets.cont_pos:
            if word in item.words and (not held_only or item.split == TESTING):
                yield item, item.words.count(word), False
        for item in sets.negatives(word):
            yield item, 0, True
    return jobs


def sweeps_of(system: str, scores: Scores, sets: Sets, seconds: Mapping[str, float],
              floor: float, clip_words: Sequence[str]) -> dict[str, Sweep]:
    """The sweeps of sections 2-4 for one system's detection scores."""
    def clips(word: str) -> Iterable[tuple[Item, int, bool]]:
        for item in sets.clip_pos:
            if word in item.words:
                yield item, 1, False
        for item in sets.negatives(word):
            yield item, 0, True

    def other_clips(word: str) -> Iterable[tuple[Item, int, bool]]:
        for item in sets.clip_test:
            if item.words and word not in item.words:
                yield item, 0, True

    words = sets.holdout
    return {
        "continuous": Sweep.build(f"{system}: continuous speech, all speakers", words,
                                  scores, continuous_jobs(sets, False), seconds, floor),
        "continuous_held_out": Sweep.build(
            f"{system}: continuous speech, held-out speakers", words, scores,
            continuous_jobs(sets, True), seconds, floor),
        "clips": Sweep.build(f"{system}: held-out-word clips", clip_words, scores, clips,
                             seconds, floor),
        "clip_false_alarms": Sweep.build(
            f"{system}: held-out speakers' clips of other words (clips alarmed)", clip_words,
            scores, other_clips, seconds, floor, best_only=True),
    }


def clip_detection(scores: Scores, items: Sequence[Item], threshold: float) -> tuple[int, int]:
    """``(detected, clips)``: clips whose own word is found at ``threshold``."""
    detected = sum(1 for item in items
                   if len(scores.get((item.key, item.words[0]), ())) and
                   scores[(item.key, item.words[0])][0] >= threshold)
    return detected, len(items)


# ----------------------------------------------------------------------------- calibration

def calibration_words(count: int, seed: int, avoid: set[str]) -> list[str]:
    """``count`` random CMUdict words of 3 phones or more (as the keywords) not in
    ``avoid``, drawn as ``kws phones calibrate`` draws them (seeded, spread over lengths)."""
    from kws.phones.calibrate import calibration_words as drawn

    words = [word for word in drawn(4 * count, seed, sorted(avoid)) if word.phones >= 3]
    return sorted(word.word for word in words[:count])


@dataclass
class Calibration:
    """A threshold chosen for a rate of false accepts on validation data."""

    threshold: float
    false_accepts: int
    keyword_hours: float
    words: int
    target: float = CALIBRATION_FA

    @property
    def fa_per_hour(self) -> float:
        return self.false_accepts / self.keyword_hours if self.keyword_hours else math.nan

    def to_json(self) -> dict[str, Any]:
        return {"threshold": _r(self.threshold), "target_fa_per_hour": self.target,
                "validation_false_accepts": self.false_accepts,
                "validation_fa_per_hour": _r(self.fa_per_hour),
                "validation_keyword_hours": _r(self.keyword_hours), "words": self.words}


def calibrate(scores: Scores, items: Sequence[Item], words: Sequence[str],
              seconds: Mapping[str, float], floor: float,
              target: float = CALIBRATION_FA) -> Calibration:
    """The lowest threshold whose false accepts per keyword-hour on ``items`` stay within
    ``target`` (no calibration word is said there: every detection is false); ``floor``
    when even the search's floor stays within it."""
    sweep = Sweep.build("calibration", words, scores,
                        lambda word: ((item, 0, True) for item in items), seconds, floor)
    allowed = int(math.floor(target * sweep.hours + 1e-9))
    ranked = sweep.fa_scores[::-1]
    if len(ranked) <= allowed:
        threshold = floor
    elif allowed and ranked[allowed - 1] > ranked[allowed]:
        threshold = float(ranked[allowed - 1] + ranked[allowed]) / 2
    else:
        threshold = float(np.nextafter(ranked[allowed], np.inf))
    return Calibration(threshold, sweep.counts(threshold).false_accepts, sweep.hours,
                       len(words), target)


# ----------------------------------------------------------------------------- PER

def phone_scores(items: Sequence[Item], posteriors: Mapping[str, np.ndarray], lexicon,
                 words_lexicon, frame_seconds: float):
    """:func:`kws.phones.decoding.score_examples` (its default decoder) of utterances or
    clips; clips' decoded phones matched to the closest word of ``words_lexicon`` (None:
    not matched). Returns the result and how many utterances were left out (a word
    without a pronunciation)."""
    from kws.dataset import SILENCE
    from kws.phones.data import ALTERNATIVES, Example
    from kws.phones.decoding import score_examples
    from kws.phones.utterances import utterance_pronunciations

    examples, rows, skipped = [], [], 0
    for item in items:
        if item.key not in posteriors:
            continue
        if item.utterance:
            if lexicon.missing(item.words):
                skipped += 1
                continue
            refs = utterance_pronunciations([lexicon.pronunciations(w) for w in item.words],
                                            ALTERNATIVES)
            examples.append(Example(item.clip, refs, None))
        elif item.words:
            examples.append(Example(item.clip, lexicon.pronunciations(item.words[0]),
                                    item.words[0]))
        else:
            examples.append(Example(item.clip, ((),), SILENCE))
        rows.append(posteriors[item.key])
    return score_examples(rows, examples, words_lexicon, frame_seconds=frame_seconds), skipped


# ----------------------------------------------------------------------------- the peer

def start_peer(sets: Sets, keywords: Mapping[str, Keyword],
               calibration: Mapping[str, Keyword], workers: int = 2):
    """Start PocketSphinx in worker processes (each run in one process): the validation run
    (calibration words) and the test run (held-out words), both permissive.
    ``(pool, futures)``, or why not."""
    import concurrent.futures
    import multiprocessing

    import pocketsphinx_peer as peer

    reason = peer.missing()
    if reason:
        say(reason)
        return reason
    pool = concurrent.futures.ProcessPoolExecutor(
        max(1, workers), mp_context=multiprocessing.get_context("spawn"))
    futures = {
        "validation": pool.submit(peer.spot_files, [i.key for i in sets.validation],
                                  {w: k.phones[0] for w, k in calibration.items()}),
        "test": pool.submit(peer.spot_files, [i.key for i in sets.test],
                            {w: k.phones[0] for w, k in keywords.items()}),
    }
    return pool, futures


def peer_scores(run, floor: float = -math.inf) -> Scores:
    """A PocketSphinx run's reports as detection scores per ``(file, keyword)``."""
    grouped: dict[tuple[str, str], list[float]] = {}
    for path, found in run.detections.items():
        for word, _, _, score in found:
            if score >= floor:
                grouped.setdefault((path, word), []).append(score)
    return {key: np.sort(values)[::-1] for key, values in grouped.items()}


# ----------------------------------------------------------------------------- the run

def evaluate(args, folder: Path) -> dict[str, Any]:
    """Sections 1-5 on a trained model folder; everything measured, JSON-ready."""
    from kws.dataset import TESTING
    from kws.infer import DEFAULT_SPOT_THRESHOLD
    from kws.modelfolder import Task
    from kws.phones.lexicon import default_lexicon, load_lexicon
    from kws.phones.recognizer import PhoneRecognizer, model_lexicon, phone_card

    started = time.perf_counter()
    card = phone_card(folder)
    recipe = card.recipe
    excluded = set(recipe.get("exclude") or ())
    holdout = list(args.holdout)
    if not set(holdout) <= excluded:
        say(f"WARNING: {folder} was trained on {', '.join(sorted(set(holdout) - excluded))}: "
            "its open-vocabulary figures are not open vocabulary")
    validation_percent = float(recipe.get("validation_percent", 10.0))
    testing_percent = float(recipe.get("testing_percent", TESTING_PERCENT))
    sets = gather(args.shared, holdout, validation_percent, testing_percent)
    references = load_lexicon(recipe.get("lexicon"))
    spot_lexicon = model_lexicon(folder)
    sc_words = default_lexicon().words
    sc_lexicon = references.subset(sc_words)
    keywords = keywords_of(holdout, spot_lexicon)
    clip_words = [w for w in holdout if any(w in item.words for item in sets.clip_pos)]
    avoid = sets.said | set(sc_words) | set(holdout) | set(card.data.get("words") or ())
    calibration_list = calibration_words(args.calibration_words, args.seed, avoid)
    calibration = keywords_of(calibration_list, spot_lexicon)
    say(f"{len(sets.test)} test files, {len(sets.validation)} validation files; keywords "
        + "; ".join(f"{w} /{' '.join(k.phones[0])}/" for w, k in keywords.items()))
    peer = (start_peer(sets, keywords, calibration, args.peer_workers) if args.peer
            else None)

    recognizer = PhoneRecognizer(folder, spot_lexicon)
    frame_s = recognizer.frame_seconds
    items = sorted({i.key: i for i in (*sets.test, *sets.validation)}.values(),
                   key=lambda i: i.key)
    clock = time.perf_counter()
    posteriors, seconds, failed, model_cpu = posteriors_of(recognizer, items)
    model_wall = time.perf_counter() - clock
    say(f"posteriors of {len(posteriors)} files ({sum(seconds.values()) / 3600:.2f} h) in "
        f"{model_wall:.0f} s")
    clock = time.perf_counter()
    scores, search_cpu = search(posteriors, seconds, sets.test, keywords, frame_s)
    search_wall = time.perf_counter() - clock
    cal_scores, _ = search(posteriors, seconds, sets.validation, calibration, frame_s)
    say(f"keyword search in {time.perf_counter() - clock:.0f} s")

    # 1. PER
    per_sets = {
        "an4 testing speakers, trained words": (
            [u for u in sets.cont_test if u.source == "an4"
             and not set(holdout) & set(u.words)], None),
        "an4 testing speakers, utterances with held-out words": (
            [u for u in sets.cont_pos if u.source == "an4" and u.split == TESTING], None),
        "an4 all speakers, utterances with held-out words": (
            [u for u in sets.cont_pos if u.source == "an4"], None),
        "arctic_cathy testing files": (
            [u for u in sets.cont_test if u.source == "arctic_cathy"], None),
        f"{V2} held-out speakers, trained words": (
            [c for c in sets.clip_test if c.source == V2 and c.words
             and not set(holdout) & set(c.words)], sc_lexicon),
        "held-out-word clips, all clip folders": (sets.clip_pos, sc_lexicon),
        f"{V2} held-out silence clips": (
            [c for c in sets.clip_test if c.source == V2 and not c.words], sc_lexicon),
    }
    per = {}
    for name, (chosen, words_lexicon) in per_sets.items():
        result, skipped = phone_scores(chosen, posteriors, references, words_lexicon, frame_s)
        per[name] = (result, skipped)

    # 4. calibration and sweeps; 2-3 read from them
    ours_cal = calibrate(cal_scores, sets.validation, calibration_list, seconds, SEARCH_FLOOR)
    default = DEFAULT_SPOT_THRESHOLD[Task.PHONES]
    ours = sweeps_of(OURS, scores, sets, seconds, SEARCH_FLOOR, clip_words)
    thresholds = {OURS: {"calibrated": ours_cal.threshold, "default": default}}
    systems = {OURS: {"scores": scores, "sweeps": ours, "calibration": ours_cal}}

    test_seconds = seconds_of(sets.test, seconds)
    speed = {OURS: {"audio_hours": _r(sum(seconds.values()) / 3600),
                    "posteriors_rtf": _r(model_cpu / sum(seconds.values())),
                    "posteriors_wall_s": _r(model_wall, 2),
                    "search_rtf": _r(search_cpu / test_seconds),
                    "search_wall_s": _r(search_wall, 2),
                    "search_keywords": len(keywords)}}
    speed[OURS]["rtf"] = _r(speed[OURS]["posteriors_rtf"] + speed[OURS]["search_rtf"])

    peer_info: dict[str, Any] = {"skipped": peer if isinstance(peer, str) else
                                 None if args.peer else "--no-peer"}
    if peer is not None and not isinstance(peer, str):
        import pocketsphinx_peer as ps

        pool, futures = peer
        validation_run = futures["validation"].result()
        floor = math.log10(ps.PERMISSIVE)
        peer_cal = calibrate(peer_scores(validation_run), sets.validation, calibration_list,
                             seconds, floor)
        exact = (pool.submit(ps.spot_files, [i.key for i in sets.test],
                             {w: k.phones[0] for w, k in keywords.items()},
                             ps.threshold_text(peer_cal.threshold))
                 if args.peer_exact else None)
        say("waiting for PocketSphinx")
        test_run = futures["test"].result()
        peer_test = peer_scores(test_run)
        systems[PEER] = {"scores": peer_test, "calibration": peer_cal,
                         "sweeps": sweeps_of(PEER, peer_test, sets, seconds, floor,
                                             clip_words)}
        thresholds[PEER] = {"calibrated": peer_cal.threshold}
        speed[PEER] = {"audio_hours": _r(test_run.audio_seconds / 3600),
                       "rtf": _r(test_run.rtf), "wall_s": _r(test_run.wall_seconds, 2),
                       "search_keywords": len(keywords)}
        peer_info = {"system": ps.describe(), "added_words": {
            **test_run.added, **validation_run.added},
            "failed": {**test_run.failed, **validation_run.failed},
            "sweep": "one permissive run at "
                     f"{ps.PERMISSIVE:g}, swept by each report's score"}
        if exact is not None:
            exact_run = exact.result()
            exact_scores = peer_scores(exact_run)
            systems[PEER]["exact"] = sweeps_of(PEER + " exact", exact_scores, sets, seconds,
                                               -math.inf, clip_words)
            peer_info["exact_threshold"] = exact_run.threshold
            speed[PEER]["exact_run_rtf"] = _r(exact_run.rtf)
        pool.shutdown()

    # 2. clips per folder
    folders = sorted({item.source for item in sets.clip_pos})
    clip_rows = {}
    for system, info in systems.items():
        for kind, threshold in thresholds[system].items():
            row = {}
            for name in [*folders, "all"]:
                chosen = [i for i in sets.clip_pos if name in ("all", i.source)]
                row[name] = clip_detection(info["scores"], chosen, threshold)
            clip_rows[(system, kind)] = row
    named_rows = per["held-out-word clips, all clip folders"][0].rows
    named_by_folder = {}
    for name in folders:
        keys = {i.key for i in sets.clip_pos if i.source == name}
        rows = [r for r in named_rows if r[0] in keys]
        named_by_folder[name] = (sum(1 for r in rows if r[3] == r[1]), len(rows))

    by_keyword: dict[str, Any] = {}
    for word in [*holdout, "overall"]:
        wanted = holdout if word == "overall" else [word]
        positives = [i for i in sets.cont_pos if set(wanted) & set(i.words)]
        entry: dict[str, Any] = {
            "utterances": len(positives),
            "held_out_utterances": sum(1 for i in positives if i.split == TESTING),
            "occurrences": sum(i.words.count(w) for i in positives for w in wanted),
            "negative_hours": _r(sum(seconds_of(sets.negatives(w), seconds)
                                     for w in wanted) / 3600)}
        for system, info in systems.items():
            one = _sub_sweep(info, wanted, sets, seconds)
            entry[system] = {kind: {
                "threshold": _r(t),
                "all_speakers": one["continuous"].counts(t).to_json(),
                "held_out_speakers": one["continuous_held_out"].counts(t).to_json()}
                for kind, t in thresholds[system].items()}
        by_keyword[word] = entry
    card_rows = (at_card_thresholds(card.fa_calibration, keywords, posteriors, sets, seconds,
                                    frame_s) if card.fa_calibration is not None else None)

    report = {
        "model": str(folder),
        "card_metrics": {k: v for k, v in card.metrics.items() if k != "history"},
        "holdout": holdout,
        "trained_without_holdout": set(holdout) <= excluded,
        "splits": {"validation_percent": validation_percent,
                   "testing_percent": testing_percent},
        "pronunciations": {w: {"phones": [" ".join(p) for p in k.phones], "source": k.source}
                           for w, k in keywords.items()},
        "data": data_summary(sets, seconds),
        "failed": failed,
        "per": {name: {**result.errors.to_json(),
                       "word_accuracy": _r(result.word_accuracy),
                       "words_scored": result.words_scored, "left_out": skipped}
                for name, (result, skipped) in per.items()},
        "calibration": {"words": calibration_list,
                        "pronunciations": {w: " ".join(k.phones[0])
                                           for w, k in calibration.items()},
                        "validation_hours": _r(seconds_of(sets.validation, seconds) / 3600),
                        **{system: info["calibration"].to_json()
                           for system, info in systems.items()}},
        "systems": {system: {name: sweep.to_json(thresholds[system])
                             for name, sweep in info["sweeps"].items()}
                    for system, info in systems.items()},
        "clips_by_folder": {
            f"{system} @ {kind}": {name: {"detected": d, "clips": n, "rate": _r(d / n)}
                                   for name, (d, n) in row.items() if n}
            for (system, kind), row in clip_rows.items()},
        "continuous_by_keyword": by_keyword,
        "at_card_thresholds": card_rows,
        "clips_named_by_folder": {name: {"correct": c, "clips": n, "rate": _r(c / n)}
                                  for name, (c, n) in named_by_folder.items() if n},
        "threshold_units": {OURS: "alignment confidence in (0, 1] (kws phones spot)",
                            PEER: "log10 of the keyword-list threshold"},
        "speed": speed,
        "peer": peer_info,
    }
    if PEER in systems and "exact" in systems[PEER]:
        report["systems"][PEER + " exact"] = {
            name: sweep.to_json({"calibrated": -math.inf})
            for name, sweep in systems[PEER]["exact"].items()}
    report["seconds"] = _r(time.perf_counter() - started, 1)
    print_report(report, systems, thresholds, per, sets, seconds)
    if args.plot:
        plot_det(args.plot, systems, thresholds)
        print(f"\nDET curves: {args.plot}")
    return report


def data_summary(sets: Sets, seconds: Mapping[str, float]) -> dict[str, Any]:
    def part(items: Sequence[Item]) -> dict[str, Any]:
        return {"files": len(items), "hours": _r(seconds_of(items, seconds) / 3600),
                "by_source": {s: len([i for i in items if i.source == s])
                              for s in sorted({i.source for i in items})}}

    return {"test_utterances": part(sets.cont_test), "positive_utterances": part(sets.cont_pos),
            "test_clips": part(sets.clip_test), "positive_clips": part(sets.clip_pos),
            "validation_utterances": part(sets.cont_val),
            "validation_clips": part(sets.clip_val)}


# ----------------------------------------------------------------------------- printing

def table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]],
          notes: Sequence[str] = ()) -> None:
    cells = [[str(c) for c in header], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(f"\n== {title} ==")
    for index, row in enumerate(cells):
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                        for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip())
        if index == 0:
            print("  ".join("-" * w for w in widths))
    for note in notes:
        print(f"  {note}")


def pct(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{100 * value:.1f}%"


def threshold_name(system: str, value: float) -> str:
    if value == math.inf:
        return "none"
    if system.startswith(PEER):
        return "all reports" if not math.isfinite(value) else f"1e{value:+.1f}"
    return f"{value:.3f}"


def print_report(report, systems, thresholds, per, sets, seconds) -> None:
    print(f"\nmodel: {report['model']}   held-out words: {', '.join(report['holdout'])}"
          + ("" if report["trained_without_holdout"] else "   (NOT excluded from training!)"))
    print("pronunciations: " + "; ".join(
        f"{w} /{' | '.join(v['phones'])}/ ({v['source']})"
        for w, v in report["pronunciations"].items()))
    rows = []
    for name, (result, _) in per.items():
        e = result.errors
        silence = "silence" in name
        rows.append([name, e.utterances, e.reference_length,
                     "-" if silence else pct(e.per), "-" if silence else e.substitutions,
                     "-" if silence else e.deletions, e.insertions,
                     pct(result.word_accuracy) if result.words_scored else "-"])
    from kws.phones.decoding import DEFAULT_BEAM, DEFAULT_DECODER

    table(f"1. Phone error rate on held-out real speakers ({DEFAULT_DECODER} decoding"
          f"{f', {DEFAULT_BEAM} prefixes' if DEFAULT_DECODER == 'beam' else ''}, 39 phones)",
          ["set", "files", "phones", "PER", "sub", "del", "ins", "word acc"], rows,
          [f"target: PER <= {PER_TARGET:.0%} on AN4 testing speakers and {V2} held-out "
           "speakers (trained words): " + ", ".join(
               f"{name.split(' ')[0]} {'met' if result.errors.per <= PER_TARGET else 'NOT met'}"
               for name, (result, _) in per.items()
               if name.endswith("trained words")),
           "word acc: decoded phones matched to the closest of the 35 Speech Commands words "
           "(silence: decoded to nothing)"])

    clip_words = systems[OURS]["sweeps"]["clips"].keywords
    rows = []
    folders = [k for k in report["clips_named_by_folder"]]
    for name in [*folders, "all"]:
        row = [name]
        for value in report["clips_by_folder"].values():
            entry = value.get(name)
            row.append(f"{pct(entry['rate'])} of {entry['clips']}" if entry else "-")
        named = report["clips_named_by_folder"].get(name)
        if name == "all":
            result = per["held-out-word clips, all clip folders"][0]
            row.append(pct(result.word_accuracy))
        else:
            row.append(pct(named["rate"]) if named else "-")
        rows.append(row)
    alarms = []
    for system, info in systems.items():
        sweep = info["sweeps"]["clip_false_alarms"]
        for kind, threshold in thresholds[system].items():
            counts = sweep.counts(threshold)
            alarms.append(f"{system} @ {kind} ({threshold_name(system, threshold)}): "
                          f"{counts.false_accepts} of {sweep.files} (clip, keyword) pairs "
                          f"alarmed ({100 * counts.false_accepts / max(1, sweep.files):.2f}%)")
    heads = [f"{k.replace(' @ ', ' @')}" for k in report["clips_by_folder"]]
    table(f"2. Open vocabulary on clips: {', '.join(clip_words)} (never trained), detection "
          "rate", ["folder", *heads, "named (closest of 35)"], rows,
          ["false alarms on held-out speakers' clips of other words (testing split):",
           *[f"  {line}" for line in alarms]])

    # 3. continuous speech, per keyword
    rows = []
    sweep_all = systems[OURS]["sweeps"]["continuous"]
    for word, entry in report["continuous_by_keyword"].items():
        row = [word, f"{entry['utterances']}/{entry['held_out_utterances']}",
               entry["occurrences"], f"{entry['negative_hours']:.3f}"]
        for system in systems:
            counts = entry[system]["calibrated"]
            row += [pct(counts["all_speakers"]["recall"]),
                    pct(counts["held_out_speakers"]["recall"]),
                    counts["all_speakers"]["false_accepts"],
                    f"{counts['all_speakers']['fa_per_hour']:.2f}"]
        rows.append(row)
    head = ["keyword", "utts all/held", "said", "neg h"]
    for system in systems:
        head += [f"{system}: det", "det held", "FA", "FA/h"]
    table("3. Open vocabulary on continuous speech, at each system's calibrated threshold",
          head, rows,
          [f"negatives: AN4 + ARCTIC testing utterances not saying the keyword "
           f"({seconds_of(sets.cont_test, seconds) / 3600:.3f} h) and held-out clips "
           f"({seconds_of(sets.clip_test, seconds) / 3600:.3f} h); 'neg h' = keyword-hours "
           "of negative audio", "FA/h = false accepts / (hours scanned per keyword, summed "
           f"over keywords: {sweep_all.hours:.2f} keyword-hours, of which "
           f"{sweep_all.negative_hours:.2f} negative); 1 FA = "
           f"{1 / sweep_all.hours:.2f} FA/h overall",
           "det = detection rate over all speakers' positive utterances; det held = "
           "held-out (testing) speakers only"])

    # 4. DET points and the calibrated threshold
    rows = []
    for system, info in systems.items():
        for name in ("continuous", "continuous_held_out", "clips"):
            sweep = info["sweeps"][name]
            points = sweep.at_fa()
            rows.append([f"{system}: {name.replace('_', ' ')}",
                         *[f"{pct(p.counts.recall)} @{threshold_name(system, p.threshold)}"
                           for p in points.values()]])
    table("4. DET: detection rate at false accepts per keyword-hour (best swept threshold)",
          ["system: positives", *[f"{t:g} FA/h" for t in FA_POINTS]], rows,
          [f"negative audio per keyword: {sweep_all.negative_hours / len(sweep_all.keywords):.3f} h"
           f" (x {len(sweep_all.keywords)} keywords); clips: "
           f"{len(systems[OURS]['sweeps']['clips'].keywords)} keywords"])
    rows = []
    for system, info in systems.items():
        cal = info["calibration"]
        kinds = dict(thresholds[system])
        variants = [(system, info["sweeps"], kinds)]
        if "exact" in info:
            variants.append((f"{system} exact run", info["exact"],
                             {"calibrated": -math.inf}))
        for label, sweeps, chosen in variants:
            for kind, threshold in chosen.items():
                shown = (threshold_name(system, cal.threshold) + " (run)"
                         if not math.isfinite(threshold) else threshold_name(system, threshold))
                cont = sweeps["continuous"].counts(threshold)
                held = sweeps["continuous_held_out"].counts(threshold)
                clips = sweeps["clips"].counts(threshold)
                rows.append([f"{label} @ {kind}", shown,
                             f"{cal.fa_per_hour:.2f}" if kind == "calibrated" else "-",
                             pct(cont.recall), pct(held.recall),
                             f"{cont.fa_per_hour:.2f}", pct(clips.recall),
                             f"{clips.fa_per_hour:.2f}"])
    table("4. Calibrated threshold (validation data, calibration words) applied to the test "
          "keywords", ["system @ threshold", "value", "val FA/h", "cont det", "held det",
                       "cont FA/h", "clip det", "clip FA/h"], rows,
          [f"calibration: {len(report['calibration']['words'])} CMUdict words "
           f"({', '.join(report['calibration']['words'][:6])}, ...), "
           f"{report['calibration']['validation_hours']:.3f} h of validation audio each; "
           f"target {CALIBRATION_FA:g} FA/h"])

    rows = []
    for system, figures in report["speed"].items():
        rows.append([system, f"{figures['rtf']:.4f}",
                     f"{figures.get('posteriors_rtf', '-')}", f"{figures.get('search_rtf', '-')}",
                     figures["search_keywords"]])
    table("5. Real-time factor (CPU time / audio time, one process)",
          ["system", "RTF", "posteriors", "search", "keywords"], rows,
          [f"peer: {report['peer'].get('system') or report['peer'].get('skipped')}",
           f"peer sweep: {report['peer'].get('sweep', '-')}; words added to its dictionary: "
           f"{', '.join(report['peer'].get('added_words', {})) or 'none'}"])
    if report["at_card_thresholds"] is not None:
        card_rows = report["at_card_thresholds"]
        rows = [[word, " | ".join(f"{t:.3f}" for t in row["thresholds"] or []) or "-",
                 pct(row["continuous"]["recall"]), pct(row["continuous_held_out"]["recall"]),
                 row["continuous"]["false_accepts"], f"{row['continuous']['fa_per_hour']:.2f}"]
                for word, row in card_rows["keywords"].items()]
        table(f"6. kws phones at its card's thresholds ({card_rows['fa_per_hour_target']:g} "
              "FA/h by keyword length: what `kws phones spot -k WORD` uses)",
              ["keyword", "thresholds", "det", "det held", "FA", "FA/h"], rows,
              ["the thresholds of `kws phones calibrate` (the model card), one per "
               "pronunciation, not chosen here"])
    print(f"\nevaluation: {report['seconds']:.0f} s")


def _sub_sweep(info, words, sets, seconds):
    """The continuous-speech sweeps of some keywords only (per-keyword rows)."""
    scores = info["scores"]
    floor = next(iter(info["sweeps"].values())).floor
    restricted = Sets(list(words), sets.cont_test, sets.cont_pos, sets.cont_val,
                      sets.clip_test, sets.clip_pos, sets.clip_val, sets.said)
    return sweeps_of("", scores, restricted, seconds, floor, [])


def at_card_thresholds(calibration, keywords: Mapping[str, Keyword],
                       posteriors: Mapping[str, np.ndarray], sets: Sets,
                       seconds: Mapping[str, float], frame_seconds: float) -> dict[str, Any]:
    """What ``kws phones spot -k WORD`` reports on the continuous test speech: each
    keyword's pronunciations at the model card's thresholds for their lengths
    (:func:`kws.phones.recognizer.pronunciation_thresholds` at the rate ``spot`` uses by
    default), all speakers and held-out ones, and every keyword pooled."""
    from kws.modelfolder import DEFAULT_FA_PER_HOUR
    from kws.phones import ctc
    from kws.phones.recognizer import pronunciation_thresholds, spot_in
    from kws.stream_eval import Counts

    parts = ("continuous", "continuous_held_out")
    rows: dict[str, Any] = {}
    pooled: dict[str, list] = {part: [] for part in parts}
    log_probs: dict[str, np.ndarray] = {}  # each file's, made once for every keyword
    for word, keyword in keywords.items():
        thresholds = pronunciation_thresholds(word, keyword.phones, calibration)
        scores: Scores = {}
        for item in sets.cont_pos + sets.negatives(word):
            if item.key in posteriors and (item.key, word) not in scores:
                if item.key not in log_probs:
                    log_probs[item.key] = ctc.log_posteriors(posteriors[item.key])
                found = spot_in(log_probs[item.key], item.key, word,
                                keyword.phones, keyword.ids, thresholds, frame_seconds,
                                seconds[item.key])
                scores[(item.key, word)] = np.sort([d.probability for d in found])[::-1]
        floor = min(thresholds)
        sweeps = {part: Sweep.build(part, [word], scores,
                                    continuous_jobs(sets, part == "continuous_held_out"),
                                    seconds, floor) for part in parts}
        counts = {part: sweep.counts(floor) for part, sweep in sweeps.items()}
        rows[word] = {"thresholds": [_r(t) for t in thresholds],
                      **{part: c.to_json() for part, c in counts.items()}}
        for part in parts:
            pooled[part].append(counts[part])
    rows["overall"] = {"thresholds": None, **{
        part: Counts(sum(c.occurrences for c in found), sum(c.hits for c in found),
                     sum(c.false_accepts for c in found), sum(c.hours for c in found)).to_json()
        for part, found in pooled.items()}}
    return {"fa_per_hour_target": DEFAULT_FA_PER_HOUR, "keywords": rows}


def plot_det(path: str | Path, systems, thresholds) -> None:
    """DET curves (miss rate against false accepts per keyword-hour) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (("continuous", "continuous speech (AN4 utterances), all speakers"),
              ("continuous_held_out", "continuous speech, held-out speakers"),
              ("clips", "held-out-word clips (Speech Commands)"))
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.4), sharey=True)
    colours = {OURS: "tab:blue", PEER: "tab:orange"}
    for axis, (name, title) in zip(axes, panels, strict=True):
        top = 10.0
        for system, info in systems.items():
            sweep = info["sweeps"][name]
            fa, miss = sweep.curve().det()
            shown = fa > 0
            if shown.any():
                axis.step(fa[shown], miss[shown], where="post", color=colours[system],
                          label=system)
                top = max(top, float(fa[shown].max()))
            counts = sweep.counts(thresholds[system]["calibrated"])
            if counts.miss_rate is not None:
                axis.plot([max(counts.fa_per_hour, 0.05)], [counts.miss_rate], "o",
                          color=colours[system], label=f"{system} calibrated")
        for target in FA_POINTS:
            axis.axvline(target, color="0.5", lw=0.8, ls=":", zorder=0)
        axis.set_xscale("log")
        axis.set_xlim(0.05, top * 1.2)
        axis.set_ylim(0, 1)
        axis.set_xlabel("false accepts per keyword-hour")
        axis.set_title(title, fontsize=10)
        axis.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("miss rate")
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=None,
                        help="Training epochs [default: kws phones train's].")
    parser.add_argument("--seed", type=int, default=0,
                        help="Seed of training and of the calibration words.")
    parser.add_argument("--out", type=Path, default=ROOT / "models" / "bench-phones")
    parser.add_argument("--holdout", default=",".join(HOLDOUT),
                        help="Comma-separated words left out of training.")
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--extra-data", type=Path, action="append", default=[],
                        metavar="DIR", help="Another training folder (repeatable), e.g. "
                        "bench/tts_sentences.py's synthetic sentences.")
    parser.add_argument("--reuse", action="store_true",
                        help="Reuse the model in --out if it is there.")
    parser.add_argument("--train-only", action="store_true")
    parser.add_argument("--model", type=Path, default=None,
                        help="Evaluate this phone model folder (no training).")
    parser.add_argument("--json", type=Path, default=None,
                        help="Write every figure of the evaluation to this file.")
    parser.add_argument("--plot", type=Path, default=None,
                        help="Draw the DET curves into this PNG file.")
    parser.add_argument("--no-peer", dest="peer", action="store_false",
                        help="Skip PocketSphinx.")
    parser.add_argument("--peer-exact", action=argparse.BooleanOptionalAction, default=True,
                        help="Also run PocketSphinx at its calibrated threshold (exact "
                             "operating point) [default: on].")
    parser.add_argument("--peer-workers", type=int, default=2,
                        help="Processes running PocketSphinx (one run each; its real-time "
                             "factor is per process) [default: 2].")
    parser.add_argument("--calibration-words", type=int, default=CALIBRATION_WORDS,
                        help="CMUdict words the threshold is calibrated with.")
    args = parser.parse_args(argv)
    args.holdout = [w.strip().lower() for w in args.holdout.split(",") if w.strip()]
    return args


def main() -> None:
    args = arguments()
    if args.model is not None:
        folder, seconds = args.model, None
    else:
        folder, seconds = train(args)
    print(f"model: {folder}" + (f" (trained in {seconds:.0f} s)" if seconds else ""))
    if args.train_only:
        return
    report = evaluate(args, Path(folder))
    if seconds:
        report["training_seconds"] = round(seconds, 1)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
        print(f"figures: {args.json}")


if __name__ == "__main__":
    main()
