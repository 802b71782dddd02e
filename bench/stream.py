"""Keyword spotting in real streams: kws against PocketSphinx on the same files.

Prints ONE table, a column per system, a row per figure:

* miss rate at 1 false accept per hour, all keywords pooled and per keyword, on real
  continuous speech: AN4 utterances of held-out speakers (the ``testing`` speakers of
  :func:`kws.recordings.split_of`, whom ``kws train --negatives`` never uses) and CMU
  ARCTIC (cathy) utterances whose transcripts contain no Speech Commands word; the best
  swept threshold meeting the rate (see :mod:`kws.stream_eval`);
* recall and precision on the keyword occurrences of the AN4 held-out speakers, and false
  accepts per hour on the ARCTIC non-keyword speech, at each system's operating point;
* for kws only, the same miss rate on synthetic streams (the Speech Commands v0.02 test
  clips of ``sc_v2_test_half`` placed in the ``_background_noise_`` recordings at 20, 10
  and 5 dB SNR, many speakers; of a model trained with ``--resplit`` of that folder, only
  the clips its split held out);
* real-time factor on one core (processing time / audio time: kws pinned to one CPU with
  one LiteRT thread; PocketSphinx single-threaded, one process per file batch) and, for
  kws, the median decision delay (stream time from the end of a detected keyword to its
  decision; the wall-clock latency of ``kws listen`` adds the compute of one hop).

Keywords: the model's words that AN4 says (the shipped model: yes, no, stop, go, zero ..
nine); every system watches only those. Keyword occurrences come from the transcripts
(counts, no timings): in a recording, up to N detections of a keyword said N times are
hits, the rest false accepts.

The peer: PocketSphinx (``pip install pocketsphinx``; not a kws dependency, imported only
here; its rows are skipped with a note when it is missing) with its bundled en-us model,
its ``Decoder`` in keyword-list search (one ``/threshold/`` for every keyword; the
operating point is 1e-10, the sweep 1e-5, 1e-10, 1e-20; overlapping reports of one keyword
are one detection) and in full decoding with its generic language model, then matching
the words of the hypothesis.

PocketSphinx's full decoding runs at roughly real time on a small CPU, so the systems are
compared on a seeded subsample of the held-out files (``--an4-files``, ``--arctic-files``);
the column ``kws, all files`` has kws alone on every held-out file and the synthetic
streams. With T hours of audio one false accept is 1/T per hour: the row names say how
much audio each figure rests on.

Usage::

    .venv/bin/python bench/stream.py [--model models/default] [--an4-files 100]
        [--arctic-files 60] [--synthetic-clips 600] [--workers 2] [--seed 0] [--json PATH]
        [--max-delay S] [--edge S] [--no-peer] [--verify]

``--max-delay`` runs kws's detector with another maximum decision delay (the README's
latency table compares them), ``--edge`` with another silence heard at each end of a
recording; ``--no-peer`` leaves PocketSphinx out (its figures do not
depend on kws's settings).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import importlib.util
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kws import audio
from kws.dataset import TESTING, V1_WORDS, open_datasets
from kws.evaluate import unsplit_training_folders
from kws.infer import NOT_WORDS, open_runner
from kws.infer.detector import DetectorSettings, detect
from kws.modelfolder import read_card, resolve_model_dir
from kws.phones.verify import detector_verifier
from kws.recordings import Recording, read_recordings, split_of
from kws.stream_eval import (
    OVERALL,
    SWEEP_THRESHOLDS,
    NoiseBank,
    Spot,
    StreamScore,
    Tally,
    Truth,
    plan_synthetic,
    render_stream,
    spot_and_sweep,
    synthetic_truth,
)

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
#: The 35 words of Speech Commands v0.02: ARCTIC utterances with none of them are
#: non-keyword speech.
SC_WORDS = frozenset(V1_WORDS) | {"backward", "follow", "forward", "learn", "visual"}
#: PocketSphinx keyword-search thresholds: the operating one and the sweep.
PS_THRESHOLD = 1e-10
PS_SWEEP = (1e-5, 1e-10, 1e-20)
#: Reports of one keyword by PocketSphinx's keyword search closer than this (s) are one.
PS_MERGE_S = 0.3
SYSTEMS = ("kws", "PocketSphinx keyword search", "PocketSphinx full decoding",
           "kws, all files")


def main() -> None:
    args = parse_args()
    started = time.perf_counter()
    folder = resolve_model_dir(args.model)
    card = read_card(folder)
    an4 = read_recordings(args.data / "an4").recordings
    said = {w for r in an4 for w in r.words}
    keywords = [k for k in card.labels if k not in NOT_WORDS and k in said]
    held_an4 = [r for r in an4 if split_of(r) == TESTING]
    arctic_all = [r for r in read_recordings(args.data / "arctic_cathy").recordings
                  if r.transcript is not None and not r.contains_any(SC_WORDS)]
    arctic_trained = "arctic" in json.dumps(card.data.get("negatives", ""))
    held_arctic = [r for r in arctic_all if split_of(r) == TESTING] if arctic_trained \
        else arctic_all
    rng = random.Random(args.seed)
    sub_an4 = sorted(rng.sample(held_an4, min(args.an4_files, len(held_an4))),
                     key=lambda r: r.path)
    sub_arctic = sorted(rng.sample(held_arctic, min(args.arctic_files, len(held_arctic))),
                        key=lambda r: r.path)
    say(f"keywords: {', '.join(keywords)}; AN4 held-out: {len(held_an4)} files "
        f"({len(sub_an4)} in the subsample); ARCTIC non-keyword "
        f"{'held-out ' if arctic_trained else ''}files: {len(held_arctic)} "
        f"({len(sub_arctic)} in the subsample)")
    results: dict[str, dict] = {}
    verifier = detector_verifier(folder, args.verify)
    verify = verifier is not None
    say("kws: the detector verified by the phone model" if verify else "kws: the detector")
    settings = DetectorSettings.from_card(card, keywords=keywords, max_delay=args.max_delay,
                                          edge=args.edge, verify=verify)
    results["kws"], results["kws, all files"] = run_kws(
        folder, settings, keywords, (sub_an4, sub_arctic), (held_an4, held_arctic), args,
        verifier)
    say(f"kws done ({time.perf_counter() - started:.0f} s)")
    if not args.peer:
        say("--no-peer: PocketSphinx's columns are empty")
    elif importlib.util.find_spec("pocketsphinx") is None:
        say("PocketSphinx is not installed (pip install pocketsphinx): its columns are empty")
    else:
        ps_kws, ps_full = run_pocketsphinx(keywords, sub_an4, sub_arctic, args.workers)
        results["PocketSphinx keyword search"] = ps_kws
        results["PocketSphinx full decoding"] = ps_full
        say(f"PocketSphinx done ({time.perf_counter() - started:.0f} s)")
    print_table(results, keywords)
    if args.json:
        Path(args.json).write_text(json.dumps(
            {system: {k: v.to_json() if isinstance(v, StreamScore) else v
                      for k, v in figures.items()} for system, figures in results.items()},
            indent=1))
    say(f"total {time.perf_counter() - started:.0f} s")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="model folder [default: shipped]")
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    parser.add_argument("--an4-files", type=int, default=100)
    parser.add_argument("--arctic-files", type=int, default=60)
    parser.add_argument("--synthetic-clips", type=int, default=600)
    parser.add_argument("--workers", type=int, default=2,
                        help="PocketSphinx processes (each single-threaded)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write every figure here")
    parser.add_argument("--max-delay", type=float, default=DetectorSettings.max_delay,
                        help="kws's maximum decision delay (s) [default: %(default)s, the "
                             "detector's]")
    parser.add_argument("--edge", type=float, default=DetectorSettings.edge,
                        help="seconds of silence kws's detector hears before and after each "
                             "recording [default: %(default)s, the detector's]")
    parser.add_argument("--no-peer", dest="peer", action="store_false",
                        help="leave PocketSphinx out")
    parser.add_argument("--verify", action="store_true",
                        help="kws's detections verified by the phone model (kws listen "
                             "--verify)")
    return parser.parse_args()


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


# --- kws ------------------------------------------------------------------------------

def run_kws(folder: Path, settings: DetectorSettings, keywords: list[str],
            subsample: tuple[list[Recording], list[Recording]],
            everything: tuple[list[Recording], list[Recording]],
            args: argparse.Namespace, verifier=None) -> tuple[dict, dict]:
    """kws on the subsample (with its one-core speed) and on every held-out file."""
    one_core = sorted(os.sched_getaffinity(0))[:1]
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, one_core)
    try:
        runner = open_runner(folder, "auto", threads=1)
        speed = time_kws(runner, settings, [r for part in subsample for r in part], verifier)
    finally:
        os.sched_setaffinity(0, previous)
    runner = open_runner(folder, "auto")
    sub = score_kws(runner, settings, keywords, subsample, verifier)
    full = score_kws(runner, settings, keywords, everything, verifier)
    full["synthetic"] = score_synthetic(runner, settings, keywords, args, verifier)
    return {**sub, **speed}, full


def score_kws(runner, settings: DetectorSettings, keywords: list[str],
              parts: tuple[list[Recording], list[Recording]], verifier=None) -> dict:
    """kws's figures on (AN4, ARCTIC) recordings: each part and both pooled."""
    tallies = {name: Tally(keywords, SWEEP_THRESHOLDS) for name in ("an4", "arctic", "real")}
    for name, recordings in zip(("an4", "arctic"), parts, strict=True):
        for recording in recordings:
            waveform = audio.load(recording.path, runner.sample_rate)
            operating, swept = spot_and_sweep(runner, waveform, settings, SWEEP_THRESHOLDS,
                                              verifier)
            truth = transcript_truth(recording, keywords, len(waveform) / runner.sample_rate)
            tallies[name].add(truth, operating, swept)
            tallies["real"].add(truth, operating, swept)
    return {name: tally.result(thresholds(settings, keywords))
            for name, tally in tallies.items()}


