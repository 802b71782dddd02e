"""How well ``kws vae`` generates words, judged as generative-audio papers judge SC09.

For each data mix (below), trains the default ``kws vae train`` recipe (through
:func:`kws.train.fit`, the command's own road) unless ``--reuse`` finds the model, then
measures it with ``kws vae evaluate``'s library function (:func:`kws.vae.evaluate_samples`,
the sampling defaults of ``kws vae sample``) and the shipped classifier as the fixed judge:

* recognition: the share of ``--samples`` clips per word that the judge labels as the word
  they were made for (mean over the words the judge knows by name, and the worst of them;
  words it does not know count when it says ``_unknown_``, in the mean over all words);
* the inception score (IS) and the Fréchet distance (FD) of the judge's penultimate-layer
  embeddings of the samples against held-out real clips; the same figures of the held-out
  real clips (FD against training clips) are the reference;
* seconds per call: ``kws vae sample -w yes -n 10``, ``sample -w all -n 10``,
  ``reconstruct`` and ``interpolate`` (8 steps), run as a user runs them (a new process
  each, LiteRT, no TensorFlow);
* training time (wall and CPU).

Data mixes (``../shared/data``; every folder under its own split lists):

* ``user``: sc_v1_sample, tts_commands, sc_v2_test_half (the command of issue #14);
* ``digits``: sc_v1_sample, tts_commands, fsdd_commands (with the spoken digits);
* ``all``: sc_v1_sample, tts_commands, fsdd_commands, sc_extra, sc_v2_test_half.

Usage (from the project root; 20 to 45 minutes of training per mix on a 2-core CPU)::

    python bench/vae.py [--mix user --mix all ...] [--samples 200] [--seed 0] [--reuse]
        [--guidance 0 --guidance 0.5 ...] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
MIXES = {
    "user": ("sc_v1_sample", "tts_commands", "sc_v2_test_half"),
    "digits": ("sc_v1_sample", "tts_commands", "fsdd_commands"),
    "all": ("sc_v1_sample", "tts_commands", "fsdd_commands", "sc_extra", "sc_v2_test_half"),
}


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and its finished children."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def train(mix: str, out: Path, seed: int, reuse: bool) -> tuple[float | None, float | None]:
    """Train the default recipe on a mix (unless reusing); wall and CPU seconds."""
    from kws import vae
    from kws.cli import _console
    from kws.cli._training import RichEvents
    from kws.train import fit

    if reuse and (out / "card.json").is_file():
        return None, None
    config = vae.VaeConfig(data=tuple(str(SHARED / name) for name in MIXES[mix]),
                           out=str(out), seed=seed)
    wall, cpu = time.perf_counter(), cpu_seconds()
    fit(vae.VaeTask(), config, overwrite=True, command=command_line(mix, out, seed),
        events=RichEvents(_console.stderr()))
    return time.perf_counter() - wall, cpu_seconds() - cpu


def command_line(mix: str, out: Path, seed: int) -> str:
    """The ``kws vae train`` command a user runs for a mix."""
    data = " ".join(f"--data ../shared/data/{name}" for name in MIXES[mix])
    return f"kws vae train {data} --seed {seed} --out {out.relative_to(ROOT)}"


def seconds_per_call(model: Path) -> dict[str, float]:
    """Wall seconds of ``kws vae`` calls as a user makes them (one process each)."""
    kws = str(Path(sys.executable).parent / "kws")
    with tempfile.TemporaryDirectory() as scratch:
        clip = Path(scratch) / "one" / "yes_000.wav"
        calls = {
            "sample -w yes -n 10": ["sample", "-m", str(model), "-w", "yes", "-n", "10",
                                    "-o", str(clip.parent)],
            "sample -w all -n 10": ["sample", "-m", str(model), "-w", "all", "-n", "10",
                                    "-o", str(Path(scratch) / "all")],
            "reconstruct": ["reconstruct", "-m", str(model), str(clip),
                            str(Path(scratch) / "rebuilt.wav")],
            "interpolate": ["interpolate", "-m", str(model), str(clip),
                            str(clip.with_name("yes_001.wav")), "-o", str(Path(scratch) / "walk")],
        }
        timings = {}
        for name, args in calls.items():
            started = time.perf_counter()
            subprocess.run([kws, "vae", *args], check=True, capture_output=True)
            timings[name] = time.perf_counter() - started
    return timings


def measure(mix: str, args) -> list[dict]:
    """Train (or reuse) the model of one mix and judge it at each ``--guidance``."""
    from kws import vae

    out = Path(args.out) / f"{mix}-s{args.seed}"
    wall, cpu = train(mix, out, args.seed, args.reuse)
    model = vae.load(out)
    wall = model.card.metrics.get("fit_time_s") if wall is None else wall
    judge = vae.Judge(args.classifier)
    calls = seconds_per_call(out)
    reference = vae.real_reference(model, judge, seed=args.seed)
    return [{"mix": mix, "model": str(out), "wall_s": wall, "cpu_s": cpu,
             "epochs": model.card.metrics.get("epochs"),
             "judge_words": [word for word in model.labels if word in judge.labels],
             **vae.evaluate_samples(model, judge, samples=args.samples, seed=args.seed,
                                    guidance=guidance, reference=reference),
             "seconds_per_call": calls}
            for guidance in args.guidance or [vae.DEFAULT_GUIDANCE]]


def named_words(row: dict) -> list[str]:
    """Recognition and worst word over the words the judge knows by name (the others can
    only be recognised as ``_unknown_``), and over all words when those differ."""
    per_word = row["samples"]["per_word"]
    named = [word for word in row["judge_words"] if word in per_word]
    worst = min(named, key=per_word.get)
    recognised = f"**{100 * sum(per_word[word] for word in named) / len(named):.1f}%**"
    if len(named) < len(per_word):
        recognised += f" ({len(per_word)} words: {100 * row['samples']['recognition']:.1f}%)"
    return [recognised, f"{worst} {100 * per_word[worst]:.0f}%"]


def table(rows: list[dict]) -> str:
    """A Markdown table: one row per mix and guidance."""
    header = ("mix", "train (wall / CPU)", "guidance", "recognised", "worst word", "IS", "FD",
              "real held-out: recognised / IS / FD", "s per call: sample 1 word / all words / "
              "reconstruct / interpolate")
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for row in rows:
        fake, real, calls = row["samples"], row["real"], row["seconds_per_call"]
        cpu = "-" if row["cpu_s"] is None else f"{row['cpu_s'] / 60:.1f}"
        trained = ("-" if row["wall_s"] is None
                   else f"{row['wall_s'] / 60:.1f} / {cpu} min")
        lines.append("| " + " | ".join([
            f"{row['mix']} ({', '.join(MIXES[row['mix']])})", trained, f"{row['guidance']:g}",
            *named_words(row),
            f"{fake['inception_score']:.2f}", f"{fake['frechet_distance']:.2f}",
            f"{100 * real['recognition']:.1f}% / {real['inception_score']:.2f} / "
            f"{real['frechet_distance']:.2f}",
            " / ".join(f"{seconds:.1f}" for seconds in calls.values()),
        ]) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mix", action="append", choices=tuple(MIXES),
                        help="data mix(es) to train and judge [default: all three]")
    parser.add_argument("--out", default=str(ROOT / "models" / "bench-vae"),
                        help="Folder of the benchmark's models (one per mix and seed).")
    parser.add_argument("--reuse", action="store_true",
                        help="Judge the models already trained instead of training again.")
    parser.add_argument("--classifier", default=None,
                        help="The judge [default: the shipped classifier].")
    parser.add_argument("--samples", type=int, default=200, help="Samples of each word.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--guidance", type=float, action="append",
                        help="Label guidance of the samples, repeatable: one row each "
                             "[default: kws vae sample's default].")
    parser.add_argument("--json", type=Path, help="Also write the raw figures here (JSON).")
    args = parser.parse_args()

    rows = []
    for mix in args.mix or list(MIXES):
        rows.extend(measure(mix, args))
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
    print(table(rows))
    for row in rows:
        per_word = row["samples"]["per_word"]
        low = sorted(per_word, key=per_word.get)[:5]
        print(f"{row['mix']}, guidance {row['guidance']:g}: lowest words " + ", ".join(
            f"{word} {100 * per_word[word]:.0f}%" for word in low))


if __name__ == "__main__":
    main()
