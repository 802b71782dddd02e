"""Fetch a Speech Commands archive, verify it and unpack it safely.

The archive is downloaded with HTTP ``Range`` into ``<dest>/<archive>.part``, so an
interrupted download (network error, Ctrl-C) resumes where it stopped; a server that
ignores ``Range``, or whose file changed (``If-Range``), makes it start again. A connection
that delivers less than ``min_speed`` bytes per second over ``timeout`` seconds (a server
trickling bytes, while sending headers or body) is dropped and resumed like a broken one.
The whole archive is checked against its SHA-256 before anything is unpacked; when no
SHA-256 is known a warning says so, and the archive's own SHA-256 is recorded.

Speech Commands archives hold only folders and regular files, so that is all that is
unpacked: links, devices and FIFOs are refused, and member names are checked as text
(relative, no ``..``, bounded lengths) without resolving anything on disk. Every folder
and file is created relative to an open descriptor of the staging folder, never following
a link, so no member can write outside it; total size and member count are capped against
tar bombs. Staging is a ``.kws-tmp-`` folder (:func:`kws.files.atomic_folder`) renamed into
place when whole, with a marker file that makes a later run a no-op. The destination is
locked while a run works in it, so a later run may remove what a killed run left behind.

Only the standard library is used for the network (``urllib.request``); progress and
remarks go to callbacks, so the command line can draw them and other callers can ignore
them.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import stat
import tarfile
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PureWindowsPath
from urllib.parse import urlsplit

from kws import __version__
from kws.errors import DownloadError, UsageError
from kws.files import atomic_folder, locked_directory, remove_stale_temporaries, write_text

#: Written into a dataset folder after a successful unpack; its presence means "complete".
MARKER = ".kws-download.json"
#: ``progress(stage, done, total)``: stage is ``download``, ``verify`` or ``extract``;
#: ``done`` and ``total`` count bytes (``total`` is None when the server does not say).
ProgressCallback = Callable[[str, int, "int | None"], None]
#: ``log(message)``: one-line remarks (resuming, retrying, already there); also used for
#: warnings (an unverified download) when no ``warn`` callback is given.
LogCallback = Callable[[str], None]

#: Default lowest average speed (bytes per second over ``timeout`` seconds) of a download.
MIN_SPEED = 1000.0
#: At most this many bytes are unpacked from any archive ...
MAX_UNPACKED_BYTES = 16 * 10**9
#: ... and at most this many bytes per byte of archive, beyond a first 100 MB.
MAX_EXPANSION = 20
#: At most this many members (Speech Commands v0.02 has about 106,000).
MAX_MEMBERS = 500_000
#: Longest member name in bytes, longest part of a name, deepest folder nesting.
MAX_NAME_BYTES, MAX_PART_BYTES, MAX_DEPTH = 1024, 255, 32

_CHUNK = 1 << 16
_HASH_CHUNK = 1 << 20
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CONTENT_RANGE = re.compile(r"^bytes\s+(\d+)-(\d+)/(\d+|\*)$")
_UNSATISFIED_RANGE = re.compile(r"^bytes\s+\*/(\d+)$")
_OLD_STAGING = re.compile(r"\.(.+)\.(\d+)\.tmp")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
#: Errors that mean two members claim one name (a file where a folder is, or twice).
_CLASHES = (errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.ELOOP)


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
            "https://download.tensorflow.org/data/speech_commands_v0.01.tar.gz",
            "743935421bb51cccdb6bdd152e04c5c70274e935c82119ad7faeec31780d811d",
            "Speech Commands v0.01: 30 words, 64,727 clips, about 1.4 GB",
        ),
        Release(
            "v0.02",
            "https://download.tensorflow.org/data/speech_commands_v0.02.tar.gz",
            None,
            "Speech Commands v0.02: 35 words, about 2.3 GB",
        ),
        Release(
            "v0.02-test",
            "https://download.tensorflow.org/data/speech_commands_test_set_v0.02.tar.gz",
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
    min_speed: float = MIN_SPEED,
    progress: ProgressCallback | None = None,
    log: LogCallback | None = None,
    warn: LogCallback | None = None,
) -> Path:
    """Download (or take from disk), verify and unpack one Speech Commands release.

    Parameters
    ----------
    version
        A key of :data:`RELEASES`; it names the folder made under ``dest``.
    dest
        Parent folder of the dataset folder (created when missing; locked while working).
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
    timeout, min_speed
        A connection is dropped (and resumed) when it delivers less than ``min_speed``
        bytes per second on average over ``timeout`` seconds, or nothing for as long.
    progress, log, warn
        Callbacks for progress in bytes, one-line remarks and one-line warnings (``warn``
        defaults to ``log``).

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
    warn = warn or log
    dest = Path(dest)
    target = dest / release.folder
    if is_complete(target):
        log(f"{target} is already complete; nothing to do")
        return target
    _make_folder(dest)
    with locked_directory(dest, "--dest"):
        _remove_leftovers(dest, log)
        if is_complete(target):
            log(f"{target} is already complete; nothing to do")
            return target
        if target.exists() or target.is_symlink():
            raise DownloadError(
                f"{target}: exists but is not a complete download (no {MARKER}); "
                "remove it or choose another destination"
            )
        source = str(archive) if archive is not None else url or release.url
        _say_if_unverified(version, source, expected, verify, archive is None, log, warn)
        fetch = _Fetch(retries, retry_wait, timeout, min_speed, progress, log)
        return _obtain_and_unpack(release, target, source, archive, expected, keep_archive,
                                  fetch)


