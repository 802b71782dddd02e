"""The command-line surface: discovery, help without heavy imports, error handling."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from kws.cli import _command_modules, cli

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
    assert result.returncode == 1
    assert result.stderr.strip() == f"kws: error: {missing}: no such dataset folder"


def test_usage_error_exits_2():
    result = subprocess.run([sys.executable, "-m", "kws", "dataset"], capture_output=True,
                            text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_unknown_command_exits_2():
    assert CliRunner().invoke(cli, ["no-such-command"]).exit_code == 2
