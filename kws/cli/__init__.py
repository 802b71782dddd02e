"""The ``kws`` command-line interface.

Each subcommand lives in its own module of this package and exposes a Click object named
``command``; modules whose names start with an underscore are helpers. Commands are
imported only when listed or run, and they import TensorFlow, Keras and librosa inside
their bodies, so ``kws --help`` stays fast.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import click

from kws import __version__
from kws.errors import KwsError, UnreadableInputsError, printable


def _command_modules() -> dict[str, str]:
    """Map each command name to the module that defines it."""
    return {
        info.name.replace("_", "-"): f"{__name__}.{info.name}"
        for info in pkgutil.iter_modules(__path__)
        if not info.name.startswith("_")
    }


class _LazyGroup(click.Group):
    """A Click group that imports a command's module only when it is needed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_command_modules())

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        module = _command_modules().get(name)
        if module is None:
            return None
        return importlib.import_module(module).command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kws")
def cli() -> None:
    """Keyword spotting on raw waveforms: Speech Commands data, training and inference.

    Results go to stdout, progress and errors to stderr. Exit codes: 0 success, 1 some
    inputs failed, 2 usage error, 130 interrupted.
    """


def main(argv: list[str] | None = None) -> None:
    """Run the CLI, turning kws errors into one line on stderr and an exit code."""
    if sys.stdout is None:
        _fail("standard output is closed (redirect it, e.g. to /dev/null)", 2)
    try:
        status = cli.main(args=argv, prog_name="kws", standalone_mode=False)
    except click.exceptions.Abort as error:
        if isinstance(error.__cause__, EOFError):
            # Click turns any EOFError into Abort; only Ctrl-C is an interruption.
            _fail(f"unexpected end of data ({_one_line(error.__cause__)})", 1)
        click.echo("kws: interrupted", err=True)
        sys.exit(130)
    except click.exceptions.NoArgsIsHelpError as error:
        error.show()
        sys.exit(error.exit_code)
    except click.UsageError as error:
        _fail(_usage_line(error), error.exit_code)
    except click.ClickException as error:
        _fail(error.format_message(), error.exit_code)
    except UnreadableInputsError as error:
        _name_unreadable(error)
        _fail(str(error), error.exit_code)
    except KwsError as error:
        _fail(str(error), error.exit_code)
    except KeyboardInterrupt:
        click.echo("kws: interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(1)
    except OSError as error:
        _fail(str(error), 1)
    except MemoryError:
        _fail("out of memory (an input is too large for this machine)", 1)
    except RuntimeError as error:
        if not _is_libsndfile_error(error):
            raise
        _fail(f"cannot read or write audio ({_one_line(error)})", 1)
    sys.exit(status if isinstance(status, int) else 0)


def _fail(message: str, code: int) -> None:
    """Print ``kws: error: message`` as one line on stderr and exit with ``code``."""
    if sys.stderr is not None:
        click.echo(f"kws: error: {printable(message)}", err=True)
    sys.exit(code)


def _name_unreadable(error: UnreadableInputsError) -> None:
    """Name each input a run could not read (one ``kws: error:`` line each) and its notes,
    as a run that goes on does, before the error of the run that could not."""
    from kws.cli import _console

    for message in error.failures:
        _console.error(message)
    _console.warn_many(error.notes)


def _usage_line(error: click.UsageError) -> str:
    """Click's usage error in one line, with the command whose --help explains it."""
    message = " ".join(error.format_message().split())
    if error.ctx is None:
        return message
    return f"{message} (see '{error.ctx.command_path} --help')"


def _is_libsndfile_error(error: BaseException) -> bool:
    """Whether ``error`` comes from libsndfile (without importing soundfile for --help)."""
    soundfile = sys.modules.get("soundfile")
    return soundfile is not None and isinstance(error, soundfile.LibsndfileError)


def _one_line(error: BaseException) -> str:
    text = str(getattr(error, "error_string", "") or error).strip().rstrip(".")
    return " ".join(text.split()) or type(error).__name__