def score_synthetic(runner, settings: DetectorSettings, keywords: list[str],
                    args: argparse.Namespace, verifier=None) -> StreamScore:
    """kws on synthetic streams of the v0.02 test clips in background noise (those the
    model's ``--resplit`` held out, when it resplit them)."""
    folder = args.data / "sc_v2_test_half"
    dataset = open_datasets([folder], backgrounds=[args.data / "sc_background_noise"],
                            resplit=unsplit_training_folders(runner.card, [folder], ()))
    clips = [c for c in dataset.clips if c.split == TESTING and c.word not in NOT_WORDS]
    clips = random.Random(args.seed).sample(clips, min(args.synthetic_clips, len(clips)))
    plans = plan_synthetic([(c.path, c.word) for c in clips], dataset.backgrounds,
                           seed=args.seed)
    tally, noises = Tally(keywords, SWEEP_THRESHOLDS), NoiseBank(runner.sample_rate)
    for plan in plans:
        waveform, placed, _ = render_stream(plan, runner.sample_rate, noises)
        operating, swept = spot_and_sweep(runner, waveform, settings, SWEEP_THRESHOLDS,
                                          verifier)
        tally.add(synthetic_truth(plan, placed, keywords), operating, swept)
    speakers = len({c.speaker for c in clips})
    say(f"synthetic streams: {len(clips)} clips of {speakers} speakers, "
        f"{tally.seconds / 3600:.2f} h")
    return tally.result(thresholds(settings, keywords))


