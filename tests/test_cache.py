"""The decode cache: damage of every kind is detected, dropped once, and decoded again."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import tone, write_wav

from kws import cache, files


@pytest.fixture
def clips(tmp_path) -> list[Path]:
    """Four short files of different tones."""
    return [write_wav(tmp_path / "audio" / f"{i}.wav", tone(300 + 100 * i, 0.25))
            for i in range(4)]


def _fill(folder: Path, paths: list[Path]) -> dict[Path, np.ndarray]:
    """Decode ``paths`` through a fresh cache in ``folder``; return what a clean read gives."""
    found, failed = cache.AudioCache(16000, folder).get_many(paths)
    assert not failed
    return {path: np.array(waveform) for path, waveform in found.items()}


def _segment(folder: Path) -> tuple[Path, Path]:
    (index,) = sorted((folder / "sr16000").glob("*.json"))
    return index, index.with_suffix(".npy")


def _reread(folder: Path, paths: list[Path], monkeypatch) -> tuple[dict, list[str], list]:
    """Read through a new cache; return ``(waveforms, warnings, files decoded)``."""
    warnings: list[str] = []
    decoded: list[Path] = []
    original = cache.audio.load
    monkeypatch.setattr(cache.audio, "load",
                        lambda path, rate=None: decoded.append(path) or original(path, rate))
    found, failed = cache.AudioCache(16000, folder, warn=warnings.append).get_many(paths)
    monkeypatch.setattr(cache.audio, "load", original)
    assert not failed
    return found, warnings, decoded


def _damage_truncate(index: Path, npy: Path) -> None:
    npy.write_bytes(npy.read_bytes()[: npy.stat().st_size // 2])


def _damage_empty(index: Path, npy: Path) -> None:
    npy.write_bytes(b"")


def _damage_object_array(index: Path, npy: Path) -> None:
    with open(npy, "wb") as handle:
        np.save(handle, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)


def _damage_index_list(index: Path, npy: Path) -> None:
    index.write_text("[]")


def _damage_index_garbage(index: Path, npy: Path) -> None:
    index.write_bytes(b"\x00\xff{not json")


def _damage_wrong_dtype(index: Path, npy: Path) -> None:
    samples = np.load(npy)
    with open(npy, "wb") as handle:
        np.save(handle, samples.astype(np.float64))


SEGMENT_DAMAGE = [_damage_truncate, _damage_empty, _damage_object_array, _damage_index_list,
                  _damage_index_garbage, _damage_wrong_dtype]


@pytest.mark.parametrize("damage", SEGMENT_DAMAGE, ids=lambda f: f.__name__[8:])
def test_damaged_segment_is_dropped_once_and_decoded_again(tmp_path, clips, damage,
                                                           monkeypatch):
    folder = tmp_path / "cache"
    clean = _fill(folder, clips)
    damage(*_segment(folder))
    found, warnings, decoded = _reread(folder, clips, monkeypatch)
    assert len(warnings) == 1 and "decode cache" in warnings[0] and "\n" not in warnings[0]
    assert sorted(decoded) == sorted(clips)
    for path in clips:
        np.testing.assert_array_equal(found[path], clean[path])
    # The damage is gone from disk: the next run reads the cache silently.
    found, warnings, decoded = _reread(folder, clips, monkeypatch)
    assert warnings == [] and decoded == []


def test_changed_entry_length_is_detected(tmp_path, clips, monkeypatch):
    folder = tmp_path / "cache"
    clean = _fill(folder, clips)
    index, _ = _segment(folder)
    raw = json.loads(index.read_text())
    key = next(iter(raw["entries"]))
    raw["entries"][key][1] -= 100
    index.write_text(json.dumps(raw))
    found, warnings, decoded = _reread(folder, clips, monkeypatch)
    assert len(warnings) == 1 and "checksum" in warnings[0]
    assert len(decoded) == 1
    for path in clips:
        np.testing.assert_array_equal(found[path], clean[path])
    assert _reread(folder, clips, monkeypatch)[1:] == ([], [])


def test_zeroed_samples_are_detected(tmp_path, clips, monkeypatch):
    folder = tmp_path / "cache"
    clean = _fill(folder, clips)
    _, npy = _segment(folder)
    data = bytearray(npy.read_bytes())
    total = len(np.load(npy))
    start = len(data) - 4 * total
    data[start : start + 4 * 2000] = bytes(4 * 2000)
    npy.write_bytes(bytes(data))
    found, warnings, decoded = _reread(folder, clips, monkeypatch)
    assert len(warnings) == 1 and len(decoded) == 1
    for path in clips:
        np.testing.assert_array_equal(found[path], clean[path])


def test_index_entry_out_of_bounds_is_damage(tmp_path, clips, monkeypatch):
    folder = tmp_path / "cache"
    _fill(folder, clips)
    index, _ = _segment(folder)
    raw = json.loads(index.read_text())
    raw["entries"][next(iter(raw["entries"]))] = [raw["samples"], 10, 0]
    index.write_text(json.dumps(raw))
    _, warnings, decoded = _reread(folder, clips, monkeypatch)
    assert len(warnings) == 1 and sorted(decoded) == sorted(clips)


def test_many_damaged_segments_give_one_warning(tmp_path, clips, monkeypatch):
    folder = tmp_path / "cache"
    for path in clips:
        _fill(folder, [path])
    for index in (folder / "sr16000").glob("*.json"):
        index.write_text("[]")
    _, warnings, decoded = _reread(folder, clips, monkeypatch)
    assert len(warnings) == 1 and "and 3 more" in warnings[0]
    assert len(decoded) == 4


def test_unwritable_cache_runs_without_it_with_one_warning(tmp_path, clips):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    warnings: list[str] = []
    audio_cache = cache.AudioCache(16000, blocker, warn=warnings.append)
    first, failed = audio_cache.get_many(clips[:2])
    second, _ = audio_cache.get_many(clips[2:])
    assert not failed and len(first) == 2 and len(second) == 2
    assert len(warnings) == 1 and "cannot write" in warnings[0]


def test_read_only_cache_is_still_read(tmp_path, clips, monkeypatch):
    folder = tmp_path / "cache"
    clean = _fill(folder, clips[:2])

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(files.tempfile, "mkstemp", refuse)
    warnings: list[str] = []
    found, failed = cache.AudioCache(16000, folder, warn=warnings.append).get_many(clips)
    assert not failed and len(found) == 4
    np.testing.assert_array_equal(found[clips[0]], clean[clips[0]])
    assert len(warnings) == 1 and "Permission denied" in warnings[0]


def test_writes_leave_no_temporaries_and_clean_stale_ones(tmp_path, clips):
    folder = tmp_path / "cache"
    _fill(folder, clips[:1])
    stale = folder / "sr16000" / f"{files.TEMP_PREFIX}x.npy.abc.npy"
    stale.write_bytes(b"left by a killed run")
    orphan = folder / "sr16000" / "0123abcd.npy"
    orphan.write_bytes(b"no index")
    old = 1_000_000_000
    os.utime(stale, (old, old))
    os.utime(orphan, (old, old))
    _fill(folder, clips[1:])
    names = sorted(p.name for p in (folder / "sr16000").iterdir())
    assert len(names) == 4 and not any(n.startswith(".") or "tmp" in n for n in names)
    assert {Path(n).suffix for n in names} == {".npy", ".json"}


def test_outdated_index_is_dropped_without_warning(tmp_path, clips, monkeypatch):
    folder = tmp_path / "cache" / "sr16000"
    folder.mkdir(parents=True)
    np.save(folder / "old.npy", np.zeros(10, np.float32))
    (folder / "old.json").write_text(json.dumps({"abc": [0, 10]}))
    _, warnings, decoded = _reread(tmp_path / "cache", clips, monkeypatch)
    assert warnings == [] and len(decoded) == 4
    assert not (folder / "old.json").exists()


def test_symlink_loop_gets_its_own_error_not_no_such_file(tmp_path):
    loop = tmp_path / "loop.wav"
    loop.symlink_to(loop)
    _, failed = cache.AudioCache(16000, tmp_path / "cache").get_many([loop])
    assert "symbolic link loop" in str(failed[loop])


def test_compaction_keeps_every_entry(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "_MAX_SEGMENTS", 3)
    paths = [write_wav(tmp_path / f"{i}.wav", tone(200 + 50 * i, 0.1)) for i in range(5)]
    folder = tmp_path / "cache"
    for path in paths:
        _fill(folder, [path])
    assert len(list((folder / "sr16000").glob("*.json"))) <= 3
    found, warnings, decoded = _reread(folder, paths, monkeypatch)
    assert warnings == [] and decoded == [] and len(found) == 5
