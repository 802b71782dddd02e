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

    A folder gives its audio files (:func:`kws.audio.find_audio_files`: recursively,
    sorted, hidden files skipped), or a :class:`Failure` when it holds none or cannot be
    listed; ``-`` gives the paths listed on ``stdin`` (see
    :func:`stdin_paths`); anything else is taken as a file (reading it reports any problem).
    """
    for item in inputs:
        if item == "-":
            yield from stdin_paths(stdin if stdin is not None else sys.stdin)
        elif os.path.isdir(item):
            try:
                files = audio.find_audio_files(item)
            except AudioError as error:
                yield Failure(item, str(error))
                continue
            if not files:
                yield Failure(item, f"{item}: no audio files in this folder")
            yield from files
        else:
            yield Path(item)


def stdin_paths(stream: IO) -> Iterator[Path]:
    """The paths listed in a stream, one per line, each yielded as soon as its line is read.

    Only the line ending is removed (a name may begin or end with spaces); blank lines are
    skipped. Bytes are decoded as the file system does (``os.fsdecode``), so names that
    are not UTF-8 still name their files.
    """
    reader = getattr(stream, "buffer", stream)
    while True:
        line = reader.readline()
        if not line:
            return
        name = os.fsdecode(line) if isinstance(line, bytes) else line
        name = name[:-1] if name.endswith("\n") else name
        name = name[:-1] if name.endswith("\r") else name
        if name.strip():
            yield Path(name)
