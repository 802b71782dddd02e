"""Folders of long recordings (kws.recordings): layouts, transcripts, split, windows."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from conftest import tone, write_wav

from kws import recordings
from kws.dataset import SPLITS, TRAINING, UNKNOWN
from kws.errors import DatasetError, MissingInputError
from kws.recordings import Recording

SPEAKERS = [f"sp{index:02d}" for index in range(40)]


def make_an4(root: Path, rate: int = 16000) -> Path:
    """An an4-like folder: ``<speaker>/<utt>.flac`` and transcripts (file, speaker, transcript)."""
    lines = ["file\tspeaker\ttranscript"]
    for index, speaker in enumerate(SPEAKERS):
        for n, text in enumerate(("Yes, stop!", "e x i t", "rubout enter")):
            name = f"{speaker}/utt{n}-{speaker}.flac"
            seconds = 1.5 + 0.25 * ((index + n) % 4)
            write_wav(root / name, tone(300 + 10 * n, seconds, rate), rate)
            lines.append(f"{name}\t{speaker}\t{text}")
    (root / "transcripts.tsv").write_text("\n".join(lines) + "\n")
    return root


def make_arctic(root: Path, count: int = 30, rate: int = 16000) -> Path:
    """An arctic_cathy-like folder: flat files, transcripts (file, prompt, transcript)."""
    lines = ["file\tprompt\ttranscript"]
    for n in range(count):
        name = f"arctic_a{n:04d}.flac"
        write_wav(root / name, tone(200 + n, 2.0 + (n % 3), rate), rate)
        text = "he won't go there" if n % 5 == 0 else "the forty-two men shook hands"
        lines.append(f"{name}\tarctic_a{n:04d}\t{text}")
    (root / "transcripts.tsv").write_text("\n".join(lines) + "\n")
    return root


def write_unreadable(folder: Path, rate: int = 16000) -> list[Path]:
    """Audio files no command can read: empty, text named .wav, a WAV cut short, NaN."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.wav").write_bytes(b"")
    (folder / "text.wav").write_text("not audio\n")
    whole = write_wav(folder / "whole.wav", tone(300, 1.0, rate), rate).read_bytes()
    (folder / "whole.wav").unlink()
    (folder / "cut.wav").write_bytes(whole[: len(whole) // 2])
    nan = tone(300, 0.5, rate)
    nan[10] = np.nan
    write_wav(folder / "nan.wav", nan, rate, subtype="FLOAT")
    return sorted(folder.glob("*.wav"))


def test_words_are_lower_case_without_punctuation():
    assert recordings.words_of("Yes, STOP! forty-two: isn't it \"go\"?") == [
        "yes", "stop", "forty", "two", "isn't", "it", "go"]
    assert recordings.words_of("'quoted' _under_score_ ...") == ["quoted", "under", "score"]


def test_an4_layout_reads_speakers_and_transcripts(tmp_path):
    folder = recordings.read_recordings(make_an4(tmp_path / "an4"))
    assert folder.layout == "transcripts" and len(folder.recordings) == 3 * len(SPEAKERS)
    first = folder.recordings[0]
    assert first.speaker == "sp00" and first.path == tmp_path / "an4/sp00/utt0-sp00.flac"
    assert first.words == {"yes", "stop"}
    assert first.keyword_counts(["stop", "go", "Yes"]) == {"stop": 1, "go": 0, "yes": 1}
    assert first.contains_any(["STOP"]) and not first.contains_any(["go", "no"])


def test_arctic_layout_has_no_speaker_and_ignores_other_columns(tmp_path):
    folder = recordings.read_recordings(make_arctic(tmp_path / "arctic", count=5))
    assert [r.speaker for r in folder.recordings] == [None] * 5
    assert folder.recordings[0].transcript == "he won't go there"
    assert folder.recordings[1].keyword_counts(["two", "forty", "four"]) == {
        "two": 1, "forty": 1, "four": 0}
    assert folder.recordings[1].split_key == "arctic_a0001.flac"


def test_plain_folder_has_no_transcripts_and_speakers_from_subfolders(tmp_path):
    write_wav(tmp_path / "plain/alice/a.wav", tone(300, 2.0))
    write_wav(tmp_path / "plain/top.wav", tone(300, 2.0))
    (tmp_path / "plain/notes.txt").write_text("not audio")
    folder = recordings.read_recordings(tmp_path / "plain")
    assert folder.layout == "plain"
    assert sorted((r.path.name, r.speaker, r.transcript) for r in folder.recordings) == [
        ("a.wav", "alice", None), ("top.wav", None, None)]
    assert not any(r.contains_any(["yes"]) for r in folder.recordings)


def test_listed_missing_and_unlisted_files_are_skipped_with_reasons(tmp_path):
    root = make_arctic(tmp_path / "arctic", count=3)
    (root / "arctic_a0001.flac").unlink()
    write_wav(root / "extra.wav", tone(300, 1.0))
    folder = recordings.read_recordings(root)
    assert len(folder.recordings) == 2
    reasons = dict(folder.skipped)
    assert reasons[root / "arctic_a0001.flac"] == "listed in transcripts.tsv but missing"
    assert "not listed" in reasons[root / "extra.wav"]
    assert any("extra.wav" in note for note in folder.notes)


def test_a_folder_whose_listed_files_are_all_unusable_names_them(tmp_path):
    root = tmp_path / "talk"
    (root / "sub").mkdir(parents=True)
    rows = ["missing.wav", "sub", '"quoted.wav"', "gone/a.wav", "gone/b.wav"]
    (root / "transcripts.tsv").write_text(
        "file\ttranscript\n" + "".join(f"{row}\tyes\n" for row in rows))
    with pytest.raises(DatasetError) as error:
        recordings.read_recordings(root)
    assert str(error.value) == (
        f"{root}: no recordings found (no file listed in transcripts.tsv is usable: "
        "missing.wav: missing; sub: a folder, not an audio file; "
        '"quoted.wav": missing (file names are written without quotes); and 2 more)')


@pytest.mark.parametrize(("content", "message"), [
    ("", "transcripts.tsv:1: no header line"),
    ("file\tspeaker\nx.wav\ts\n", "transcripts.tsv:1: missing column transcript"),
    ("file\tfile\ttranscript\n", "transcripts.tsv:1: a column is named twice"),
    ("file\tspeaker\ttranscript\na.wav\ts\tyes\nb.wav\tno\n",
     "transcripts.tsv:3: expected 3 tab-separated fields (file, speaker, transcript), found 2"),
    ("file\ttranscript\na.wav\tyes\n\na.wav\tno\n",
     "transcripts.tsv:4: a.wav is listed twice (first on line 2)"),
    ("file\ttranscript\n\tyes\n", "transcripts.tsv:2: empty file name"),
    ("file\ttranscript\n../outside.wav\tyes\n", "transcripts.tsv:2: ../outside.wav is not a path"),
    ("file\ttranscript\n/etc/x.wav\tyes\n", "transcripts.tsv:2: /etc/x.wav is not a path"),
])
def test_malformed_transcripts_are_one_line_errors_naming_the_line(tmp_path, content, message):
    root = tmp_path / "folder"
    write_wav(root / "a.wav", tone(300, 1.0))
    (root / "transcripts.tsv").write_text(content)
    with pytest.raises(DatasetError) as error:
        recordings.read_recordings(root)
    assert str(error.value).startswith(f"{root}/{message}")
    assert "\n" not in str(error.value)


def test_transcripts_not_utf8_names_the_line(tmp_path):
    root = tmp_path / "folder"
    root.mkdir()
    (root / "transcripts.tsv").write_bytes(b"file\ttranscript\na.wav\tyes\nb.wav\tcaf\xe9\n")
    with pytest.raises(DatasetError, match=r"transcripts.tsv:3: not UTF-8 text$"):
        recordings.read_recordings(root)


def test_missing_folder_is_a_usage_error_and_empty_folder_an_error(tmp_path):
    with pytest.raises(MissingInputError, match="no such folder of recordings"):
        recordings.read_recordings(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no recordings found"):
        recordings.read_recordings(tmp_path / "empty")


def test_keyword_free_selection(tmp_path):
    folder = recordings.read_recordings(make_arctic(tmp_path / "arctic", count=10))
    free, said = recordings.keyword_free(folder.recordings, ["go", "Four"])
    assert [r.path.name for r in said] == ["arctic_a0000.flac", "arctic_a0005.flac"]
    assert len(free) == 8 and all("go" not in r.words for r in free)
    # "won't" is not "won", "forty" is not "four": whole normalised words only
    free, said = recordings.keyword_free(folder.recordings, ["won", "four"])
    assert said == [] and len(free) == 10
    no_transcript = Recording(Path("x.wav"), None, None)
    assert recordings.keyword_free([no_transcript], ["go"]) == ([no_transcript], [])


def test_split_keeps_each_speaker_in_one_split_and_is_stable(tmp_path):
    folder = recordings.read_recordings(make_an4(tmp_path / "an4"))
    splits = recordings.split_recordings(folder.recordings)
    assert sum(len(v) for v in splits.values()) == len(folder.recordings)
    speakers = {split: {r.speaker for r in found} for split, found in splits.items()}
    assert all(speakers[a].isdisjoint(speakers[b]) for a in SPLITS for b in SPLITS if a != b)
    assert all(speakers[split] for split in SPLITS)  # 40 speakers: every split has some
    # Stable: depends on the key alone, not on what else is in the folder or its order.
    again = recordings.split_recordings(list(reversed(folder.recordings[:30])))
    for split, found in again.items():
        assert {r.path for r in found} <= {r.path for r in splits[split]}
    assert recordings.split_of(Recording(Path("elsewhere/x.flac"), "sp03", "yes")) == \
        recordings.split_of(folder.recordings[9])
    # Without a speaker, the file name is the key.
    file_splits = recordings.split_recordings(
        Recording(Path(f"f{n}.flac"), None, "") for n in range(200))
    assert all(20 <= len(v) for v in (file_splits["training"], file_splits["testing"]))


def test_durations_from_headers_and_problems(tmp_path):
    good = write_wav(tmp_path / "good.wav", tone(300, 2.5))
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really")
    found, problems = recordings.durations([Recording(good, None, None),
                                            Recording(bad, None, None)])
    assert found == {good: pytest.approx(2.5)}
    # worded as every command words it, not libsndfile's "Error opening b'...'"
    assert problems == [(bad, "not an audio file soundfile can read (format not recognised)")]


def test_cut_windows_lie_inside_their_recordings_and_are_reproducible(tmp_path):
    folder = recordings.read_recordings(make_arctic(tmp_path / "arctic", count=6))
    seconds, _ = recordings.durations(folder.recordings)

    def cut():
        return recordings.cut_windows(folder.recordings, seconds, 200, TRAINING,
                                      random.Random(7))

    windows = cut()
    assert windows == cut() and len(windows) == 200
    for clip in windows:
        assert clip.label == UNKNOWN and clip.split == TRAINING and clip.is_segment
        assert 0 <= clip.offset <= seconds[clip.path] - 1.0
    # Longer recordings give more windows (drawn uniformly over total duration).
    used = {path: sum(c.path == path for c in windows) for path in seconds}
    longest, shortest = max(seconds, key=seconds.get), min(seconds, key=seconds.get)
    assert used[longest] > used[shortest]
    assert recordings.cut_windows(folder.recordings, seconds, 0, TRAINING,
                                  random.Random(7)) == []
