"""``kws vae``: train a conditional VAE of spoken words; sample, reconstruct, interpolate, plot."""

from __future__ import annotations

import json
from pathlib import Path

import click

from kws import audio, vae
from kws.cli import _console, _training
from kws.cli._options import (
    data_option,
    json_option,
    model_option,
    seed_option_for,
    split_option,
)
from kws.dataset import SPLITS, TESTING, TRAINING, VALIDATION
from kws.errors import MissingInputError, UsageError
from kws.files import check_not_input, check_writable
from kws.modelfolder import Task, read_card, resolve_model_dir
from kws.vae import PRIORS, REGULARIZER_NAME, VaeConfig, VaeTask

#: Options shown first in --help (the others follow in the configuration's order).
_TRAIN_FIRST = ("data", "words", "objective", "latent_dim", "beta", "components", "augment",
                "n_mels", "epochs", "batch_size", "learning_rate", "patience", "seed")


def _open(model: str, words: tuple[str | None, ...] = ()) -> vae.Vae:
    """Load a model folder (TensorFlow, quietly) once the arguments are checked.

    The card is read first, so a missing folder or a word the model does not know is
    refused before TensorFlow is imported.
    """
    labels = read_card(model, Task.VAE).labels
    for word in words:
        if word is not None and word not in labels:
            raise UsageError(f"{model}: the model has no word {word!r} (its words: "
                             f"{', '.join(labels)})")
    return vae.load(model)


def _check_data(data: tuple[str, ...]) -> None:
    """Refuse a missing ``--data`` folder before the model (and TensorFlow) is loaded."""
    for root in data:
        if not Path(root).is_dir():
            problem = "not a folder" if Path(root).exists() else "no such dataset folder"
            raise MissingInputError(f"--data {root}: {problem}")


_model_option = model_option(help="A model folder written by `kws vae train`.", required=True)


def _synthesis_options(function):
    function = click.option("--iterations", default=vae.DEFAULT_ITERATIONS, show_default=True,
                            type=int,
                            help="Griffin-Lim iterations when turning spectrograms into audio.")(
        function)
    return seed_option_for("Seed of the random codes and of Griffin-Lim's initial phase.")(
        function)


def _sampling_options(function):
    """``--temperature`` and ``--guidance``: how samples are drawn (sample and evaluate)."""
    function = click.option(
        "--guidance", "-g", default=vae.DEFAULT_GUIDANCE, show_default=True, type=float,
        help="Push each sample this far away from what the same code decodes to as the "
             "nearest other word (0: plain decoding; higher: the word clearer, the clips "
             "less varied).")(function)
    return click.option(
        "--temperature", "-t", default=vae.DEFAULT_TEMPERATURE, show_default=True, type=float,
        help="Spread of the codes around the centres of the word's latent density (1: as "
             "fitted; 0: the centres only, the word's most typical clips).")(function)


@click.group("vae")
def command() -> None:
    """Generate and transform spoken words with a conditional VAE of log-mel spectrograms.

    `kws vae train` learns, from the same data as `kws train`, to encode a one-second clip's
    log-mel spectrogram given its word and to decode it back; the other commands use such
    a model folder to make new clips of a word, rebuild a clip, walk from one clip to
    another, plot the latent space, or judge its samples with a keyword classifier. Audio
    is 16 kHz, one second; spectrograms are turned back into audio with Griffin-Lim.
    """


@command.command("train")
@_training.run_options(VaeConfig, exclude=("background",), order=_TRAIN_FIRST)
@click.pass_context
def train(ctx: click.Context, **params) -> None:
    """Train a conditional VAE (or WAE) on the log-mel spectrograms of dataset clips.

    Clips are read, split and cached as by `kws train` (same folders, lists and speaker
    rule). Progress goes to stderr; every epoch is checkpointed in OUT/checkpoint, so an
    interrupted run continues with --resume. Reconstruction errors are log-mel mean squared
    errors in dB squared everywhere (progress, summary, card.json); at the end those of each
    split and the KL/MMD term are printed and written to card.json.
    """
    _training.train_command(ctx, VaeTask(), params, _train_table)


