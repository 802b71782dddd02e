"""``kws augment``: layout, split preservation, refusals, no overwrite, seeding."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
from click.testing import CliRunner
from conftest import SYNTHETIC_SPEAKERS, SYNTHETIC_WORDS, make_speech_commands, tone, write_wav

from kws.augment import Augmentation
from kws.augment_files import augment_folder, copy_name
from kws.cli import cli, main
from kws.dataset import open_datasets, which_set
from kws.errors import UsageError


def run_kws(args: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def files_under(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_copies_keep_the_layout_and_their_split(tmp_path):
    data = make_speech_commands(tmp_path / "data")
    out = tmp_path / "augmented"
    result = CliRunner().invoke(cli, ["augment", "--data", str(data), "--out", str(out),
                                      "--copies", "2", "--seed", "5"])
    assert result.exit_code == 0, result.output
    clips = len(SYNTHETIC_WORDS) * len(SYNTHETIC_SPEAKERS) * 2
    assert f"wrote {2 * clips} copies of {clips} clips" in result.stdout
    for word in SYNTHETIC_WORDS:
        names = sorted(p.name for p in (out / word).iterdir())
        assert names == sorted(f"{speaker}_nohash_{n}_aug{k}.wav"
                               for speaker in SYNTHETIC_SPEAKERS for n in range(2)
                               for k in (1, 2))
    assert not (out / "_background_noise_").exists()
    source = {(c.path.parent.name, c.path.stem): c.split for c in open_datasets([data]).clips}
    copies = open_datasets([out]).clips
    assert len(copies) == 2 * clips
    for clip in copies:
        stem = clip.path.stem.rsplit("_aug", 1)[0]
        assert clip.split == source[(clip.path.parent.name, stem)]
    validation = (out / "validation_list.txt").read_text().split()
    assert "yes/cccc0003_nohash_0_aug2.wav" in validation
    assert all("dddd0004" in line for line in (out / "testing_list.txt").read_text().split())


def test_hash_rule_keeps_a_copy_with_its_speaker():
    name = "0a7c2a8d_nohash_3.wav"
    assert copy_name(name, 4) == "0a7c2a8d_nohash_3_aug4.wav"
    for percent in (10.0, 30.0, 45.0):
        assert which_set(copy_name(name, 4), percent, percent) == which_set(name, percent, percent)


def test_copies_differ_from_their_source_and_keep_its_rate(tmp_path):
    data = tmp_path / "data"
    write_wav(data / "yes" / "aaaa0001_nohash_0.wav", tone(440.0, rate=8000), rate=8000)
    out = tmp_path / "out"
    result = augment_folder(data, out, augmentation=Augmentation(
        background_probability=0.0, shift=0.0, gain_db=(0.0, 0.0), speed=0.0,
        noise_factor=0.05))
    assert result.written == 1
    copy, rate = soundfile.read(out / "yes" / "aaaa0001_nohash_0_aug1.wav", dtype="float32")
    original, _ = soundfile.read(data / "yes" / "aaaa0001_nohash_0.wav", dtype="float32")
    assert rate == 8000 and copy.shape == original.shape
    assert 0.03 < np.std(copy - original) < 0.07


def test_lowpass_alone_band_limits_every_copy(tmp_path, capsys):
    data = tmp_path / "data"
    rate = 16000
    t = np.arange(rate) / rate
    clip = 0.2 * (np.sin(2 * np.pi * 300 * t) + np.sin(2 * np.pi * 7600 * t))
    write_wav(data / "yes" / "aaaa0001_nohash_0.wav", clip.astype(np.float32), rate=rate)
    out = tmp_path / "out"
    code, _, err = run_kws(["augment", "--data", str(data), "--out", str(out),
                            "--background-probability", "0", "--lowpass", "1"], capsys)
    assert code == 0, err
    copy, _ = soundfile.read(out / "yes" / "aaaa0001_nohash_0_aug1.wav", dtype="float32")
    spectrum = np.abs(np.fft.rfft(copy))
    assert spectrum[7600] < 0.01 * spectrum[300]


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    data = make_speech_commands(tmp_path / "data")
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        augment_folder(data, tmp_path / name, seed=seed)
    assert files_under(tmp_path / "a") == files_under(tmp_path / "b")
    assert files_under(tmp_path / "a") != files_under(tmp_path / "c")


@pytest.mark.parametrize("where", ["same", "inside", "around"])
def test_refuses_to_write_into_its_input(tmp_path, capsys, where):
    data = make_speech_commands(tmp_path / "data")
    out = {"same": data, "inside": data / "yes" / "more", "around": tmp_path}[where]
    before = files_under(tmp_path)
    code, _, err = run_kws(["augment", "--data", str(data), "--out", str(out)], capsys)
    assert code == 2
    assert "would write into the input" in err
    assert files_under(tmp_path) == before


def test_never_overwrites_and_a_second_run_completes_the_first(tmp_path):
    data = make_speech_commands(tmp_path / "data")
    out = tmp_path / "out"
    existing = out / "yes" / "aaaa0001_nohash_0_aug1.wav"
    existing.parent.mkdir(parents=True)
    existing.write_bytes(b"mine")
    first = augment_folder(data, out)
    assert existing.read_bytes() == b"mine"
    assert first.existing == 1 and first.written == first.sources - 1
    snapshot = files_under(out)
    second = augment_folder(data, out)
    assert second.written == 0 and second.existing == second.sources
    assert files_under(out) == snapshot


def test_nothing_to_add_is_a_usage_error(tmp_path):
    data = tmp_path / "data"
    write_wav(data / "yes" / "aaaa0001_nohash_0.wav", tone(440.0))
    with pytest.raises(UsageError, match="nothing to add"):
        augment_folder(data, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unreadable_files_are_skipped_with_exit_code_1(tmp_path, capsys):
    data = make_speech_commands(tmp_path / "data")
    (data / "no" / "eeee0005_nohash_0.wav").write_bytes(b"not audio at all")
    code, out, err = run_kws(["augment", "--data", str(data), "--out", str(tmp_path / "o")],
                             capsys)
    assert code == 1
    assert "wrote 24 copies of 25 clips" in out
    assert "skipped 1 unreadable file(s)" in err and "eeee0005" in err


def test_refuses_a_word_folder_of_out_that_links_into_the_input(tmp_path, capsys):
    data = make_speech_commands(tmp_path / "data")
    out = tmp_path / "out"
    out.mkdir()
    (out / "yes").symlink_to(data / "yes")
    before = files_under(data)
    code, _, err = run_kws(["augment", "--data", str(data), "--out", str(out)], capsys)
    assert code == 2
    assert "would write into the input" in err and "yes" in err
    assert err.count("\n") == 1
    assert files_under(data) == before
    assert sorted(p.name for p in out.iterdir()) == ["yes"]


def test_a_rerun_removes_temporaries_of_a_killed_run(tmp_path):
    data = make_speech_commands(tmp_path / "data")
    out = tmp_path / "out"
    left = [out / "yes" / ".kws-tmp-aaaa0001_nohash_0_aug1.wav.x1y2z3.wav",
            out / ".kws-tmp-validation_list.txt.q9w8e7"]
    for path in left:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half a file")
    mine = out / "yes" / ".notes.wav.tmp"
    mine.write_bytes(b"not kws's")
    result = augment_folder(data, out)
    assert not any(path.exists() for path in left)
    assert mine.read_bytes() == b"not kws's"
    assert sorted(result.removed_temporaries) == sorted(left)
    assert not [p for p in out.rglob(".kws-tmp-*")]


def test_a_second_run_into_the_same_out_is_refused_while_the_first_runs(tmp_path):
    from kws import files
    from kws.errors import KwsError

    data = make_speech_commands(tmp_path / "data")
    out = tmp_path / "out"
    with files.locked_folder(out), pytest.raises(KwsError, match="another kws run"):
        augment_folder(data, out)


def test_json_result_and_skipped_entries_are_reported(tmp_path, capsys):
    data = make_speech_commands(tmp_path / "data")
    (data / "yes" / "gone_nohash_0.wav").symlink_to(tmp_path / "nowhere.wav")
    (data / "no" / "dir_nohash_0.wav").mkdir()
    code, out, err = run_kws(["augment", "--data", str(data), "--out", str(tmp_path / "o"),
                              "--json"], capsys)
    assert code == 0, err
    result = json.loads(out)
    assert result["written"] == result["sources"] == 24
    assert {Path(item["path"]).name for item in result["skipped"]} == {
        "gone_nohash_0.wav", "dir_nohash_0.wav"}
    assert "dangling symbolic link" in err and "a folder, not an audio file" in err


def test_summary_table_is_tab_separated_when_piped(tmp_path, capsys):
    data = make_speech_commands(tmp_path / "data")
    code, out, _ = run_kws(["augment", "--data", str(data), "--out", str(tmp_path / "o")],
                           capsys)
    assert code == 0
    assert "split\tcopies" in out and "training\t12" in out and "testing\t6" in out


def test_a_full_disk_is_one_line_and_stops_the_run(tmp_path):
    from kws.cache import AudioCache

    data = make_speech_commands(tmp_path / "data")
    out = tmp_path / "out"
    AudioCache(16000).get_many([data / "_background_noise_" / "white_noise.wav"])
    code = (
        "import resource, signal\n"
        "from kws.cli import main\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))\n"
        f"main(['augment', '--data', {str(data)!r}, '--out', {str(out)!r}])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("kws: error: ") and "cannot write audio" in result.stderr
    assert result.stderr.count("\n") == 1
    assert not list(out.rglob(".kws-tmp-*"))


@pytest.mark.parametrize("args", [["--snr-db", "10", "0"], ["--speed", "1"], ["--gain-db", "nan"],
                                  ["--snr-db", "0", "inf"], ["--noise-factor", "-1"],
                                  ["--background-probability", "2"], ["--copies", "0"],
                                  ["--lowpass", "1.5"], ["--snr-db", "-1000", "1000"],
                                  ["--snr-db", "0", "81"], ["--snr-db", "-31", "0"]])
def test_impossible_settings_are_usage_errors(tmp_path, capsys, args):
    data = make_speech_commands(tmp_path / "data")
    code, _, err = run_kws(["augment", "--data", str(data), "--out", str(tmp_path / "o"),
                            *args], capsys)
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("dangling", [False, True])
def test_a_link_at_a_copys_name_is_refused_not_counted(tmp_path, capsys, dangling):
    data = make_speech_commands(tmp_path / "data")
    out = tmp_path / "out"
    link = out / "yes" / copy_name("aaaa0001_nohash_0.wav", 1)
    link.parent.mkdir(parents=True)
    source = data / "yes" / "aaaa0001_nohash_0.wav"
    link.symlink_to(tmp_path / "nowhere.wav" if dangling else source)
    before = files_under(data)
    code, out_text, err = run_kws(["augment", "--data", str(data), "--out", str(out)], capsys)
    assert code == 1 and "already there" not in out_text
    assert err == (f"kws: error: {link}: is a symbolic link, not a finished copy; kws will "
                   "neither follow nor remove it (remove it, or choose another --out)\n")
    assert link.is_symlink() and files_under(data) == before
    assert [p.name for p in out.rglob("*.wav")] == [link.name]
