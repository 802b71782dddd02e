"""``kws download``: resumable fetch from a local HTTP server, checksum, safe unpacking."""

from __future__ import annotations

import hashlib
import io
import re
import socket
import subprocess
import sys
import tarfile
import threading
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


def _handler(state: _State):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
            state.requests.append(
                {"path": self.path, "range": self.headers.get("Range"),
                 "if_range": self.headers.get("If-Range")}
            )
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
    return members + [link, hard, device]


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


def test_link_inside_the_dataset_is_allowed(tmp_path):
    link = tarfile.TarInfo("./yes/alias.wav")
    link.type, link.linkname = tarfile.SYMTYPE, "aaaa0001_nohash_0.wav"
    bad = tmp_path / "ok.tar.gz"
    bad.write_bytes(_bad_archive(link))
    folder = download_dataset(dest=tmp_path / "data", archive=bad, verify=False)
    assert (folder / "yes" / "alias.wav").read_bytes() == b"RIFF"


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
    assert sorted(p.name for p in tmp_path.iterdir()) == [FOLDER, ARCHIVE_NAME]
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
    assert not (tmp_path / "d" / FOLDER).exists()


@pytest.mark.parametrize(
    "options",
    [{"sha256": "abc"}, {"sha256": "0" * 64, "verify": False}, {"url": "http://x", "archive": "a"},
     {"version": "v9"}, {"url": "data/speech_commands_v0.01.tar.gz"}],
)
def test_contradictory_options_are_usage_errors(tmp_path, options):
    with pytest.raises(UsageError):
        download_dataset(dest=tmp_path, **options)
    assert list(tmp_path.iterdir()) == []
