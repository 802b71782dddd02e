"""``kws download``: resumable fetch from a local HTTP server, checksum, safe unpacking."""

from __future__ import annotations

import hashlib
import io
import os
import re
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import SYNTHETIC_WORDS, make_speech_commands

from kws.cli import main
from kws.dataset import TESTING, VALIDATION, scan
from kws.download import MARKER, download_dataset, is_complete
from kws.errors import DownloadError, UsageError

FOLDER = "speech_commands_v0.01"
ARCHIVE_NAME = "speech_commands_v0.01.tar.gz"


class _State:
    """What the test server serves and what it saw."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[dict[str, str | None]] = []
        #: Bytes of body to send before dropping the connection, for the next request only.
        self.drop_after: int | None = None
        self.ignore_range = False
        #: Path -> where a request for it is redirected.
        self.redirects: dict[str, str] = {}
        #: Seconds between single bytes for the trickling paths (``/trickle-headers``
        #: trickles the status line and headers, ``/trickle-body`` the body).
        self.trickle = 0.2


def _handler(state: _State):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
            state.requests.append(
                {"path": self.path, "range": self.headers.get("Range"),
                 "if_range": self.headers.get("If-Range")}
            )
            if self.path in state.redirects:
                self.send_response(302)
                self.send_header("Location", state.redirects[self.path])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if self.path.startswith("/trickle-"):
                self._trickle()
                return
            body = state.files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            etag = '"' + hashlib.sha1(body).hexdigest() + '"'
            start, status = 0, 200
            wanted = self.headers.get("Range")
            if_range = self.headers.get("If-Range")
            if wanted and not state.ignore_range and if_range in (None, etag):
                start = int(re.fullmatch(r"bytes=(\d+)-", wanted)[1])
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 206
            self.send_response(status)
            self.send_header("Content-Length", str(len(body) - start))
            self.send_header("ETag", etag)
            self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.end_headers()
            payload = body[start:]
            if state.drop_after is not None:
                payload, state.drop_after = payload[: state.drop_after], None
                self.close_connection = True
            self.wfile.write(payload)
            self.wfile.flush()

        def _trickle(self) -> None:
            """Send a byte every ``state.trickle`` seconds until the client gives up."""
            head = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"
            if self.path == "/trickle-body":
                self.wfile.write(head)
                head = b""
            deadline = time.monotonic() + 30
            try:
                for byte in (head + b"x" * 100000)[:1000]:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(state.trickle)
                    if time.monotonic() > deadline:
                        break
            except OSError:
                pass
            self.close_connection = True

        def log_message(self, *args) -> None:
            """Keep the test output clean."""

    return Handler


@pytest.fixture
def server(monkeypatch):
    """A local HTTP server with Range support; yields ``(base URL, state)``."""
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
                 "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    state = _State()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", state
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> bytes:
    """A small .tar.gz in the real Speech Commands layout (members ``./word/...``)."""
    root = make_speech_commands(tmp_path_factory.mktemp("source") / "speech_commands")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(root, arcname=".")
    return buffer.getvalue()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check_dataset(folder: Path) -> None:
    dataset = scan(folder)
    assert sorted(dataset.words) == sorted(SYNTHETIC_WORDS)
    assert len(dataset.clips) == 24
    assert len(dataset.backgrounds) == 1
    assert {clip.split for clip in dataset.clips if clip.speaker == "cccc0003"} == {VALIDATION}
    assert {clip.split for clip in dataset.clips if clip.speaker == "dddd0004"} == {TESTING}


def _only_dataset_left(dest: Path) -> None:
    """Nothing but the dataset folder remains: no archive, .part or staging folder."""
    assert sorted(p.name for p in dest.iterdir()) == [FOLDER]


def _bad_archive(member: tarfile.TarInfo, data: bytes = b"x") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        good = tarfile.TarInfo("./yes/aaaa0001_nohash_0.wav")
        good.size = 4
        tar.addfile(good, io.BytesIO(b"RIFF"))
        member.size = len(data) if member.isfile() else 0
        tar.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return buffer.getvalue()


def _run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    """Run ``kws`` in-process through :func:`kws.cli.main`; return (code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def test_download_unpacks_into_its_own_folder(tmp_path, server, archive):
    base, state = server
    state.files["/sc.tar.gz"] = archive
    events: list[tuple[str, int, int | None]] = []
    folder = download_dataset(
        dest=tmp_path / "data", url=f"{base}/sc.tar.gz", sha256=_sha(archive),
        progress=lambda *event: events.append(event),
    )
    assert folder == tmp_path / "data" / FOLDER
    assert is_complete(folder)
    for name in ("validation_list.txt", "testing_list.txt", "_background_noise_/white_noise.wav"):
        assert (folder / name).is_file()
    _check_dataset(folder)
    _only_dataset_left(tmp_path / "data")
    assert {stage for stage, _, _ in events} == {"download", "verify", "extract"}
    assert ("download", len(archive), len(archive)) in events
    assert state.requests[0]["range"] is None


def test_unknown_hash_downloads_without_verifying(tmp_path, server, archive):
    base, state = server
    state.files["/v2.tar.gz"] = archive
    notes: list[str] = []
    folder = download_dataset("v0.02", tmp_path, url=f"{base}/v2.tar.gz", log=notes.append)
    assert folder.name == "speech_commands_v0.02"
    assert any("will not be verified" in note for note in notes)
    _check_dataset(folder)


def test_interrupted_download_resumes_with_range(tmp_path, server, archive):
    base, state = server
    state.files["/sc.tar.gz"] = archive
    state.drop_after = len(archive) // 2
    url = f"{base}/sc.tar.gz"
    with pytest.raises(DownloadError, match="run again to resume"):
        download_dataset(dest=tmp_path, url=url, sha256=_sha(archive), retries=0)
    part = tmp_path / (ARCHIVE_NAME + ".part")
    assert part.stat().st_size == len(archive) // 2
    assert not (tmp_path / FOLDER).exists()
    download_dataset(dest=tmp_path, url=url, sha256=_sha(archive), retries=0)
    assert state.requests[1]["range"] == f"bytes={len(archive) // 2}-"
    assert state.requests[1]["if_range"] is not None
    _check_dataset(tmp_path / FOLDER)
    _only_dataset_left(tmp_path)


def test_ctrl_c_keeps_the_partial_download_for_resuming(tmp_path, server, archive):
    base, state = server
    state.files["/sc.tar.gz"] = archive
    url = f"{base}/sc.tar.gz"

    def interrupt(stage: str, done: int, total: int | None) -> None:
        if done > 0:
            raise KeyboardInterrupt

    notes: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        download_dataset(dest=tmp_path, url=url, sha256=_sha(archive), progress=interrupt,
                         log=notes.append)
    kept = (tmp_path / (ARCHIVE_NAME + ".part")).stat().st_size
    assert 0 < kept < len(archive)
    assert any("run again to resume" in note for note in notes)
    download_dataset(dest=tmp_path, url=url, sha256=_sha(archive))
    assert state.requests[1]["range"] == f"bytes={kept}-"
    _check_dataset(tmp_path / FOLDER)


def test_dropped_connection_is_retried_within_one_run(tmp_path, server, archive):
    base, state = server
    state.files["/sc.tar.gz"] = archive
    state.drop_after = 1000
    notes: list[str] = []
    download_dataset(dest=tmp_path, url=f"{base}/sc.tar.gz", sha256=_sha(archive),
                     retries=1, retry_wait=0, log=notes.append)
    assert [r["range"] for r in state.requests] == [None, "bytes=1000-"]
    assert any("retrying" in note for note in notes)
    _check_dataset(tmp_path / FOLDER)


def test_server_ignoring_range_restarts_from_zero(tmp_path, server, archive):
    base, state = server
    state.files["/sc.tar.gz"] = archive
    state.ignore_range = True
    (tmp_path / (ARCHIVE_NAME + ".part")).write_bytes(archive[:5000])
    (tmp_path / (ARCHIVE_NAME + ".part.json")).write_text(f'{{"url": "{base}/sc.tar.gz"}}')
    notes: list[str] = []
    download_dataset(dest=tmp_path, url=f"{base}/sc.tar.gz", sha256=_sha(archive),
                     log=notes.append)
    assert state.requests[0]["range"] == "bytes=5000-"
    assert any("starting again" in note for note in notes)
    _check_dataset(tmp_path / FOLDER)
    _only_dataset_left(tmp_path)


def test_changed_remote_file_restarts_instead_of_mixing(tmp_path, server, archive):
    base, state = server
    stale = archive[:-1] + bytes([archive[-1] ^ 1])
    state.files["/sc.tar.gz"] = stale
    state.drop_after = 3000
    url = f"{base}/sc.tar.gz"
    with pytest.raises(DownloadError):
        download_dataset(dest=tmp_path, url=url, retries=0, verify=False)
    state.files["/sc.tar.gz"] = archive
    download_dataset(dest=tmp_path, url=url, sha256=_sha(archive), retries=0)
    assert state.requests[1]["range"] == "bytes=3000-"
    _check_dataset(tmp_path / FOLDER)


def test_checksum_mismatch_fails_with_one_line_and_unpacks_nothing(tmp_path, server, archive,
                                                                   capsys):
    base, state = server
    state.files["/sc.tar.gz"] = archive
    dest = tmp_path / "data"
    code, out, err = _run_cli(["download", "--dest", str(dest), "--url", f"{base}/sc.tar.gz"],
                              capsys)
    assert code == 1
    assert out == ""
    lines = err.strip().splitlines()
    assert lines[-1].startswith("kws: error: ") and "SHA-256 mismatch" in lines[-1]
    assert "743935421bb51cccdb6bdd152e04c5c70274e935c82119ad7faeec31780d811d" in lines[-1]
    assert "Traceback" not in err
    assert list(dest.iterdir()) == []


def test_checksum_mismatch_in_a_subprocess(tmp_path, server, archive, project_env):
    base, state = server
    state.files["/sc.tar.gz"] = archive
    project_env.update({"no_proxy": "127.0.0.1", "NO_COLOR": "1"})
    for name in ("http_proxy", "HTTP_PROXY"):
        project_env.pop(name, None)
    result = subprocess.run(
        [sys.executable, "-m", "kws", "download", "--dest", str(tmp_path), "--url",
         f"{base}/sc.tar.gz", "--sha256", "0" * 64],
        capture_output=True, text=True, env=project_env, timeout=60,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("kws: error:")]
    assert len(errors) == 1 and "SHA-256 mismatch" in errors[0]
    assert list(tmp_path.iterdir()) == []


def _evil_members() -> list[tarfile.TarInfo]:
    members = []
    for name in ("../evil", "./yes/../../evil", "/tmp/kws-test-evil-absolute"):
        members.append(tarfile.TarInfo(name))
    link = tarfile.TarInfo("./yes/link")
    link.type, link.linkname = tarfile.SYMTYPE, "../../evil"
    hard = tarfile.TarInfo("./yes/hard")
    hard.type, hard.linkname = tarfile.LNKTYPE, "/etc/passwd"
    device = tarfile.TarInfo("./yes/null")
    device.type, device.devmajor, device.devminor = tarfile.CHRTYPE, 1, 3
    fifo = tarfile.TarInfo("./yes/pipe")
    fifo.type = tarfile.FIFOTYPE
    # Speech Commands holds no links at all: links that stay inside are refused too.
    alias = tarfile.TarInfo("./yes/alias.wav")
    alias.type, alias.linkname = tarfile.SYMTYPE, "aaaa0001_nohash_0.wav"
    inside = tarfile.TarInfo("./yes/copy.wav")
    inside.type, inside.linkname = tarfile.LNKTYPE, "./yes/aaaa0001_nohash_0.wav"
    long_part = tarfile.TarInfo("./yes/" + "a" * 300 + ".wav")
    deep = tarfile.TarInfo("./" + "d/" * 40 + "x.wav")
    return members + [link, hard, device, fifo, alias, inside, long_part, deep]


@pytest.mark.parametrize("member", _evil_members(), ids=lambda m: m.name)
def test_unsafe_members_are_refused(tmp_path, member, capsys):
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(_bad_archive(member))
    dest = tmp_path / "data"
    code, out, err = _run_cli(["download", "--dest", str(dest), "--archive", str(bad),
                               "--no-verify", "--quiet"], capsys)
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"kws: error: {bad}: refused member {member.name!r}")
    assert list(dest.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tar.gz", "data"]
    assert not Path("/tmp/kws-test-evil-absolute").exists()


def test_second_run_says_it_is_already_there(tmp_path, server, archive, capsys):
    base, state = server
    state.files["/sc.tar.gz"] = archive
    args = ["download", "--dest", str(tmp_path), "--url", f"{base}/sc.tar.gz",
            "--sha256", _sha(archive)]
    code, out, _ = _run_cli(args, capsys)
    assert code == 0 and out.strip() == str(tmp_path / FOLDER)
    code, out, err = _run_cli(args, capsys)
    assert code == 0 and out.strip() == str(tmp_path / FOLDER)
    assert "already complete" in err
    assert len(state.requests) == 1


def test_local_archive_is_unpacked_and_left_alone(tmp_path, archive, capsys):
    source = tmp_path / "downloads" / ARCHIVE_NAME
    source.parent.mkdir()
    source.write_bytes(archive)
    dest = tmp_path / "data"
    code, out, err = _run_cli(["download", "--archive", str(source), "--dest", str(dest),
                               "--sha256", _sha(archive).upper()], capsys)
    assert code == 0, err
    assert out.strip() == str(dest / FOLDER)
    assert source.read_bytes() == archive
    _check_dataset(dest / FOLDER)
    assert (dest / FOLDER / MARKER).is_file()


def test_local_archive_with_wrong_checksum_is_kept(tmp_path, archive):
    source = tmp_path / ARCHIVE_NAME
    source.write_bytes(archive)
    with pytest.raises(DownloadError, match="SHA-256 mismatch"):
        download_dataset(dest=tmp_path / "data", archive=source)
    assert source.read_bytes() == archive
    assert list((tmp_path / "data").iterdir()) == []


def test_archive_left_by_an_earlier_run_is_reused(tmp_path, server, archive):
    base, state = server
    (tmp_path / ARCHIVE_NAME).write_bytes(archive)
    download_dataset(dest=tmp_path, url=f"{base}/gone.tar.gz", sha256=_sha(archive))
    assert state.requests == []
    _check_dataset(tmp_path / FOLDER)
    _only_dataset_left(tmp_path)


def test_whole_part_file_is_not_fetched_again(tmp_path, server, archive):
    base, state = server
    state.files["/sc.tar.gz"] = archive
    (tmp_path / (ARCHIVE_NAME + ".part")).write_bytes(archive)
    (tmp_path / (ARCHIVE_NAME + ".part.json")).write_text(f'{{"url": "{base}/sc.tar.gz"}}')
    download_dataset(dest=tmp_path, url=f"{base}/sc.tar.gz", sha256=_sha(archive),
                     keep_archive=True)
    assert [r["range"] for r in state.requests] == [f"bytes={len(archive)}-"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [FOLDER, ARCHIVE_NAME,
                                                          ARCHIVE_NAME + ".kws.json"]
    _check_dataset(tmp_path / FOLDER)


def test_default_destination_is_data_of_the_current_folder(tmp_path, archive, monkeypatch):
    source = tmp_path / ARCHIVE_NAME
    source.write_bytes(archive)
    monkeypatch.chdir(tmp_path)
    folder = download_dataset(archive=source, sha256=_sha(archive))
    assert folder == Path("data") / FOLDER
    _check_dataset(tmp_path / "data" / FOLDER)


def test_leftover_folder_without_marker_is_not_overwritten(tmp_path, archive):
    (tmp_path / FOLDER / "mine").mkdir(parents=True)
    source = tmp_path / "a.tar.gz"
    source.write_bytes(archive)
    with pytest.raises(DownloadError, match="not a complete download"):
        download_dataset(dest=tmp_path, archive=source, sha256=_sha(archive))
    assert [p.name for p in (tmp_path / FOLDER).iterdir()] == ["mine"]


def test_http_error_is_one_line(tmp_path, server, capsys):
    base, _ = server
    code, _, err = _run_cli(["download", "--dest", str(tmp_path), "--url", f"{base}/missing",
                             "--retries", "0"], capsys)
    assert code == 1
    assert err.strip().splitlines()[-1] == f"kws: error: {base}/missing: HTTP error 404 Not Found"


def test_refused_connection_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, _, err = _run_cli(["download", "--dest", str(tmp_path), "--url",
                             f"http://127.0.0.1:{port}/x.tar.gz", "--retries", "0", "-q"], capsys)
    assert code == 1
    assert err.count("\n") == 1 and err.startswith(f"kws: error: http://127.0.0.1:{port}/")
    assert "refused" in err.lower()


def test_not_an_archive_is_one_line(tmp_path, capsys):
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a tar file at all" * 10)
    code, _, err = _run_cli(["download", "--dest", str(tmp_path / "d"), "--archive", str(junk),
                             "--no-verify", "-q"], capsys)
    assert code == 1
    assert err.startswith(f"kws: error: {junk}: not a readable tar archive")
    assert err.count("\n") == 1 and "method gz" not in err
    assert not (tmp_path / "d" / FOLDER).exists()


def test_refused_download_is_not_reused_for_another_url(tmp_path, server, archive, capsys):
    base, state = server
    state.files["/junk.tar.gz"] = b"not a tar file at all" * 10
    state.files["/sc.tar.gz"] = archive
    args = ["download", "--dest", str(tmp_path), "--no-verify", "-q", "--url"]
    code, _, err = _run_cli(args + [f"{base}/junk.tar.gz"], capsys)
    assert code == 1 and err.count("\n") == 1 and "not a readable tar archive" in err
    code, _, err = _run_cli(args + [f"{base}/sc.tar.gz"], capsys)
    assert code == 0, err
    assert [r["path"] for r in state.requests] == ["/junk.tar.gz", "/sc.tar.gz"]
    _check_dataset(tmp_path / FOLDER)
    _only_dataset_left(tmp_path)


def test_archive_from_the_same_url_is_reused(tmp_path, server, archive):
    base, state = server
    state.files["/sc.tar.gz"] = archive
    url = f"{base}/sc.tar.gz"
    (tmp_path / ARCHIVE_NAME).write_bytes(archive)
    (tmp_path / (ARCHIVE_NAME + ".kws.json")).write_text(f'{{"url": "{url}"}}')
    download_dataset(dest=tmp_path, url=url, verify=False)
    assert state.requests == []
    _check_dataset(tmp_path / FOLDER)
    _only_dataset_left(tmp_path)


@pytest.mark.parametrize("sha256", [None, "0" * 64])
def test_unknown_archive_in_dest_is_refused_and_kept(tmp_path, server, archive, sha256, capsys):
    base, state = server
    state.files["/sc.tar.gz"] = archive
    planted = tmp_path / ARCHIVE_NAME
    planted.write_bytes(b"someone else's file")
    args = ["download", "--dest", str(tmp_path), "-q", "--url", f"{base}/sc.tar.gz"]
    args += ["--sha256", sha256] if sha256 else ["--no-verify"]
    code, _, err = _run_cli(args, capsys)
    assert code == 1 and err.count("\n") == 1
    assert err.startswith(f"kws: error: {planted}: already there, but not downloaded by kws")
    assert planted.read_bytes() == b"someone else's file"
    assert state.requests == []


@pytest.mark.parametrize(
    "options",
    [{"sha256": "abc"}, {"sha256": "0" * 64, "verify": False}, {"url": "http://x", "archive": "a"},
     {"version": "v9"}, {"url": "data/speech_commands_v0.01.tar.gz"}],
)
def test_contradictory_options_are_usage_errors(tmp_path, options):
    with pytest.raises(UsageError):
        download_dataset(dest=tmp_path, **options)
    assert list(tmp_path.iterdir()) == []


def _outside(root: Path, dest: Path) -> dict[str, tuple[bool, bytes | None]]:
    """Everything under ``root`` but outside ``dest``: ``{path: (is link, content)}``."""
    seen = {}
    for folder, folders, names in os.walk(root):
        if Path(folder) == dest:
            folders[:] = []
            continue
        for name in folders + names:
            path = Path(folder) / name
            if path == dest:
                continue
            plain = path.is_file() and not path.is_symlink()
            seen[str(path)] = (path.is_symlink(), path.read_bytes() if plain else None)
    return seen


def _tar_gz(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for member, data in members:
            member.size = len(data) if data is not None else 0
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def _path_max_archive(levels_up: int) -> bytes:
    """The CVE-2025-4517 archive: links whose real path passes PATH_MAX, so that a check
    by ``os.path.realpath`` falls back to the text, then a hard link through them to a
    file ``levels_up`` folders above the unpacking folder, then data written into it."""
    long_name, steps, path, members = "d" * 247, "abcdefghijklmnop", "", []
    for step in steps:
        folder = tarfile.TarInfo(f"{path}{long_name}")
        folder.type = tarfile.DIRTYPE
        link = tarfile.TarInfo(f"{path}{step}")
        link.type, link.linkname = tarfile.SYMTYPE, long_name
        members += [(folder, None), (link, None)]
        path += long_name + "/"
    deep_link = "/".join(steps) + "/" + "l" * 254
    back = tarfile.TarInfo(deep_link)
    back.type, back.linkname = tarfile.SYMTYPE, "../" * len(steps)
    escape = tarfile.TarInfo("escape")
    escape.type, escape.linkname = tarfile.SYMTYPE, deep_link + "/.." * levels_up
    hard = tarfile.TarInfo("victim_link")
    hard.type, hard.linkname = tarfile.LNKTYPE, "escape/victim.txt"
    data = tarfile.TarInfo("victim_link")
    return _tar_gz(members + [(back, None), (escape, None), (hard, None),
                              (data, b"overwritten by the archive\n")])


@pytest.mark.parametrize("how", ["--archive", "--url"])
def test_path_max_archive_cannot_write_above_dest(tmp_path, server, how, capsys):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    dest = tmp_path / "one" / "two" / "three"
    dest.mkdir(parents=True)
    poc = _path_max_archive(levels_up=4)
    (tmp_path / "poc.tar.gz").write_bytes(poc)
    before = _outside(tmp_path, dest)
    base, state = server
    state.files["/poc.tar.gz"] = poc
    source = (["--archive", str(tmp_path / "poc.tar.gz"), "--no-verify"] if how == "--archive"
              else ["--url", f"{base}/poc.tar.gz", "--sha256", _sha(poc)])
    code, out, err = _run_cli(["download", "--dest", str(dest), "-q", *source], capsys)
    assert victim.read_text() == "precious\n"
    assert _outside(tmp_path, dest) == before
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "refused member 'a': symbolic link" in err
    # A verified download stays, with the record of where it came from.
    kept = [] if how == "--archive" else [ARCHIVE_NAME, ARCHIVE_NAME + ".kws.json"]
    assert sorted(p.name for p in dest.iterdir()) == kept


def test_repointed_folder_link_cannot_leave_a_link_outside(tmp_path, capsys):
    def link(name: str, target: str) -> tuple[tarfile.TarInfo, None]:
        member = tarfile.TarInfo(name)
        member.type, member.linkname = tarfile.SYMTYPE, target
        return member, None

    def folder(name: str) -> tuple[tarfile.TarInfo, None]:
        member = tarfile.TarInfo(name)
        member.type = tarfile.DIRTYPE
        return member, None

    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(_tar_gz([
        (tarfile.TarInfo("yes/aaaa0001_nohash_0.wav"), b"RIFF"),
        folder("deep"), folder("deep/x"), link("deep/x/y", "."),
        link("escape_link", "deep/x/y/../.."), link("deep/x/y", "../.."),
    ]))
    dest = tmp_path / "data"
    dest.mkdir()
    before = _outside(tmp_path, dest)
    code, _, err = _run_cli(["download", "--dest", str(dest), "--archive", str(bad),
                             "--no-verify", "-q"], capsys)
    assert code == 1 and err.count("\n") == 1
    assert "refused member 'deep/x/y': symbolic link" in err
    assert list(dest.iterdir()) == []
    assert _outside(tmp_path, dest) == before


def test_same_name_twice_is_refused_not_overwritten(tmp_path):
    bad = tmp_path / "twice.tar.gz"
    bad.write_bytes(_tar_gz([(tarfile.TarInfo("yes/a.wav"), b"RIFF"),
                             (tarfile.TarInfo("yes/a.wav"), b"EVIL"),
                             (tarfile.TarInfo("yes/a.wav/b.wav"), b"EVIL")]))
    with pytest.raises(DownloadError, match=r"refused member 'yes/a.wav': another member"):
        download_dataset(dest=tmp_path / "data", archive=bad, verify=False)
    assert list((tmp_path / "data").iterdir()) == []


@pytest.mark.parametrize("limit", ["MAX_UNPACKED_BYTES", "MAX_MEMBERS"])
def test_tar_bomb_is_refused_with_one_line(tmp_path, monkeypatch, limit, capsys):
    monkeypatch.setattr("kws.download." + limit, 100_000 if limit == "MAX_UNPACKED_BYTES" else 10)
    if limit == "MAX_UNPACKED_BYTES":
        bomb = _tar_gz([(tarfile.TarInfo("yes/zeros.wav"), bytes(1_000_000))])
    else:
        bomb = _tar_gz([(tarfile.TarInfo(f"yes/{n}.wav"), b"") for n in range(20)])
    (tmp_path / "bomb.tar.gz").write_bytes(bomb)
    dest = tmp_path / "data"
    code, _, err = _run_cli(["download", "--dest", str(dest), "--archive",
                             str(tmp_path / "bomb.tar.gz"), "--no-verify", "-q"], capsys)
    assert code == 1 and err.count("\n") == 1
    assert re.search(r"refused member .*: the archive (unpacks to more than|holds more than)", err)
    assert list(dest.iterdir()) == []


def test_built_in_urls_are_https():
    from kws.download import RELEASES

    assert all(release.url.startswith("https://") for release in RELEASES.values())


def test_unverified_download_warns_even_when_quiet(tmp_path, server, archive, capsys):
    base, state = server
    state.files["/v2.tar.gz"] = archive
    code, out, err = _run_cli(["download", "--version", "v0.02", "--dest", str(tmp_path),
                               "--url", f"{base}/v2.tar.gz", "-q"], capsys)
    assert code == 0, err
    assert out.strip() == str(tmp_path / "speech_commands_v0.02")
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("kws: warning: the v0.02 archive will not "
                                                   "be verified")
    assert "plain http://" in lines[0]
    marker = (tmp_path / "speech_commands_v0.02" / MARKER).read_text()
    assert f'"sha256": "{_sha(archive)}"' in marker and '"verified": false' in marker


@pytest.mark.parametrize("path", ["/trickle-body", "/trickle-headers"])
def test_trickling_server_is_given_up_on(tmp_path, server, path):
    base, _ = server
    started = time.monotonic()
    with pytest.raises(DownloadError, match=r"too slow .*run again to resume"):
        download_dataset(dest=tmp_path, url=base + path, verify=False, retries=0,
                         timeout=1.0, min_speed=100)
    assert time.monotonic() - started < 6


def test_trickling_server_is_one_line_from_the_command_line(tmp_path, server, capsys):
    base, _ = server
    code, _, err = _run_cli(["download", "--dest", str(tmp_path), "--url",
                             f"{base}/trickle-body", "--no-verify", "--retries", "0",
                             "--timeout", "1", "--min-speed", "100", "-q"], capsys)
    assert code == 1 and err.count("\n") == 1
    assert err.startswith(f"kws: error: {base}/trickle-body: too slow (less than 100 bytes/s")


def test_redirect_loop_is_one_line(tmp_path, server, capsys):
    base, state = server
    state.redirects["/loop"] = "/loop"
    code, _, err = _run_cli(["download", "--dest", str(tmp_path), "--url", f"{base}/loop",
                             "--retries", "0", "--no-verify", "-q"], capsys)
    assert code == 1
    assert err == f"kws: error: {base}/loop: too many redirects (the server redirects in a loop)\n"


def test_part_file_is_never_written_through_a_link(tmp_path, server, archive):
    base, state = server
    state.files["/sc.tar.gz"] = archive
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    dest = tmp_path / "data"
    dest.mkdir()
    (dest / (ARCHIVE_NAME + ".part")).symlink_to(victim)
    with pytest.raises(DownloadError, match=r"\.part: is a symbolic link; kws will not write"):
        download_dataset(dest=dest, url=f"{base}/sc.tar.gz", sha256=_sha(archive), retries=0)
    assert victim.read_text() == "precious\n"


def test_staging_left_by_a_killed_run_is_removed(tmp_path, archive, project_env):
    source = tmp_path / ARCHIVE_NAME
    source.write_bytes(archive)
    dest = tmp_path / "data"
    script = (
        "import os, signal, sys\n"
        "from kws.download import download_dataset\n"
        "def progress(stage, done, total):\n"
        "    if stage == 'extract' and done > 0:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "download_dataset(dest=sys.argv[1], archive=sys.argv[2], verify=False,"
        " progress=progress)\n"
    )
    killed = subprocess.run([sys.executable, "-c", script, str(dest), str(source)],
                            env=project_env, timeout=60)
    assert killed.returncode == -signal.SIGKILL
    assert [p.name.startswith(".") for p in dest.iterdir()] == [True]
    other = dest / ".kws-tmp-notes.txt.abcd1234"
    other.write_text("another command's temporary, still in use\n")
    (dest / ".speech_commands_v0.01.999999999.tmp" / "yes").mkdir(parents=True)
    running = dest / f".speech_commands_v0.01.{os.getpid()}.tmp"
    running.mkdir()
    notes: list[str] = []
    download_dataset(dest=dest, archive=source, verify=False, log=notes.append)
    assert sorted(p.name for p in dest.iterdir()) == sorted([FOLDER, other.name, running.name])
    assert any("interrupted download" in note for note in notes)
    _check_dataset(dest / FOLDER)


def test_staging_of_a_run_in_progress_is_kept(tmp_path, archive, capsys):
    from kws.files import locked_directory

    source = tmp_path / ARCHIVE_NAME
    source.write_bytes(archive)
    dest = tmp_path / "data"
    staging = dest / ".kws-tmp-speech_commands_v0.01.abcd1234"
    staging.mkdir(parents=True)
    with locked_directory(dest):
        code, _, err = _run_cli(["download", "--dest", str(dest), "--archive", str(source),
                                 "--no-verify", "-q"], capsys)
    assert code == 1
    assert err == (f"kws: error: {dest}: another kws run is writing there; wait for it or "
                   "choose another --dest\n")
    assert staging.is_dir()


def test_ctrl_c_while_unpacking_leaves_no_staging(tmp_path, archive):
    source = tmp_path / ARCHIVE_NAME
    source.write_bytes(archive)
    dest = tmp_path / "data"

    def interrupt(stage: str, done: int, total: int | None) -> None:
        if stage == "extract" and done > 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        download_dataset(dest=dest, archive=source, verify=False, progress=interrupt)
    assert list(dest.iterdir()) == []
