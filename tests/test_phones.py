"""Phones: lexicon, TIMIT reader and folding, CTC, decoding, PER, spotting, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile
from click.testing import CliRunner
from conftest import make_speech_commands, tone, write_wav

from kws.cli import cli
from kws.dataset import V1_WORDS
from kws.errors import DatasetError, UsageError
from kws.phones import ctc, recognizer
from kws.phones.data import phone_ids
from kws.phones.lexicon import (
    LexiconError,
    continuation_pronunciations,
    default_lexicon,
    default_lexicon_path,
    parse_lexicon,
    read_lexicon,
    rival_pronunciations,
)
from kws.phones.metrics import PhoneErrors, closest_reference, edit_distance
from kws.phones.phoneset import PHONES, TIMIT_61, fold, fold_sequence, model_labels
from kws.phones.timit import audio_beside, is_timit_folder, read_phn, scan_timit

# ----------------------------------------------------------------------------- lexicon


def test_lexicon_pronunciations_comments_and_cmudict_style():
    text = """# a comment line
    ;;; CMUdict comment
    tree   t r iy        # trailing comment
    TREE   ch r iy
    tree(2)  T R IY1     # duplicate of the first, in CMUdict style
    dog    D AO1 G
    vision v ih zh ah n
    """
    lexicon = parse_lexicon(text, "mine.txt")
    assert lexicon.words == ["tree", "dog", "vision"]
    assert lexicon.pronunciations("tree") == (("t", "r", "iy"), ("ch", "r", "iy"))
    assert lexicon.pronunciations("Dog") == (("d", "aa", "g"),)  # AO folds to aa
    assert lexicon.pronunciations("vision") == (("v", "ih", "sh", "ah", "n"),)
    assert "TREE" in lexicon and "cat" not in lexicon
    again = parse_lexicon(lexicon.to_text())
    assert again.entries == lexicon.entries


@pytest.mark.parametrize(("text", "message"), [
    ("yes y eh s\nno n xx ow\n", r"mine\.txt:2: unknown phone 'xx' for 'no'"),
    ("yes\n", r"mine\.txt:1: 'yes' has no phones"),
    ("# nothing\n\n", r"mine\.txt: no pronunciations found"),
    ("bad q\n", r"mine\.txt:1: 'bad' has no phones"),
])
def test_lexicon_bad_lines(text, message):
    with pytest.raises(LexiconError, match=message):
        parse_lexicon(text, "mine.txt")


def test_lexicon_missing_word_and_missing_file(tmp_path):
    lexicon = parse_lexicon("yes y eh s\n", "mine.txt")
    with pytest.raises(LexiconError, match=r"mine\.txt: no pronunciation of 'marvin'"):
        lexicon.pronunciations("marvin")
    assert lexicon.missing(["yes", "no", "up", "no"]) == ["no", "up"]
    with pytest.raises(LexiconError, match="no such lexicon file"):
        read_lexicon(tmp_path / "absent.txt")
    (tmp_path / "latin1.txt").write_bytes(b"caf\xe9 k ae f ey\n")
    with pytest.raises(LexiconError, match="not a UTF-8"):
        read_lexicon(tmp_path / "latin1.txt")


def test_shipped_lexicon_covers_speech_commands():
    lexicon = default_lexicon()
    assert default_lexicon_path().name == "lexicon.txt"
    assert lexicon.missing(V1_WORDS) == []
    assert len(lexicon.pronunciations("zero")) >= 2
    used = {p for word in lexicon for pron in lexicon.pronunciations(word) for p in pron}
    assert used <= set(PHONES)


# ----------------------------------------------------------------------------- folding


def test_phone_set_and_folding():
    assert len(PHONES) == 39 and len(TIMIT_61) == 61
    assert model_labels()[0] == "<blank>" and model_labels()[1:] == list(PHONES)
    expected = {"ao": "aa", "ax": "ah", "ax-h": "ah", "axr": "er", "ix": "ih", "el": "l",
                "em": "m", "en": "n", "nx": "n", "eng": "ng", "hv": "hh", "ux": "uw",
                "zh": "sh", "h#": "sil", "pau": "sil", "epi": "sil", "bcl": "sil",
                "dcl": "sil", "gcl": "sil", "pcl": "sil", "tcl": "sil", "kcl": "sil",
                "dx": "dx", "aa": "aa", "AE1": "ae"}
    for label, phone in expected.items():
        assert fold(label) == phone
    assert fold("q") is None
    assert {fold(label) for label in TIMIT_61} - {None} == set(PHONES)
    with pytest.raises(ValueError):
        fold("xyz")
    assert fold_sequence(["h#", "pau", "pcl", "p", "q", "iy", "h#"]) == ["sil", "p", "iy", "sil"]


# ----------------------------------------------------------------------------- TIMIT


def _write_utterance(folder, name, phones, rate=16000, fmt="NIST", suffix=".WAV"):
    """An utterance of ``phones`` (label, duration in samples) as audio + .PHN."""
    folder.mkdir(parents=True, exist_ok=True)
    lines, position = [], 0
    for label, length in phones:
        lines.append(f"{position} {position + length} {label}")
        position += length
    wave = tone(300.0, position / rate, rate)
    soundfile.write(folder / f"{name}{suffix}", wave, rate, format=fmt, subtype="PCM_16")
    (folder / f"{name}.PHN").write_text("\n".join(lines) + "\n")


SENTENCE = [("h#", 2000), ("hv", 800), ("ae", 1600), ("pcl", 400), ("p", 300), ("iy", 1500),
            ("q", 200), ("ix", 700), ("zh", 900), ("h#", 2000)]


def test_timit_layout_reader(tmp_path):
    root = tmp_path / "timit"
    _write_utterance(root / "TRAIN" / "DR1" / "FCJF0", "SI1027", SENTENCE)
    _write_utterance(root / "TRAIN" / "DR1" / "FCJF0", "SA1", SENTENCE)
    _write_utterance(root / "TEST" / "DR2" / "MABC0", "SX10", SENTENCE[:6])
    (root / "TEST" / "DR2" / "MABC0" / "SX11.PHN").write_text("0 100 h#\n")
    assert is_timit_folder(root)
    utterances, problems = scan_timit(root)
    assert [u.name for u in utterances] == ["MABC0/SX10", "FCJF0/SI1027"]  # SA left out
    assert problems == [f"{root}/TEST/DR2/MABC0/SX11.PHN: no audio file beside this "
                        "transcription"]
    test, train = utterances
    assert test.split == "testing" and train.split in ("training", "validation")
    assert train.phones == ["sil", "hh", "ae", "sil", "p", "iy", "ih", "sh", "sil"]
    assert train.segments[0] == (0, 2000, "h#")
    assert soundfile.info(train.audio).format == "NIST"
    with_sa, _ = scan_timit(root, include_sa=True)
    assert len(with_sa) == 3


def test_timit_format_folder_with_wav(tmp_path):
    root = tmp_path / "any"
    _write_utterance(root / "spk1", "utt1", SENTENCE, fmt="WAV", suffix=".wav")
    (root / "spk1" / "utt1.txt").write_text("not audio")
    assert audio_beside(root / "spk1" / "utt1.PHN") == root / "spk1" / "utt1.wav"
    utterances, _ = scan_timit(root)
    assert utterances[0].speaker == "spk1" and utterances[0].phones[1] == "hh"
    assert not is_timit_folder(make_speech_commands(tmp_path / "sc"))


def test_timit_training_data(tmp_path):
    from kws.phones.config import PhoneTrainConfig
    from kws.phones.data import phone_ids, prepare_phone_data
    from kws.phones.train import PhonesTask
    from kws.train import TrainEvents

    root = tmp_path / "timit"
    for speaker in ("FAAA0", "MBBB0", "FCCC0"):
        _write_utterance(root / "TRAIN" / "DR1" / speaker, "SI1", SENTENCE)
    _write_utterance(root / "TEST" / "DR1" / "MDDD0", "SX1", SENTENCE[:6] + [("h#", 12000)])
    config = PhonesTask().resolve(PhoneTrainConfig(data=(str(root),), out=str(tmp_path / "m"),
                                                   silence_percent=0.0, validation_percent=0.0))
    data = prepare_phone_data(config, default_lexicon(), TrainEvents())
    assert data.length == 48000  # the saved model's window (3 s); training takes any length
    assert [len(w) for w in data.x["training"]] == [10400] * 3  # each utterance whole
    assert [len(w) for w in data.x["testing"]] == [18600]
    folded = ["sil", "hh", "ae", "sil", "p", "iy", "ih", "sh", "sil"]
    assert data.examples["training"][0].references == (tuple(folded),)
    assert data.y["training"][0] == [phone_ids(folded)]


@pytest.mark.parametrize(("content", "message"), [
    ("0 100\n", r"x\.PHN:1: expected 'START END PHONE'"),
    ("0 100 h#\n100 50 aa\n", r"x\.PHN:2: bad sample range 100\.\.50"),
    ("0 100 xx\n", r"x\.PHN:1: unknown phone 'xx'"),
    ("\n", r"x\.PHN: no phones"),
])
def test_phn_errors(tmp_path, content, message):
    (tmp_path / "x.PHN").write_text(content)
    with pytest.raises(DatasetError, match=message):
        read_phn(tmp_path / "x.PHN")


def test_scan_timit_errors(tmp_path):
    with pytest.raises(DatasetError, match="no such dataset folder"):
        scan_timit(tmp_path / "missing")
    with pytest.raises(DatasetError, match=r"no \.PHN phone transcriptions found"):
        scan_timit(make_speech_commands(tmp_path / "sc"))


# ----------------------------------------------------------------------------- CTC


def _log_softmax(logits):
    logits = np.asarray(logits, dtype=np.float64)
    return logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))


def test_ctc_loss_matches_forward_algorithm_and_takes_best_alternative():
    rng = np.random.default_rng(0)
    log_probs = _log_softmax(2 * rng.standard_normal((2, 12, 5)))
    targets = ctc.encode_targets([[[1, 2, 2]], [[3, 4], [1]]])
    assert targets.shape == (2, 2, 4)
    assert targets[0, 1, 0] == -1 and list(targets[1, 0]) == [2, 3, 4, 0]
    loss = np.asarray(ctc.ctc_loss(targets, np.exp(log_probs).astype(np.float32)))
    first = -ctc.ctc_log_likelihood(log_probs[0], [1, 2, 2])
    second = min(-ctc.ctc_log_likelihood(log_probs[1], [3, 4]),
                 -ctc.ctc_log_likelihood(log_probs[1], [1]))
    np.testing.assert_allclose(loss, [first, second], rtol=1e-4)
    silence = ctc.encode_targets([[[]]])
    blank_only = -log_probs[0, :, 0].sum()
    np.testing.assert_allclose(
        ctc.ctc_loss(silence, np.exp(log_probs[:1]).astype(np.float32)), [blank_only],
        rtol=1e-4)
    with pytest.raises(ValueError):
        ctc.encode_targets([[]])


def test_ctc_training_step_on_synthetic_data():
    import keras

    from kws.models.phones import build_phone_model

    rate, length = 8000, 4000
    model = build_phone_model(len(model_labels()), rate, length, filters=8, channels=16,
                              dilations=(1, 2), seed=1)
    frames = model.output_shape[1]
    assert model.output_shape == (None, 25, 40) and frames == 25
    x = np.stack([tone(f, 0.5, rate) for f in (300, 600, 900, 1200)])
    y = ctc.encode_targets([[[1, 2]], [[3]], [[4, 5, 6], [7]], [[]]])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=ctc.ctc_loss)
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(x, y, batch_size=4, epochs=2, verbose=0)
    assert all(np.isfinite(history.history["loss"]))
    assert any(not np.allclose(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    posteriors = np.asarray(model(x, training=False))
    np.testing.assert_allclose(posteriors.sum(axis=-1), 1.0, atol=1e-4)


def _posteriors(frames, spikes, classes=6, height=0.9):
    """Blank-dominated posteriors with ``{frame: class}`` spikes."""
    probs = np.full((frames, classes), (1 - 0.97) / (classes - 1))
    probs[:, 0] = 0.97
    for frame, label in spikes.items():
        probs[frame] = (1 - height) / (classes - 1)
        probs[frame, label] = height
    return probs


def test_greedy_decoding_and_times():
    probs = _posteriors(20, {3: 1, 4: 1, 8: 2, 12: 2, 15: 3})
    found = ctc.greedy_decode(ctc.log_posteriors(probs))
    assert [(s.label, s.first, s.last) for s in found] == [(1, 3, 4), (2, 8, 8), (2, 12, 12),
                                                           (3, 15, 15)]
    times = ctc.segments(found, 0.02, duration=0.4)
    assert times[0] == (1, 0.0, pytest.approx(0.13))
    assert times[1][1] == pytest.approx(0.13) and times[-1][2] == pytest.approx(0.4)
    assert all(a[2] == pytest.approx(b[1]) for a, b in zip(times, times[1:], strict=False))
    apart = ctc.greedy_decode(ctc.log_posteriors(_posteriors(40, {2: 1, 30: 2})))
    first, second = ctc.segments(apart, 0.02, max_extend=5)
    assert first[1:] == (0.0, pytest.approx(0.16)) and second[1:] == pytest.approx((0.5, 0.72))
    assert ctc.greedy_decode(ctc.log_posteriors(_posteriors(5, {}))) == []


def test_beam_search_sums_alignments_where_greedy_does_not():
    probs = np.array([[0.6, 0.4], [0.6, 0.4]])
    log_probs = ctc.log_posteriors(probs)
    assert ctc.greedy_decode(log_probs) == []
    best, score = ctc.prefix_beam_search(log_probs, beam=4)[0]
    assert best == (1,) and score == pytest.approx(np.log(0.64))
    assert ctc.ctc_log_likelihood(log_probs, [1]) == pytest.approx(np.log(0.64))
    aligned = ctc.align(ctc.log_posteriors(_posteriors(20, {3: 1, 8: 2, 15: 3})), [1, 2, 3])
    assert [(s.label, s.first) for s in aligned] == [(1, 3), (2, 8), (3, 15)]


def test_the_phone_bigram_runs_within_words_and_across_them():
    from kws.phones.bigram import bigram, transitions

    labels = ["<blank>", "s", "t", "aa", "p", "sil"]
    found = bigram([("s", "t", "aa", "p"), ("t", "aa", "p")], labels)
    np.testing.assert_allclose(found.sum(axis=1), 1.0)
    assert (found[:, 0] == 0).all() and (found[:, 5] == 0).all()
    assert found[1, 2] > found[1, 3]  # "s t" is said, "s aa" is not
    assert found[4, 1] > found[4, 3]  # after "p" ends a word, words start with "s" or "t"
    scores = transitions(found, labels, weight=0.5, bonus=1.0)
    np.testing.assert_allclose(scores[1, 2], 0.5 * np.log(found[1, 2]) + 1.0)
    assert (scores[:, 5] == 1.0).all() and (scores[5] == scores[0]).all()


def test_transitions_decide_what_the_posteriors_leave_in_doubt():
    log_probs = ctc.log_posteriors(np.array([[0.1, 0.45, 0.45], [0.8, 0.1, 0.1]]))
    prefer_second = np.log(np.array([[0.5, 0.2, 0.8]] * 3))
    assert ctc.prefix_beam_search(log_probs, 4, transitions=prefer_second)[0][0] == (2,)
    prefer_first = prefer_second[:, [0, 2, 1]]
    assert ctc.prefix_beam_search(log_probs, 4, transitions=prefer_first)[0][0] == (1,)


def test_english_transitions_know_how_english_words_start():
    from kws.phones.bigram import english_transitions
    from kws.phones.phoneset import model_labels

    scores = english_transitions()
    index = {label: i for i, label in enumerate(model_labels())}
    assert scores.shape == (len(index), len(index)) and not scores.flags.writeable
    assert scores[0, index["ng"]] < scores[0, index["s"]]  # no English word starts "ng"
    assert scores[index["s"], index["t"]] > scores[index["s"], index["ng"]]


def test_decode_defaults_to_the_beam_search():
    from kws.phones.decoding import decode
    from kws.phones.phoneset import model_labels

    log_probs = ctc.log_posteriors(np.array([[0.6, 0.4], [0.6, 0.4]]))
    assert decode(log_probs, 0.02).sequence == [model_labels()[1]]
    assert decode(log_probs, 0.02, "greedy").sequence == []
    with pytest.raises(UsageError, match="--decoder must be one of greedy, beam"):
        decode(log_probs, 0.02, "viterbi")


# ----------------------------------------------------------------------------- metrics


def test_edit_distance_counts():
    counts = edit_distance(list("kitten"), list("sitting"))
    assert (counts.substitutions, counts.deletions, counts.insertions) == (2, 0, 1)
    counts = edit_distance(["a", "b", "c", "d"], ["a", "c", "d", "e", "f"])
    assert (counts.substitutions, counts.deletions, counts.insertions) == (0, 1, 2)
    assert counts.alignment[1] == ("b", "-")
    assert edit_distance([], ["x"]).insertions == 1
    index, counts = closest_reference([("t", "r", "iy"), ("ch", "r", "iy")], ["ch", "r", "iy"])
    assert index == 1 and counts.errors == 0
    errors = PhoneErrors()
    errors.add(edit_distance(["s", "ih", "k", "s"], ["s", "eh", "k", "s"]))
    errors.add(edit_distance(["ah", "p"], ["ah"]))
    errors.add(edit_distance([], ["p"]))
    assert errors.per == pytest.approx(3 / 6)
    report = errors.to_json()
    assert (report["substitutions"], report["deletions"], report["insertions"]) == (1, 1, 1)
    assert report["per_phone"]["ih"]["confused_with"] == {"eh": 1}
    assert report["per_phone"]["p"] == {"count": 1, "correct": 0, "substituted": 0,
                                        "deleted": 1, "inserted": 1, "confused_with": {},
                                        "error_rate": 1.0}
    assert report["per_phone"]["s"]["error_rate"] == 0.0


# ----------------------------------------------------------------------------- spotting


def test_keyword_search_on_hand_made_posteriors():
    # "1 2 3" said twice (frames 5-9 and 30-33); "2" alone at frame 20.
    probs = _posteriors(40, {5: 1, 7: 2, 9: 3, 20: 2, 30: 1, 31: 2, 33: 3})
    log_probs = ctc.log_posteriors(probs)
    hits = ctc.keyword_search(log_probs, [1, 2, 3], threshold=0.5)
    assert [(h.first, h.last) for h in hits] == [(5, 9), (30, 33)]
    # The geometric mean per phone of the posteriors along the alignment: three spikes of
    # 0.9 and the blanks (0.97) between them.
    assert [h.confidence for h in hits] == pytest.approx([0.9 * 0.97 ** (2 / 3),
                                                          0.9 * 0.97 ** (1 / 3)])
    # 3, 2 and 1 do occur in that order, but over 22 frames: too long for one word.
    assert ctc.keyword_search(log_probs, [3, 2, 1], threshold=0.5, max_frames=12) == []
    spread = ctc.keyword_search(log_probs, [3, 2, 1], threshold=0.5)
    assert [(h.first, h.last) for h in spread] == [(9, 30)]
    assert ctc.keyword_search(log_probs, [4, 5], threshold=0.5) == []
    partial = ctc.keyword_search(log_probs, [1, 2, 4], threshold=0.01)
    assert partial and max(h.confidence for h in partial) < 0.5


def test_rivals_are_dictionary_words_one_phone_away():
    tree = ("t", "r", "iy")
    rivals = rival_pronunciations(tree, "tree")
    assert ("th", "r", "iy") in rivals and ("f", "r", "iy") in rivals  # three, free
    assert ("t", "r", "iy", "z") in rivals and ("t", "r", "iy", "t") in rivals  # trees, treat
    assert tree not in rivals and ("t", "r") not in rivals  # not itself; none shorter
    # CMUdict also says "tree" as "ch r iy": not a rival of itself, but of another word.
    assert ("ch", "r", "iy") not in rivals
    assert ("ch", "r", "iy") in rival_pronunciations(tree, "kws-made-up")
    for rival in rivals:
        substituted = len(rival) == 3 and sum(a != b for a, b in zip(rival, tree, strict=True))
        inserted = len(rival) == 4 and any(rival[:i] + rival[i + 1:] == tree for i in range(4))
        assert substituted == 1 or inserted
    assert rival_pronunciations(("zh", "zh", "zh", "zh", "zh")) == ()


def _spot_tree(first_phone: dict[str, float]):
    """``spot_in`` of "tree" where frame 5 holds ``first_phone`` posteriors, then r, iy."""
    labels = model_labels()
    probs = np.full((20, len(labels)), 0.001)
    probs[:, 0] = 1.0
    for phone, value in first_phone.items():
        probs[5, labels.index(phone)] = value
    probs[5, 0] = 0.05
    for frame, phone in ((8, "r"), (11, "iy")):
        probs[frame, 0], probs[frame, labels.index(phone)] = 0.05, 0.9
    probs /= probs.sum(axis=1, keepdims=True)
    pron = ("t", "r", "iy")
    return recognizer.spot_in(ctc.log_posteriors(probs), "x.wav", "tree", [pron],
                              [phone_ids(pron)], 0.1, 0.02, 0.4)


def test_a_hit_a_rival_word_explains_better_is_dropped():
    kept = _spot_tree({"t": 0.6, "th": 0.3})
    assert [(d.label, d.start, d.end) for d in kept] == [("tree", 0.0, 0.34)]
    assert _spot_tree({"t": 0.3, "th": 0.6}) == []  # "three" was heard
    assert _spot_tree({"t": 0.3, "dx": 0.6})  # no word "dx r iy": nothing to prefer


def test_longer_words_that_start_with_a_keyword_are_its_continuations():
    six = ("s", "ih", "k", "s")
    longer = continuation_pronunciations(six, "six")
    assert ("s", "ih", "k", "s", "t", "iy") in longer  # sixty
    assert ("s", "ih", "k", "s", "t", "iy", "n") in longer  # sixteen
    assert all(found[:4] == six and len(found) in (6, 7) for found in longer)
    # One phone more is already a rival ("sixth"); compounds are two words ("no-one").
    assert ("s", "ih", "k", "s", "th") not in longer
    no = continuation_pronunciations(("n", "ow"), "no")
    assert no and ("n", "ow", "w", "ah", "n") not in no
    # A keyword said twice is not a longer word: "two two" is not "tutu".
    two = continuation_pronunciations(("t", "uw"), "two")
    assert ("t", "uw", "d", "ey") in two and ("t", "uw", "t", "uw") not in two  # today


def _spot_six(after: dict[int, str]):
    """``spot_in`` of "six" where frames 5-11 say s ih k s and ``after`` the phones at the
    later frames."""
    labels = model_labels()
    probs = np.full((40, len(labels)), 0.001)
    probs[:, 0] = 1.0
    for frame, phone in ((5, "s"), (7, "ih"), (9, "k"), (11, "s"), *after.items()):
        probs[frame, 0], probs[frame, labels.index(phone)] = 0.05, 0.9
    probs /= probs.sum(axis=1, keepdims=True)
    pron = ("s", "ih", "k", "s")
    return recognizer.spot_in(ctc.log_posteriors(probs), "x.wav", "six", [pron],
                              [phone_ids(pron)], 0.1, 0.02, 0.8)


def test_a_hit_that_goes_on_as_a_longer_word_is_dropped():
    assert _spot_six({}) and _spot_six({30: "t", 33: "uw"})  # "six", "six ... two"
    assert _spot_six({15: "t", 18: "uw"})  # "six two": t uw is no word's ending
    assert _spot_six({15: "t", 18: "iy"}) == []  # "sixty"
    assert _spot_six({15: "t", 17: "iy", 19: "n"}) == []  # "sixteen"


def test_phones_before_a_detection_count_what_is_not_blank_or_silence():
    from kws.phones.verify import QUIET_PHONES, phones_before

    frame, start = 0.02, 1.0  # heard: frames 17..41 (0.5 s ending 0.15 s before start)
    quiet = np.zeros((60, len(model_labels())))
    quiet[:, ctc.BLANK_INDEX] = 0.7
    quiet[:, phone_ids(["sil"])[0]] = 0.3
    assert phones_before(quiet, start, frame) == pytest.approx(0.0)
    speech = quiet.copy()
    speech[30] = 0.0
    speech[30, phone_ids(["s"])[0]] = 0.9  # one phone's spike, 0.1 of it blank
    speech[30, ctc.BLANK_INDEX] = 0.1
    assert phones_before(speech, start, frame) == pytest.approx(0.9)
    assert phones_before(speech, start, frame) >= QUIET_PHONES
    early, onset = quiet.copy(), quiet.copy()
    early[10], onset[45] = speech[30], speech[30]  # too early; the keyword's own onset
    assert phones_before(early, start, frame) == phones_before(onset, start, frame) == 0.0
    assert phones_before(speech, 0.1, frame) == 0.0  # nothing heard before the start


# ----------------------------------------------------------------------------- CLI


def run(argv, capsys, stdin=None, monkeypatch=None):
    """Run ``kws`` as the console script does: ``(exit code, stdout, stderr)``."""
    import io

    from kws.cli import main

    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    with pytest.raises(SystemExit) as exited:
        main([str(a) for a in argv])
    captured = capsys.readouterr()
    return exited.value.code, captured.out, captured.err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A phone model trained for one epoch on a tiny synthetic Speech Commands folder."""
    base = tmp_path_factory.mktemp("phones")
    data = make_speech_commands(base / "data", rate=8000)
    out = base / "model"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KWS_CACHE_DIR", str(base / "cache"))
        result = CliRunner().invoke(cli, [
            "phones", "train", "--data", str(data), "--out", str(out), "--epochs", "1",
            "--rate", "8000", "--json",
        ])
    assert result.exit_code == 0, result.output
    return data, out, json.loads(result.stdout)