def time_kws(runner, settings: DetectorSettings, recordings: Sequence[Recording],
             verifier=None) -> dict:
    """Real-time factor of model + detector (+ verifier) on one core, and the median
    decision delay."""
    waveforms = [audio.load(r.path, runner.sample_rate) for r in recordings]
    started = time.process_time()
    found = [d for w in waveforms for d in detect(runner, w, settings, verifier=verifier)]
    spent = time.process_time() - started
    seconds = sum(len(w) for w in waveforms) / runner.sample_rate
    delays = [d.decided_at - d.end for d in found if d.decided_at is not None]
    return {"rtf": spent / seconds, "delay_ms": 1000 * statistics.median(delays)
            if delays else None}


def thresholds(settings: DetectorSettings, keywords: list[str]) -> dict[str, float]:
    return {k: settings.threshold(k) for k in keywords}


def transcript_truth(recording: Recording, keywords: list[str], seconds: float) -> Truth:
    counts = recording.keyword_counts(keywords)
    return Truth(str(recording.path), seconds, {k: n for k, n in counts.items() if n})


# --- PocketSphinx ---------------------------------------------------------------------

_DECODERS: dict = {}


def _start_worker(keywords: list[str], folder: str) -> None:
    """Each worker process: one keyword-search decoder per threshold, one full decoder."""
    from pocketsphinx import Decoder

    for threshold in PS_SWEEP:
        path = Path(folder) / f"keywords-{threshold:g}.list"
        path.write_text("".join(f"{k} /{threshold:g}/\n" for k in keywords))
        _DECODERS[threshold] = Decoder(kws=str(path), logfn=os.devnull)
    _DECODERS["full"] = Decoder(logfn=os.devnull)


