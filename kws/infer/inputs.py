"""What inference reads: command-line inputs turned into audio files, and failure records.

:func:`expand_inputs` turns files, folders and ``-`` (paths on standard input, one per
line) into audio paths lazily, so a path typed or piped on stdin is answered as soon as
it arrives. Inference decodes a file with :func:`kws.audio.load`, the one loader; anything
that goes wrong becomes an :class:`~kws.errors.AudioError` naming the file, which the
pipeline turns into a :class:`Failure` record for that input alone.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from kws import audio
from kws.errors import AudioError


@dataclass(frozen=True)
class Failure:
    """An input that could not be processed; ``message`` names the file and the problem."""

    path: str
    message: str


def expand_inputs(inputs: Iterable[str], stdin: IO | None = None) -> Iterator[Path | Failure]:
    """Turn command-line inputs into audio file paths, lazily.

    A folder gives its audio files (:func:`kws.audio.scan_audio_files`: recursively,
    sorted, hidden files skipped) and a :class:`Failure` for each folder in it that cannot
    be listed (the others are still searched), or one when it holds no audio; ``-`` gives
    the paths listed on ``stdin`` (see :func:`stdin_paths`); an empty name is a failure
    (``Path("")`` would be the current folder); anything else is taken as a file (reading
    it reports any problem).
    """
    for item in inputs:
        if item == "-":
            yield from stdin_paths(stdin if stdin is not None else sys.stdin)
        elif not item:
            yield Failure(item, "an empty path names no file")
        elif os.path.isdir(item):
            yield from _folder(item)
        else:
            yield Path(item)


def _folder(folder: str) -> Iterator[Path | Failure]:
    """The audio files of a folder, and a failure for each part that cannot be listed."""
    found = audio.scan_audio_files(folder)
    if not found:
        yield Failure(folder, f"{folder}: no audio files in this folder")
    for entry in found:
        yield Failure(entry.path, str(entry)) if isinstance(entry, AudioError) else entry


def stdin_paths(stream: IO) -> Iterator[Path | Failure]:
    """The paths listed in a stream, one per line, each yielded as soon as its line is read.

    Only the line ending is removed (a name may begin or end with spaces); blank lines are
    skipped. Bytes are decoded as the file system does (``os.fsdecode``), so names that
    are not UTF-8 still name their files. A stream that plainly holds audio or other
    binary data rather than names (:func:`_not_a_listing`) is one :class:`Failure`, not
    one per line of garbage.
    """
    reader = getattr(stream, "buffer", stream)
    first = True
    while True:
        line = reader.readline(_LONGEST_LINE) if first else reader.readline()
        if not line:
            return
        if first and (problem := _not_a_listing(line)):
            yield Failure(STDIN_NAME, f"{STDIN_NAME}: {problem}; to spot keywords in an "
                                      "audio stream use `kws listen -`")
            return
        first = False
        name = os.fsdecode(line) if isinstance(line, bytes) else line
        name = name[:-1] if name.endswith("\n") else name
        name = name[:-1] if name.endswith("\r") else name
        if name.strip():
            yield Path(name)


#: How standard input is named in messages.
STDIN_NAME = "stdin"
#: The first line read from stdin at most (bytes): far longer than any path (4096 on
#: Linux), short enough that a stream without line ends is not read whole to find one.
_LONGEST_LINE = 1 << 16
#: How audio files begin (WAV, RF64, Wave64, FLAC, Ogg, AIFF, Sun au, CAF, MP3 with a tag
#: or an MPEG frame), for telling audio piped into stdin from a list of paths.
_AUDIO_MAGIC = (b"RIFF", b"RIFX", b"RF64", b"riff", b"fLaC", b"OggS", b"FORM", b".snd",
                b"caff", b"ID3", b"\xff\xfb", b"\xff\xf3", b"\xff\xf2")
#: Bytes no file name plausibly holds (controls but tab, line ends and escape, which
#: colour codes in ``ls --color`` output carry).
_BINARY = bytes([*range(0, 9), *range(14, 27), *range(28, 32), 127])


def _not_a_listing(line: bytes | str) -> str | None:
    """Why the first line of stdin shows it holds data, not paths, or None.

    Audio (its file signature at the start, and the control bytes its header holds, so
    a file named ``FORMS.wav`` is still a name), a first line longer than any path, or
    one with more than one control byte (a stray NUL in a name is that name's failure).
    """
    data = os.fsencode(line) if isinstance(line, str) else line
    controls = sum(data.count(byte) for byte in _BINARY)
    if controls and data.startswith(_AUDIO_MAGIC):
        return "holds audio, not file paths"
    if controls > 1 or len(data) >= _LONGEST_LINE:
        return "holds binary data, not file paths (one per line)"
    return None
