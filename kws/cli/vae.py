"""``kws vae``: train a conditional VAE of spoken words; sample, reconstruct, interpolate, plot."""

from __future__ import annotations

import json
from pathlib import Path

import click

from kws.cli import _console

_TRAIN_FIELDS = (
    "words", "objective", "latent_dim", "beta", "components", "augment", "n_mels", "epochs",
    "batch_size", "learning_rate", "patience", "seed", "validation_percent", "testing_percent",
    "out",
)


def _quiet() -> None:
    """Import TensorFlow without its start-up log lines, and keep its Python logger quiet."""
    import logging

    from kws.predict import import_tensorflow_quietly

    import_tensorflow_quietly()
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (b.exists() and a.samefile(b))
    except OSError:
        return False


def _refuse_overwriting(outputs: list[Path], inputs: list[Path]) -> None:
    from kws.errors import UsageError

    for out in outputs:
        for source in inputs:
            if _same_file(out, source):
                raise UsageError(f"{out}: would overwrite the input {source}; choose another "
                                 "output")


def _model_option(function):
    return click.option("--model", "-m", required=True, type=click.Path(),
                        help="A model folder written by `kws vae train`.")(function)


def _seed_options(function):
    function = click.option("--iterations", default=32, show_default=True, type=int,
                            help="Griffin-Lim iterations when turning spectrograms into audio.")(
        function)
    return click.option("--seed", default=0, show_default=True, type=int,
                        help="Seed of the random codes and of Griffin-Lim's initial phase.")(
        function)


@click.group("vae")
def command() -> None:
    """Generate and transform spoken words with a conditional VAE of log-mel spectrograms.

    `kws vae train` learns, from the same data as `kws train`, to encode a one-second clip's
    log-mel spectrogram given its word and to decode it back; the other commands use such
    a model folder to make new clips of a word, rebuild a clip, walk from one clip to
    another, or plot the latent space. Audio is 16 kHz, one second; spectrograms are
    turned back into audio with Griffin-Lim.
    """


@command.command("train")
@click.option("--data", multiple=True, type=click.Path(file_okay=False),
              help="Dataset folder in Speech Commands layout (repeatable) [default: where "
                   "`kws download` puts v0.01].")
@click.option("--words", default="all", show_default=True,
              help="Comma-separated words to learn, or 'all' (every word folder).")
@click.option("--objective", type=click.Choice(("vae", "wae")), default="vae",
              show_default=True,
              help="vae: KL divergence to the prior (a VAE); wae: maximum mean discrepancy "
                   "(a Wasserstein auto-encoder, WAE-MMD).")
@click.option("--latent-dim", type=int, default=16, show_default=True,
              help="Size of the latent code.")
@click.option("--beta", type=float, default=None,
              help="Weight of the KL/MMD term [default: 1 for vae, 100 for wae].")
@click.option("--components", type=int, default=8, show_default=True,
              help="Gaussian components per word of the latent density fitted after "
                   "training, which `kws vae sample` draws from.")
@click.option("--augment/--no-augment", default=True, show_default=True,
              help="Shift training spectrograms in time (up to 0.1 s) and change their gain "
                   "(up to 6 dB).")
@click.option("--n-mels", type=int, default=80, show_default=True, help="Mel bands.")
@click.option("--epochs", type=int, default=60, show_default=True)
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--learning-rate", type=float, default=1e-3, show_default=True,
              help="Peak learning rate (after warm-up, before cosine decay).")
@click.option("--patience", type=int, default=10, show_default=True,
              help="Stop after this many epochs without a lower validation loss "
                   "(0: never stop early).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the initial weights, data order and sampling noise.")
@click.option("--validation-percent", type=float, default=10.0, show_default=True,
              help="Validation share of folders without list files.")
@click.option("--testing-percent", type=float, default=10.0, show_default=True,
              help="Testing share of folders without list files.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Model folder to write [default: models/<objective>].")
@click.option("--resume", is_flag=True,
              help="Continue the interrupted run whose checkpoint is in --out.")
@click.option("--overwrite", is_flag=True,
              help="Replace a model or an unfinished run already in --out.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the summary as one JSON object on stdout instead of a table.")
@click.pass_context
def train(ctx: click.Context, data, as_json: bool, resume: bool, overwrite: bool,
          **options) -> None:
    """Train a conditional VAE (or WAE) on the log-mel spectrograms of dataset clips.

    Clips are read, split and cached as by `kws train` (same folders, lists and speaker
    rule). Progress goes to stderr; every epoch is checkpointed in OUT/checkpoint, so an
    interrupted run continues with --resume. At the end the log-mel reconstruction error
    (dB squared) and the KL/MMD term of each split are printed and written to card.json.
    """
    from kws import vae
    from kws.dataset import parse_words

    if resume and overwrite:
        raise click.UsageError("--resume and --overwrite cannot be used together")
    _quiet()
    values = {name: options[name] for name in _TRAIN_FIELDS}
    values["words"] = parse_words(options["words"])
    values["patience"] = options["patience"] or None
    if data:
        values["data"] = tuple(data)
    if resume:
        given = {
            name for name in (*_TRAIN_FIELDS, "data")
            if ctx.get_parameter_source(name) not in (click.core.ParameterSource.DEFAULT, None)
        }
        out = options["out"] or vae.resolve(vae.VaeConfig(objective=options["objective"])).out
        saved = vae.checkpoint_config(out)
        config = vae.VaeConfig(**{**saved.__dict__,
                                  **{name: values[name] for name in given if name in values},
                                  "out": out})
    else:
        config = vae.VaeConfig(**values)
    result = vae.train(config, resume=resume, overwrite=overwrite, console=_console.stderr(),
                       command=_console.command_line(click.get_current_context()))
    if as_json:
        click.echo(json.dumps(result.summary, indent=1))
    else:
        _console.stdout().print(_train_table(result.summary))


