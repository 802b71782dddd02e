"""The command-line surface: discovery, help without heavy imports, error handling."""

from __future__ import annotations

import subprocess
import sys

import pytest
import soundfile
from click.testing import CliRunner

from kws.cli import _command_modules, cli, main

HEAVY = ("tensorflow", "keras", "librosa", "matplotlib")


def test_help_lists_every_command_without_importing_heavy_libraries():
    code = (
        "import sys\n"
        "from kws.cli import cli\n"
        "from click.testing import CliRunner\n"
        "runner = CliRunner()\n"
        "out = runner.invoke(cli, ['--help']).output\n"
        "for name in cli.list_commands(None):\n"
        "    assert name in out, name\n"
        "    sub = runner.invoke(cli, [name, '--help'])\n"
        "    assert sub.exit_code == 0, (name, sub.output)\n"
        f"loaded = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("args", [["-m", "kws", "--help"], ["-m", "kws", "--version"]])
def test_python_dash_m(args):
    result = subprocess.run([sys.executable, *args], capture_output=True, text=True)
    assert result.returncode == 0
    assert "kws" in result.stdout


def test_commands_are_discovered():
    assert "dataset" in _command_modules()


def test_errors_are_one_line_with_exit_code(tmp_path):
    missing = tmp_path / "nowhere"
    result = subprocess.run(
        [sys.executable, "-m", "kws", "dataset", str(missing)], capture_output=True, text=True
    )
    # A folder named on the command line that does not exist is a usage error.
    assert result.returncode == 2
    assert result.stderr.strip() == f"kws: error: {missing}: no such dataset folder"


def test_usage_error_exits_2():
    result = subprocess.run([sys.executable, "-m", "kws", "dataset"], capture_output=True,
                            text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("argv", "expected"), [
    (["listen", "--rate", "16000.5", "x"], "Invalid value for '--rate'"),
    (["predict", "--bogus"], "No such option"),
    (["listen", "a", "b"], "Got unexpected extra argument (b)"),
    (["predict", "--threads", "100000", "x.wav"], "Invalid value for '--threads'"),
    (["evaluate", "--stream", "--seed", "-1"], "Invalid value for '--seed'"),
])
def test_click_usage_errors_are_one_line_naming_the_help(capsys, argv, expected):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1
    assert err.startswith(f"kws: error: {expected}")
    assert err.endswith(f"(see 'kws {argv[0]} --help')\n")


def test_no_arguments_still_show_the_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2 and "Usage: kws [OPTIONS] COMMAND" in capsys.readouterr().err


def test_a_newline_in_a_file_name_cannot_split_the_error_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", str(tmp_path / "a\nkws: error: b.wav")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 1
    assert err == f"kws: error: {tmp_path}/a\\nkws: error: b.wav: no such file\n"


def test_a_closed_stdout_is_one_line(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdout", None)
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", "x.wav"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith("kws: error: standard output is closed")


def test_unknown_command_exits_2():
    assert CliRunner().invoke(cli, ["no-such-command"]).exit_code == 2


@pytest.mark.parametrize("error,expected", [
    (lambda: soundfile.LibsndfileError(2), "kws: error: cannot read or write audio ("),
    (lambda: MemoryError(), "kws: error: out of memory"),
])
def test_library_errors_escaping_a_command_are_one_line(monkeypatch, capsys, error, expected):
    def fail(*args, **kwargs):
        raise error()

    monkeypatch.setattr(cli, "main", fail)
    with pytest.raises(SystemExit) as exit_info:
        main(["dataset", "x"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 1
    assert err.startswith(expected) and err.count("\n") == 1


def test_an_eof_error_is_not_reported_as_an_interruption(monkeypatch, capsys):
    def fail(ctx):
        raise EOFError("No data left in file")

    monkeypatch.setattr(cli, "invoke", fail)
    with pytest.raises(SystemExit) as exit_info:
        main(["dataset", "x"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 1
    assert "kws: error: unexpected end of data (No data left in file)" in err
    assert "interrupted" not in err