def _obtain_and_unpack(release: Release, target: Path, source: str,
                       archive: str | os.PathLike | None, expected: str | None,
                       keep_archive: bool, fetch: _Fetch) -> Path:
    """Get the archive (from disk or the network), verify it and unpack it into ``target``."""
    if archive is not None:
        archive_path = Path(archive)
        if not archive_path.is_file():
            raise DownloadError(f"{archive_path}: no such archive file")
        digest = _verify(archive_path, expected, fetch.progress, delete_on_mismatch=False)
    else:
        archive_path = target.parent / release.archive_name
        _fetch_archive(source, archive_path, expected, fetch)
        digest = _verify(archive_path, expected, fetch.progress, delete_on_mismatch=True)
    record = {
        "version": release.version,
        "source": source,
        "sha256": digest,
        "verified": expected is not None,
    }
    files = _unpack(archive_path, target, record, fetch.progress)
    fetch.log(f"unpacked {files} files into {target} (archive SHA-256 {digest})")
    if archive is None and not keep_archive:
        archive_path.unlink(missing_ok=True)
        _origin_path(archive_path).unlink(missing_ok=True)
    return target


def _say_if_unverified(version: str, source: str, expected: str | None, verify: bool,
                       network: bool, log: LogCallback, warn: LogCallback) -> None:
    """One line before the work starts when the archive's checksum will not be checked.

    Turned off on purpose it is a remark; unknown it is a warning, louder still when the
    archive comes over plain ``http://``.
    """
    if expected is not None:
        return
    if not verify:
        log(f"the {version} archive will not be verified: checking was turned off")
        return
    channel = "; it comes over plain http://" if network and source.startswith("http:") else ""
    warn(f"the {version} archive will not be verified: no SHA-256 is known for it{channel} "
         "(give --sha256 to check it)")


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


def _remove_leftovers(dest: Path, log: LogCallback) -> None:
    """Remove the staging folders and temporaries that killed downloads left in ``dest``.

    Runs with ``dest`` locked, so no other download is working there: whatever a download
    made for one of the releases goes, however recent. Other kws temporaries are left to
    the usual age rule.
    """
    removed = _remove_old_staging(dest)
    for release in RELEASES.values():
        for name in (release.folder, release.archive_name + ".part.json",
                     _origin_path(Path(release.archive_name)).name):
            removed += remove_stale_temporaries(dest, older_than_s=0.0, target=name)
    if removed:
        names = ", ".join(path.name for path in removed)
        log(f"removed what an interrupted download left in {dest}: {names}")


