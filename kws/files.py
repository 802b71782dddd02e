"""Writing files safely: one atomic write, output locks, and never writing over inputs.

Every file kws writes goes through :func:`atomic_write` (or the helpers built on it): the
content goes to a temporary file made with :func:`tempfile.mkstemp` in the target's folder
(``O_EXCL``, an unpredictable name, never following a planted symlink) and is renamed over
the target only once it is complete, so a reader sees the old file or the new one, never
half of one, and an interruption leaves at most a temporary file that
:func:`remove_stale_temporaries` clears later.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from kws.errors import KwsError, UsageError

#: Prefix of every temporary file or folder kws makes next to a target.
TEMP_PREFIX = ".kws-tmp-"
#: Temporaries older than this are left over by a killed run and may be removed.
STALE_AFTER_S = 3600.0


def _temp_prefix(target: Path) -> str:
    return f"{TEMP_PREFIX}{target.name[:60]}."


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a fresh temporary path next to ``path``; rename it over ``path`` on success.

    The temporary file already exists (empty, with the mode of the file it will replace,
    else 0600 widened to the umask's default) when the block starts; writers may open it
    by name (``soundfile``, ``model.save``).
    ``suffix`` keeps an extension that a writer insists on (``.keras``, ``.png``). On an
    exception the temporary file is removed and ``path`` is untouched. A ``path`` that is
    a folder, a device, a FIFO or a socket is refused (:class:`~kws.errors.UsageError`):
    renaming over it would replace something that is not a file kws could have written;
    so is a read-only file (no write permission), which its owner protected.
    """
    target = Path(path)
    mode = _check_replaceable(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=_temp_prefix(target), suffix=suffix,
                                    dir=target.parent)
    os.close(handle)
    temporary = Path(name)
    try:
        if mode is None:
            _widen_mode(temporary)
        else:
            os.chmod(temporary, mode)
        yield temporary
        if temporary.is_symlink() or not temporary.is_file():
            raise KwsError(f"{target}: the temporary file was replaced while writing")
        os.replace(temporary, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            if temporary.exists() or temporary.is_symlink():
                temporary.unlink()


def _check_replaceable(target: Path) -> int | None:
    """Refuse a target that exists and is not a regular writable file (links are
    followed); return the permission bits of one that may be replaced (None: no file)."""
    try:
        mode = target.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as error:
        raise UsageError(f"{target}: cannot be written ({error.strerror or error})") from None
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file (a device, FIFO or socket)"
        raise UsageError(f"{target}: is {kind}; kws writes only regular files there, choose "
                         "another path")
    if not mode & 0o222 or not os.access(target, os.W_OK):
        raise UsageError(f"{target}: is read-only; make it writable to let kws replace it")
    return stat.S_IMODE(mode)


def _widen_mode(path: Path) -> None:
    """Give a mkstemp file the mode an ordinary new file would have (0666 less the umask)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def write_bytes(path: str | os.PathLike, content: bytes) -> Path:
    """Write ``content`` to ``path`` atomically; return the path."""
    with atomic_write(path) as temporary, open(temporary, "wb") as handle:
        handle.write(content)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically; return the path."""
    return write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary folder next to ``path``; it replaces ``path`` on success.

    A folder already at ``path`` is removed only after the new one is complete (used for
    checkpoints, which must be whole or absent).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=_temp_prefix(target), dir=target.parent))
    try:
        yield temporary
        if target.is_dir() and not target.is_symlink():
            old = Path(tempfile.mkdtemp(prefix=_temp_prefix(target), dir=target.parent))
            os.replace(target, old / "old")
            os.replace(temporary, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(temporary, target)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def remove_stale_temporaries(folder: str | os.PathLike, older_than_s: float = STALE_AFTER_S,
                             *, target: str | None = None) -> list[Path]:
    """Remove kws's own temporaries in ``folder`` left by a killed run; return them.

    Only names with :data:`TEMP_PREFIX` (which no other program makes) older than
    ``older_than_s`` seconds are touched, so a run in progress keeps its own. With
    ``target`` (a name in ``folder``) only the temporaries made for that target are
    touched: a caller holding a lock that no other writer of it can pass may then give
    ``older_than_s=0``.
    """
    wanted = None if target is None else re.compile(
        re.escape(_temp_prefix(Path(target))) + r"[a-z0-9_]{8}(\.[^.]*)?")
    removed = []
    now = time.time()
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(TEMP_PREFIX):
            continue
        if wanted is not None and not wanted.fullmatch(entry.name):
            continue
        try:
            if now - entry.lstat().st_mtime < older_than_s:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry)
        except OSError:
            continue
    return removed


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_not_input(output: str | os.PathLike, inputs: Iterable[str | os.PathLike],
                    what: str = "output") -> None:
    """Refuse an output path that is one of the inputs or lies inside an input folder.

    Paths are compared after resolving symlinks, so a link into an input is caught too.
    Raises :class:`~kws.errors.UsageError` naming both.
    """
    # os.path.realpath, not Path.resolve: the latter raises RuntimeError on a symlink loop
    # (Python < 3.13); a loop is then reported by whoever reads the path.
    resolved = Path(os.path.realpath(output))
    for item in inputs:
        source = Path(os.path.realpath(item))
        if resolved == source or (source.is_dir() and _is_within(resolved, source)):
            raise UsageError(f"{what} {output}: would write over the input {item}; "
                             "choose another path")


@contextlib.contextmanager
def locked_folder(folder: str | os.PathLike, option: str = "--out") -> Iterator[Path]:
    """Create ``folder`` if needed and hold an advisory lock on it for the block.

    A second kws run that wants the same folder gets a one-line :class:`~kws.errors.KwsError`
    at once instead of silently replacing the first run's files. The lock is on the folder
    itself (no lock file is left behind) and is released when the process ends, however it
    ends. ``option`` names the option to change in the message.
    """
    Path(folder).mkdir(parents=True, exist_ok=True)
    with locked_directory(folder, option) as locked:
        yield locked


@contextlib.contextmanager
def locked_directory(folder: str | os.PathLike, option: str = "--out") -> Iterator[Path]:
    """Hold an advisory lock on an existing folder for the block (see :func:`locked_folder`)."""
    folder = Path(folder)
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise KwsError(f"{folder}: another kws run is writing there; wait for it "
                               f"or choose another {option}") from None
            raise
        yield folder
    finally:
        os.close(descriptor)


def check_writable(path: str | os.PathLike, what: str = "output") -> None:
    """Refuse, before any work, an output path whose folder cannot take a new file.

    The nearest existing folder above ``path`` (the folders below it are made when
    writing) gets a temporary file, removed at once: that is the only sure test (``/proc``
    and read-only mounts say yes to ``os.access`` for root). Raises
    :class:`~kws.errors.UsageError` naming ``what`` and the folder.
    """
    folder = Path(os.path.abspath(path)).parent
    while not folder.exists() and folder != folder.parent:
        if folder.is_symlink():
            raise UsageError(f"{what} {path}: {folder} is a dangling symbolic link")
        folder = folder.parent
    if not folder.is_dir():
        raise UsageError(f"{what} {path}: {folder} is not a folder")
    try:
        handle, name = tempfile.mkstemp(prefix=_temp_prefix(Path(path)), dir=folder)
    except OSError as error:
        reason = ("files cannot be made there" if error.errno == errno.ENOENT
                  else (error.strerror or str(error)).lower())
        raise UsageError(f"{what} {path}: cannot write into {folder} ({reason})") from None
    os.close(handle)
    os.unlink(name)
