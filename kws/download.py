"""Fetch a Speech Commands archive, verify it and unpack it safely.

The archive is downloaded with HTTP ``Range`` into ``<dest>/<archive>.part``, so an
interrupted download (network error, Ctrl-C) resumes where it stopped; a server that
ignores ``Range``, or whose file changed (``If-Range``), makes it start again. The whole
archive is checked against its SHA-256 before anything is unpacked. Members are unpacked
one by one into a hidden folder next to the destination, refusing absolute paths, ``..``,
links that leave the folder and device files; the folder is renamed into place only when
it is whole, with a marker file that makes a later run a no-op.

Only the standard library is used for the network (``urllib.request``); progress goes to
a callback, so the command line can draw it with rich and other callers can ignore it.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shutil
import tarfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath, PureWindowsPath
from urllib.parse import urlsplit

from kws import __version__
from kws.errors import DownloadError, UsageError
from kws.modelfolder import write_text_atomic

#: Written into a dataset folder after a successful unpack; its presence means "complete".
MARKER = ".kws-download.json"
#: ``progress(stage, done, total)``: stage is ``download``, ``verify`` or ``extract``;
#: ``done`` and ``total`` count bytes (``total`` is None when the server does not say).
ProgressCallback = Callable[[str, int, "int | None"], None]
#: ``log(message)``: one-line remarks (resuming, retrying, not verified, already there).
LogCallback = Callable[[str], None]

_CHUNK = 1 << 16
_HASH_CHUNK = 1 << 20
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CONTENT_RANGE = re.compile(r"^bytes\s+(\d+)-(\d+)/(\d+|\*)$")
_UNSATISFIED_RANGE = re.compile(r"^bytes\s+\*/(\d+)$")


@dataclass(frozen=True)
class Release:
    """A published Speech Commands archive."""

    version: str
    url: str
    #: Known SHA-256 of the archive, or None when none is known.
    sha256: str | None
    description: str

    @property
    def archive_name(self) -> str:
        """File name of the archive (the last part of its URL)."""
        return self.url.rsplit("/", 1)[-1]

    @property
    def folder(self) -> str:
        """Name of the dataset folder made under the destination: the archive's stem."""
        return self.archive_name.removesuffix(".tar.gz")


RELEASES = {
    release.version: release
    for release in (
        Release(
            "v0.01",
            "http://download.tensorflow.org/data/speech_commands_v0.01.tar.gz",
            "743935421bb51cccdb6bdd152e04c5c70274e935c82119ad7faeec31780d811d",
            "Speech Commands v0.01: 30 words, 64,727 clips, about 1.4 GB",
        ),
        Release(
            "v0.02",
            "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz",
            None,
            "Speech Commands v0.02: 35 words, about 2.3 GB",
        ),
        Release(
            "v0.02-test",
            "http://download.tensorflow.org/data/speech_commands_test_set_v0.02.tar.gz",
            None,
            "the canonical 12-label test set of v0.02 (with _silence_ and _unknown_)",
        ),
    )
}


def dataset_folder(version: str = "v0.01", dest: str | os.PathLike = "data") -> Path:
    """The folder a release is unpacked into: ``<dest>/<archive name without .tar.gz>``."""
    return Path(dest) / _release(version).folder