def _remove_old_staging(dest: Path) -> list[Path]:
    """Remove ``.<dataset>.<pid>.tmp`` staging folders of kws 0.2.0 and older.

    Those runs took no lock, so a folder is removed only when its process is gone.
    """
    removed = []
    folders = {release.folder for release in RELEASES.values()}
    for entry in _entries(dest):
        match = _OLD_STAGING.fullmatch(entry.name)
        if match is None or match[1] not in folders or _process_exists(int(match[2])):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def _entries(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except OSError:
        return []


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):
        pass
    return True


def _rename(source: Path, target: Path) -> None:
    try:
        os.replace(source, target)
    except OSError as error:
        raise DownloadError(f"{target}: cannot rename {source} ({_reason(error)})") from error


def _reason(error: BaseException) -> str:
    """A short, one-line description of an OS or network error."""
    if isinstance(error, OSError) and error.strerror:
        text = error.strerror
    else:
        text = str(error) or type(error).__name__
    return " ".join(text.split())


def _human_size(count: float) -> str:
    """A byte count for people: ``1.4 GB``."""
    for unit in ("bytes", "kB", "MB", "GB"):
        if abs(count) < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} GB"


class _Transient(DownloadError):
    """A network failure that resuming may get past (dropped connection, time-out, 5xx)."""


@dataclass(frozen=True)
class _Fetch:
    """How to download: retries, time limits and the callbacks to report through."""

    retries: int
    retry_wait: float
    timeout: float
    min_speed: float
    progress: ProgressCallback
    log: LogCallback


def _fetch_archive(url: str, archive: Path, expected: str | None, fetch: _Fetch) -> None:
    """Make ``archive`` hold the whole download, reusing what earlier runs left.

    The URL each download came from is recorded beside the archive (:func:`_origin_path`),
    written before the archive gets its name, so a later run knows where it came from.
    """
    if _regular_size(archive) is not None and _reusable(url, archive, expected, fetch):
        return
    part = archive.with_name(archive.name + ".part")
    fetch.log(f"downloading {url}")
    for attempt in range(fetch.retries + 1):
        try:
            _fetch(url, part, fetch)
            _write_origin(archive, url)
            part.with_name(part.name + ".json").unlink(missing_ok=True)
            _rename(part, archive)
            return
        except _Transient as error:
            if attempt == fetch.retries:
                kept = _regular_size(part) or 0
                raise DownloadError(
                    f"{error}; {_human_size(kept)} kept in {part}, run again to resume"
                ) from error
            wait = fetch.retry_wait * 2**attempt
            fetch.log(f"{error}; retrying in {wait:.0f} s ({attempt + 1} of {fetch.retries})")
            time.sleep(wait)


def _origin_path(archive: Path) -> Path:
    """Where kws records the URL a downloaded archive came from."""
    return archive.with_name(archive.name + ".kws.json")


def _write_origin(archive: Path, url: str) -> None:
    try:
        write_text(_origin_path(archive), json.dumps({"url": url}) + "\n")
    except OSError as error:
        raise DownloadError(f"{_origin_path(archive)}: cannot write ({_reason(error)})") from error


