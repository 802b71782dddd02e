"""Pronunciations of any English word: shipped lexicon, CMUdict, G2P, and `kws phones spot`."""

from __future__ import annotations

import socket

import pytest

from kws.errors import KwsError
from kws.modelfolder import ModelCard, Task, write_card
from kws.phones import g2p
from kws.phones.lexicon import (
    CMUDICT_SOURCE,
    DEFAULT_SOURCE,
    KWS_LEXICON_SOURCE,
    MAX_PHONES,
    LexiconError,
    Pronunciation,
    cmudict_lexicon,
    default_lexicon,
    load_lexicon,
    parse_lexicon,
    pronounce,
    read_lexicon,
)
from kws.phones.phoneset import PHONES, model_labels

G2P_SOURCE = f"G2P ({g2p.G2P_NAME})"


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Pronouncing a word must never reach for the network."""
    def refuse(*args, **kwargs):
        raise AssertionError("a lexicon test tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_a_dictionary_word_comes_from_cmudict_folded():
    assert pronounce("kitchen") == Pronunciation("kitchen", (("k", "ih", "ch", "ah", "n"),),
                                                 CMUDICT_SOURCE)
    house = pronounce("House", cmudict_lexicon())
    assert house.phones == (("hh", "aw", "s"),) and house.source == CMUDICT_SOURCE
    assert not house.guessed
    # AO and ZH fold onto aa and sh; stress digits go; WORD(2) alternates are kept.
    assert pronounce("dog", cmudict_lexicon()).phones == (("d", "aa", "g"),)
    assert pronounce("measure").phones[0] == ("m", "eh", "sh", "er")
    assert len(pronounce("tomato").phones) >= 2


def test_cmudict_is_whole_and_folded_onto_the_39_phones():
    lexicon = cmudict_lexicon()
    assert lexicon.source == CMUDICT_SOURCE and len(lexicon) > 100_000
    assert cmudict_lexicon() is lexicon  # read once per process
    used = {p for prons in lexicon.entries.values() for pron in prons for p in pron}
    assert used <= set(PHONES) and not {"ao", "zh", "sil"} & used


def test_a_word_no_dictionary_has_is_guessed_by_g2p():
    for word in ("kubernetes", "blorfing"):
        found = pronounce(word)
        assert word not in cmudict_lexicon()
        assert found.source == G2P_SOURCE and found.guessed
        assert len(found.phones) == 1 and 3 <= len(found.phones[0]) <= 12
        assert set(found.phones[0]) <= set(PHONES) - {"sil"}
        assert found.describe().startswith(f"{word}: ")
        assert found.describe().endswith(f"({G2P_SOURCE}; not in the dictionary)")
    assert pronounce("blorfing").phones == (("b", "l", "aa", "r", "f", "ih", "ng"),)


def test_an_initialism_no_dictionary_has_is_said_letter_by_letter():
    for word, phones in [("kws", "k ey d ah b ah l y uw eh s"),
                         ("XKCD", "eh k s k ey s iy d iy")]:
        found = pronounce(word)
        assert word.lower() not in cmudict_lexicon()
        assert found.phones == (tuple(phones.split()),) and not found.guessed
        assert found.describe() == f"{word.lower()}: {phones} (spelled out, {CMUDICT_SOURCE})"
    # A user's lexicon says how its letters are read.
    mine = parse_lexicon("w  d ah b ah y uw\n", source="mine.txt")
    assert pronounce("www", mine).phones == (("d", "ah", "b", "ah", "y", "uw") * 3,)
    # Words with a vowel letter ("y" counts) are guessed; dictionary words are looked up.
    assert pronounce("glyphs").guessed and pronounce("blorfing").guessed
    assert pronounce("hmm").source == CMUDICT_SOURCE and pronounce("html").source == CMUDICT_SOURCE
    assert pronounce("kws-gpu").source == f"spelled out, {CMUDICT_SOURCE} + {G2P_SOURCE}"


def test_a_missing_g2p_model_is_one_line_naming_its_package(monkeypatch):
    monkeypatch.setattr(g2p.importlib.util, "find_spec", lambda name: None)
    g2p.g2p_model.cache_clear()
    try:
        with pytest.raises(LexiconError, match=r"pip install espnet-g2p-en") as raised:
            pronounce("blorfing")
        assert "\n" not in str(raised.value)
    finally:
        g2p.g2p_model.cache_clear()
    assert pronounce("kitchen").source == CMUDICT_SOURCE  # the dictionary still works


@pytest.mark.parametrize(("word", "why"), [
    ("", "no word given"),
    ("   ", "no word given"),
    ("b4nana", "it has digits"),
    ("hello!", "it has '!'"),
    ("a.m.", "it has '.'"),
    ("---", "it has no letters"),
    ("x" * 41, "a word of 41 characters (at most 40)"),
    ("привет", "is not a letter of English"),
    ("one two three four five six seven eight nine", "9 words (at most 8)"),
])
def test_nonsense_is_refused_in_one_line(word, why):
    with pytest.raises(LexiconError, match="cannot pronounce") as raised:
        pronounce(word)
    assert why in str(raised.value) and "\n" not in str(raised.value)


def test_no_dictionary_word_is_too_long_but_a_longer_pronunciation_is_refused(tmp_path):
    longest = max(len(pron) for prons in cmudict_lexicon().entries.values() for pron in prons)
    assert longest < MAX_PHONES  # "antidisestablishmentarianism", 28
    path = tmp_path / "long.txt"
    path.write_text("yes y eh s\nblorf " + "y " * 5000 + "\n")
    with pytest.raises(LexiconError) as raised:
        read_lexicon(path)
    assert str(raised.value) == (f"{path}:2: 'blorf' has 5000 phones (a pronunciation has at "
                                 f"most {MAX_PHONES})")
    # Words said together: each is a word, together they are too long to spot.
    with pytest.raises(LexiconError, match=r"cannot pronounce 'antidisestablishmentarianis\.\.\.'"
                                           r": 48 phones .* from CMUdict$"):
        pronounce("antidisestablishmentarianism deinstitutionalization")


def test_the_shipped_lexicon_takes_precedence_over_cmudict():
    shipped = default_lexicon()
    visual = pronounce("visual")
    assert visual.source == KWS_LEXICON_SOURCE
    assert visual.phones == shipped.pronunciations("visual")
    assert visual.phones != cmudict_lexicon().pronunciations("visual")
    merged = load_lexicon(None)
    assert merged.source == DEFAULT_SOURCE and load_lexicon(None) is merged
    assert merged.pronunciations("visual") == shipped.pronunciations("visual")
    assert merged.pronunciations("kitchen") == (("k", "ih", "ch", "ah", "n"),)
    assert merged.missing(["visual", "kitchen", "kubernetes"]) == ["kubernetes"]
    extra = cmudict_lexicon().missing(shipped.words)  # shipped words CMUdict lacks
    assert len(merged) == len(cmudict_lexicon()) + len(extra)
    # A model folder keeps only the words it used.
    small = merged.subset(["visual", "Kitchen"])
    assert small.words == ["visual", "kitchen"]
    assert parse_lexicon(small.to_text()).entries == small.entries
    assert pronounce("visual", merged).source == KWS_LEXICON_SOURCE
    assert pronounce("kitchen", merged).source == CMUDICT_SOURCE


def test_a_users_lexicon_overrides_and_cmudict_fills_the_rest(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_text("visual v ih z uw ah l\nblorfing b l ao r f ih ng\n")
    mine = read_lexicon(path)
    assert pronounce("visual", mine) == Pronunciation(
        "visual", (("v", "ih", "z", "uw", "ah", "l"),), f"lexicon {path}")
    assert pronounce("blorfing", mine).source == f"lexicon {path}"
    assert pronounce("kitchen", mine).source == CMUDICT_SOURCE
    assert pronounce("zero", mine).source == CMUDICT_SOURCE  # not the shipped lexicon
    merged = load_lexicon(path)
    assert merged.source == f"{path} + {CMUDICT_SOURCE}"
    assert merged.pronunciations("visual") == (("v", "ih", "z", "uw", "ah", "l"),)
    assert "blorfing" in merged and "kitchen" in merged and "kubernetes" not in merged
    assert pronounce("blorfing", merged).source == f"lexicon {path}"
    with pytest.raises(LexiconError, match="no such lexicon file"):
        load_lexicon(tmp_path / "absent.txt")


def test_several_words_and_hyphens_are_said_in_turn():
    turn_on = pronounce("Turn  on")
    assert turn_on.word == "turn on"
    assert turn_on.phones == (("t", "er", "n", "aa", "n"),)
    assert turn_on.source == f"{CMUDICT_SOURCE} + {KWS_LEXICON_SOURCE}"
    four_five = pronounce("four five")  # 2 x 1 pronunciations
    assert four_five.phones == (("f", "aa", "r", "f", "ay", "v"), ("f", "ow", "r", "f", "ay", "v"))
    assert len(pronounce("tomato tomato tomato").phones) <= 4
    assert pronounce("ad-hoc").source == CMUDICT_SOURCE  # in CMUdict whole
    mixed = pronounce("kitchen-blorfing")
    assert mixed.source == f"{CMUDICT_SOURCE} + {G2P_SOURCE}" and mixed.guessed
    assert mixed.phones[0][:5] == ("k", "ih", "ch", "ah", "n")
    assert pronounce("café").phones == pronounce("cafe").phones


# ----------------------------------------------------------------------------- CLI


def run(argv, capsys):
    """Run ``kws`` as the console script does: ``(exit code, stdout, stderr)``."""
    from kws.cli import main

    with pytest.raises(SystemExit) as exited:
        main([str(a) for a in argv])
    captured = capsys.readouterr()
    return exited.value.code, captured.out, captured.err


@pytest.fixture
def phone_folder(tmp_path, monkeypatch):
    """A phone model folder with a card and a lexicon but no model: loading it stops."""
    folder = tmp_path / "model"
    write_card(folder, ModelCard(labels=model_labels(), sample_rate=8000, input_length=8000,
                                 arch="test", task=Task.PHONES))
    (folder / "lexicon.txt").write_text("yes y eh s\nno n ow\n")

    def stop(self, *args, **kwargs):
        raise KwsError("test: the model would load here")

    # The constructor, not the class: a module importing the class while this runs would
    # keep the stand-in after the test.
    monkeypatch.setattr("kws.phones.recognizer.PhoneRecognizer.__init__", stop)
    return folder


def test_cli_spot_notes_where_a_keyword_is_pronounced_from(phone_folder, capsys):
    lexicon = phone_folder / "lexicon.txt"
    for keyword, note in [
        ("kubernetes", f"({G2P_SOURCE}; not in the dictionary)"),
        ("kitchen", "kitchen: k ih ch ah n (CMUdict)"),
        ("yes", f"yes: y eh s (lexicon {lexicon})"),
    ]:
        code, stdout, stderr = run(["phones", "spot", "-m", phone_folder, "--keyword", keyword,
                                    "x.wav"], capsys)
        lines = stderr.strip().splitlines()
        assert code == 1 and stdout == ""
        assert len(lines) == 2 and lines[0].startswith(f"{keyword}: ") and note in lines[0]
        assert lines[1] == "kws: error: test: the model would load here"


@pytest.mark.parametrize(("args", "code", "message"), [
    (["-m", "{tmp}/nowhere", "--keyword", "kubernetes"], 2, "no such model folder"),
    (["-m", "{model}", "--keyword", "b4nana"], 1, "cannot pronounce 'b4nana': it has digits"),
    (["-m", "{model}", "--keyword", "!!"], 1, "cannot pronounce '!!'"),
    (["-m", "{model}", "--lexicon", "{tmp}/absent.txt", "--keyword", "yes"], 1,
     "no such lexicon file"),
    (["-m", "{model}", "--phones", "y " * 10_000], 2,
     f"--phones: 10000 phones (a pronunciation has at most {MAX_PHONES})"),
])
def test_cli_spot_refuses_in_one_line(phone_folder, tmp_path, capsys, args, code, message):
    argv = ["phones", "spot", *(a.format(tmp=tmp_path, model=phone_folder) for a in args),
            "x.wav"]
    exit_code, stdout, stderr = run(argv, capsys)
    assert exit_code == code and stdout == ""
    assert message in stderr
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1
