"""Phone models on continuous speech: transcribed folders, length batches, any-length models."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_speech_commands, tone, write_wav

from kws.cli import cli
from kws.phones.ctc import frames_needed
from kws.phones.data import LengthBatches, bucket_length, padded, read_examples
from kws.phones.lexicon import parse_lexicon
from kws.phones.utterances import scan_transcripts, utterance_pronunciations

RATE = 8000
LEXICON = parse_lexicon("yes y eh s\nno n ow\ngo g ow\nstop s t aa p\nthe dh ah\nthe dh iy\n"
                        "enter eh n t er\nenter eh n er\n", "test lexicon")
#: ``(file, speaker, transcript, seconds)``: three speakers, one utterance saying "enter".
UTTERANCES = [
    ("anna/a1.wav", "anna", "Yes, no!", 1.3), ("anna/a2.wav", "anna", "go stop the", 2.6),
    ("bert/b1.wav", "bert", "no go", 1.2), ("bert/b2.wav", "bert", "enter yes", 1.7),
    ("cara/c1.wav", "cara", "stop", 0.8), ("cara/c2.wav", "cara", "the yes no go", 3.1),
]


def make_transcribed(root, rows=UTTERANCES, extra: str = ""):
    """A folder of synthetic utterances and its transcripts.tsv."""
    lines = ["file\tspeaker\ttranscript"]
    for index, (name, speaker, text, seconds) in enumerate(rows):
        write_wav(root / name, tone(200 + 40 * index, seconds, RATE), RATE)
        lines.append(f"{name}\t{speaker}\t{text}")
    (root / "transcripts.tsv").write_text("\n".join(lines) + "\n" + extra)
    return root


def test_transcribed_folder_is_read_by_speaker_with_notes(tmp_path):
    root = make_transcribed(tmp_path / "talk", extra="missing.wav\tdan\tyes\n")
    utterances, notes = scan_transcripts(root, 30.0, 30.0)
    assert [u.words for u in utterances][:2] == [("yes", "no"), ("go", "stop", "the")]
    by_speaker: dict[str, set[str]] = {}
    for utterance in utterances:
        by_speaker.setdefault(utterance.speaker, set()).add(utterance.split)
    assert all(len(splits) == 1 for splits in by_speaker.values())  # a speaker, one split
    assert any("missing.wav" in note for note in notes)


def test_utterance_targets_concatenate_pronunciations_and_exclude_words(tmp_path):
    root = make_transcribed(tmp_path / "talk")
    examples, _, notes = read_examples([root], LEXICON, exclude=("enter",),
                                       validation_percent=0.0, testing_percent=0.0)
    assert len(examples) == 5 and all(e.word is None for e in examples)
    assert any("1 utterance(s) saying an excluded word" in note for note in notes)
    second = next(e for e in examples if e.clip.path.name == "a2.wav")
    assert second.references == (("g", "ow", "s", "t", "aa", "p", "dh", "ah"),
                                 ("g", "ow", "s", "t", "aa", "p", "dh", "iy"))


def test_utterance_pronunciations_change_one_word_at_a_time():
    prons = [(("a",), ("b",)), (("c",),), (("d",), ("e",), ("f",))]
    assert utterance_pronunciations(prons, limit=3) == (("a", "c", "d"), ("b", "c", "d"),
                                                       ("a", "c", "e"))
    assert frames_needed(["a", "a", "b"]) == 4


def _length_batches(shuffle=True, seed=3, augmentation=None):
    lengths = [8000, 8000, 8000, 8000, 12000, 12000, 20000, 3000]
    waveforms = np.empty(len(lengths), dtype=object)
    targets = np.empty(len(lengths), dtype=object)
    for index, length in enumerate(lengths):
        waveforms[index] = np.full(length, index + 1, dtype=np.float32)
        targets[index] = [[1, 2, 3][: 1 + index % 3], [4]]
    return LengthBatches(waveforms, targets, RATE, seconds_per_batch=2.0, alternatives=2,
                         seed=seed, shuffle=shuffle, augmentation=augmentation), waveforms


def test_length_batches_group_by_length_and_pad():
    batches, waveforms = _length_batches()
    assert bucket_length(3000, RATE) == 4000 and bucket_length(12000, RATE) == 12000
    # Buckets 4000 (1 clip), 8000 (4 clips, 2 per batch), 12000 (2 clips, 1 per batch),
    # 20000 (1 clip): 1 + 2 + 2 + 1 steps, every epoch.
    assert batches.steps == 6
    for epoch in (0, 1):
        seen = []
        for index in range(batches.steps):
            x, y = batches.batch(epoch, index)
            rows = [int(row[0]) - 1 for row in x]
            seen += rows
            assert x.shape[1] == bucket_length(max(len(waveforms[r]) for r in rows), RATE)
            for row, r in zip(x, rows, strict=True):
                assert np.all(row[: len(waveforms[r])] == r + 1)
                assert np.all(row[len(waveforms[r]):] == 0)  # zero padding
            assert y.shape[:2] == (len(rows), 2) and y[0, 1, 0] == 1  # second alternative
        assert sorted(seen) == list(range(8))
    again, _ = _length_batches()
    assert np.array_equal(again.batch(1, 2)[0], batches.batch(1, 2)[0])  # pure function
    assert batches.shapes([(2, 8000), (2, 2, 4)]) == [(None, None), (None, 2, None)]


def test_speed_changed_length_batches_keep_each_recording_whole():
    from kws.augment import Augmentation

    settings = Augmentation(background_probability=0.0, shift=0.0, gain_db=(0.0, 0.0),
                            speed=0.1)
    batches, waveforms = _length_batches(augmentation=settings)
    lengths = []
    for index in range(batches.steps):
        x, _ = batches.batch(0, index)
        for row in x:
            r = int(row[0]) - 1
            voiced = int(np.count_nonzero(row))  # the recording, then zero padding
            assert np.all(row[:voiced] == r + 1) and not row[voiced:].any()
            assert len(waveforms[r]) / 1.1 - 1 <= voiced <= len(waveforms[r]) / 0.9 + 1
            lengths.append(voiced / len(waveforms[r]))
            assert x.shape[1] >= bucket_length(voiced, RATE)  # never cut
    assert max(lengths) - min(lengths) > 0.02  # each recording its own speed
    assert np.array_equal(batches.batch(0, 1)[0], batches.batch(0, 1)[0])  # pure function


def test_validation_length_batches_keep_every_recording():
    batches, _ = _length_batches(shuffle=False)
    rows = [int(row[0]) - 1 for i in range(batches.steps) for row in batches.batch(0, i)[0]]
    assert sorted(rows) == list(range(8))


def test_phone_model_ignores_zero_padding():
    from kws.models.phones import build_phone_model

    model = build_phone_model(40, RATE, None, channels=16, dilations=(1, 2), seed=0)
    clip = tone(300, 1.0, RATE) * np.linspace(0.1, 1, RATE, dtype=np.float32)
    alone = model.predict_on_batch(clip[None])
    longer = model.predict_on_batch(padded([clip], 2 * RATE))
    assert longer.shape[1] == 2 * alone.shape[1]
    # Only the smoothing across the recording's last frames sees the padding.
    np.testing.assert_allclose(longer[0, :40], alone[0, :40], atol=5e-3)


@pytest.fixture(scope="module")
def talk_model(tmp_path_factory):
    """A phone model trained one epoch on utterances and clips, with its LiteRT file."""
    base = tmp_path_factory.mktemp("talk")
    talk = make_transcribed(base / "talk")
    clips = make_speech_commands(base / "clips", rate=RATE)
    lexicon = base / "lexicon.txt"
    lexicon.write_text(LEXICON.to_text())
    out = base / "model"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KWS_CACHE_DIR", str(base / "cache"))
        result = CliRunner().invoke(cli, [
            "phones", "train", "--data", str(talk), "--data", str(clips), "--out", str(out),
            "--epochs", "1", "--rate", str(RATE), "--lexicon", str(lexicon),
            "--window-seconds", "2", "--json"])
    assert result.exit_code == 0, result.output
    return talk, out, json.loads(result.stdout)


def test_training_on_utterances_writes_a_litert_model(talk_model):
    talk, out, summary = talk_model
    card = json.loads((out / "card.json").read_text())
    assert card["input_length"] == 2 * RATE  # the window
    assert card["data"]["utterances"]["training"] >= 1
    assert card["exports"]["model.tflite"]["top1_agreement"] >= 0.99
    assert (out / "model.tflite").is_file() and summary["export"]["file"]


def test_litert_recognizer_reads_recordings_longer_than_its_window(talk_model, tmp_path):
    from kws.phones.recognizer import PhoneRecognizer

    _, out, _ = talk_model
    recognizer = PhoneRecognizer(out)
    assert recognizer.runner.name == "tflite"
    long = tone(250, 5.0, RATE)
    posteriors = recognizer.posteriors([long, long[:RATE]])
    assert [len(p) for p in posteriors] == [250, 50]  # 20 ms frames of each recording
    np.testing.assert_allclose(posteriors[0].sum(axis=1), 1.0, atol=1e-4)