def _reusable(url: str, archive: Path, expected: str | None, fetch: _Fetch) -> bool:
    """Whether an archive an earlier run left in ``dest`` may stand for ``url``'s.

    It may when kws downloaded it from the same URL, or when it has the expected SHA-256.
    One kws downloaded from another URL is removed (so it is downloaded again); one kws
    did not download is never touched: that is refused.
    """
    origin = _read_meta(_origin_path(archive)).get("url")
    if origin == url:
        fetch.log(f"using {archive}, downloaded from the same URL by an earlier run")
        return True
    if expected is not None and _verify(archive, None, fetch.progress, False) == expected:
        fetch.log(f"using {archive}, left by an earlier run (its SHA-256 is the expected one)")
        return True
    if origin is None:
        raise DownloadError(
            f"{archive}: already there, but not downloaded by kws from {url} "
            "(remove it, or give it with --archive)"
        )
    fetch.log(f"{archive} was downloaded from another URL ({origin}); downloading again")
    archive.unlink(missing_ok=True)
    _origin_path(archive).unlink(missing_ok=True)
    return False


def _regular_size(path: Path) -> int | None:
    """Size of the regular file at ``path``, None when there is none.

    A symbolic link or anything else planted at a name kws writes is refused: kws never
    writes through a link.
    """
    try:
        info = path.lstat()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise DownloadError(f"{path}: cannot read ({_reason(error)})") from error
    if not stat.S_ISREG(info.st_mode):
        kind = "a symbolic link" if stat.S_ISLNK(info.st_mode) else "not a regular file"
        raise DownloadError(f"{path}: is {kind}; kws will not write through it (remove it)")
    return info.st_size