def _train_table(summary: dict):
    from rich.table import Table

    from kws.report import format_count, format_duration

    metrics = summary["metrics"]
    name = REGULARIZER_NAME[summary["objective"]]
    table = Table(title=f"model saved to {summary['out']}", title_justify="left")
    table.add_column("split")
    table.add_column("clips", justify="right")
    table.add_column("log-mel MSE (dB²)", justify="right")
    table.add_column("KL (nats/clip)" if name == "kl" else "MMD", justify="right")
    for split in SPLITS:
        if f"{split}_mse_db" in metrics:
            table.add_row(split, str(summary["clips"][split]),
                          f"{metrics[f'{split}_mse_db']:.2f}", f"{metrics[f'{split}_{name}']:.4g}")
    table.add_section()
    best = summary.get("best_epoch")
    table.add_row("epochs run", str(summary["epochs"]),
                  f"best: {best}" if best is not None else "", "")
    table.add_row("wall time", format_duration(summary["wall_time_s"]), "", "")
    table.add_row("parameters", format_count(summary["parameters"]), "", "")
    export = summary.get("export")
    if export:
        table.add_row("LiteRT export", ", ".join(export["files"]) or "not written", "", "")
    return table


#: ``--word`` of ``kws vae sample`` that means every word of the model.
_ALL_WORDS = "all"


@command.command("sample")
@_model_option
@click.option("--word", "-w", required=True,
              help="The word to say (one of the model's), or 'all': every word of the model "
                   "in one call.")
@click.option("-n", "--count", default=10, show_default=True, type=int,
              help="How many clips to make (of each word with --word all).")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False),
              help="Folder for the WAV files, named by their word: WORD_000.wav, ... (with "
                   "--word all, every word's files side by side in this one folder).")
@_sampling_options
@click.option("--prior", type=click.Choice(PRIORS), default="fitted", show_default=True,
              help="Draw codes from the word's Gaussian mixture fitted to its training "
                   "clips' codes, or from the VAE prior N(0, I).")
@_synthesis_options
@json_option
def sample(model, word, count, out, temperature, guidance, prior, seed, iterations,
           as_json) -> None:
    """Make COUNT new one-second 16 kHz clips of WORD and write them to OUT as WAV files.

    The decoder runs through LiteRT (decoder.tflite, written by `kws vae train`) when it
    is current, without loading TensorFlow; otherwise through Keras.
    """
    vae.check_sampling(count, temperature, prior, guidance)
    words = list(read_card(model, Task.VAE).labels) if word == _ALL_WORDS else [word]
    paths = {w: [Path(out) / f"{w}_{index:03d}.wav" for index in range(count)] for w in words}
    for path in (path for group in paths.values() for path in group):
        check_not_input(path, [model], "--out")
    check_writable(paths[words[0]][0], "--out")
    folder = _open(model, tuple(words))
    for name in words:
        waveforms = vae.sample(folder, name, count, seed=seed, temperature=temperature,
                               n_iter=iterations, prior=prior, guidance=guidance)
        for path, waveform in zip(paths[name], waveforms, strict=True):
            audio.write(path, waveform, vae.RATE)
    written = [str(path) for name in words for path in paths[name]]
    if as_json:
        click.echo(json.dumps({"model": str(model), "word": word, "words": words, "seed": seed,
                               "temperature": temperature, "guidance": guidance,
                               "prior": prior,
                               "runner": folder.runner, "files": written}, indent=1))
    else:
        for path in written:
            click.echo(path)


@command.command("reconstruct")
@_model_option
@click.argument("source", type=click.Path(dir_okay=False), metavar="IN")
@click.argument("target", type=click.Path(dir_okay=False), metavar="OUT")
@click.option("--word", "-w", default=None,
              help="The word IN says [default: the word that reconstructs it best].")