def is_complete(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds a dataset that a download finished unpacking."""
    return (Path(folder) / MARKER).is_file()


def download_dataset(
    version: str = "v0.01",
    dest: str | os.PathLike = "data",
    url: str | None = None,
    archive: str | os.PathLike | None = None,
    sha256: str | None = None,
    verify: bool = True,
    keep_archive: bool = False,
    retries: int = 3,
    retry_wait: float = 2.0,
    timeout: float = 60.0,
    progress: ProgressCallback | None = None,
    log: LogCallback | None = None,
) -> Path:
    """Download (or take from disk), verify and unpack one Speech Commands release.

    Parameters
    ----------
    version
        A key of :data:`RELEASES`; it names the folder made under ``dest``.
    dest
        Parent folder of the dataset folder (created when missing).
    url
        Download from here instead of the release's own URL (a mirror). The release's
        known SHA-256 is still checked unless ``sha256`` or ``verify=False`` says otherwise.
    archive
        Use this archive file instead of downloading; it is never modified or deleted.
    sha256
        Expected SHA-256 of the archive, overriding the known one.
    verify
        False skips the checksum (for a mirror that repacked the archive).
    keep_archive
        Keep the downloaded archive in ``dest`` after unpacking it.
    retries, retry_wait
        How often a dropped connection is resumed within this call, and the pause (seconds,
        doubled each time) before each retry.
    progress, log
        Callbacks for progress in bytes and for one-line remarks.

    Returns
    -------
    Path
        The dataset folder. If it is already complete nothing is done.
    """
    release = _release(version)
    expected = _expected_hash(release, sha256, verify)
    if url is not None and archive is not None:
        raise UsageError("--url and --archive cannot be used together")
    if url is not None and urlsplit(url).scheme not in ("http", "https"):
        raise UsageError(f"--url: {url!r} is not an http:// or https:// address")
    progress = progress or _ignore_progress
    log = log or _ignore_log
    dest = Path(dest)
    target = dest / release.folder
    if is_complete(target):
        log(f"{target} is already complete; nothing to do")
        return target
    if target.exists():
        raise DownloadError(
            f"{target}: exists but is not a complete download (no {MARKER}); "
            "remove it or choose another destination"
        )
    _make_folder(dest)
    if expected is None:
        reason = "checking was turned off" if not verify else "no SHA-256 is known for it"
        log(f"the {version} archive will not be verified: {reason}")
    if archive is not None:
        source_path = Path(archive)
        if not source_path.is_file():
            raise DownloadError(f"{source_path}: no such archive file")
        source = str(source_path)
        digest = _verify(source_path, expected, progress, delete_on_mismatch=False)
    else:
        source = url or release.url
        source_path = dest / release.archive_name
        if source_path.is_file():
            log(f"using {source_path}, downloaded by an earlier run")
        else:
            part = source_path.with_name(source_path.name + ".part")
            _fetch_with_retries(source, part, retries, retry_wait, timeout, progress, log)
            _rename(part, source_path)
        digest = _verify(source_path, expected, progress, delete_on_mismatch=True)
    record = {
        "version": version,
        "source": source,
        "sha256": digest,
        "verified": expected is not None,
    }
    files = _unpack(source_path, target, record, progress)
    log(f"unpacked {files} files into {target}")
    if archive is None and not keep_archive:
        source_path.unlink(missing_ok=True)
    return target


def _release(version: str) -> Release:
    if version not in RELEASES:
        raise UsageError(f"unknown version {version!r} (choose from {', '.join(RELEASES)})")
    return RELEASES[version]


def _expected_hash(release: Release, sha256: str | None, verify: bool) -> str | None:
    """The SHA-256 the archive must have, or None when it is not checked."""
    if not verify:
        if sha256 is not None:
            raise UsageError("--sha256 and --no-verify cannot be used together")
        return None
    if sha256 is None:
        return release.sha256
    wanted = sha256.strip().lower()
    if not _SHA256.match(wanted):
        raise UsageError(f"--sha256: {sha256!r} is not a SHA-256 (64 hexadecimal digits)")
    return wanted


def _ignore_progress(stage: str, done: int, total: int | None) -> None:
    """The default progress callback: report nothing."""


def _ignore_log(message: str) -> None:
    """The default log callback: say nothing."""


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DownloadError(f"{folder}: cannot create folder ({_reason(error)})") from error


def _rename(source: Path, target: Path) -> None:
    try:
        os.replace(source, target)
    except OSError as error:
        raise DownloadError(f"{target}: cannot rename {source} ({_reason(error)})") from error


def _reason(error: BaseException) -> str:
    """A short description of an OS or network error."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__


def _human_size(count: float) -> str:
    """A byte count for people: ``1.4 GB``."""
    for unit in ("bytes", "kB", "MB", "GB"):
        if abs(count) < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} GB"