class _Watchdog:
    """Drops a connection that delivers under ``min_speed`` bytes/s over ``window`` seconds.

    The socket time-out only bounds one read, so a server sending a byte every few seconds
    (headers or body) would otherwise hold a download forever. A thread checks the bytes
    counted in each window and shuts the socket down, which ends the blocked read.
    """

    def __init__(self, min_speed: float, window: float) -> None:
        self.min_speed, self.window = min_speed, window
        self.received = 0
        self.tripped = False
        self._sock: socket.socket | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="kws-download-watchdog",
                                        daemon=True)

    def __enter__(self) -> _Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()

    def attach(self, sock: socket.socket) -> None:
        """Watch the socket of a new connection (each redirect opens one)."""
        self._sock = sock
        if self.tripped:
            self._shut()

    def message(self, url: str) -> str:
        return (f"{url}: too slow (less than {_human_size(self.min_speed)}/s over "
                f"{self.window:g} s)")

    def _watch(self) -> None:
        start, mark = time.monotonic(), 0
        while not self._stop.wait(min(1.0, self.window / 8)):
            now = time.monotonic()
            if now - start < self.window:
                continue
            if self.received - mark < self.min_speed * self.window:
                self.tripped = True
                self._shut()
                return
            start, mark = now, self.received

    def _shut(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(self._sock, socket.SHUT_RDWR)


def _opener(watchdog: _Watchdog):
    """A urllib opener whose connections report their sockets to ``watchdog``."""
    import urllib.request

    class Connection(http.client.HTTPConnection):
        def connect(self) -> None:
            super().connect()
            watchdog.attach(self.sock)

    class SecureConnection(http.client.HTTPSConnection):
        def connect(self) -> None:
            super().connect()
            watchdog.attach(self.sock)

    class Handler(urllib.request.HTTPHandler):
        def http_open(self, req):
            return self.do_open(Connection, req)

    class SecureHandler(urllib.request.HTTPSHandler):
        def https_open(self, req):
            return self.do_open(SecureConnection, req, context=self._context)

    return urllib.request.build_opener(Handler(), SecureHandler())


def _fetch(url: str, part: Path, fetch: _Fetch) -> None:
    """One attempt to complete ``part``, watched for a too slow connection."""
    with _Watchdog(fetch.min_speed, fetch.timeout) as watchdog:
        try:
            _attempt(url, part, fetch, watchdog)
        except _Transient as error:
            if watchdog.tripped:
                raise _Transient(watchdog.message(url)) from error
            raise
        if watchdog.tripped:
            raise _Transient(watchdog.message(url))


def _attempt(url: str, part: Path, fetch: _Fetch, watchdog: _Watchdog) -> None:
    """Resume ``part`` with ``Range``, or start it afresh."""
    import urllib.error
    import urllib.request

    meta_path = part.with_name(part.name + ".json")
    offset = _regular_size(part) or 0
    meta = _read_meta(meta_path) if offset else {}
    if offset and meta.get("url") != url:
        fetch.log(f"{part} came from another URL; starting again")
        offset = 0
    request = urllib.request.Request(url, headers={"User-Agent": f"kws/{__version__}"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
        validator = meta.get("etag") or meta.get("last_modified")
        if validator:
            request.add_header("If-Range", validator)
    try:
        response = _opener(watchdog).open(request, timeout=fetch.timeout)
    except urllib.error.HTTPError as error:
        with error:
            if error.code == 416 and offset:
                if _unsatisfied_total(error.headers.get("Content-Range")) == offset:
                    return
                fetch.log(f"{url}: the server refused to resume; starting again")
                part.unlink(missing_ok=True)
                return _attempt(url, part, fetch, watchdog)
            raise _http_error(url, error) from error
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        raise _Transient(f"{url}: {_network_reason(error)}") from error
    with response:
        total, offset = _response_span(response, offset, url, part, fetch.log)
        if offset == 0:
            _write_meta(meta_path, url, response.headers)
        _check_space(part.parent, total - offset if total is not None else None)
        _receive(response, part, offset, total, url, fetch, watchdog)


def _http_error(url: str, error) -> DownloadError:
    """The one-line error for an HTTP error answer (a redirect loop included)."""
    if 300 <= error.code < 400:
        return DownloadError(f"{url}: too many redirects (the server redirects in a loop)")
    message = f"{url}: HTTP error {error.code} {' '.join(str(error.reason).split())}"
    return _Transient(message) if error.code >= 500 else DownloadError(message)


def _network_reason(error: BaseException) -> str:
    """What went wrong with a connection, without the exception's wrapping."""
    reason = getattr(error, "reason", error)
    if isinstance(reason, BaseException):
        return _reason(reason)
    return " ".join(str(reason).split())


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
        write_text(path, json.dumps(meta) + "\n")
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


def _open_part(part: Path) -> int:
    """Open the partial download for writing, never through a link or into a FIFO."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        descriptor = os.open(part, flags, 0o666)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise DownloadError(f"{part}: is a symbolic link; kws will not write through it "
                                "(remove it)") from error
        raise DownloadError(f"{part}: cannot write ({_reason(error)})") from error
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise DownloadError(f"{part}: is not a regular file; kws will not write into it")
    return descriptor


def _receive(response, part: Path, offset: int, total: int | None, url: str, fetch: _Fetch,
             watchdog: _Watchdog) -> None:
    """Write the body of ``response`` into ``part`` from ``offset`` on.

    Whatever arrived stays in ``part`` when the connection drops or the user presses
    Ctrl-C, so the next attempt resumes from there.
    """
    try:
        with os.fdopen(_open_part(part), "wb") as handle:
            handle.truncate(offset)
            handle.seek(offset)
            done = _copy_body(response, handle, offset, total, url, fetch, watchdog, part)
    except OSError as error:
        raise DownloadError(f"{part}: cannot write ({_reason(error)})") from error
    if total is not None and done < total:
        raise _Transient(
            f"{url}: connection closed after {_human_size(done)} of {_human_size(total)}"
        )


def _copy_body(response, handle, done: int, total: int | None, url: str, fetch: _Fetch,
               watchdog: _Watchdog, part: Path) -> int:
    """Copy chunks from the network to the open file; return the bytes now in it.

    ``read1`` returns what one read brings, so the watchdog sees every byte as it comes.
    """
    fetch.progress("download", done, total)
    try:
        while True:
            try:
                chunk = response.read1(_CHUNK)
            except (http.client.HTTPException, OSError) as error:
                raise _Transient(f"{url}: connection lost ({_network_reason(error)})") from error
            if not chunk:
                return done
            handle.write(chunk)
            done += len(chunk)
            watchdog.received += len(chunk)
            fetch.progress("download", done, total)
    except KeyboardInterrupt:
        fetch.log(f"interrupted: {_human_size(done)} kept in {part}, run again to resume")
        raise


def _verify(
    archive: Path, expected: str | None, progress: ProgressCallback, delete_on_mismatch: bool
) -> str:
    """Compute the archive's SHA-256, check it against ``expected`` (when known), return it."""
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
    if expected is not None and actual != expected:
        note = ""
        if delete_on_mismatch:
            archive.unlink(missing_ok=True)
            _origin_path(archive).unlink(missing_ok=True)
            note = "; the download was deleted"
        raise DownloadError(
            f"{archive}: SHA-256 mismatch (expected {expected}, got {actual}){note}"
        )
    return actual


def _unpack(archive: Path, target: Path, record: dict, progress: ProgressCallback) -> int:
    """Unpack ``archive`` into a ``.kws-tmp-`` folder beside ``target``, renamed there whole.

    The marker (``record`` plus the file count and the time) is written last, inside the
    staging folder, so ``target`` appears whole and marked, or not at all. Returns the
    number of files unpacked.
    """
    try:
        with atomic_folder(target) as staging:
            os.chmod(staging, 0o777 & ~_umask())
            files = _extract_members(archive, staging, progress)
            record = {
                **record,
                "files": files,
                "completed": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "kws": __version__,
            }
            write_text(staging / MARKER, json.dumps(record, indent=2) + "\n")
    except OSError as error:
        raise DownloadError(f"{target}: cannot unpack there ({_reason(error)})") from error
    return files


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class _Budget:
    """What an archive may still unpack: bytes and members (against tar bombs)."""

    def __init__(self, archive_size: int) -> None:
        allowed = 10**8 + MAX_EXPANSION * archive_size
        self.bytes_limit = min(MAX_UNPACKED_BYTES, allowed)
        self.bytes = 0
        self.members = 0

    def take(self, member: tarfile.TarInfo) -> str | None:
        """Count ``member``; say why it is refused when the archive unpacks to too much."""
        self.members += 1
        self.bytes += member.size if member.isfile() else 0
        if self.members > MAX_MEMBERS:
            return f"the archive holds more than {MAX_MEMBERS} members"
        if self.bytes > self.bytes_limit:
            return f"the archive unpacks to more than {_human_size(self.bytes_limit)}"
        return None


def _extract_members(archive: Path, folder: Path, progress: ProgressCallback) -> int:
    """Check and unpack every member of ``archive`` into ``folder``, in order."""
    files = 0
    try:
        total = archive.stat().st_size
        budget = _Budget(total)
        root = os.open(folder, _DIR_FLAGS)
        try:
            with archive.open("rb") as raw, tarfile.open(fileobj=raw, mode="r:*") as tar:
                progress("extract", 0, total)
                for member in tar:
                    problem = _member_problem(member) or budget.take(member)
                    if problem:
                        raise DownloadError(f"{archive}: refused member {member.name!r}: {problem}")
                    _unpack_member(tar, member, root, archive)
                    files += member.isfile()
                    progress("extract", raw.tell(), total)
                progress("extract", total, total)
        finally:
            os.close(root)
    except (tarfile.TarError, EOFError, zlib.error) as error:
        raise DownloadError(f"{archive}: not a readable tar archive ({_tar_reason(error)})"
                            ) from error
    except OSError as error:
        raise DownloadError(f"{archive}: cannot unpack into {folder} ({_reason(error)})") from error
    if files == 0:
        raise DownloadError(f"{archive}: the archive holds no files")
    return files


def _tar_reason(error: BaseException) -> str:
    """One line on why tarfile could not read an archive.

    ``tarfile.open`` lists every compression it tried, one per line; that list says no
    more than "not a tar file, compressed or not".
    """
    text = str(error)
    if "\n" in text and "could not be opened" in text:
        return "neither a tar file nor a gzip, bzip2 or xz compressed one"
    return " ".join(text.split()) or type(error).__name__


def _member_problem(member: tarfile.TarInfo) -> str | None:
    """Why a member may not be unpacked, judged by its name and type alone."""
    return _name_problem(member.name) or _type_problem(member)


def _name_problem(name: str) -> str | None:
    """Why a member name is unsafe as text: absolute, ``..``, NUL or too long."""
    if "\x00" in name:
        return "NUL character in the name"
    if name.startswith(("/", "\\")) or PureWindowsPath(name).drive:
        return "absolute path"
    parts = _parts(name)
    if ".." in parts:
        return "path contains '..'"
    if len(os.fsencode(name)) > MAX_NAME_BYTES:
        return f"name longer than {MAX_NAME_BYTES} bytes"
    if any(len(os.fsencode(part)) > MAX_PART_BYTES for part in parts):
        return f"a part of the name is longer than {MAX_PART_BYTES} bytes"
    if len(parts) > MAX_DEPTH:
        return f"more than {MAX_DEPTH} folders deep"
    return None


def _type_problem(member: tarfile.TarInfo) -> str | None:
    """Why a member of this type is refused: Speech Commands holds folders and files only."""
    if member.isdir() or member.isfile():
        return None if member.isdir() or _parts(member.name) else "a file without a name"
    if member.issym():
        return f"symbolic link (to {member.linkname!r}); Speech Commands archives hold no links"
    if member.islnk():
        return f"hard link (to {member.linkname!r}); Speech Commands archives hold no links"
    if member.ischr() or member.isblk():
        return "device file"
    if member.isfifo():
        return "FIFO (named pipe)"
    return f"not a regular file or folder (tar type {member.type!r})"


def _parts(name: str) -> list[str]:
    """The components of a member name, without empty and ``.`` ones."""
    return [part for part in name.split("/") if part not in ("", ".")]


def _unpack_member(tar: tarfile.TarFile, member: tarfile.TarInfo, root: int,
                   archive: Path) -> None:
    """Create one checked member below the descriptor ``root``, following no link."""
    parts = _parts(member.name)
    try:
        if member.isdir():
            folder = _open_folders(root, parts)
            if folder != root:
                os.close(folder)
            return
        parent = _open_folders(root, parts[:-1])
        try:
            descriptor = os.open(parts[-1], _NEW_FILE_FLAGS, 0o666, dir_fd=parent)
        finally:
            if parent != root:
                os.close(parent)
        _write_member(tar, member, descriptor)
    except OSError as error:
        if error.errno in _CLASHES:
            raise DownloadError(f"{archive}: refused member {member.name!r}: another member "
                                "already took this name") from error
        raise


def _open_folders(root: int, parts: list[str]) -> int:
    """Make (when missing) and open the folders ``parts`` below ``root``; return the last.

    Each step is relative to the descriptor of the one before and refuses a link, so the
    path is never resolved as text.
    """
    current = root
    for part in parts:
        with contextlib.suppress(FileExistsError):
            os.mkdir(part, 0o777, dir_fd=current)
        try:
            following = os.open(part, _DIR_FLAGS, dir_fd=current)
        finally:
            if current != root:
                os.close(current)
        current = following
    return current


def _write_member(tar: tarfile.TarFile, member: tarfile.TarInfo, descriptor: int) -> None:
    """Copy a file member's data into the new file ``descriptor`` and set its time."""
    source = tar.extractfile(member)
    with os.fdopen(descriptor, "wb") as handle, source:
        shutil.copyfileobj(source, handle, _HASH_CHUNK)
        handle.flush()
        with contextlib.suppress(OverflowError, OSError, ValueError):
            os.utime(handle.fileno(), (member.mtime, member.mtime))
