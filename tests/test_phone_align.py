"""Forced alignment of transcripts and word clips cut from continuous speech
(kws phones align)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import tone, write_wav

from kws import audio
from kws.cli import cli
from kws.errors import UsageError
from kws.phones.align import ALIGNMENTS, clip_bounds, cut_word_clips, word_timings
from kws.phones.data import phone_ids
from kws.phones.phoneset import model_labels
from kws.recordings import UnreadableInputsError, read_recordings, split_of

PHONE_MODEL = Path(__file__).resolve().parent.parent / "models" / "phones"
FRAME = 0.02


def spiky_log_probs(frames: int, spikes: dict[int, str]) -> np.ndarray:
    """Log posteriors that are blank everywhere except one phone at each spike frame."""
    posteriors = np.full((frames, len(model_labels())), 1e-4)
    posteriors[:, 0] = 1.0
    for frame, phone in spikes.items():
        posteriors[frame, 0] = 1e-4
        posteriors[frame, phone_ids([phone])[0]] = 1.0
    posteriors /= posteriors.sum(axis=1, keepdims=True)
    return np.log(posteriors)


def test_words_are_placed_where_their_phones_are():
    log_probs = spiky_log_probs(100, {10: "y", 13: "eh", 16: "s", 60: "n", 63: "ow"})
    timings = word_timings(log_probs, [[("y", "eh", "s")], [("n", "ow")]], ["yes", "no"],
                           FRAME, duration=2.0)
    assert [t.word for t in timings] == ["yes", "no"]
    yes, no = timings
    assert 0.1 <= yes.start <= 10 * FRAME and 17 * FRAME <= yes.end <= 0.45
    assert 1.0 <= no.start <= 60 * FRAME and 64 * FRAME <= no.end <= 1.4
    assert yes.end <= no.start and yes.score > 0.9 and no.score > 0.9


def test_the_reading_the_model_heard_is_aligned():
    # "the" has two pronunciations; the posteriors say the second.
    log_probs = spiky_log_probs(40, {5: "dh", 8: "iy", 20: "g", 23: "ow"})
    timings = word_timings(log_probs, [[("dh", "ah"), ("dh", "iy")], [("g", "ow")]],
                           ["the", "go"], FRAME)
    assert timings[0].phones == ("dh", "iy") and timings[0].score > 0.9


def test_phones_that_cannot_fit_give_no_timings():
    log_probs = spiky_log_probs(2, {})
    assert word_timings(log_probs, [[("y", "eh", "s")]], ["yes"], FRAME) == []


@pytest.mark.parametrize(("centre", "duration", "expected"), [
    (2.0, 5.0, (1.5, 2.5)),   # inside
    (0.2, 5.0, (0.0, 1.0)),   # moved right from the start
    (4.9, 5.0, (4.0, 5.0)),   # moved left from the end
    (0.3, 0.6, (0.0, 0.6)),   # the whole of a short recording
])
def test_clip_windows_stay_inside_the_recording(centre, duration, expected):
    assert clip_bounds(centre, 1.0, duration) == pytest.approx(expected)


#: ``(file, speaker, transcript, seconds)`` of a small transcribed folder.
RECORDINGS = [("anna/a1.wav", "anna", "yes no go", 2.0), ("bert/b1.wav", "bert", "go stop", 1.5),
              ("cara/c1.wav", "cara", "stop", 0.7), ("dan/d1.wav", "dan", "up down", 1.2)]


@pytest.fixture
def transcribed(tmp_path):
    root = tmp_path / "talk"
    lines = ["file\tspeaker\ttranscript"]
    for index, (name, speaker, text, seconds) in enumerate(RECORDINGS):
        write_wav(root / name, tone(200 + 50 * index, seconds, 16000), 16000)
        lines.append(f"{name}\t{speaker}\t{text}")
    (root / "transcripts.tsv").write_text("\n".join(lines) + "\n")
    return root


def test_words_are_cut_into_a_speech_commands_folder_keeping_the_speaker_split(
        transcribed, tmp_path):
    out = tmp_path / "words"
    # Clips longer than any recording: no word (tones, not speech) is left out as too long.
    result = cut_word_clips([transcribed], out, words=["go", "stop"], model=PHONE_MODEL,
                            seconds=2.5, rate=8000, min_score=0.0)
    # Recordings saying go or stop are aligned; only those words are cut.
    assert result.aligned == 3 and result.total == 4 and not result.failed
    clips = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.wav"))
    assert clips == ["go/anna_nohash_a1_2.wav", "go/bert_nohash_b1_0.wav",
                     "stop/bert_nohash_b1_1.wav", "stop/cara_nohash_c1_0.wav"]
    assert all(len(audio.load(out / clip)) == 20000 for clip in clips)
    rows = (out / ALIGNMENTS).read_text().splitlines()
    assert len(rows) == 1 + 3 + 2 + 1  # header, then every word of the aligned recordings
    split = {rec.speaker: split_of(rec) for rec in read_recordings(transcribed).recordings}
    listed = {}
    for name, which in (("validation_list.txt", "validation"), ("testing_list.txt", "testing")):
        listed.update(dict.fromkeys((out / name).read_text().split(), which))
    for clip in clips:
        speaker = Path(clip).name.split("_nohash_")[0]
        assert listed.get(clip, "training") == split[speaker]


def test_low_scores_and_long_words_are_listed_not_cut(transcribed, tmp_path):
    result = cut_word_clips([transcribed], tmp_path / "words", words=["up", "down"],
                            model=PHONE_MODEL, seconds=0.5, min_score=0.0)
    assert result.total == result.left["longer than a clip"] == 1  # "up" is cut, not "down"
    # No clip at all: an error saying why, and no folder left behind to block a retry.
    for options, why in (({"seconds": 0.1, "min_score": 0.0}, "longer than a clip"),
                         ({"min_score": 0.999}, "low score")):
        with pytest.raises(UnreadableInputsError, match=rf"--out .*strict: no word clip cut "
                           rf"from 2 recording\(s\) \(2 word\(s\) left uncut: {why}\); "
                           "nothing was written$"):
            cut_word_clips([transcribed], tmp_path / "strict", words=["stop"],
                           model=PHONE_MODEL, **options)
        assert not (tmp_path / "strict").exists()


def test_align_refuses_what_would_lose_or_mix_data(transcribed, tmp_path):
    out = tmp_path / "words"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    with pytest.raises(UsageError, match="already exists"):
        cut_word_clips([transcribed], out, model=PHONE_MODEL)
    assert (out / "mine.txt").read_text() == "keep me"
    with pytest.raises(UsageError, match="would write over the input"):
        cut_word_clips([transcribed], transcribed / "words", model=PHONE_MODEL)
    with pytest.raises(UsageError, match="says zebra"):
        cut_word_clips([transcribed], tmp_path / "none", words=["zebra"], model=PHONE_MODEL)
    plain = tmp_path / "plain"
    write_wav(plain / "a.wav", tone(300, 1.0, 16000), 16000)
    with pytest.raises(UsageError, match="no transcripts.tsv"):
        cut_word_clips([plain], tmp_path / "other", model=PHONE_MODEL)


def test_cli_align(transcribed, tmp_path, run_cli):
    out = tmp_path / "words"
    result = CliRunner().invoke(cli, ["phones", "align", str(transcribed), "-o", str(out),
                                      "-m", str(PHONE_MODEL), "--min-score", "0",
                                      "--seconds", "2",
                                      "--words", "up,down", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["aligned"] == 1 and report["clips"] == 2
    assert sum(report["by_split"][split_of(next(
        r for r in read_recordings(transcribed).recordings if r.speaker == "dan"))].values()) == 2
    again = run_cli(["phones", "align", str(transcribed), "-o", str(out), "-m", str(PHONE_MODEL)])
    assert again.exit_code == 2 and "already exists" in again.stderr


def test_cli_align_where_every_recording_fails_names_them_and_writes_nothing(tmp_path,
                                                                            run_cli):
    from test_recordings import write_unreadable

    root = tmp_path / "talk"
    bad = write_unreadable(root / "anna")
    write_wav(root / "bert" / "short.wav", tone(300, 0.05, 16000), 16000)  # too short
    rows = [f"anna/{path.name}\tanna\tyes" for path in bad]
    rows.append("bert/short.wav\tbert\tyes no stop go up down left right")
    (root / "transcripts.tsv").write_text("file\tspeaker\ttranscript\n" + "\n".join(rows))
    out = tmp_path / "words"
    for _ in range(2):  # nothing is left behind: the retry fails the same way
        result = run_cli(["phones", "align", str(root), "-o", str(out), "-m", str(PHONE_MODEL)])
        lines = result.stderr.strip().splitlines()
        assert result.exit_code == 1 and result.stdout == ""
        assert sorted(line.split(": ")[2] for line in lines[:-1]) == sorted(
            [str(path) for path in bad] + [str(root / "bert" / "short.wav")])
        assert "short.wav: its phones do not fit in its frames" in result.stderr
        assert lines[-1] == (f"kws: error: --out {out}: no word clip cut from 5 recording(s) "
                             "(5 could not be read or aligned); nothing was written")
        assert not out.exists()


def test_a_recording_with_an_unpronounceable_word_is_left_out_by_name(transcribed, tmp_path):
    write_wav(transcribed / "eve" / "e1.wav", tone(400, 1.0, 16000), 16000)
    with (transcribed / "transcripts.tsv").open("a") as table:
        table.write("eve/e1.wav\teve\tgo 123\n")
    result = cut_word_clips([transcribed], tmp_path / "words", words=["go"], model=PHONE_MODEL,
                            seconds=2.5, min_score=0.0)
    assert result.aligned == 2  # anna and bert; eve's recording is left out
    assert any("e1.wav: left out: cannot pronounce '123'" in note for note in result.notes)
