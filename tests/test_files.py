"""The one safe way kws writes files: atomic writes, locks, inputs never written over."""

from __future__ import annotations

import multiprocessing
import os
import stat
import time
from pathlib import Path

import pytest

from kws import files
from kws.errors import KwsError, UsageError


def test_atomic_write_replaces_the_target_only_when_complete(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), files.atomic_write(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
    files.write_text(target, "new")
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_planted_symlinks_at_predictable_names_are_never_followed(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    pid = os.getpid()
    for name in (f".out.wav.{pid}.tmp", f".out.wav.{pid + 1}.tmp", f"{files.TEMP_PREFIX}out.wav."):
        (tmp_path / name).symlink_to(victim)
    files.write_bytes(tmp_path / "out.wav", b"RIFF")
    assert victim.read_text() == "precious"
    assert not (tmp_path / "out.wav").is_symlink()
    assert (tmp_path / "out.wav").read_bytes() == b"RIFF"


def test_temporary_names_are_unpredictable_and_files_get_ordinary_modes(tmp_path):
    seen = []
    for _ in range(3):
        with files.atomic_write(tmp_path / "x.bin") as temporary:
            seen.append(temporary.name)
            temporary.write_bytes(b"1")
    assert len(set(seen)) == 3
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "x.bin").stat().st_mode & 0o777 == 0o666 & ~umask


def test_atomic_folder_is_whole_or_absent(tmp_path):
    target = tmp_path / "epoch-0001"
    with files.atomic_folder(target) as folder:
        (folder / "a").write_text("1")
    with pytest.raises(RuntimeError), files.atomic_folder(target) as folder:
        (folder / "a").write_text("2")
        raise RuntimeError
    assert (target / "a").read_text() == "1"
    with files.atomic_folder(target) as folder:
        (folder / "b").write_text("3")
    assert sorted(p.name for p in target.iterdir()) == ["b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-0001"]


def test_only_stale_kws_temporaries_are_removed(tmp_path):
    old = tmp_path / f"{files.TEMP_PREFIX}a.wav.xyz"
    old.write_text("left by a killed run")
    young = tmp_path / f"{files.TEMP_PREFIX}b.wav.abc"
    young.write_text("a run in progress")
    mine = tmp_path / ".notes.tmp"
    mine.write_text("the user's")
    stale = time.time() - 2 * files.STALE_AFTER_S
    os.utime(old, (stale, stale))
    os.utime(mine, (stale, stale))
    assert files.remove_stale_temporaries(tmp_path) == [old]
    assert young.exists() and mine.exists()


def test_outputs_inside_or_equal_to_an_input_are_refused(tmp_path):
    data = tmp_path / "data"
    (data / "yes").mkdir(parents=True)
    clip = data / "yes" / "a.wav"
    clip.write_bytes(b"x")
    link = tmp_path / "link"
    link.symlink_to(data / "yes")
    for output in (clip, data / "yes" / "new.png", link / "new.png"):
        with pytest.raises(UsageError, match="would write over the input"):
            files.check_not_input(output, [data])
    with pytest.raises(UsageError):
        files.check_not_input(clip, [clip])
    files.check_not_input(tmp_path / "elsewhere.png", [data, clip])


def _hold_lock(folder: str, ready, release) -> None:
    with files.locked_folder(folder):
        ready.set()
        release.wait(30)


def test_a_second_run_on_a_locked_folder_is_refused(tmp_path):
    context = multiprocessing.get_context("fork")
    ready, release = context.Event(), context.Event()
    holder = context.Process(target=_hold_lock, args=(str(tmp_path), ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        with pytest.raises(KwsError, match="another kws run is writing there"):
            with files.locked_folder(tmp_path):
                pass
    finally:
        release.set()
        holder.join(30)
    with files.locked_folder(tmp_path / "new"):
        assert (tmp_path / "new").is_dir()
    assert list((tmp_path / "new").iterdir()) == []


def test_a_replaced_file_keeps_its_mode_and_a_read_only_one_is_refused(tmp_path):
    private = tmp_path / "card.json"
    private.write_text("old")
    private.chmod(0o640)
    files.write_text(private, "new")
    assert private.read_text() == "new" and stat.S_IMODE(private.stat().st_mode) == 0o640
    private.chmod(0o444)
    with pytest.raises(UsageError, match="card.json: is read-only; make it writable"):
        files.write_text(private, "newer")
    assert private.read_text() == "new" and stat.S_IMODE(private.stat().st_mode) == 0o444
    assert sorted(p.name for p in tmp_path.iterdir()) == ["card.json"]


def test_devices_fifos_and_folders_are_never_replaced(tmp_path):
    fifo = tmp_path / "out.wav"
    os.mkfifo(fifo)
    folder = tmp_path / "folder.wav"
    folder.mkdir()
    for target in (fifo, folder, Path("/dev/null")):
        with pytest.raises(UsageError, match="choose another path"):
            files.write_bytes(target, b"RIFF")
    assert stat.S_ISFIFO(fifo.lstat().st_mode) and folder.is_dir()
    assert Path("/dev/null").is_char_device()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder.wav", "out.wav"]
