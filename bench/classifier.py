"""Benchmark: train the default recipe and ``--arch seed`` on the shared data, score both.

Trains each architecture with the recipe the default model ships with (every folder of
``../shared/data`` that fits, each under its own splits, and the 12-label test set split
by speaker with ``--resplit`` so half its speakers are never heard in training), then
reports in one table:

* accuracy on the real 12-label task (yes no up down left right on off stop go,
  _unknown_, _silence_) on the held-out half of the speakers;
* 30-word accuracy on held-out synthetic speakers (tts_commands' testing split, words only);
* train clips/s, wall time, parameters and multiply-adds per clip.

Run from the project root (takes about 15 minutes per architecture on a 2-core CPU)::

    python bench/classifier.py                      # default architecture and seed
    python bench/classifier.py --arch tcres --reuse # score models already trained
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from kws.classifier import DEFAULT_ARCH, ClassifierConfig, train
from kws.cli._training import RichEvents
from kws.dataset import SILENCE, UNKNOWN
from kws.evaluate import evaluate
from kws.modelfolder import read_card

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
HELD_OUT_REAL = "sc_v2_test_half"


def recipe(shared: Path, arch: str | None, epochs: int | None, out: Path) -> ClassifierConfig:
    """The default model's training run on the shared data (``models/default/card.json``)."""
    folders = ("sc_v1_sample", "tts_commands", "fsdd_commands", HELD_OUT_REAL)
    config = ClassifierConfig(
        data=tuple(str(shared / name) for name in folders),
        resplit=(str(shared / HELD_OUT_REAL),),
        background=(str(shared / "sc_background_noise"),),
        arch=arch,
        out=str(out),
    )
    if epochs is not None:
        config.epochs = epochs
    return config


def word_accuracy(evaluation) -> float:
    """Accuracy over clips whose true label is a word (not _silence_ or _unknown_)."""
    rows = [i for i, label in enumerate(evaluation.labels) if label not in (SILENCE, UNKNOWN)]
    confusion = evaluation.confusion
    total = confusion[rows].sum()
    return float(sum(confusion[i, i] for i in rows) / total) if total else 0.0


def measure(shared: Path, arch: str, epochs: int | None, out: Path, reuse: bool) -> dict:
    """Train (unless reusing) and score one architecture."""
    console = Console(stderr=True)
    started = time.perf_counter()
    if not (reuse and (out / "card.json").exists()):
        train(recipe(shared, arch, epochs, out), overwrite=True, events=RichEvents(console),
              command=f"python bench/classifier.py --arch {arch}")
    wall = time.perf_counter() - started
    card = read_card(out)
    real = evaluate(out, [str(shared / HELD_OUT_REAL)], "test",
                    resplit=[str(shared / HELD_OUT_REAL)])
    synthetic = evaluate(out, [str(shared / "tts_commands")], "test")
    return {
        "arch": card.arch,
        "rate": card.sample_rate,
        "real12": real.accuracy,
        "real12_clips": real.clips,
        "tts30": word_accuracy(synthetic),
        # None (null) when the run timed no step.
        "clips_per_s": card.metrics.get("clips_per_s") or float("nan"),
        "wall_s": wall if not reuse else card.metrics.get("fit_time_s", float("nan")),
        "params": card.parameters,
        "macs": card.multiply_adds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", action="append", help="architecture(s) [default, seed]")
    parser.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    parser.add_argument("--shared", type=Path, default=SHARED, help="the shared data folder")
    parser.add_argument("--out", type=Path, default=Path("models/bench"),
                        help="where the benchmark's model folders go")
    parser.add_argument("--reuse", action="store_true",
                        help="score model folders already in --out instead of training")
    args = parser.parse_args()
    arches = args.arch or [DEFAULT_ARCH, "seed"]
    rows = [measure(args.shared, arch, args.epochs, args.out / arch, args.reuse)
            for arch in arches]
    table = Table(title="kws classifier benchmark (held-out speakers)")
    for column in ("arch", "rate", "12-label real", "30-word tts", "train clips/s",
                   "wall", "params", "MACs/clip"):
        table.add_column(column, justify="left" if column == "arch" else "right")
    for row in rows:
        table.add_row(
            row["arch"], f"{row['rate'] // 1000} kHz",
            f"{row['real12']:.1%} ({row['real12_clips']})", f"{row['tts30']:.1%}",
            f"{row['clips_per_s']:.0f}", f"{row['wall_s'] / 60:.1f} min",
            f"{row['params']:,}", f"{row['macs'] / 1e6:.1f} M",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
