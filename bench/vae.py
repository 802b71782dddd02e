"""How well ``kws vae`` generates and rebuilds words, judged by a keyword classifier.

Trains the default ``kws vae train`` recipe (through :func:`kws.train.fit`) on the shared
development data (``../shared/data``: ``tts_commands``, ``sc_v1_sample``,
``fsdd_commands``, with their own split lists; a speaker found in several folders is kept
in the most held-out split), unless ``--model`` names a trained folder. Then reports:

* training time, wall clock and CPU (on a shared machine the wall time depends on the
  others' load, the CPU time much less);
* conditional generation: for every word of the model, ``--per-word`` clips are sampled
  and classified by ``--classifier`` (default ``models/default``); the share recognised
  as the word they were conditioned on (a word the classifier does not know counts as
  recognised when it says ``_unknown_``; chance is one over its number of labels);
* reconstruction on held-out speakers (the ``testing`` split): log-mel MSE in dB squared,
  and the classifier's accuracy on the original clips, on their reconstructions through
  the model, and on a Griffin-Lim resynthesis of the original log-mel (no model: what the
  vocoder alone costs).

Usage::

    nice -n 15 .venv/bin/python bench/vae.py [--model FOLDER | --out models/bench-vae]
        [--classifier models/default] [--per-word 20] [--epochs 60] [--objective vae]
        [--limit N] [--reuse]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
FOLDERS = ("tts_commands", "sc_v1_sample", "fsdd_commands")


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and its finished children."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def train(args) -> tuple[Path, float | None, float | None]:
    """Train (or reuse) the benchmark's model; its folder, wall and CPU seconds."""
    from kws import vae
    from kws.cli import _console
    from kws.cli._training import RichEvents
    from kws.train import fit

    if args.model:
        return Path(args.model), None, None
    out = Path(args.out)
    if args.reuse and (out / "card.json").is_file():
        return out, None, None
    config = vae.VaeConfig(data=tuple(str(SHARED / name) for name in FOLDERS), out=str(out),
                           objective=args.objective, epochs=args.epochs, seed=args.seed)
    wall, cpu = time.perf_counter(), cpu_seconds()
    fit(vae.VaeTask(), config, overwrite=True, command="bench/vae.py",
        events=RichEvents(_console.stderr()))
    return out, time.perf_counter() - wall, cpu_seconds() - cpu


class Classifier:
    """A classifier model folder applied to 16 kHz one-second clips."""

    def __init__(self, folder: Path) -> None:
        from kws.predict import open_runner

        self.runner = open_runner(folder, runner="keras")
        self.labels = self.runner.labels

    def __call__(self, waveforms: np.ndarray, rate: int) -> list[str]:
        """The top label of each waveform (resampled and cut to the model's input)."""
        from kws.audio import fix_length, resample

        batch = np.stack([fix_length(resample(w, rate, self.runner.sample_rate),
                                     self.runner.input_length) for w in waveforms])
        top = []
        for start in range(0, len(batch), 128):
            top += np.argmax(self.runner(batch[start : start + 128]), axis=1).tolist()
        return [self.labels[i] for i in top]

    def target(self, word: str) -> str:
        """What the classifier should say for a word: itself, or ``_unknown_``."""
        from kws.dataset import UNKNOWN

        return word if word in self.labels else UNKNOWN


def generation(model, classifier: Classifier, per_word: int, seed: int, temperature: float,
               iterations: int, prior: str) -> dict[str, float]:
    """Share of sampled clips of each word that the classifier recognises as that word."""
    from kws import vae

    scores = {}
    for index, word in enumerate(model.labels):
        clips = vae.sample(model, word, per_word, seed=seed + 1000 * index,
                           temperature=temperature, n_iter=iterations, prior=prior)
        said = classifier(clips, vae.RATE)
        scores[word] = float(np.mean([s == classifier.target(word) for s in said]))
        print(f"  {word:>7}: {100 * scores[word]:5.1f} %", file=sys.stderr, flush=True)
    return scores


