"""Benchmark: teach the shipped model five words it never heard (``kws train --init-from``).

The 30-word models never heard the five words Speech Commands v0.02 added: ``backward
follow forward learn visual``. Their real clips are few (``sc_extra/<word>/``, about ten
a word, and ``sc_v2_test_half/_unknown_/<word>_*``, three to seven a word): the "few dozen
recordings of a new word" a user has. This fine-tunes ``models/default`` on them plus the
data the default model was trained on (the folders of its card's recipe, so it keeps its
other words), with ``sc_extra`` added, and reports:

* accuracy on held-out speakers' clips of the five words (the testing split: half of
  ``sc_v2_test_half``'s speakers by ``--resplit``, and ``sc_extra``'s testing list);
* accuracy on the same speakers' clips of the other words, for the source model too;
* false accepts per hour of the five words on real speech that does not say them (the
  held-out speakers of ``an4`` and ``arctic_cathy`` as ``kws evaluate --stream`` splits
  them; a recording whose transcript says one of the words counts it as said), at the
  detector's default threshold;
* the fine-tuning wall time (``--scratch`` also trains the same run without
  ``--init-from``, for comparison).

Run from the project root (the full run takes about as long as its epochs of training)::

    python bench/own_word.py                         # fine-tune for 5 epochs
    python bench/own_word.py --epochs 10 --scratch   # and compare with training from scratch
    python bench/own_word.py --epochs 1 --steps 2    # a quick check that everything runs
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from kws import audio
from kws.classifier import ClassifierConfig, train
from kws.cli._training import RichEvents
from kws.dataset import SILENCE, TESTING, UNKNOWN, Clip, open_datasets
from kws.evaluate import predict_probabilities
from kws.modelfolder import read_card
from kws.stream_eval import OVERALL, StreamSettings, evaluate_stream

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
#: The v0.02 words the 30-word models never heard.
NEW_WORDS = ("backward", "follow", "forward", "learn", "visual")
#: Where more real clips of them are (speaker-disjoint lists).
EXTRA = "sc_extra"
HELD_OUT_REAL = "sc_v2_test_half"
SPEECH = ("an4", "arctic_cathy")


def fine_tune_config(source: Path, shared: Path, out: Path, epochs: int, steps: int | None,
                     scratch: bool, learning_rate: float | None = None,
                     balance: str = "labels") -> ClassifierConfig:
    """The source model's own training data with ``sc_extra`` added, started from it: its
    words and the five new ones (other words of that data, such as AN4's letters, stay
    ``_unknown_`` as they were for the source)."""
    card = read_card(source)
    recipe = card.recipe
    data = tuple(dict.fromkeys((*recipe.get("data", ()), str(shared / EXTRA))))
    words = (*(label for label in card.labels if not label.startswith("_")), *NEW_WORDS)
    return ClassifierConfig(
        data=tuple(data), resplit=tuple(recipe.get("resplit", ())),
        background=tuple(recipe.get("background", ())),
        negatives=tuple(recipe.get("negatives", ())), words=words,
        init_from=None if scratch else str(source), arch=recipe.get("arch"),
        rate=recipe.get("rate"), epochs=epochs, steps_per_epoch=steps,
        learning_rate=learning_rate, balance=balance, out=str(out))


def held_out_clips(shared: Path) -> list[Clip]:
    """The testing split of the clip folders that have real speakers the source never heard."""
    real = str(shared / HELD_OUT_REAL)
    dataset = open_datasets([real, str(shared / EXTRA)], resplit=[real])
    return [clip for clip in dataset.split(TESTING) if clip.word not in (SILENCE, UNKNOWN)]


def clip_accuracy(model: Path, clips: list[Clip]) -> dict[str, tuple[float | None, int]]:
    """``{"new"|"other": (accuracy, clips)}`` of a model on the clips of the five words and
    of its other words (a word the model does not know is not scored)."""
    card = read_card(model)
    waves = np.stack([audio.fix_length(audio.load(clip.path, card.sample_rate),
                                       card.input_length) for clip in clips])
    predicted = [card.labels[i] for i in np.argmax(predict_probabilities(model, waves), axis=1)]
    result = {}
    for group, wanted in (("new", lambda word: word in NEW_WORDS),
                          ("other", lambda word: word not in NEW_WORDS)):
        pairs = [(clip.word, guess) for clip, guess in zip(clips, predicted, strict=True)
                 if wanted(clip.word) and clip.word in card.labels]
        right = sum(word == guess for word, guess in pairs)
        result[group] = (right / len(pairs) if pairs else None, len(pairs))
    return result


def false_accepts(model: Path, shared: Path) -> dict:
    """False accepts of the five words per hour of held-out real speech that lacks them."""
    keywords = tuple(word for word in NEW_WORDS if word in read_card(model).labels)
    if not keywords:
        return {"fa_per_hour": None, "hours": None, "false_accepts": None}
    settings = StreamSettings(keywords=keywords, sweep=())
    score = evaluate_stream(model, [str(shared / name) for name in SPEECH],
                            settings=settings).score
    counts = score.counts[OVERALL]
    return {"fa_per_hour": counts.fa_per_hour, "hours": score.hours,
            "false_accepts": counts.false_accepts, "said": counts.occurrences,
            "hits": counts.hits}


def measure(name: str, model: Path, shared: Path, clips: list[Clip],
            timing: dict | None = None) -> dict:
    """Every figure of one model folder."""
    accuracy = clip_accuracy(model, clips)
    card = read_card(model)
    return {"model": name, "folder": str(model), "labels": len(card.labels),
            "new": accuracy["new"], "other": accuracy["other"],
            **false_accepts(model, shared), **(timing or {})}


def fine_tune(config: ClassifierConfig) -> dict:
    """Train ``config``; return its epochs and times (training alone, and the whole run)."""
    started = time.perf_counter()
    result = train(config, overwrite=True, events=RichEvents(Console(stderr=True)))
    return {"epochs": result.summary["epochs"], "fit_s": result.card.metrics["fit_time_s"],
            "wall_s": time.perf_counter() - started}


def percent(pair: tuple[float | None, int]) -> str:
    value, count = pair
    return "-" if value is None else f"{100 * value:.1f} ({count})"


def number(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(rows: list[dict]) -> Table:
    """One line per model."""
    result = Table(title="Teaching kws five new words (held-out speakers)")
    columns = ("model", "labels", "epochs", "5 new words %", "other words %",
               "FA/h of the 5 (FA, hours)", "training s", "wall s")
    for column in columns:
        result.add_column(column, justify="left" if column == "model" else "right")
    for row in rows:
        fa = ("-" if row["fa_per_hour"] is None else
              f"{row['fa_per_hour']:.1f} ({row['false_accepts']}, {row['hours']:.2f} h)")
        result.add_row(row["model"], str(row["labels"]), str(row.get("epochs", "-")),
                       percent(row["new"]), percent(row["other"]), fa,
                       number(row.get("fit_s")), number(row.get("wall_s")))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=Path("models/default"),
                        help="the model to start from [default: models/default]")
    parser.add_argument("--epochs", type=int, default=5, help="fine-tuning epochs")
    parser.add_argument("--steps", type=int, default=None,
                        help="limit each epoch to this many steps (quick checks)")
    parser.add_argument("--learning-rate", type=float, default=None,
                        help="peak learning rate [default: the architecture's]")
    parser.add_argument("--balance", default="labels", choices=("none", "labels", "speakers"),
                        help="--balance of the fine-tuning run [default: labels: a new word "
                             "of a few dozen clips is drawn as often as any other]")
    parser.add_argument("--scratch", action="store_true",
                        help="also train the same run from scratch, for comparison")
    parser.add_argument("--shared", type=Path, default=SHARED, help="the shared data folder")
    parser.add_argument("--out", type=Path, default=Path("models/bench"),
                        help="where the benchmark's model folders go")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    clips = held_out_clips(args.shared)
    rows = [measure(f"source: {args.source}", args.source, args.shared, clips)]
    runs = [("fine-tuned: --init-from", "own-word", False)]
    if args.scratch:
        runs.append(("from scratch", "own-word-scratch", True))
    for name, folder, scratch in runs:
        out = args.out / folder
        timing = fine_tune(fine_tune_config(args.source, args.shared, out, args.epochs,
                                            args.steps, scratch, args.learning_rate,
                                            args.balance))
        rows.append(measure(name, out, args.shared, clips, timing))
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
    Console(width=160).print(table(rows))


if __name__ == "__main__":
    main()