def test_cli_train_writes_a_model_folder(trained, capsys):
    data, out, summary = trained
    assert summary["epochs"] == 1 and summary["out"] == str(out)
    assert {"validation_per", "test_per", "test_word_accuracy"} <= set(summary["metrics"])
    card = json.loads((out / "card.json").read_text())
    assert card["task"] == "phones" and card["labels"] == model_labels()
    assert card["sample_rate"] == 8000 and card["recipe"]["frame_ms"] == 20.0
    assert card["recipe"]["phone_set"] == list(PHONES)
    assert (out / "lexicon.txt").is_file() and (out / "curves.png").is_file()
    assert not (out / "checkpoint").exists()
    code, _, err = run(["phones", "train", "--data", data, "--out", out], capsys)
    assert code == 2 and "already holds a model" in err
    code, _, err = run(["phones", "train", "--resume", "--out", out], capsys)
    assert code == 2 and "training there has finished" in err


def test_cli_train_progress_shows_the_per_as_a_percentage(trained, tmp_path, capsys):
    """One unit for the PER: a percentage wherever it is shown (progress line and table),
    the same figure as a fraction in card.json and --json."""
    data, _, _ = trained
    code, stdout, stderr = run(["phones", "train", "--data", data, "--out", tmp_path / "again",
                                "--epochs", "1", "--rate", "8000"], capsys)
    assert code == 0
    metrics = json.loads((tmp_path / "again" / "card.json").read_text())["metrics"]
    assert f"val_per {100 * metrics['history']['val_per'][0]:.2f}%" in stderr
    rows = dict(line.split("\t") for line in stdout.splitlines()[2:])
    assert rows["validation PER"] == f"{100 * metrics['validation_per']:.2f}%"
    assert rows["test PER"] == f"{100 * metrics['test_per']:.2f}%"


