"""Benchmark: the classifier recipes over 3 seeds, scored on held-out speakers and voices.

Each recipe trains on the shared data the default model ships with (``models/default``'s
command: every Speech Commands-layout folder of ``../shared/data``, the 12-label test
set split by speaker with ``--resplit`` so half its speakers are never heard, the real
background noise, and one-second windows of real continuous speech as negatives), once
per seed, then is scored on:

* the real 12-label task (yes no up down left right on off stop go, _unknown_,
  _silence_) on the held-out half of the speakers of ``sc_v2_test_half``; a 32-label model
  is folded onto the 12 labels;
* its words on held-out synthetic voices (``tts_commands``' testing split);
* the spoken digits of held-out takes (``fsdd_commands``' testing split; its 4 speakers are
  in every split, so this one measures takes, not speakers).

Recipes: ``default`` (``kws train`` with the 30 words, the shipped model's command),
``words`` (the same with ``--words yes,no,...``: the TensorFlow 12-label convention),
``seed`` (``--arch seed``, the blog post's model) and ``previous`` (the recipe before issue
#12: AdamW at 2e-3, no label smoothing, 30 epochs). Each figure is the mean ±
standard deviation over the seeds. Run from the project root (about 10 minutes per run on a
2-core CPU)::

    python bench/classifier.py                        # default, words, seed; seeds 0 1 2
    python bench/classifier.py --recipe default --seeds 0
    python bench/classifier.py --reuse                # score models already trained
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from kws.classifier import ClassifierConfig, train
from kws.cli._training import RichEvents
from kws.dataset import KEYWORDS_12, SILENCE, UNKNOWN, V1_WORDS
from kws.evaluate import evaluate
from kws.modelfolder import read_card

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
HELD_OUT_REAL = "sc_v2_test_half"
DIGITS = set("zero one two three four five six seven eight nine".split())
FOLDERS = ("sc_v1_sample", "tts_commands", "fsdd_commands", "sc_extra", HELD_OUT_REAL)
NEGATIVES = ("arctic_cathy", "an4")
#: What each recipe changes from the default run.
RECIPES = {
    "default": {},
    "words": {"words": KEYWORDS_12},
    "seed": {"arch": "seed"},
    "previous": {"learning_rate": 2e-3, "label_smoothing": 0.0, "epochs": 30},
}


def recipe(shared: Path, name: str, seed: int, out: Path, epochs: int | None) -> ClassifierConfig:
    """The ``name`` recipe's run with ``seed``, writing ``out``."""
    config = ClassifierConfig(
        data=tuple(str(shared / folder) for folder in FOLDERS),
        resplit=(str(shared / HELD_OUT_REAL),),
        background=(str(shared / "sc_background_noise"),),
        negatives=tuple(str(shared / folder) for folder in NEGATIVES),
        words=V1_WORDS,  # the five words v0.02 added stay _unknown_
        seed=seed,
        out=str(out),
    )
    config = dataclasses.replace(config, **RECIPES[name])
    return dataclasses.replace(config, epochs=epochs) if epochs else config


def command_line(config: ClassifierConfig) -> str:
    """The ``kws train`` command a user runs for ``config`` (recorded in the card)."""
    defaults = ClassifierConfig()
    parts = ["kws train"]
    for item in dataclasses.fields(config):
        value, default = getattr(config, item.name), getattr(defaults, item.name)
        if value == default or item.name in ("workers", "augmentation", "steps_per_epoch"):
            continue
        flag = "--" + item.name.replace("_", "-")
        if isinstance(value, bool):
            parts.append(flag if value else f"--no-{item.name.replace('_', '-')}")
        elif item.name == "words":
            parts.append(f"{flag} {','.join(value)}")
        elif isinstance(value, tuple):
            parts.extend(f"{flag} {element}" for element in value)
        else:
            parts.append(f"{flag} {value}")
    return " ".join(parts).replace(str(SHARED), "../shared/data")