@_synthesis_options
@json_option
def reconstruct(model, source, target, word, seed, iterations, as_json) -> None:
    """Encode the clip IN and decode it again into the WAV file OUT.

    IN is read at 16 kHz and cut to one second (its loudest second if longer). Prints the
    word used and the log-mel reconstruction error in dB squared.
    """
    check_not_input(target, [source, model], "OUT")
    check_writable(target, "OUT")
    clip = vae.read_clip(source)
    folder = _open(model, (word,))
    result = vae.reconstruct(folder, clip, word, seed=seed, n_iter=iterations)
    audio.write(target, result.waveform, vae.RATE)
    if as_json:
        click.echo(json.dumps({"input": source, "output": target, "word": result.word,
                               "mse_db": round(result.mse_db, 4)}, indent=1))
    else:
        click.echo(f"{target}\tword {result.word}\tlog-mel MSE {result.mse_db:.2f} dB²")


@command.command("interpolate")
@_model_option
@click.argument("first", type=click.Path(dir_okay=False), metavar="A")
@click.argument("second", type=click.Path(dir_okay=False), metavar="B")
@click.option("--steps", default=8, show_default=True, type=int,
              help="Clips in the walk, A's reconstruction and B's included.")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False),
              help="Folder for the WAV files (step_00.wav, ...).")
@click.option("--word-a", default=None, help="The word A says [default: best-fitting].")
@click.option("--word-b", default=None, help="The word B says [default: best-fitting].")
@_synthesis_options
@json_option
def interpolate(model, first, second, steps, out, word_a, word_b, seed, iterations,
                as_json) -> None:
    """Walk in latent space from clip A to clip B; write STEPS clips to OUT.

    Code and word label both move linearly, so between two words the clips morph from
    one word into the other.
    """
    vae.check_steps(steps)
    paths = [Path(out) / f"step_{index:02d}.wav" for index in range(steps)]
    for path in paths:
        check_not_input(path, [first, second, model], "--out")
    check_writable(paths[0], "--out")
    clips = vae.read_clip(first), vae.read_clip(second)
    folder = _open(model, (word_a, word_b))
    waveforms, words = vae.interpolate(folder, *clips, steps, word_a, word_b, seed=seed,
                                       n_iter=iterations)
    for path, waveform in zip(paths, waveforms, strict=True):
        audio.write(path, waveform, vae.RATE)
    if as_json:
        click.echo(json.dumps({"a": first, "b": second, "words": words,
                               "files": [str(p) for p in paths]}, indent=1))
    else:
        for path in paths:
            click.echo(str(path))
        _console.stderr().print(f"from {words[0]!r} to {words[1]!r} in {steps} steps",
                                markup=False, highlight=False)


#: What each ``--split`` name plots.
_PLOT_SPLITS = {"test": (TESTING,), "validation": (VALIDATION,), "train": (TRAINING,),
                "all": SPLITS}


@command.command("plot")
@_model_option
@data_option("Dataset folder whose held-out clips are plotted (repeatable).", required=True)
@split_option(multiple=True,
              help="Split(s) to plot (repeatable) [default: validation and test].")
@click.option("--out", "-o", default="latent.png", show_default=True,
              type=click.Path(dir_okay=False), help="PNG file to write.")
@json_option
def plot(model, data, split, out, as_json) -> None:
    """Plot the latent means of held-out clips in 2-D (PCA), coloured by word."""
    check_not_input(out, [*data, model], "--out")
    _check_data(data)
    check_writable(out, "--out")
    chosen = split or ("validation", "test")
    splits = tuple(dict.fromkeys(name for item in chosen for name in _PLOT_SPLITS[item]))
    folder = _open(model)
    events = _training.RichEvents(_console.stderr())
    summary = vae.latent_plot(folder, data, out, splits, events=events)
    if as_json:
        click.echo(json.dumps(summary, indent=1))
    else:
        share = sum(summary["explained_variance"])
        click.echo(f"{summary['out']}\t{summary['clips']} clips of {len(summary['per_word'])} "
                   f"words\tPCA explains {100 * share:.0f}% of the variance")