def _decode(path: str) -> dict:
    """Keyword-search detections per threshold and full-decoding words of one file."""
    waveform = audio.load(path, 16000)
    pcm = (np.clip(waveform, -1, 1) * 32767).astype(np.int16).tobytes()
    out: dict = {"seconds": len(waveform) / 16000, "time": {}}
    for key, decoder in _DECODERS.items():
        started = time.process_time()
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        out["time"][key] = time.process_time() - started
        out[key] = [(s.word.strip(), s.start_frame / 100, s.end_frame / 100, float(s.prob))
                    for s in decoder.seg() or []]
    return out


def run_pocketsphinx(keywords: list[str], an4: list[Recording], arctic: list[Recording],
                     workers: int) -> tuple[dict, dict]:
    """PocketSphinx's keyword search and full decoding on the subsample."""
    import tempfile

    files = [*an4, *arctic]
    with tempfile.TemporaryDirectory() as folder, concurrent.futures.ProcessPoolExecutor(
            workers, initializer=_start_worker, initargs=(keywords, folder)) as pool:
        decoded = list(pool.map(_decode, [str(r.path) for r in files], chunksize=4))
    wanted = set(keywords)
    search = {n: Tally(keywords, PS_SWEEP) for n in ("an4", "arctic", "real")}
    full = {n: Tally(keywords) for n in ("an4", "arctic", "real")}
    for index, (recording, result) in enumerate(zip(files, decoded, strict=True)):
        truth = transcript_truth(recording, keywords, result["seconds"])
        swept = {t: merge_reports(result[t]) for t in PS_SWEEP}
        words = [Spot(_base(w), 1.0, s, e) for w, s, e, _ in result["full"]
                 if _base(w) in wanted]
        for name in ("an4" if index < len(an4) else "arctic", "real"):
            search[name].add(truth, swept[PS_THRESHOLD], swept)
            full[name].add(truth, words)
    seconds = sum(r["seconds"] for r in decoded)
    limits = dict.fromkeys(keywords, PS_THRESHOLD)
    rtf_search = sum(r["time"][PS_THRESHOLD] for r in decoded) / seconds
    rtf_full = sum(r["time"]["full"] for r in decoded) / seconds
    return ({**{n: t.result(limits) for n, t in search.items()}, "rtf": rtf_search},
            {**{n: t.result(limits) for n, t in full.items()}, "rtf": rtf_full})


