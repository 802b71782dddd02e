"""``kws train --negatives``: windows of non-keyword recordings become _unknown_."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import tone, write_wav
from rich.console import Console
from test_recordings import make_an4, make_arctic

from kws import audio
from kws.classifier import ClassifierConfig, ClassifierTask
from kws.cli import cli, main
from kws.cli._training import RichEvents
from kws.dataset import SPLITS, TESTING, TRAINING, UNKNOWN, VALIDATION
from kws.errors import DatasetError, MissingInputError, UsageError
from kws.modelfolder import read_card
from kws.recordings import negative_windows, read_recordings, split_of
from kws.train import check_run

TINY = {"arch": "seed", "rate": 2000, "batch_size": 4, "epochs": 1, "words": None,
        "workers": 1}
TINY_ARGS = ["--words", "all", "--arch", "seed", "--rate", "2000", "--batch-size", "4",
             "--epochs", "1", "--workers", "1", "--no-export"]
WANTED = {TRAINING: 60, VALIDATION: 10, TESTING: 30}


@pytest.fixture(scope="module")
def long_recordings(tmp_path_factory) -> tuple[Path, Path]:
    """An an4-like and an arctic-like folder of long recordings."""
    root = tmp_path_factory.mktemp("recordings")
    return make_an4(root / "an4"), make_arctic(root / "arctic", count=40)


def events() -> tuple[RichEvents, Console]:
    console = Console(file=io.StringIO(), force_terminal=False, width=200)
    return RichEvents(console), console


def test_windows_per_split_come_from_that_splits_keyword_free_recordings(long_recordings):
    an4, arctic = long_recordings
    negatives = negative_windows([an4, arctic], ["yes", "go"], WANTED, seed=3)
    by_path = {r.path: r for f in (an4, arctic) for r in read_recordings(f).recordings}
    for split in SPLITS:
        windows = [clip for clip in negatives.clips if clip.split == split]
        assert len(windows) == WANTED[split]
        for clip in windows:
            recording = by_path[clip.path]
            assert split_of(recording) == split
            assert not recording.words & {"yes", "go"}
            assert clip.label == UNKNOWN and clip.offset >= 0
    summary = negatives.summary
    assert summary["windows"] == WANTED
    assert summary["left_out_saying_keywords"] == 40 + 8  # every "Yes, stop!", 1 in 5 arctic
    assert set(summary["windows_per_folder"]) == {str(an4), str(arctic)}
    assert sum(summary["windows_per_folder"][str(an4)].values()) > 0
    assert sum(summary["windows_per_folder"][str(arctic)].values()) > 0


def test_windows_are_reproducible_with_the_seed(long_recordings):
    first = negative_windows(long_recordings, ["yes"], WANTED, seed=1).clips
    assert first == negative_windows(long_recordings, ["yes"], WANTED, seed=1).clips
    assert first != negative_windows(long_recordings, ["yes"], WANTED, seed=2).clips
    # One split's windows do not depend on how many another split asked for.
    more = negative_windows(long_recordings, ["yes"], {**WANTED, VALIDATION: 25}, seed=1).clips
    assert [c for c in more if c.split == TRAINING] == [c for c in first if c.split == TRAINING]


def test_a_split_without_recordings_is_said(tmp_path):
    write_wav(tmp_path / "one/only.wav", tone(300, 3.0))
    negatives = negative_windows([tmp_path / "one"], [], WANTED)
    split = split_of(read_recordings(tmp_path / "one").recordings[0])
    assert negatives.summary["windows"] == {s: WANTED[s] if s == split else 0 for s in SPLITS}
    assert sum("no usable" in note for note in negatives.notes) == 2


def test_prepare_adds_unknown_windows_per_split(tiny_data, long_recordings):
    config = check_run(ClassifierTask(), ClassifierConfig(
        data=(str(tiny_data),), negatives=tuple(map(str, long_recordings)),
        negatives_percent=50.0, **TINY)).config
    renderer, console = events()
    data = ClassifierTask().prepare(config, renderer)
    assert data.labels == ["_silence_", UNKNOWN, "no", "up", "yes"]
    negatives = data.summary["negatives"]
    # tiny_data: 12 training, 6 validation and 6 testing keyword clips; 50% of each.
    assert negatives["windows"] == {TRAINING: 6, VALIDATION: 3, TESTING: 3}
    for split in SPLITS:
        assert data.summary["counts"][split][UNKNOWN] == negatives["windows"][split]
    unknown = data.labels.index(UNKNOWN)
    assert int((data.y[TRAINING] == unknown).sum()) == 6
    assert "negatives: 6 training, 3 validation, 3 testing windows" in console.file.getvalue()


def test_prepared_windows_hold_the_recordings_audio(tiny_data, long_recordings):
    config = check_run(ClassifierTask(), ClassifierConfig(
        data=(str(tiny_data),), negatives=(str(long_recordings[1]),), negatives_percent=50.0,
        **TINY)).config
    data = ClassifierTask().prepare(config, events()[0])
    keywords = sum(data.summary["counts"][TRAINING][w] for w in ("no", "up", "yes"))
    windows = negative_windows([long_recordings[1]], [], {TRAINING: keywords // 2}, seed=0)
    rows = data.x[TRAINING][data.y[TRAINING] == data.labels.index(UNKNOWN)]
    assert len(rows) == len(windows.clips) == 6
    expected = [audio.load(clip.path, 2000)[int(clip.offset * 2000):][:2000]
                for clip in windows.clips]
    assert sorted(map(bytes, rows)) == sorted(bytes(np.float32(w)) for w in expected)


def test_prepare_leaves_out_recordings_saying_the_words_learned(tiny_data, tmp_path):
    root = tmp_path / "said"
    lines = ["file\ttranscript"]
    for n in range(30):
        write_wav(root / f"u{n}.wav", tone(300, 2.0))
        lines.append(f"u{n}.wav\t{'say yes now' if n % 2 else 'nothing here'}")
    (root / "transcripts.tsv").write_text("\n".join(lines) + "\n")
    for words, left_out in ((None, 15), (("no", "up"), 0)):
        config = check_run(ClassifierTask(), ClassifierConfig(
            data=(str(tiny_data),), negatives=(str(root),), **{**TINY, "words": words})).config
        data = ClassifierTask().prepare(config, events()[0])
        assert data.summary["negatives"]["left_out_saying_keywords"] == left_out


def test_negatives_are_checked_before_training(tiny_data, tmp_path):
    with pytest.raises(MissingInputError, match="--negatives .*nowhere: no such folder"):
        check_run(ClassifierTask(), ClassifierConfig(
            data=(str(tiny_data),), negatives=(str(tmp_path / "nowhere"),), **TINY))
    bad = tmp_path / "bad"
    write_wav(bad / "a.wav", tone(300, 2.0))
    (bad / "transcripts.tsv").write_text("file\ttranscript\na.wav\n")
    with pytest.raises(DatasetError, match=r"transcripts.tsv:2: expected 2"):
        check_run(ClassifierTask(), ClassifierConfig(
            data=(str(tiny_data),), negatives=(str(bad),), **TINY))
    (bad / "transcripts.tsv").write_text("file\ttranscript\na.wav\thello\n")
    with pytest.raises(UsageError, match="--out"):
        check_run(ClassifierTask(), ClassifierConfig(
            data=(str(tiny_data),), negatives=(str(bad),), out=str(bad / "model"), **TINY))
    for percent in (-1, 101):
        with pytest.raises(UsageError, match="--negatives-percent must be in 0..100"):
            check_run(ClassifierTask(), ClassifierConfig(
                data=(str(tiny_data),), negatives_percent=percent, **TINY))


def test_cli_missing_negatives_folder_is_a_usage_error(tiny_data, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--data", str(tiny_data), *TINY_ARGS, "--negatives",
              str(tmp_path / "nowhere"), "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.strip() == f"kws: error: --negatives {tmp_path / 'nowhere'}: no such folder or file"


def test_train_with_negatives_one_step(tiny_data, long_recordings, tmp_path):
    out = tmp_path / "model"
    args = ["train", "--data", str(tiny_data), *TINY_ARGS, "--negatives", str(long_recordings[0]),
            "--negatives", str(long_recordings[1]), "--negatives-percent", "50", "--out",
            str(out), "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    card = read_card(out)
    assert UNKNOWN in card.labels and json.loads(result.stdout)["labels"] == card.labels
    assert card.data["negatives"]["windows"] == {TRAINING: 6, VALIDATION: 3, TESTING: 3}
    assert card.data["negatives"]["folders"] == [str(path) for path in long_recordings]
    assert card.recipe["negatives"] == [str(path) for path in long_recordings]
    assert card.recipe["negatives_percent"] == 50.0