def word_accuracy(evaluation) -> float | None:
    """Accuracy over clips whose true label is one of the model's words (None: no such clip)."""
    rows = [i for i, label in enumerate(evaluation.labels)
            if label not in (SILENCE, UNKNOWN) and label in evaluation.model_labels]
    total = evaluation.confusion[rows].sum()
    return float(sum(evaluation.confusion[i, i] for i in rows) / total) if total else None


def measure(shared: Path, name: str, seed: int, out: Path, epochs: int | None,
            reuse: bool) -> dict:
    """Train (unless reusing) and score one recipe with one seed."""
    started = time.perf_counter()
    if not (reuse and (out / "card.json").exists()):
        config = recipe(shared, name, seed, out, epochs)
        train(config, overwrite=True, events=RichEvents(Console(stderr=True)),
              command=command_line(config))
    card = read_card(out)
    wall = card.metrics.get("fit_time_s") if reuse else time.perf_counter() - started
    real = evaluate(out, [str(shared / HELD_OUT_REAL)], "test",
                    resplit=[str(shared / HELD_OUT_REAL)])
    synthetic = evaluate(out, [str(shared / "tts_commands")], "test")
    digits = (evaluate(out, [str(shared / "fsdd_commands")], "test")
              if DIGITS & set(card.labels) else None)
    return {
        "recipe": name, "seed": seed, "arch": card.arch,
        "real12": real.accuracy, "real12_clips": real.clips,
        "tts": word_accuracy(synthetic), "digits": digits and word_accuracy(digits),
        "clips_per_s": card.metrics.get("clips_per_s"), "wall_s": wall,
        "params": card.parameters, "macs": card.multiply_adds,
    }


def spread(values: list[float | None], scale: float = 100.0, digits: int = 1) -> str:
    """``mean ± sd`` of the values (``-`` when none; no ± for a single value)."""
    values = [value * scale for value in values if value is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def table(rows: list[dict]) -> Table:
    """One line per recipe: mean ± sd over its seeds."""
    result = Table(title="kws classifier benchmark (held-out speakers; mean ± sd over seeds)")
    for column in ("recipe", "arch", "seeds", "12-label real %", "words, tts voices %",
                   "digits, fsdd takes %", "train clips/s", "wall min", "params",
                   "MACs/clip"):
        result.add_column(column, justify="left" if column in ("recipe", "arch") else "right")
    for name in dict.fromkeys(row["recipe"] for row in rows):
        runs = [row for row in rows if row["recipe"] == name]
        result.add_row(
            name, runs[0]["arch"], " ".join(str(row["seed"]) for row in runs),
            f"{spread([row['real12'] for row in runs])} ({runs[0]['real12_clips']})",
            spread([row["tts"] for row in runs]), spread([row["digits"] for row in runs]),
            spread([row["clips_per_s"] for row in runs], 1.0, 0),
            spread([row["wall_s"] for row in runs], 1 / 60, 1),
            f"{runs[0]['params']:,}", f"{runs[0]['macs'] / 1e6:.1f} M")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", action="append", choices=tuple(RECIPES),
                        help="recipe(s) to run [default: default, words, seed]")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=None, help="override the epochs")
    parser.add_argument("--shared", type=Path, default=SHARED, help="the shared data folder")
    parser.add_argument("--out", type=Path, default=Path("models/bench"),
                        help="where the benchmark's model folders go")
    parser.add_argument("--reuse", action="store_true",
                        help="score model folders already in --out instead of training them")
    parser.add_argument("--json", type=Path, help="also write the per-run figures here")
    args = parser.parse_args()
    rows = []
    for name in args.recipe or ["default", "words", "seed"]:
        for seed in args.seeds:
            rows.append(measure(args.shared, name, seed, args.out / f"{name}-s{seed}",
                                args.epochs, args.reuse))
            if args.json:
                args.json.write_text(json.dumps(rows, indent=1))
    Console().print(table(rows))


if __name__ == "__main__":
    main()
