"""Pronunciation lexicons: which phones a word is made of.

A lexicon file has one pronunciation per line, ``WORD PHONE PHONE ...``, separated by
white space; a word may have several lines (several pronunciations). ``#`` starts a
comment, and CMUdict's own conventions are accepted too (``;;;`` comment lines, ``WORD(2)``
for a second pronunciation, stress digits such as ``AA1``), so a CMUdict excerpt can be
used as is. Phones are folded onto the 39-phone set (:func:`kws.phones.phoneset.fold`):
``AO`` reads as ``aa`` and ``ZH`` as ``sh``. Words are case-insensitive.

The lexicon shipped with kws (``kws/phones/lexicon.txt``, installed as package data)
covers the 30 words of Speech Commands and the five added in v0.02.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from kws.errors import KwsError
from kws.phones.phoneset import fold

#: File name of the shipped lexicon inside the ``kws.phones`` package.
LEXICON_FILE = "lexicon.txt"
_ALTERNATE = re.compile(r"\(\d+\)$")


class LexiconError(KwsError):
    """A lexicon file cannot be read, or lacks a word that is needed."""


@dataclass(frozen=True)
class Lexicon:
    """Words and their pronunciations (tuples of 39-set phones), in file order."""

    entries: dict[str, tuple[tuple[str, ...], ...]]
    source: str = "lexicon"

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


def parse_lexicon(text: str, source: str = "lexicon") -> Lexicon:
    """Parse lexicon text; errors name ``source`` and the line number.

    Raises
    ------
    LexiconError
        A line with a word but no phones, a phone outside TIMIT's 61 and the 39 set, or
        no pronunciation at all.
    """
    entries: dict[str, list[tuple[str, ...]]] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith(";;;"):
            continue
        word, *symbols = line.split()
        word = _ALTERNATE.sub("", word.lower())
        if not word:
            raise LexiconError(f"{source}:{number}: no word before the phones")
        phones = []
        for symbol in symbols:
            try:
                phone = fold(symbol)
            except ValueError:
                raise LexiconError(
                    f"{source}:{number}: unknown phone {symbol!r} for {word!r} "
                    "(use ARPAbet: the 39-phone set or TIMIT's 61)"
                ) from None
            if phone is not None:
                phones.append(phone)
        if not phones:
            raise LexiconError(f"{source}:{number}: {word!r} has no phones")
        prons = entries.setdefault(word, [])
        if tuple(phones) not in prons:
            prons.append(tuple(phones))
    if not entries:
        raise LexiconError(f"{source}: no pronunciations found")
    return Lexicon({word: tuple(prons) for word, prons in entries.items()}, source)


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
    """The shipped lexicon of the Speech Commands words."""
    return read_lexicon(default_lexicon_path())


def load_lexicon(path: str | os.PathLike | None = None) -> Lexicon:
    """The lexicon at ``path``, or the shipped one when ``path`` is ``None``."""
    return default_lexicon() if path is None else read_lexicon(path)