def _train_table(summary: dict):
    from rich.table import Table

    from kws.dataset import SPLITS
    from kws.report import format_count, format_duration
    from kws.vae import REGULARIZER_NAME

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
    return table


@command.command("sample")
@_model_option
@click.option("--word", "-w", required=True, help="The word to say (one of the model's).")
@click.option("-n", "--count", default=10, show_default=True, type=int,
              help="How many clips to make.")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False),
              help="Folder for the WAV files (WORD_000.wav, ...).")
@click.option("--temperature", "-t", default=1.0, show_default=True, type=float,
              help="Spread of the codes around the centres of the word's latent density "
                   "(0: the centres only, the word's most typical clips).")
@click.option("--prior", type=click.Choice(("fitted", "standard")), default="fitted",
              show_default=True,
              help="Draw codes from the word's Gaussian mixture fitted to its training "
                   "clips' codes, or from the VAE prior N(0, I).")
@_seed_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
def sample(model, word, count, out, temperature, prior, seed, iterations, as_json) -> None:
    """Make COUNT new one-second 16 kHz clips of WORD and write them to OUT as WAV files."""
    from kws import audio, vae

    _quiet()
    folder = vae.load(model)
    waveforms = vae.sample(folder, word, count, seed=seed, temperature=temperature,
                           n_iter=iterations, prior=prior)
    paths = []
    for index, waveform in enumerate(waveforms):
        path = Path(out) / f"{word}_{index:03d}.wav"
        audio.write(path, waveform, vae.RATE)
        paths.append(str(path))
    if as_json:
        click.echo(json.dumps({"model": str(model), "word": word, "seed": seed,
                               "temperature": temperature, "prior": prior, "files": paths},
                              indent=1))
    else:
        for path in paths:
            click.echo(path)


@command.command("reconstruct")
@_model_option
@click.argument("source", type=click.Path(dir_okay=False), metavar="IN")
@click.argument("target", type=click.Path(dir_okay=False), metavar="OUT")
@click.option("--word", "-w", default=None,
              help="The word IN says [default: the word that reconstructs it best].")
@_seed_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
def reconstruct(model, source, target, word, seed, iterations, as_json) -> None:
    """Encode the clip IN and decode it again into the WAV file OUT.

    IN is read at 16 kHz and cut to one second (its loudest second if longer). Prints the
    word used and the log-mel reconstruction error in dB squared.
    """
    from kws import audio, vae

    _refuse_overwriting([Path(target)], [Path(source)])
    _quiet()
    folder = vae.load(model)
    if word is not None:
        folder.index(word)
    result = vae.reconstruct(folder, vae.read_clip(source), word, seed=seed,
                             n_iter=iterations)
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
@_seed_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
def interpolate(model, first, second, steps, out, word_a, word_b, seed, iterations,
                as_json) -> None:
    """Walk in latent space from clip A to clip B; write STEPS clips to OUT.

    Code and word label both move linearly, so between two words the clips morph from
    one word into the other.
    """
    from kws import audio, vae

    paths = [Path(out) / f"step_{index:02d}.wav" for index in range(max(steps, 0))]
    _refuse_overwriting(paths, [Path(first), Path(second)])
    _quiet()
    folder = vae.load(model)
    for word in (word_a, word_b):
        if word is not None:
            folder.index(word)
    waveforms, words = vae.interpolate(folder, vae.read_clip(first), vae.read_clip(second),
                                       steps, word_a, word_b, seed=seed, n_iter=iterations)
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


@command.command("plot")
@_model_option
@click.option("--data", multiple=True, required=True, type=click.Path(file_okay=False),
              help="Dataset folder whose held-out clips are plotted (repeatable).")
@click.option("--split", "splits", multiple=True,
              type=click.Choice(("training", "validation", "testing")),
              help="Split(s) to plot (repeatable) [default: validation and testing].")
@click.option("--out", "-o", default="latent.png", show_default=True,
              type=click.Path(dir_okay=False), help="PNG file to write.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
def plot(model, data, splits, out, as_json) -> None:
    """Plot the latent means of held-out clips in 2-D (PCA), coloured by word."""
    from kws import vae

    _quiet()
    folder = vae.load(model)
    summary = vae.latent_plot(folder, data, out, splits or ("validation", "testing"),
                              console=_console.stderr())
    if as_json:
        click.echo(json.dumps(summary, indent=1))
    else:
        share = sum(summary["explained_variance"])
        click.echo(f"{summary['out']}\t{summary['clips']} clips of {len(summary['per_word'])} "
                   f"words\tPCA explains {100 * share:.0f}% of the variance")