def merge_reports(reports: list[tuple[str, float, float, float]]) -> list[Spot]:
    """Keyword-search reports as detections: overlapping reports of a keyword are one."""
    merged: list[Spot] = []
    for word, start, end, prob in sorted(reports, key=lambda r: r[1]):
        same = [i for i, s in enumerate(merged) if s.keyword == word
                and start < s.end + PS_MERGE_S]
        if same:
            old = merged[same[-1]]
            merged[same[-1]] = Spot(word, max(old.score, prob), old.start, max(old.end, end))
        else:
            merged.append(Spot(word, prob, start, end))
    return merged


def _base(word: str) -> str:
    """A dictionary word without its alternative-pronunciation mark: ``two(2)`` -> two."""
    return word.split("(")[0].lower()


# --- the table --------------------------------------------------------------------------

def print_table(results: dict[str, dict], keywords: list[str]) -> None:
    """One table: a column per system, a row per figure (tab-separated)."""
    def miss(system: str, part: str, name: str) -> str:
        score = results.get(system, {}).get(part)
        if score is None:
            return "-"
        if name in score.curves:
            point = score.curves[name].at_fa_per_hour(1.0)
            return f"{point.miss_rate:.3f}" if point.miss_rate is not None else "-"
        counts = score.counts.get(name)
        if counts is None or counts.recall is None:
            return "-"
        if counts.fa_per_hour <= 1.0:
            return f"{1 - counts.recall:.3f}"
        return f"n/a ({counts.fa_per_hour:.0f} FA/h)"

    def figure(system: str, part: str, what: str) -> str:
        score = results.get(system, {}).get(part)
        if score is None:
            return "-"
        value = getattr(score.counts[OVERALL], what)
        return "-" if value is None else (f"{value:.1f}" if what == "fa_per_hour"
                                          else f"{value:.3f}")

    def hours(system: str, part: str) -> str:
        score = results.get(system, {}).get(part)
        return f"{score.hours:.2f} h" if score is not None else "-"

    rows = [(f"miss rate @ 1 FA/h, all keywords, real speech "
             f"[{hours('kws', 'real')} / {hours('kws, all files', 'real')}]",
             [miss(s, "real", OVERALL) for s in SYSTEMS])]
    rows += [(f"  miss rate @ 1 FA/h: {k}", [miss(s, "real", k) for s in SYSTEMS])
             for k in keywords]
    rows += [
        (f"recall, AN4 held-out speakers [{hours('kws', 'an4')} / "
         f"{hours('kws, all files', 'an4')}]", [figure(s, "an4", "recall") for s in SYSTEMS]),
        ("precision, AN4 held-out speakers", [figure(s, "an4", "precision") for s in SYSTEMS]),
        (f"FA/h on ARCTIC non-keyword speech [{hours('kws', 'arctic')} / "
         f"{hours('kws, all files', 'arctic')}]",
         [figure(s, "arctic", "fa_per_hour") for s in SYSTEMS]),
        (f"miss rate @ 1 FA/h, synthetic streams, SC v0.02 test clips in noise "
         f"[{hours('kws, all files', 'synthetic')}]",
         [miss(s, "synthetic", OVERALL) for s in SYSTEMS]),
        ("recall / precision, synthetic streams",
         [f"{figure(s, 'synthetic', 'recall')} / {figure(s, 'synthetic', 'precision')}"
          if results.get(s, {}).get("synthetic") else "-" for s in SYSTEMS]),
        ("real-time factor, one core",
         [f"{results[s]['rtf']:.4f}" if s in results and "rtf" in results[s] else "-"
          for s in SYSTEMS]),
        ("median decision delay after a keyword (ms, stream time)",
         [f"{results[s]['delay_ms']:.0f}" if results.get(s, {}).get("delay_ms") else "-"
          for s in SYSTEMS]),
    ]
    print("\t".join(["figure", *SYSTEMS]))
    for name, cells in rows:
        print("\t".join([name, *cells]))


if __name__ == "__main__":
    main()