@command.command("evaluate")
@click.argument("model", type=click.Path(), metavar="MODEL")
@click.option("--samples", "-n", default=vae.DEFAULT_SAMPLES, show_default=True, type=int,
              help="Samples of each word to judge.")
@click.option("--classifier", type=click.Path(), default=None,
              help="The keyword classifier that judges [default: the shipped model].")
@data_option("Dataset folder of the real clips: its testing split is the held-out "
             "reference, its training split the reference's reference (repeatable) "
             "[default: the folders MODEL was trained on].")
@click.option("--max-clips", default=vae.DEFAULT_MAX_CLIPS, show_default=True, type=int,
              help="At most this many real clips of each split (chosen at random).")
@_sampling_options
@_synthesis_options
@json_option
def evaluate(model, samples, classifier, data, max_clips, temperature, guidance, seed,
             iterations, as_json) -> None:
    """Judge MODEL's samples with a keyword classifier, as generative-audio papers do.

    SAMPLES clips of every word are classified by the classifier (the shipped one by
    default). Recognition: the share classified as their word (a word the classifier does
    not know counts when it says _unknown_); the worst word's. IS: the inception score
    exp(mean KL(p(y|x) || p(y))), from 1 to the classifier's label count, higher when
    clips are classified confidently and cover the words evenly. FD: the Fréchet distance
    between the classifier's penultimate-layer embeddings of the samples and of held-out
    real clips (lower is closer; 0 for identical statistics). The `real` row scores
    held-out real clips the same way (FD against training clips): the figures real speech
    reaches with this judge.
    """
    if samples < 2:
        raise UsageError(f"--samples must be at least 2, not {samples}")
    if max_clips < 2:
        raise UsageError(f"--max-clips must be at least 2, not {max_clips}")
    vae.check_sampling(samples, temperature, PRIORS[0], guidance)
    _check_data(data)
    read_card(resolve_model_dir(classifier), Task.CLASSIFIER)
    folder = _open(model)
    events = _training.RichEvents(_console.stderr())
    report = vae.evaluate_samples(folder, vae.Judge(classifier), data, samples, seed=seed,
                                  n_iter=iterations, max_clips=max_clips, events=events,
                                  temperature=temperature, guidance=guidance)
    if as_json:
        click.echo(json.dumps(report, indent=1))
        return
    _console.print_table(_evaluation_table(report))
    _console.print_table(_per_word_table(report))


def _evaluation_table(report: dict):
    from rich.table import Table

    table = Table(title=f"{report['model']} judged by {report['classifier']} "
                        f"({report['classifier_labels']} labels)", title_justify="left")
    for header in ("set", "clips", "recognised", "worst word", "IS", "FD"):
        table.add_column(header, justify="left" if header in ("set", "worst word") else
                         "right")
    rows = (("samples", report["samples"]), ("real held-out (FD vs training)", report["real"]))
    for name, row in rows:
        table.add_row(name, str(row["clips"]), f"{100 * row['recognition']:.1f}%",
                      f"{row['worst_word']} {100 * row['worst_recognition']:.0f}%",
                      f"{row['inception_score']:.2f}", f"{row['frechet_distance']:.3g}")
    return table


def _per_word_table(report: dict):
    from rich.table import Table

    table = Table(title="recognised per word", title_justify="left")
    for header in ("word", "samples", "real held-out"):
        table.add_column(header, justify="left" if header == "word" else "right")
    real = report["real"]["per_word"]
    for word, share in report["samples"]["per_word"].items():
        table.add_row(word, f"{100 * share:.0f}%",
                      f"{100 * real[word]:.0f}%" if word in real else "-")
    return table