def reconstruction(model, classifier: Classifier, limit: int | None, seed: int,
                   iterations: int) -> dict[str, float]:
    """Log-mel MSE and classifier accuracy on held-out clips, rebuilt and resynthesised."""
    from kws import features, vae

    held_out = vae.held_out_clips(model, [str(SHARED / name) for name in FOLDERS],
                                  splits=("testing",))
    x, words = held_out.x, held_out.words
    if limit and len(words) > limit:
        keep = np.sort(np.random.default_rng(seed).choice(len(words), limit, replace=False))
        x, words = x[keep], [words[i] for i in keep]
    metrics = vae.reconstruction_metrics(model, x, words)
    labels = model.label_vectors(words)
    rebuilt = vae.synthesize(model, vae.decode(model, vae.encode(model, x, labels), labels),
                             seed, iterations)
    resynthesised = vae.synthesize(model, features.log_mel(x, model.settings), seed,
                                   iterations)
    truth = np.asarray([classifier.target(word) for word in words])

    def accuracy(waveforms: np.ndarray) -> float:
        return float(np.mean(np.asarray(classifier(waveforms, vae.RATE)) == truth))

    return {
        "clips": len(words),
        "mse_db": metrics["mse_db"],
        "original": accuracy(x),
        "reconstructed": accuracy(rebuilt),
        "resynthesised": accuracy(resynthesised),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="A trained kws vae model folder (skips training).")
    parser.add_argument("--out", default=str(ROOT / "models" / "bench-vae"),
                        help="Where the benchmark's model is trained.")
    parser.add_argument("--reuse", action="store_true",
                        help="Use the model already in --out instead of training again.")
    parser.add_argument("--classifier", default=str(ROOT / "models" / "default"))
    parser.add_argument("--objective", default="vae", choices=("vae", "wae"))
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--per-word", type=int, default=20)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--prior", default="fitted", choices=("fitted", "standard"),
                        help="Where sampled codes come from (see `kws vae sample --prior`).")
    parser.add_argument("--iterations", type=int, default=32, help="Griffin-Lim iterations.")
    parser.add_argument("--limit", type=int, default=None,
                        help="Reconstruct at most this many held-out clips (random subset).")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from kws import vae
    from kws.runtime import import_tensorflow

    import_tensorflow()
    if not (Path(args.classifier) / "card.json").is_file():
        sys.exit(f"bench: no classifier at {args.classifier} (train one with `kws train "
                 "--words all`, or pass --classifier FOLDER)")
    folder, wall, cpu = train(args)
    model = vae.load(folder)
    classifier = Classifier(Path(args.classifier))
    print(f"generation: {args.per_word} samples of each of {len(model.labels)} words",
          file=sys.stderr)
    scores = generation(model, classifier, args.per_word, args.seed, args.temperature,
                        args.iterations, args.prior)
    print("reconstruction of held-out speakers' clips", file=sys.stderr)
    rebuilt = reconstruction(model, classifier, args.limit, args.seed, args.iterations)

    card = model.card
    known = [w for w in model.labels if w in classifier.labels]
    values = list(scores.values())
    worst = sorted(scores, key=scores.get)[:3]
    rows = [
        ("model", f"{folder} ({card.arch}, latent {model.latent_dim}, "
                  f"beta {card.recipe.get('beta')})"),
        ("classifier", f"{args.classifier} ({len(classifier.labels)} labels)"),
        ("training time (wall / CPU)",
         "-" if wall is None else f"{wall / 60:.1f} min / {cpu / 60:.1f} min"),
        ("epochs (best)", f"{card.metrics.get('epochs')} ({card.metrics.get('best_epoch')})"),
        ("validation log-mel MSE (card)", f"{card.metrics.get('validation_mse_db', 0):.1f} dB²"),
        (f"generation accuracy, {len(values)} words x {args.per_word}, {args.prior} prior, "
         f"T={args.temperature:g}",
         f"{100 * np.mean(values):.1f} % (chance {100 / len(classifier.labels):.1f} %)"),
        (f"  words the classifier knows ({len(known)})",
         f"{100 * np.mean([scores[w] for w in known]):.1f} %" if known else "-"),
        ("  worst words", ", ".join(f"{w} {100 * scores[w]:.0f} %" for w in worst)),
        (f"held-out reconstruction log-mel MSE ({rebuilt['clips']} clips)",
         f"{rebuilt['mse_db']:.1f} dB²"),
        ("classifier accuracy, original clips", f"{100 * rebuilt['original']:.1f} %"),
        ("classifier accuracy, VAE reconstructions", f"{100 * rebuilt['reconstructed']:.1f} %"),
        ("classifier accuracy, Griffin-Lim of original log-mel",
         f"{100 * rebuilt['resynthesised']:.1f} %"),
        ("reconstruction gap (original - reconstructed)",
         f"{100 * (rebuilt['original'] - rebuilt['reconstructed']):.1f} points"),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"| {'measure':<{width}} | value |")
    print(f"| {'-' * width} | ----- |")
    for name, value in rows:
        print(f"| {name:<{width}} | {value} |")


if __name__ == "__main__":
    main()