def _stop_after_first_epoch():
    """A callback that interrupts training as Ctrl-C would, once epoch 1 is checkpointed."""
    import keras

    class StopAfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                raise KeyboardInterrupt

    return StopAfterFirstEpoch()


def test_phone_training_resumes_to_the_same_model(trained, tmp_path):
    """Smoke test of the phone task on the engine, and its resume (bit-equal weights)."""
    from kws.modelfolder import load_keras_model
    from kws.phones.config import PhoneTrainConfig
    from kws.phones.train import PhonesTask
    from kws.train import TrainEvents, checkpoints, fit

    data, _, _ = trained
    config = PhoneTrainConfig(data=(str(data),), rate=8000, epochs=2, patience=None, export=False,
                              out=str(tmp_path / "whole"))
    reference = fit(PhonesTask(), config)
    assert reference.card.task == "phones" and reference.card.arch == "tcphones"
    assert len(reference.history["val_per"]) == 2
    assert (tmp_path / "whole" / "lexicon.txt").is_file()

    run = PhoneTrainConfig(**{**config.__dict__, "out": str(tmp_path / "resumed")})

    class Interruption(TrainEvents):
        saved = None

        def interrupted(self, epochs_saved, folder):
            self.saved = (epochs_saved, folder)

    events = Interruption()
    with pytest.raises(KeyboardInterrupt):
        fit(PhonesTask(), run, events=events, callbacks=[_stop_after_first_epoch()])
    assert events.saved == (1, checkpoints.checkpoint_folder(run.out))
    with pytest.raises(UsageError, match="--frame-ms"):
        fit(PhonesTask(), PhoneTrainConfig(**{**run.__dict__, "frame_ms": 40.0}), resume=True)
    resumed = fit(PhonesTask(), run, resume=True)
    assert resumed.history == reference.history
    assert resumed.card.metrics["epochs"] == 2
    for mine, theirs in zip(load_keras_model(run.out).get_weights(),
                            load_keras_model(config.out).get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    assert not checkpoints.checkpoint_folder(run.out).exists()


def test_cli_predict_formats_stdin_and_bad_files(trained, tmp_path, capsys, monkeypatch):
    data, out, _ = trained
    good = data / "yes" / "aaaa0001_nohash_0.wav"
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    long = write_wav(tmp_path / "long.wav", tone(500, 3.3, 8000), 8000)
    code, stdout, stderr = run(["phones", "predict", "-m", out, "-f", "jsonl", good, empty,
                                long], capsys)
    assert code == 1
    records = [json.loads(line) for line in stdout.splitlines()]
    assert [r["path"] for r in records] == [str(good), str(long)]
    assert records[1]["duration"] == pytest.approx(3.3)
    for record in records:
        assert record["phones"] == " ".join(s["phone"] for s in record["segments"])
        assert all(0 <= s["start"] <= s["end"] <= record["duration"]
                   for s in record["segments"])
    assert stderr.count("kws: error:") == 1 and "empty.wav: empty file" in stderr
    code, stdout, _ = run(["phones", "predict", "-m", out, "-f", "tsv", "-"], capsys,
                          stdin=f"{good}\n", monkeypatch=monkeypatch)
    assert code == 0
    lines = stdout.splitlines()
    assert lines[0] == "path\tphone\tstart\tend\tprobability"
    assert len(lines) > 1 and all(line.startswith(str(good)) for line in lines[1:])


def test_cli_predict_answers_each_stdin_path_as_it_arrives(trained):
    """On a stdin pipe that stays open, each path is answered before the next is written."""
    from test_predict import KWS, _answers_before_eof

    data, out, _ = trained
    paths = [data / "yes" / "aaaa0001_nohash_0.wav", data / "no" / "aaaa0001_nohash_0.wav"]
    answers = _answers_before_eof([*KWS, "phones", "predict", "-m", str(out), "-f", "jsonl",
                                   "-"], paths)
    assert [json.loads(a)["path"] if a else None for a in answers] == [str(p) for p in paths]


def test_cli_evaluate_json_and_table(trained, capsys):
    data, out, _ = trained
    code, stdout, _ = run(["phones", "evaluate", "-m", out, "--data", data, "--split", "all",
                           "--json"], capsys)
    assert code == 0
    report = json.loads(stdout)
    assert report["utterances"] == 24
    assert report["reference_phones"] == 8 * (3 + 2 + 2)  # yes, no, up
    edits = report["substitutions"] + report["deletions"] + report["insertions"]
    assert report["per"] == pytest.approx(edits / report["reference_phones"], abs=1e-5)
    assert 0.0 <= report["word_accuracy"] <= 1.0
    assert (report["decoder"], report["beam"]) == ("beam", 8)
    code, stdout, _ = run(["phones", "evaluate", "-m", out, "--data", data], capsys)
    assert code == 0 and "phone error rate" in stdout
    code, stdout, _ = run(["phones", "evaluate", "-m", out, "--data", data, "--split", "all",
                           "--decoder", "greedy", "--json"], capsys)
    greedy = json.loads(stdout)
    assert (greedy["decoder"], greedy["beam"]) == ("greedy", None)
    assert greedy["reference_phones"] == report["reference_phones"]


def test_cli_spot(trained, tmp_path, capsys):
    data, out, _ = trained
    good = data / "up" / "aaaa0001_nohash_0.wav"
    # Phones no dictionary word is one phone away from: the one-step model's near-even
    # posteriors would let some rival word align as well as a real word's phones.
    code, stdout, stderr = run(["phones", "spot", "-m", out, "--phones", "oy ng p",
                                "--threshold", "0.001", "-f", "jsonl", good,
                                tmp_path / "missing.wav"], capsys)
    assert code == 1 and "missing.wav: no such file" in stderr
    detections = [json.loads(line) for line in stdout.splitlines()]
    assert detections and all(d["keyword"] == "oy-ng-p" and d["phones"] == "oy ng p"
                              for d in detections)
    assert all(0 <= d["start"] <= d["end"] <= 1.0 for d in detections)
    code, stdout, stderr = run(["phones", "spot", "-m", out, "-k", "zero", "-t", "1.0", "-f",
                                "tsv", good], capsys)
    assert code == 0
    assert stdout.splitlines()[0].split("\t")[:2] == ["path", "keyword"]
    assert stderr.startswith("zero: z ih r ow | z iy r ow (CMUdict)\n")  # not in the model's
    code, stdout, stderr = run(["phones", "spot", "-m", out, "-k", "kubernetes", "-t", "0.001",
                                "-f", "jsonl", good], capsys)
    assert code == 0 and "(G2P (g2p_en); not in the dictionary)" in stderr.splitlines()[0]
    assert all(json.loads(line)["keyword"] == "kubernetes" for line in stdout.splitlines())


def test_cli_spot_searches_several_keywords_in_one_pass(trained, capsys, monkeypatch):
    from kws.phones.recognizer import PhoneRecognizer

    data, out, _ = trained
    good = data / "up" / "aaaa0001_nohash_0.wav"
    passes = []
    stitch = PhoneRecognizer.stitch
    monkeypatch.setattr(PhoneRecognizer, "stitch",
                        lambda self, *args: passes.append(1) or stitch(self, *args))

    def spot(*keywords):
        passes.clear()
        code, stdout, stderr = run(["phones", "spot", "-m", out, *keywords, "-t", "0.001",
                                    "-f", "jsonl", good], capsys)
        assert code == 0 and len(passes) == 1
        return [json.loads(line) for line in stdout.splitlines()], stderr

    # Words no dictionary word is one phone from (see test_cli_spot).
    alone = [d for word in ("boyhood", "kubernetes", "visual") for d in spot("-k", word)[0]]
    together, stderr = spot("-k", "boyhood,kubernetes", "-k", " visual ,boyhood")
    assert ([line.split(":")[0] for line in stderr.splitlines()]
            == ["boyhood", "kubernetes", "visual"])
    assert len({d["keyword"] for d in alone}) > 1
    assert together == sorted(alone, key=lambda d: (d["start"], d["keyword"]))


def transcribed(folder, rate: int = 8000):
    """Four 1.5 s recordings of two speakers; the first says 'hello' once, the last twice."""
    lines = ["file\tspeaker\ttranscript"]
    for index, (speaker, text) in enumerate([("ann", "hello there"), ("ann", "nothing"),
                                             ("bob", "nothing here"), ("bob", "hello hello")]):
        write_wav(folder / speaker / f"{index}.wav", tone(200 + 50 * index, 1.5, rate, 0.3),
                  rate)
        lines.append(f"{speaker}/{index}.wav\t{speaker}\t{text}")
    (folder / "transcripts.tsv").write_text("\n".join(lines) + "\n")
    return folder


def test_times_said_counts_words_and_phrases():
    from kws.phones.spot_eval import times_said

    words = "turn off the light and turn it off turn off".split()
    assert times_said(words, "turn off") == 2
    assert times_said(words, "off") == 3 and times_said(words, "Light") == 1
    assert times_said(words, "lamp") == 0 and times_said([], "off") == 0


def test_spot_evaluation_counts_hits_and_false_accepts(trained, tmp_path, monkeypatch):
    # Two detections in every recording, of confidence 0.9 and 0.2: at the operating
    # threshold 0.5 one each (hits where 'hello' is said, else false accepts); swept at
    # 0.1, both.
    import kws.phones.spot_eval as spot_eval
    from kws.infer import Detection

    _, out, _ = trained
    folder = transcribed(tmp_path / "said")

    def two_places(log_probs, path, name, prons, ids, threshold, *rest, **options):
        lowest = min(threshold) if isinstance(threshold, tuple) else threshold
        return [Detection(name, p, at, at + 0.4, path=path, pronunciation=prons[0])
                for p, at in ((0.9, 0.1), (0.2, 0.8)) if p >= lowest]

    monkeypatch.setattr(spot_eval, "spot_in", two_places)
    result = spot_eval.evaluate_spotting(out, [folder], ["hello"], threshold=0.5, split="all")
    counts = result.score.counts["hello"]
    assert (counts.occurrences, counts.hits, counts.false_accepts) == (3, 2, 2)
    assert result.score.thresholds == {"hello": 0.5} and result.score.recordings == 4
    curve = result.score.curves["hello"]
    at = {float(t): (int(h), int(f)) for t, h, f in zip(curve.thresholds, curve.hits,
                                                        curve.false_accepts, strict=True)}
    assert at[0.9] == (2, 2) and at[0.1] == (3, 5)
    assert [s.speakers for s in result.sources] == [2]


def test_cli_phones_evaluate_spot(trained, tmp_path, capsys):
    _, out, _ = trained
    folder = transcribed(tmp_path / "said")
    code, stdout, _ = run(["phones", "evaluate", "-m", out, "--data", folder, "--spot",
                           "-k", "hello,there", "--split", "all", "-t", "0.001", "--json",
                           "--det-png", tmp_path / "det.png"], capsys)
    report = json.loads(stdout)
    assert code == 0 and (tmp_path / "det.png").is_file()
    assert set(report["per_keyword"]) == {"hello", "there", "overall"}
    assert report["per_keyword"]["hello"]["occurrences"] == 3
    assert report["thresholds"] == {"hello": 0.001, "there": 0.001}
    assert report["recordings"] == 4 and "overall" in report["det"]


def test_cli_phones_evaluate_spot_with_no_readable_recording_is_no_report(tmp_path, capsys):
    from test_recordings import write_unreadable

    bad = write_unreadable(tmp_path / "said" / "spk")
    (tmp_path / "said" / "transcripts.tsv").write_text("file\tspeaker\ttranscript\n" + "".join(
        f"spk/{path.name}\tspk\thello\n" for path in bad))
    code, stdout, stderr = run(["phones", "evaluate", "--data", tmp_path / "said", "--spot",
                                "-k", "hello", "--split", "all"], capsys)  # the shipped model
    lines = stderr.strip().splitlines()
    assert code == 1 and stdout == ""
    assert sorted(line.split(": ")[2] for line in lines[:-1]) == [str(p) for p in bad]
    assert lines[-1] == "kws: error: nothing to score: none of the 4 recording(s) could be read"


@pytest.mark.parametrize(("args", "message"), [
    (["--spot"], "--spot: give the words to find with --keyword WORD"),
    (["-k", "hello"], "--keyword applies to --spot only"),
    (["--det-png", "x.png"], "--det-png applies to --spot only"),
    (["--spot", "-k", "hello", "--decoder", "beam"], "--decoder and --beam do not apply"),
    (["--spot", "-k", "hello", "--beam", "4"], "--decoder and --beam do not apply"),
    (["--decoder", "greedy", "--beam", "4"], "--beam applies to --decoder beam only"),
    (["--spot", "-k", "hello", "-t", "0"], "--threshold must be in (0, 1]"),
    (["--spot", "-k", "hello", "--fa-per-hour", "2"], "no false-accept calibration"),
])
def test_cli_phones_evaluate_spot_refuses_in_one_line(trained, tmp_path, capsys, args,
                                                      message):
    _, out, _ = trained
    folder = transcribed(tmp_path / "said")
    code, stdout, stderr = run(["phones", "evaluate", "-m", out, "--data", folder, *args],
                               capsys)
    assert code == 2 and stdout == "" and message in stderr
    assert len(stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(("args", "code", "message"), [
    (["spot", "-m", "{out}", "x.wav"], 2, "give --keyword"),
    (["spot", "-m", "{out}", "--phones", "m qq", "x.wav"], 2, "unknown phone 'qq'"),
    (["spot", "-m", "{out}", "-k", "b4nana", "x.wav"], 1, "cannot pronounce 'b4nana'"),
    (["spot", "-m", "{out}", "-k", "yes", "-t", "2", "x.wav"], 2, "--threshold"),
    (["spot", "-m", "{out}", "-k", "yes,no", "--phones", "y eh s", "x.wav"], 2,
     "--phones is one keyword's pronunciation"),
    (["predict", "-m", "{out}"], 2, "give audio files"),
    (["predict", "-m", "{out}", "--beam", "0", "x.wav"], 2, "--beam must be at least 1"),
    (["predict", "-m", "{data}", "x.wav"], 1, "not a kws model folder"),
    (["train", "--out", "{tmp}/m"], 2, "give --data"),
    (["train", "--data", "{data}", "--lexicon", "{tmp}/bad.txt", "--out", "{tmp}/m"], 1,
     "bad.txt:1: unknown phone"),
    (["train", "--data", "{data}", "--frame-ms", "15", "--out", "{tmp}/m"], 2, "--frame-ms"),
    (["evaluate", "-m", "{out}", "--data", "{tmp}/nowhere"], 2, "no such dataset folder"),
])
def test_cli_bad_input(trained, tmp_path, capsys, args, code, message):
    data, out, _ = trained
    (tmp_path / "lex.txt").write_text("yes y eh s\nno n ow\n")
    (tmp_path / "bad.txt").write_text("yes y eh s xx\n")
    argv = ["phones"] + [a.format(out=out, data=data, tmp=tmp_path) for a in args]
    exit_code, _, stderr = run(argv, capsys)
    assert exit_code == code
    assert message in stderr
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1


def test_cli_refuses_a_classifier_folder(tmp_path, capsys):
    from kws.modelfolder import ModelCard, write_card

    write_card(tmp_path / "clf", ModelCard(labels=["a", "b"], sample_rate=16000,
                                           input_length=16000, arch="tcres"))
    code, _, stderr = run(["phones", "predict", "-m", tmp_path / "clf", "x.wav"], capsys)
    assert code == 1 and "a classifier model, not a phone model" in stderr


def test_phone_data_names_a_word_the_lexicon_lacks(tmp_path):
    # `--lexicon FILE` is merged over CMUdict (kws.phones.lexicon.load_lexicon), so a word
    # of Speech Commands is missing only from a lexicon used alone.
    from kws.phones.config import PhoneTrainConfig
    from kws.phones.data import prepare_phone_data
    from kws.phones.train import PhonesTask
    from kws.train import TrainEvents

    root = make_speech_commands(tmp_path / "data", rate=8000)
    config = PhonesTask().resolve(PhoneTrainConfig(data=(str(root),), out=str(tmp_path / "m"),
                                                   rate=8000))
    lexicon = parse_lexicon("yes y eh s\nno n ow\n", "lex.txt")
    with pytest.raises(LexiconError, match=r"lex\.txt: no pronunciation of 'up', said in 8 "
                       r"clip\(s\); add it to the lexicon or leave it out with --exclude up"):
        prepare_phone_data(config, lexicon, TrainEvents())


@pytest.mark.parametrize(("silence", "warned"), [(10.0, True), (0.0, False)])
def test_phone_data_without_background_warns_once(tmp_path, silence, warned):
    import shutil

    from kws.phones.config import PhoneTrainConfig
    from kws.phones.data import prepare_phone_data
    from kws.phones.train import PhonesTask
    from kws.train import TrainEvents

    class Recorder(TrainEvents):
        def __init__(self) -> None:
            self.warnings: list[str] = []

        def warn(self, message: str) -> None:
            self.warnings.append(message)

    root = make_speech_commands(tmp_path / "data", rate=8000)
    shutil.rmtree(root / "_background_noise_")
    config = PhonesTask().resolve(PhoneTrainConfig(data=(str(root),), out=str(tmp_path / "m"),
                                                   silence_percent=silence, rate=8000))
    recorder = Recorder()
    data = prepare_phone_data(config, default_lexicon(), recorder)
    expected = ["no background recordings (no _background_noise_ folder, no --background): "
                "no _silence_ class is made and no noise is mixed in"]
    assert recorder.warnings == (expected if warned else [])
    assert sum(data.summary["silence_clips"].values()) == 0


@pytest.mark.parametrize(("args", "code", "message"), [
    ([], 2, "give --keyword"),
    (["-k", "b4nana"], 1, "cannot pronounce 'b4nana'"),
    (["--phones", "m qq"], 2, "unknown phone 'qq'"),
])
def test_spot_checks_its_keyword_before_tensorflow_loads(trained, project_env, args, code,
                                                         message):
    import subprocess
    import sys

    data, out, _ = trained
    clip = data / "up" / "aaaa0001_nohash_0.wav"
    script = ("import sys\nfrom kws.cli import main\n"
              "try:\n    main(sys.argv[1:])\nexcept SystemExit as stop:\n"
              "    heavy = sorted(m for m in ('tensorflow', 'keras') if m in sys.modules)\n"
              "    print('STATUS', stop.code, *heavy, file=sys.stderr)\n")
    result = subprocess.run([sys.executable, "-c", script, "phones", "spot", "-m", str(out),
                             *args, str(clip)], capture_output=True, text=True,
                            env=project_env, timeout=120)
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == f"STATUS {code}", result.stderr
    assert len(lines) == 2 and lines[0].startswith("kws: error: ") and message in lines[0]