class _Transient(DownloadError):
    """A network failure that resuming may get past (dropped connection, time-out, 5xx)."""


def _fetch_with_retries(
    url: str,
    part: Path,
    retries: int,
    retry_wait: float,
    timeout: float,
    progress: ProgressCallback,
    log: LogCallback,
) -> None:
    """Download ``url`` into ``part``, resuming after transient failures."""
    log(f"downloading {url}")
    for attempt in range(retries + 1):
        try:
            _fetch(url, part, timeout, progress, log)
            part.with_name(part.name + ".json").unlink(missing_ok=True)
            return
        except _Transient as error:
            if attempt == retries:
                kept = part.stat().st_size if part.exists() else 0
                raise DownloadError(
                    f"{error}; {_human_size(kept)} kept in {part}, run again to resume"
                ) from error
            wait = retry_wait * 2**attempt
            log(f"{error}; retrying in {wait:.0f} s ({attempt + 1} of {retries})")
            time.sleep(wait)


def _fetch(
    url: str, part: Path, timeout: float, progress: ProgressCallback, log: LogCallback
) -> None:
    """One attempt to complete ``part``: resume it with ``Range`` or start it afresh."""
    import urllib.error
    import urllib.request

    meta_path = part.with_name(part.name + ".json")
    offset = part.stat().st_size if part.is_file() else 0
    meta = _read_meta(meta_path) if offset else {}
    if offset and meta.get("url") != url:
        log(f"{part} came from another URL; starting again")
        offset = 0
    request = urllib.request.Request(url, headers={"User-Agent": f"kws/{__version__}"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
        validator = meta.get("etag") or meta.get("last_modified")
        if validator:
            request.add_header("If-Range", validator)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        with error:
            if error.code == 416 and offset:
                if _unsatisfied_total(error.headers.get("Content-Range")) == offset:
                    return
                log(f"{url}: the server refused to resume; starting again")
                part.unlink(missing_ok=True)
                return _fetch(url, part, timeout, progress, log)
            message = f"{url}: HTTP error {error.code} {error.reason}"
            if error.code >= 500:
                raise _Transient(message) from error
            raise DownloadError(message) from error
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        raise _Transient(f"{url}: {_network_reason(error)}") from error
    with response:
        total, offset = _response_span(response, offset, url, part, log)
        if offset == 0:
            _write_meta(meta_path, url, response.headers)
        _check_space(part.parent, total - offset if total is not None else None)
        _receive(response, part, offset, total, url, progress, log)


def _network_reason(error: BaseException) -> str:
    """What went wrong with a connection, without the exception's wrapping."""
    reason = getattr(error, "reason", error)
    return _reason(reason) if isinstance(reason, BaseException) else str(reason)


def _read_meta(path: Path) -> dict:
    """What was recorded about a partial download (URL and validators), or nothing."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _write_meta(path: Path, url: str, headers) -> None:
    """Record the URL and the validators that ``If-Range`` sends when resuming."""
    etag = headers.get("ETag")
    meta = {
        "url": url,
        "etag": etag if etag and not etag.startswith("W/") else None,
        "last_modified": headers.get("Last-Modified"),
    }
    try:
        write_text_atomic(path, json.dumps(meta) + "\n")
    except OSError as error:
        raise DownloadError(f"{path}: cannot write ({_reason(error)})") from error


def _unsatisfied_total(content_range: str | None) -> int | None:
    """The full size a 416 answer reports (``bytes */SIZE``), if it does."""
    match = _UNSATISFIED_RANGE.match((content_range or "").strip())
    return int(match[1]) if match else None


def _response_span(response, offset: int, url: str, part: Path, log: LogCallback):
    """``(total size or None, offset the body starts at)`` of a response.

    A ``206`` must continue exactly where the partial file ends; anything else (a ``200``
    from a server that ignores ``Range`` or whose file changed) restarts from zero.
    """
    length = response.headers.get("Content-Length")
    length = int(length) if length and length.isdigit() else None
    if response.status == 206:
        match = _CONTENT_RANGE.match(response.headers.get("Content-Range", "").strip())
        if match is None or int(match[1]) != offset:
            raise _Transient(f"{url}: the server answered the resume request with the wrong range")
        total = None if match[3] == "*" else int(match[3])
        log(f"resuming {part.name} at {_human_size(offset)}")
        return total, offset
    if offset:
        log(f"{url}: the server did not resume the download; starting again")
    return length, 0


def _check_space(folder: Path, needed: int | None) -> None:
    """Fail early when the download cannot fit on the disk."""
    if needed is None:
        return
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if free < needed:
        raise DownloadError(
            f"{folder}: not enough free space ({_human_size(free)} free, "
            f"{_human_size(needed)} needed for the download)"
        )


def _receive(
    response,
    part: Path,
    offset: int,
    total: int | None,
    url: str,
    progress: ProgressCallback,
    log: LogCallback,
) -> None:
    """Write the body of ``response`` into ``part`` from ``offset`` on.

    Whatever arrived stays in ``part`` when the connection drops or the user presses
    Ctrl-C, so the next attempt resumes from there.
    """
    try:
        handle = part.open("r+b" if offset else "wb")
        with handle:
            handle.truncate(offset)
            handle.seek(offset)
            done = _copy_body(response, handle, offset, total, url, progress, log, part)
    except OSError as error:
        raise DownloadError(f"{part}: cannot write ({_reason(error)})") from error
    if total is not None and done < total:
        raise _Transient(
            f"{url}: connection closed after {_human_size(done)} of {_human_size(total)}"
        )


def _copy_body(response, handle, done, total, url, progress, log, part: Path) -> int:
    """Copy chunks from the network to the open file; return the bytes now in it."""
    progress("download", done, total)
    try:
        while True:
            try:
                chunk = response.read(_CHUNK)
            except (http.client.HTTPException, OSError) as error:
                raise _Transient(f"{url}: connection lost ({_network_reason(error)})") from error
            if not chunk:
                return done
            handle.write(chunk)
            done += len(chunk)
            progress("download", done, total)
    except KeyboardInterrupt:
        log(f"interrupted: {_human_size(done)} kept in {part}, run again to resume")
        raise


def _verify(
    archive: Path, expected: str | None, progress: ProgressCallback, delete_on_mismatch: bool
) -> str | None:
    """Check the archive's SHA-256 against ``expected``; return it (None when unchecked)."""
    if expected is None:
        return None
    digest = hashlib.sha256()
    try:
        total = archive.stat().st_size
        done = 0
        progress("verify", done, total)
        with archive.open("rb") as handle:
            while chunk := handle.read(_HASH_CHUNK):
                digest.update(chunk)
                done += len(chunk)
                progress("verify", done, total)
    except OSError as error:
        raise DownloadError(f"{archive}: cannot read ({_reason(error)})") from error
    actual = digest.hexdigest()
    if actual != expected:
        note = ""
        if delete_on_mismatch:
            archive.unlink(missing_ok=True)
            note = "; the download was deleted"
        raise DownloadError(
            f"{archive}: SHA-256 mismatch (expected {expected}, got {actual}){note}"
        )
    return actual


def _unpack(archive: Path, target: Path, record: dict, progress: ProgressCallback) -> int:
    """Unpack ``archive`` into a hidden folder beside ``target``, then rename it there.

    The marker (``record`` plus the file count and the time) is written last, inside the
    hidden folder, so ``target`` appears whole and marked, or not at all. Returns the
    number of files unpacked.
    """
    staging = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        if staging.exists():
            shutil.rmtree(staging)
        _make_folder(staging)
        files = _extract_members(archive, staging, progress)
        record = {
            **record,
            "files": files,
            "completed": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "kws": __version__,
        }
        try:
            write_text_atomic(staging / MARKER, json.dumps(record, indent=2) + "\n")
        except OSError as error:
            raise DownloadError(f"{staging / MARKER}: cannot write ({_reason(error)})") from error
        _rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return files


def _extract_members(archive: Path, folder: Path, progress: ProgressCallback) -> int:
    """Check and unpack every member of ``archive`` into ``folder``, in order."""
    root = os.path.realpath(folder)
    files = 0
    try:
        total = archive.stat().st_size
        with archive.open("rb") as raw, tarfile.open(fileobj=raw, mode="r:*") as tar:
            progress("extract", 0, total)
            for member in tar:
                problem = _member_problem(member) or _escapes(member, root)
                if problem:
                    raise DownloadError(f"{archive}: refused member {member.name!r}: {problem}")
                _extract_one(tar, member, folder)
                files += member.isfile()
                progress("extract", raw.tell(), total)
            progress("extract", total, total)
    except tarfile.FilterError as error:
        name = getattr(error.tarinfo, "name", "?")
        raise DownloadError(f"{archive}: refused member {name!r}: {error}") from error
    except (tarfile.TarError, EOFError, zlib.error) as error:
        raise DownloadError(f"{archive}: not a readable tar archive ({error})") from error
    except OSError as error:
        raise DownloadError(f"{archive}: cannot unpack into {folder} ({_reason(error)})") from error
    if files == 0:
        raise DownloadError(f"{archive}: the archive holds no files")
    return files


def _extract_one(tar: tarfile.TarFile, member: tarfile.TarInfo, folder: Path) -> None:
    """Unpack one checked member; folders get default permissions so files fit in them."""
    if hasattr(tarfile, "data_filter"):
        tar.extract(member, folder, set_attrs=not member.isdir(), filter="data")
        return
    member.uid, member.gid, member.uname, member.gname = os.getuid(), os.getgid(), "", ""
    member.mode &= 0o755
    tar.extract(member, folder, set_attrs=not member.isdir())


def _member_problem(member: tarfile.TarInfo) -> str | None:
    """Why a member may not be unpacked, judged by its name and type alone."""
    name = member.name
    if _is_absolute(name):
        return "absolute path"
    if ".." in PurePosixPath(name).parts:
        return "path contains '..'"
    if member.ischr() or member.isblk():
        return "device file"
    if member.isfifo():
        return "FIFO (named pipe)"
    if member.issym() or member.islnk():
        link = member.linkname
        if _is_absolute(link):
            return f"link to the absolute path {link!r}"
        base = PurePosixPath(name).parent if member.issym() else PurePosixPath()
        if not _stays_inside(base / link):
            return f"link pointing outside the archive ({link!r})"
    elif not (member.isfile() or member.isdir()):
        return "not a file, folder or link"
    return None


def _escapes(member: tarfile.TarInfo, root: str) -> str | None:
    """Whether the member, or its link target, resolves outside ``root`` on disk.

    This catches what the names alone cannot: a path through a link unpacked earlier.
    """
    path = os.path.join(root, member.name)
    if not _within(os.path.realpath(path), root):
        return "path leads outside the destination through a link"
    if member.issym() or member.islnk():
        base = os.path.dirname(path) if member.issym() else root
        if not _within(os.path.realpath(os.path.join(base, member.linkname)), root):
            return f"link pointing outside the destination ({member.linkname!r})"
    return None


def _is_absolute(name: str) -> bool:
    return name.startswith(("/", "\\")) or bool(PureWindowsPath(name).drive)


def _stays_inside(path: PurePosixPath) -> bool:
    """Whether a relative path never climbs above its starting folder."""
    depth = 0
    for part in path.parts:
        if part == "..":
            depth -= 1
            if depth < 0:
                return False
        elif part != ".":
            depth += 1
    return True


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)
