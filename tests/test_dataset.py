"""The Speech Commands data layer: layouts, splits, labels, cache and ``kws dataset``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_speech_commands, tone, write_wav

from kws import cache, dataset
from kws.cli import cli, main
from kws.errors import DatasetError, UsageError

#: Files of Speech Commands v0.01 and the split its official lists give them.
OFFICIAL = {
    "bed/026290a7_nohash_0.wav": "validation",
    "bed/060cd039_nohash_1.wav": "validation",
    "no/1657c9fa_nohash_2.wav": "validation",
    "eight/563aa4e6_nohash_0.wav": "testing",
    "stop/692a88e6_nohash_2.wav": "testing",
    "yes/51055bda_nohash_4.wav": "training",
    "left/2f813234_nohash_1.wav": "training",
}


@pytest.mark.parametrize("name,split", OFFICIAL.items())
def test_which_set_matches_the_official_lists(name, split):
    assert dataset.which_set(name) == split


def test_which_set_keeps_a_speaker_together():
    splits = {dataset.which_set(f"word{i}/0a1b2c3d_nohash_{i}.wav") for i in range(20)}
    assert len(splits) == 1


def test_scan_uses_list_files(speech_commands):
    found = dataset.scan(speech_commands)
    splits = {(c.speaker, c.split) for c in found.clips}
    assert splits == {
        ("aaaa0001", "training"),
        ("bbbb0002", "training"),
        ("cccc0003", "validation"),
        ("dddd0004", "testing"),
    }
    assert found.words == ["no", "up", "yes"]
    assert [p.name for p in found.backgrounds] == ["white_noise.wav"]


def test_scan_without_lists_uses_hash_rule(tmp_path):
    root = make_speech_commands(tmp_path / "d", lists=False)
    for clip in dataset.scan(root).clips:
        assert clip.split == dataset.which_set(clip.path.name)


def test_scan_reads_12_label_test_layout(tmp_path):
    root = tmp_path / "test12"
    write_wav(root / "yes" / "0a1b2c3d_nohash_0.wav", tone(440, 1.0))
    write_wav(root / "_unknown_" / "bed_0a1b2c3d_nohash_1.wav", tone(500, 1.0))
    write_wav(root / "_unknown_" / "backward_9f8e7d6c_nohash_0.wav", tone(600, 1.0))
    write_wav(root / "_silence_" / "1024.wav", 0.01 * tone(50, 1.0))
    found = dataset.scan(root)
    by_name = {c.path.name: c for c in found.clips}
    assert by_name["bed_0a1b2c3d_nohash_1.wav"].word == "bed"
    assert by_name["bed_0a1b2c3d_nohash_1.wav"].speaker == "0a1b2c3d"
    assert by_name["1024.wav"].word == dataset.SILENCE
    # Silence has no speaker: it follows the split most spoken clips are in.
    assert by_name["1024.wav"].split == by_name["0a1b2c3d_nohash_0.wav"].split
    assert found.words == ["yes"]
    clips, labels = dataset.assign_labels(found, dataset.LabelPolicy(silence_percent=0))
    assert labels == ["_silence_", "_unknown_", "yes"]
    assert {c.path.name: c.label for c in clips}["backward_9f8e7d6c_nohash_0.wav"] == "_unknown_"
    # A speaker's clips stay together even across the _unknown_ folder.
    assert by_name["bed_0a1b2c3d_nohash_1.wav"].split == by_name["0a1b2c3d_nohash_0.wav"].split


def test_combined_folders_never_split_a_speaker(tmp_path):
    first = make_speech_commands(tmp_path / "a")
    second = tmp_path / "b"
    write_wav(second / "yes" / "dddd0004_nohash_5.wav", tone(440))
    write_wav(second / "yes" / "aaaa0001_nohash_5.wav", tone(440))
    (second / "testing_list.txt").write_text("yes/aaaa0001_nohash_5.wav\n")
    combined = dataset.open_datasets([first, second])
    splits: dict[str, set] = {}
    for clip in combined.clips:
        splits.setdefault(clip.speaker, set()).add(clip.split)
    assert all(len(s) == 1 for s in splits.values())
    assert splits["aaaa0001"] == {"testing"}
    assert combined.notes


def test_words_policy_samples_unknown_and_silence(speech_commands):
    found = dataset.open_datasets([speech_commands])
    policy = dataset.LabelPolicy(words=("yes",), silence_percent=50, unknown_percent=50)
    clips, labels = dataset.assign_labels(found, policy)
    assert labels == ["_silence_", "_unknown_", "yes"]
    counts = dataset.count_by_label(clips)["training"]
    assert counts == {"_silence_": 2, "_unknown_": 2, "yes": 4}
    silence = [c for c in clips if c.label == "_silence_"]
    assert all(c.is_segment and 0 < c.gain <= 1 for c in silence)
    assert dataset.assign_labels(found, policy)[0] == clips


def test_parse_words():
    assert dataset.parse_words("all") is None
    assert dataset.parse_words("yes, no,yes") == ("yes", "no")
    with pytest.raises(DatasetError):
        dataset.parse_words("yes,_silence_")


def test_missing_or_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="no such dataset folder"):
        dataset.scan(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no audio found"):
        dataset.scan(tmp_path / "empty")


def test_load_clips_caches_decoded_audio(speech_commands, tmp_path, monkeypatch):
    found = dataset.open_datasets([speech_commands])
    clips, _ = dataset.assign_labels(found, dataset.LabelPolicy(silence_percent=25))
    first, kept, failed = cache.load_clips(clips, 8000, 8000, cache.AudioCache(8000, tmp_path))
    assert first.shape == (len(clips), 8000) and not failed and kept == clips
    calls = []
    original = cache.audio.load
    monkeypatch.setattr(cache.audio, "load", lambda *a: calls.append(a) or original(*a))
    second, _, _ = cache.load_clips(clips, 8000, 8000, cache.AudioCache(8000, tmp_path))
    np.testing.assert_array_equal(first, second)
    assert calls == []
    changed = clips[0].path
    write_wav(changed, tone(3000, 0.5))
    cache.load_clips(clips, 8000, 8000, cache.AudioCache(8000, tmp_path))
    assert [call[0] for call in calls] == [changed]


def test_load_clips_skips_unreadable_files(speech_commands):
    (speech_commands / "yes" / "aaaa0001_nohash_0.wav").write_bytes(b"")
    found = dataset.open_datasets([speech_commands])
    clips, _ = dataset.assign_labels(found, dataset.LabelPolicy(silence_percent=0))
    batch, kept, failed = cache.load_clips(clips, 16000, 16000)
    assert len(kept) == len(clips) - 1 == len(batch)
    assert [p.name for p in failed] == ["aaaa0001_nohash_0.wav"]


def test_dataset_command_json_and_warnings(speech_commands):
    write_wav(speech_commands / "yes" / "eeee0005_nohash_0.wav", tone(440, 1.0, 8000), 8000)
    (speech_commands / "no" / "ffff0006_nohash_0.wav").write_bytes(b"RIFF")
    (speech_commands / "go").mkdir()
    result = CliRunner().invoke(cli, ["dataset", str(speech_commands), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["files"] == {"training": 14, "validation": 6, "testing": 6}
    assert summary["counts"]["validation"]["yes"] == 2
    warnings = "\n".join(summary["warnings"])
    assert "eeee0005_nohash_0.wav: sample rate 8000 Hz" in warnings
    assert "ffff0006_nohash_0.wav" in warnings
    assert "'go' holds no audio" in warnings
    assert [Path(u["path"]).name for u in summary["unreadable"]] == ["ffff0006_nohash_0.wav"]


def test_dataset_command_words_unreadable_files_as_reading_audio_does(speech_commands,
                                                                     capsys):
    from test_recordings import write_unreadable

    write_unreadable(speech_commands / "up")
    with pytest.raises(SystemExit) as exit_info:
        main(["dataset", str(speech_commands)])
    assert exit_info.value.code == 1  # some inputs cannot be read
    warned = {line for line in capsys.readouterr().err.splitlines() if "/up/" in line}
    up = speech_commands / "up"
    assert warned == {
        f"kws: warning: {up / 'cut.wav'}: truncated WAV: header declares 32000 bytes of "
        "audio but the file holds 15978",
        f"kws: warning: {up / 'empty.wav'}: empty file (0 bytes)",
        f"kws: warning: {up / 'text.wav'}: not an audio file soundfile can read (format "
        "not recognised)"}  # NaN samples are only found decoding, not in the header


def test_dataset_command_table(speech_commands):
    result = CliRunner().invoke(cli, ["dataset", str(speech_commands)])
    assert result.exit_code == 0
    assert "training" in result.stdout and "speakers" in result.stdout


def test_dataset_command_warns_of_words_not_found(speech_commands):
    result = CliRunner().invoke(cli, ["dataset", str(speech_commands), "--words", "zzz,yes,qq"])
    assert result.exit_code == 0, result.output
    assert f"no clips of zzz, qq in {speech_commands}" in result.stderr
    summary = dataset.describe([speech_commands], dataset.LabelPolicy(words=("zzz",)))
    assert f"no clips of zzz in {speech_commands}" in summary["warnings"]


def test_resplit_by_speaker_keeps_speakers_together(tmp_path):
    root = tmp_path / "test12"
    for i in range(40):
        for n in range(2):
            write_wav(root / "yes" / f"{i:08x}_nohash_{n}.wav", tone(440, 0.1))
    found = dataset.resplit_by_speaker(dataset.scan(root), 10, 50, salt="x")
    by_speaker: dict[str, set] = {}
    for clip in found.clips:
        by_speaker.setdefault(clip.speaker, set()).add(clip.split)
    assert all(len(splits) == 1 for splits in by_speaker.values())
    share = sum(c.split == "testing" for c in found.clips) / len(found.clips)
    assert 0.3 < share < 0.7
    assert {c.split for c in found.clips} == {"training", "validation", "testing"}


def test_open_datasets_resplits_named_folders_only(tmp_path, speech_commands):
    other = tmp_path / "test12"
    for i in range(30):
        write_wav(other / "yes" / f"{i:08x}_nohash_0.wav", tone(440, 0.1))
    combined = dataset.open_datasets([speech_commands, other], resplit=[other])
    resplit = {c.split for c in combined.clips if c.path.is_relative_to(other)}
    assert resplit == {"training", "validation", "testing"}
    listed = {
        (c.speaker, c.split) for c in combined.clips if c.path.is_relative_to(speech_commands)
    }
    assert ("cccc0003", "validation") in listed
    with pytest.raises(DatasetError, match="not a --data"):
        dataset.open_datasets([speech_commands], resplit=[other])


def test_scan_records_what_it_skips_and_why(speech_commands, tmp_path):
    yes = speech_commands / "yes"
    (yes / "gone_nohash_0.wav").symlink_to(tmp_path / "nowhere.wav")
    os.mkfifo(yes / "pipe_nohash_0.wav")
    (yes / "dir_nohash_0.wav").mkdir()
    (yes / "loop_nohash_0.wav").symlink_to(yes / "loop_nohash_0.wav")
    (yes / ".hidden.wav").write_bytes(b"ignored")
    (yes / "README.txt").write_text("ignored")
    found = dataset.scan(speech_commands)
    reasons = {path.name: reason for path, reason in found.skipped}
    assert reasons == {
        "gone_nohash_0.wav": "skipped: dangling symbolic link",
        "pipe_nohash_0.wav": "skipped: not a regular file (a pipe, device or socket)",
        "dir_nohash_0.wav": "skipped: a folder, not an audio file",
        "loop_nohash_0.wav": "skipped: symbolic link loop",
    }
    assert all(clip.path.name not in reasons for clip in found.clips)
    assert len(found.clips) == 24
    # Notes carry them, so every command that warns notes warns these.
    assert any("dangling symbolic link" in note for note in found.notes)


def test_unreadable_word_folder_is_recorded_not_fatal(speech_commands, monkeypatch):
    locked = speech_commands / "no"
    real_iterdir = type(locked).iterdir

    def iterdir(self):
        if self == locked:
            raise PermissionError(13, "Permission denied", str(self))
        return real_iterdir(self)

    monkeypatch.setattr(type(locked), "iterdir", iterdir)
    found = dataset.scan(speech_commands)
    assert (locked, "folder skipped: permission denied") in found.skipped
    assert {clip.word for clip in found.clips} == {"yes", "up"}


def test_dataset_command_groups_skipped_entries(speech_commands, tmp_path):
    for n in range(5):
        (speech_commands / "yes" / f"x{n}_nohash_0.wav").symlink_to(tmp_path / f"none{n}")
    result = CliRunner().invoke(cli, ["dataset", str(speech_commands), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert len(summary["skipped"]) == 5
    assert "5 files: skipped: dangling symbolic link (first:" in "\n".join(summary["warnings"])


def test_missing_dataset_folder_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="no such dataset folder"):
        dataset.open_datasets([tmp_path / "nope"])
    with pytest.raises(SystemExit) as exit_info:
        main(["dataset", str(tmp_path / "nope")])
    assert exit_info.value.code == 2


def test_list_file_that_is_not_text_is_one_line_error(speech_commands):
    (speech_commands / "testing_list.txt").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DatasetError, match="not a text list"):
        dataset.scan(speech_commands)


def test_names_that_are_not_utf8_are_scanned_and_checked(speech_commands):
    name = os.fsdecode(b"eeee0005_nohash_\xe9.wav")
    write_wav(speech_commands / "yes" / "tmp.wav", tone(440, 1.0)).rename(
        speech_commands / "yes" / name)
    summary = dataset.describe([speech_commands])
    assert summary["files"]["training"] == 13
    assert not [w for w in summary["warnings"] if "eeee0005" in w]


def test_dataset_table_is_tab_separated_when_piped(speech_commands):
    result = CliRunner().invoke(cli, ["dataset", str(speech_commands)])
    assert result.exit_code == 0
    assert "label\ttraining\tvalidation\ttesting\ttotal" in result.stdout
    assert "yes\t4\t2\t2\t8" in result.stdout
