"""``kws listen`` and its audio sources: stdin (WAV, raw PCM), FIFOs, files, the microphone.

The command runs in subprocesses fed by fake writer processes that write in small pieces
with pauses, as ``arecord`` or ``ffmpeg`` would. The model is the shipped LiteRT export
(fast); the audio is real keyword clips from data/examples/ with silence between them.
The microphone is a fake ``sounddevice`` module (CI has no audio device).
"""

from __future__ import annotations

import json
import os
import select
import signal
import struct
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from kws import audio
from kws.audio_stream import (
    SAMPLE_FORMATS,
    ByteStreamSource,
    RawFormat,
    SourceOptions,
    open_source,
)
from kws.errors import AudioError
from kws.infer import DetectorSettings, detect, open_runner

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "default"
EXAMPLES = ROOT / "data" / "examples"
WORDS = ("yes", "stop", "left")
RATE = 16000

#: A process writing a file to stdout (or to the path in argv[4]) in pieces of argv[2]
#: bytes, pausing argv[3] seconds after every 20 pieces, then sleeping argv[5] seconds
#: before closing.
WRITER = textwrap.dedent("""
    import os, sys, time
    data = open(sys.argv[1], "rb").read()
    piece, pause = int(sys.argv[2]), float(sys.argv[3])
    fd = os.open(sys.argv[4], os.O_WRONLY) if sys.argv[4] != "-" else 1
    for n, i in enumerate(range(0, len(data), piece)):
        os.write(fd, data[i:i + piece])
        if n % 20 == 19:
            time.sleep(pause)
    time.sleep(float(sys.argv[5]))
""")


def _wav_bytes(waveform: np.ndarray, rate: int = RATE, subtype: str = "PCM_16",
               streaming_size: int | None = None) -> bytes:
    """A WAV file's bytes; ``streaming_size`` replaces the data chunk size (0, 0xFFFFFFFF)."""
    import io

    buffer = io.BytesIO()
    soundfile.write(buffer, waveform, rate, subtype=subtype, format="WAV")
    data = bytearray(buffer.getvalue())
    if streaming_size is not None:
        at = data.index(b"data") + 4
        data[at:at + 4] = struct.pack("<I", streaming_size)
    return bytes(data)


@pytest.fixture(scope="module")
def clips() -> np.ndarray:
    """About 5 s: three real keywords, each between stretches of silence."""
    silence = np.zeros(RATE // 2, dtype=np.float32)
    parts = []
    for word in WORDS:
        parts += [silence, audio.load(EXAMPLES / f"{word}.wav", RATE), silence]
    # Quantized to 16 bits, so WAV, raw s16 and float copies hold the same samples.
    return np.round(np.concatenate(parts) * 32767) / 32768


@pytest.fixture(scope="module")
def runner():
    return open_runner(MODEL, "tflite", threads=1)


@pytest.fixture(scope="module")
def expected(clips, runner) -> list[tuple]:
    """The detections of the whole recording with the one detector, read at once."""
    settings = DetectorSettings.from_card(runner.card)
    found = detect(runner, clips.astype(np.float32), settings)
    assert [d.label for d in found] == list(WORDS)
    return [(d.label, round(float(d.probability), 4), round(d.start, 3), round(d.end, 3))
            for d in found]


@pytest.fixture(scope="module")
def wav_file(clips, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("listen") / "clips.wav"
    path.write_bytes(_wav_bytes(clips, streaming_size=0xFFFFFFFF))
    return path


def _kws(*args: str) -> list[str]:
    return [sys.executable, "-m", "kws", "listen", "--model", str(MODEL), *args]


def _events(stdout: str) -> list[tuple]:
    records = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    for record in records:
        assert set(record) == {"keyword", "probability", "start", "end", "emitted_at",
                               "latency_ms"}
        assert record["latency_ms"] >= 0
    return [(r["keyword"], r["probability"], r["start"], r["end"]) for r in records]


def _one_line_error(stderr: str, *phrases: str) -> None:
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("kws: error:"), stderr
    for phrase in phrases:
        assert phrase in last, stderr


def _through_writer(path: Path, args: list[str], piece: int, pause: float = 0.001,
                    linger: float = 0.0, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``kws listen`` with stdin fed by a writer process writing ``path`` in pieces."""
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(piece),
                               str(pause), "-", str(linger)], stdout=subprocess.PIPE)
    try:
        return subprocess.run(_kws(*args), stdin=writer.stdout, capture_output=True,
                              text=True, timeout=timeout)
    finally:
        writer.stdout.close()
        writer.kill()
        writer.wait()


def test_a_file_read_whole_gives_the_detections_of_the_detector(wav_file, expected):
    result = subprocess.run(_kws(str(wav_file)), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert _events(result.stdout) == expected
    assert result.stderr == ""


@pytest.mark.parametrize("piece", [2, 3, 74, 32000], ids=["1-sample", "3-bytes",
                                                          "37-samples", "1-second"])
def test_wav_on_stdin_in_any_pieces_gives_the_same_detections(wav_file, expected, piece):
    result = _through_writer(wav_file, ["-"], piece)
    assert result.returncode == 0, result.stderr
    assert _events(result.stdout) == expected


@pytest.mark.parametrize("size", [0, 0xFFFFFFFF, None], ids=["zero", "all-ones", "exact"])
def test_wav_stream_data_sizes(clips, expected, tmp_path, size):
    path = tmp_path / "stream.wav"
    path.write_bytes(_wav_bytes(clips, streaming_size=size) + (b"junk" if size else b""))
    result = _through_writer(path, ["-"], 4096)
    assert result.returncode == 0, result.stderr
    assert _events(result.stdout) == expected


@pytest.mark.parametrize("fmt", ["s16le", "s32le", "f32le"])
def test_raw_pcm_on_stdin(clips, expected, tmp_path, fmt):
    values = {"s16le": (clips * 32768).astype("<i2"), "s32le": (clips * 2.0 ** 31).astype("<i4"),
              "f32le": clips.astype("<f4")}[fmt]
    path = tmp_path / f"clips.{fmt}"
    path.write_bytes(values.tobytes())
    result = _through_writer(path, ["-", "--raw", "--rate", "16000", "--channels", "1",
                                    "--sample-format", fmt], 1000)
    assert result.returncode == 0, result.stderr
    assert _events(result.stdout) == expected


def test_raw_u8_stereo_at_another_rate_is_mixed_and_resampled(clips, tmp_path):
    resampled = audio.resample(clips.astype(np.float32), RATE, 22050)
    stereo = np.stack([resampled, resampled], axis=1)
    path = tmp_path / "clips.u8"
    path.write_bytes(np.clip(np.round(stereo * 128 + 128), 0, 255).astype("u1").tobytes())
    result = _through_writer(path, ["-", "--raw", "--rate", "22050", "--channels", "2",
                                    "--sample-format", "u8"], 999)
    assert result.returncode == 0, result.stderr
    assert [event[0] for event in _events(result.stdout)] == list(WORDS)


def test_wav_at_another_rate_and_channels_equals_the_whole_file_read(clips, runner, tmp_path):
    left = audio.resample(clips.astype(np.float32), RATE, 44100)
    stereo = np.stack([left, 0.5 * left], axis=1)
    path = tmp_path / "stereo44.wav"
    path.write_bytes(_wav_bytes(stereo, 44100, subtype="FLOAT"))
    whole = detect(runner, audio.load(path, RATE), DetectorSettings.from_card(runner.card))
    want = [(d.label, round(float(d.probability), 4), round(d.start, 3), round(d.end, 3))
            for d in whole]
    assert [event[0] for event in want] == list(WORDS)
    result = _through_writer(path, ["-"], 37 * 8)
    assert result.returncode == 0, result.stderr
    assert _events(result.stdout) == want
    flac = tmp_path / "stereo44.flac"
    soundfile.write(flac, stereo, 44100, subtype="PCM_24")
    result = subprocess.run(_kws(str(flac)), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert [event[0] for event in _events(result.stdout)] == list(WORDS)


@pytest.mark.parametrize("stall", ["10", "0"])
def test_a_fifo_is_read_as_a_stream(wav_file, expected, tmp_path, stall):
    fifo = tmp_path / "audio.fifo"
    os.mkfifo(fifo)
    listener = subprocess.Popen(_kws(str(fifo), "--stall-timeout", stall),
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    time.sleep(0.3)  # kws waits for its writer, as for a microphone
    writer = subprocess.run([sys.executable, "-c", WRITER, str(wav_file), "4000", "0.01",
                             str(fifo), "0"], timeout=60)
    stdout, stderr = listener.communicate(timeout=60)
    assert writer.returncode == 0
    assert listener.returncode == 0, stderr
    assert _events(stdout) == expected


def test_realtime_paces_the_file_and_keeps_the_detections(tmp_path, runner):
    short = np.concatenate([audio.load(EXAMPLES / "yes.wav", RATE), np.zeros(RATE // 5),
                            audio.load(EXAMPLES / "stop.wav", RATE), np.zeros(RATE // 4)])
    short = (np.round(short * 32767) / 32768).astype(np.float32)
    path = tmp_path / "short.wav"
    path.write_bytes(_wav_bytes(short))
    whole = detect(runner, short, DetectorSettings.from_card(runner.card))
    started = time.monotonic()
    result = subprocess.run(_kws(str(path), "--realtime"), capture_output=True, text=True,
                            timeout=60)
    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert took >= len(short) / RATE
    assert [e[0] for e in _events(result.stdout)] == [d.label for d in whole] == ["yes", "stop"]
    assert _events(result.stdout) == [(d.label, round(float(d.probability), 4),
                                       round(d.start, 3), round(d.end, 3)) for d in whole]
    latencies = [json.loads(line)["latency_ms"] for line in result.stdout.splitlines()]
    assert all(0 <= latency < 1000 for latency in latencies)


def test_json_lines_are_flushed_before_the_end_and_ctrl_c_exits_130(clips, tmp_path):
    path = tmp_path / "yes.wav"
    path.write_bytes(_wav_bytes(clips[: int(2.0 * RATE)], streaming_size=0))
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path), "4096", "0.001", "-",
                               "60"], stdout=subprocess.PIPE)
    listener = subprocess.Popen(_kws("-", "--stall-timeout", "0"), stdin=writer.stdout,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    writer.stdout.close()
    try:
        ready, _, _ = select.select([listener.stdout], [], [], 30)
        assert ready, "no detection printed while the stream was still open"
        first = json.loads(listener.stdout.readline())
        assert first["keyword"] == "yes"
        assert writer.poll() is None and listener.poll() is None
        listener.send_signal(signal.SIGINT)
        stdout, stderr = listener.communicate(timeout=30)
    finally:
        writer.kill()
        writer.wait()
        listener.kill()
    assert listener.returncode == 130, stderr
    assert stdout == ""
    assert "Traceback" not in stderr and stderr.strip().endswith("kws: interrupted")


def test_a_stream_cut_mid_sample_is_one_error_after_its_detections(wav_file, tmp_path,
                                                                   expected):
    path = tmp_path / "cut.wav"
    path.write_bytes(wav_file.read_bytes() + b"\x01")
    result = _through_writer(path, ["-"], 5000)
    assert result.returncode == 1
    _one_line_error(result.stderr, "stdin", "middle of a sample")
    assert _events(result.stdout) == expected


def test_raw_stream_cut_mid_frame(tmp_path):
    path = tmp_path / "cut.raw"
    path.write_bytes(np.zeros(1001, dtype="<i2").tobytes())
    result = _through_writer(path, ["-", "--raw", "--channels", "2"], 100)
    assert result.returncode == 1
    _one_line_error(result.stderr, "middle of a sample")


def _wav_header(tag: int, bits: int, channels: int = 1, rate: int = RATE) -> bytes:
    align = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)
    return (b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE" + b"fmt "
            + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", 0))


@pytest.mark.parametrize("header, phrase", [
    (_wav_header(7, 8), "unsupported WAV format: mu-law"),
    (_wav_header(1, 12), "unsupported WAV format: PCM, 12 bits"),
    (_wav_header(3, 16), "unsupported WAV format: float, 16 bits"),
    (_wav_header(1, 16, rate=5), "implausible WAV header: sample rate 5 Hz"),
    (_wav_header(1, 16, channels=0), "implausible WAV header: channel count 0"),
    (b"RIFX" + bytes(40), "big-endian"),
    (b"OggS" + bytes(400), "not a WAV stream"),
    (_wav_header(1, 16)[:30] + b"END", "ended inside its WAV header"),
], ids=["mulaw", "12bit", "float16", "rate", "channels", "rifx", "ogg", "truncated"])
def test_unsupported_or_broken_wav_headers(tmp_path, header, phrase):
    path = tmp_path / "bad.wav"
    path.write_bytes(header[:-3] if header.endswith(b"END") else header + bytes(3200))
    result = _through_writer(path, ["-"], 7)
    assert result.returncode == 1
    _one_line_error(result.stderr, phrase)


def test_a_stalled_source_is_an_error(wav_file, tmp_path):
    path = tmp_path / "start.wav"
    path.write_bytes(wav_file.read_bytes()[: 44 + 2 * RATE // 2])
    started = time.monotonic()
    result = _through_writer(path, ["-", "--stall-timeout", "0.5"], 4096, linger=30)
    assert time.monotonic() - started < 20
    assert result.returncode == 1
    _one_line_error(result.stderr, "stdin", "no data for 0.5 s", "stalled")


def _listen_and_list_heavy_modules(wav_file: Path, *args: str
                                   ) -> subprocess.CompletedProcess:
    """``kws listen --model MODEL ARGS -`` on the file in a fresh Python, whose stderr ends
    with the JSON list of the heavy modules it imported."""
    code = textwrap.dedent(f"""
        import json, sys
        from kws.cli import main
        try:
            main(["listen", "--model", {str(MODEL)!r}, *{list(args)!r}, "-"])
        except SystemExit as done:
            assert done.code == 0, done.code
        heavy = sorted(m for m in ("tensorflow", "keras", "librosa") if m in sys.modules)
        print(json.dumps(heavy), file=sys.stderr)
    """)
    with open(wav_file, "rb") as stdin:
        result = subprocess.run([sys.executable, "-c", code], stdin=stdin, capture_output=True,
                                text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stderr.strip().splitlines()[-1]) == []
    return result


def test_listen_never_imports_tensorflow(wav_file, expected):
    assert _events(_listen_and_list_heavy_modules(wav_file).stdout) == expected


def test_verified_listening_is_the_verified_detector_without_tensorflow(wav_file, clips,
                                                                         runner):
    # --verify: the phone model (the shipped one, LiteRT) confirms each detection; fed a
    # sample at a time, the same events as the verified detector on the whole recording.
    from kws.phones.verify import PhoneVerifier

    settings = DetectorSettings.from_card(runner.card, verify=True)
    found = detect(runner, clips.astype(np.float32), settings, verifier=PhoneVerifier())
    want = [(d.label, round(float(d.probability), 4), round(d.start, 3), round(d.end, 3))
            for d in found]
    assert want and set(label for label, *_ in want) <= set(WORDS)
    assert _events(_listen_and_list_heavy_modules(wav_file, "--verify").stdout) == want
    assert _events(_through_writer(wav_file, ["-", "--verify"], 2).stdout) == want


def test_keywords_cooldown_threshold_and_table(wav_file, expected):
    result = subprocess.run(_kws(str(wav_file), "--keywords", "stop,left"), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert [event[0] for event in _events(result.stdout)] == ["stop", "left"]
    result = subprocess.run(_kws(str(wav_file), "--threshold", "1.0"), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and _events(result.stdout) == []
    result = subprocess.run(_kws(str(wav_file), "--format", "table", "--cooldown", "0"),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    rows = result.stdout.splitlines()
    assert rows[0].split() == ["time", "keyword", "prob", "start", "end", "latency"]
    assert [row.split()[1] for row in rows[1:]] == list(WORDS)


@pytest.mark.parametrize("args, phrase", [
    (["-", "--rate", "8000"], "add --raw"),
    (["-", "--raw", "--channels", "0"], "channel count 0"),
    (["-", "--raw", "--rate", "12"], "sample rate 12 Hz"),
    (["--realtime"], "microphone is real time"),
    (["--raw"], "not the microphone"),
    (["-", "--stall-timeout", "-1"], "--stall-timeout"),
    (["-", "--keywords", "yes,banana"], "'banana' is not a keyword"),
    (["-", "--keywords", ","], "at least one keyword"),
    (["-", "--threshold", "1.5"], "between 0 and 1"),
    (["-", "--cooldown", "-1"], "--cooldown"),
    (["-", "--max-delay", "-1"], "--max-delay"),
    (["/no/such/file.wav"], "no such file"),
    ([str(ROOT)], "is a directory"),
], ids=["rate-without-raw", "channels", "rate", "realtime-mic", "raw-mic", "stall",
        "keyword", "empty-keywords", "threshold", "cooldown", "max-delay", "missing",
        "directory"])
def test_usage_errors_exit_2(args, phrase, wav_file):
    with open(wav_file, "rb") as stdin:
        result = subprocess.run(_kws(*args), stdin=stdin, capture_output=True, text=True,
                                timeout=60)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and phrase in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("args, phrase", [
    (["-", "--raw", "--rate", "0"], "--rate/--channels: sample rate 0 Hz is not one kws reads "
                                    "(1000 to 384000 Hz)"),
    (["{wav}", "--cooldown", "inf"], "--cooldown must be from 0 s to 60 s, not inf"),
    (["{wav}", "--cooldown", "nan"], "--cooldown must be from 0 s to 60 s, not nan"),
    (["{wav}", "--max-delay", "inf"], "--max-delay must be from 0 s to 60 s, not inf"),
    (["{wav}", "--max-delay", "1e300"], "--max-delay must be from 0 s to 60 s, not 1e+300"),
    (["{wav}", "--model", "{wav}"], "{wav}: is a file, not a model folder"),
    ([""], "an empty path names no file (give a file, a FIFO or -)"),
], ids=["rate-0", "cooldown-inf", "cooldown-nan", "max-delay-inf", "max-delay-huge",
        "model-file", "empty-path"])
def test_out_of_range_options_are_one_line_usage_errors(run_cli, wav_file, args, phrase):
    """Checked in this process: none of these gets as far as reading the input."""
    args = [arg.format(wav=wav_file) for arg in args]
    result = run_cli(["listen", "--model", str(MODEL), *args])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == f"kws: error: {phrase.format(wav=wav_file)}\n"


def test_a_terminal_on_stdin_is_a_usage_error():
    main_fd, terminal = os.openpty()
    try:
        result = subprocess.run(_kws("-"), stdin=terminal, capture_output=True, text=True,
                                timeout=60)
    finally:
        os.close(main_fd)
        os.close(terminal)
    assert result.returncode == 2
    assert "standard input is a terminal" in result.stderr and "Traceback" not in result.stderr


def test_a_broken_audio_file_is_one_error(tmp_path):
    path = tmp_path / "broken.flac"
    path.write_bytes(b"fLaC" + bytes(100))
    result = subprocess.run(_kws(str(path)), capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    _one_line_error(result.stderr, str(path))


def test_a_recording_without_samples_is_an_error_as_in_kws_predict(tmp_path):
    path = tmp_path / "zero.wav"
    path.write_bytes(_wav_bytes(np.zeros(0, np.float32)))
    result = subprocess.run(_kws(str(path)), capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == f"kws: error: {path}: contains no audio samples (zero length)\n"


#: A fake ``sounddevice``: one input device at FAKE_MIC_RATE (refusing other rates, as
#: hardware does), which plays the file FAKE_MIC_FILE through the callback, then presses
#: Ctrl-C. FAKE_MIC_BROKEN selects a failure instead.
FAKE_SOUNDDEVICE = textwrap.dedent("""
    import os, signal, threading, time
    import numpy as np
    import soundfile

    broken = os.environ.get("FAKE_MIC_BROKEN", "")
    if broken == "no-package":
        raise ImportError("No module named 'sounddevice'")
    if broken == "no-portaudio":
        raise OSError("PortAudio library not found")

    class PortAudioError(Exception):
        pass

    class CallbackFlags:
        input_overflow = False
        def __bool__(self):
            return False

    def query_devices(kind=None):
        if broken == "no-device":
            raise PortAudioError("Error querying device -1")
        return {"name": "fake mic", "max_input_channels": 2,
                "default_samplerate": float(os.environ["FAKE_MIC_RATE"])}

    class InputStream:
        def __init__(self, samplerate, channels, dtype, blocksize, callback):
            if int(samplerate) != int(os.environ["FAKE_MIC_RATE"]):
                raise PortAudioError("Invalid sample rate [PaErrorCode -9997]")
            self.channels, self.blocksize, self.callback = channels, blocksize, callback

        def start(self):
            threading.Thread(target=self._play, daemon=True).start()

        def _play(self):
            data, _ = soundfile.read(os.environ["FAKE_MIC_FILE"], dtype="float32",
                                     always_2d=True)
            data = np.repeat(data[:, :1], self.channels, axis=1)
            for i in range(0, len(data), self.blocksize):
                block = data[i:i + self.blocksize]
                self.callback(block, len(block), None, CallbackFlags())
                time.sleep(0.001)
            time.sleep(1.0)
            os.kill(os.getpid(), signal.SIGINT)

        def stop(self):
            pass

        def close(self):
            pass
""")


@pytest.fixture
def fake_mic(tmp_path, project_env):
    folder = tmp_path / "fake"
    folder.mkdir()
    (folder / "sounddevice.py").write_text(FAKE_SOUNDDEVICE)
    env = dict(project_env, PYTHONPATH=str(folder))
    return env


@pytest.mark.parametrize("mic_rate", [16000, 48000])
def test_the_microphone_with_a_fake_sounddevice(fake_mic, clips, runner, tmp_path, mic_rate):
    path = tmp_path / "mic.wav"
    recording = audio.resample(clips.astype(np.float32), RATE, mic_rate)
    soundfile.write(path, recording, mic_rate, subtype="FLOAT")
    whole = detect(runner, audio.load(path, RATE), DetectorSettings.from_card(runner.card))
    assert [d.label for d in whole] == list(WORDS)
    env = dict(fake_mic, FAKE_MIC_RATE=str(mic_rate), FAKE_MIC_FILE=str(path))
    result = subprocess.run(_kws(), env=env, capture_output=True, text=True, timeout=60,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 130, result.stderr
    assert result.stderr.strip().endswith("kws: interrupted")
    assert _events(result.stdout) == [(d.label, round(float(d.probability), 4),
                                       round(d.start, 3), round(d.end, 3)) for d in whole]


@pytest.mark.parametrize("broken, phrase", [
    ("no-package", "needs the sounddevice package"),
    ("no-portaudio", "needs the PortAudio library (PortAudio library not found)"),
    ("no-device", "no audio input device"),
])
def test_a_missing_microphone_is_one_line_naming_the_alternatives(fake_mic, broken, phrase):
    env = dict(fake_mic, FAKE_MIC_BROKEN=broken, FAKE_MIC_RATE="16000")
    result = subprocess.run(_kws(), env=env, capture_output=True, text=True, timeout=60,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 1
    _one_line_error(result.stderr, phrase, 'pip install "kws[mic]"', "| kws listen -")


def test_a_stalled_microphone_is_an_error(fake_mic, tmp_path):
    path = tmp_path / "short.wav"
    soundfile.write(path, np.zeros(800, dtype=np.float32), RATE)
    env = dict(fake_mic, FAKE_MIC_RATE="16000", FAKE_MIC_FILE=str(path))
    result = subprocess.run(_kws("--stall-timeout", "0.3"), env=env, capture_output=True,
                            text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 1
    _one_line_error(result.stderr, "microphone", "no audio for 0.3 s")


# Sources in the library, without the command.

def _chunks_of(data: bytes, tmp_path: Path, options: SourceOptions | None = None,
               rate: int = RATE) -> np.ndarray:
    options = options or SourceOptions()
    path = tmp_path / "input.bin"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    with ByteStreamSource("input", fd, options, stalls=False, owns_fd=True) as source:
        chunks = list(source.chunks(rate))
    starts = [chunk.start for chunk in chunks]
    lengths = np.cumsum([0] + [len(chunk.samples) for chunk in chunks])[:-1]
    assert np.allclose(starts, lengths / rate)
    return np.concatenate([chunk.samples for chunk in chunks]) if chunks else np.zeros(0)


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
def test_wav_streams_decode_like_libsndfile(tmp_path, subtype):
    rng = np.random.default_rng(1)
    stereo = rng.uniform(-0.9, 0.9, (3001, 2)).astype(np.float32)
    data = _wav_bytes(stereo, 8000, subtype=subtype, streaming_size=0)
    path = tmp_path / "reference.wav"
    path.write_bytes(_wav_bytes(stereo, 8000, subtype=subtype))
    reference, _ = audio.read(path)
    assert np.array_equal(_chunks_of(data, tmp_path, rate=8000), reference)


def test_wav_chunks_before_the_data_are_skipped_with_their_padding(tmp_path):
    samples = np.arange(-50, 50, dtype="<i2")
    fmt = struct.pack("<HHIIHH", 1, 1, RATE, 2 * RATE, 2, 16)
    data = (b"RIFF" + struct.pack("<I", 0) + b"WAVE" + b"LIST" + struct.pack("<I", 3) + b"abc\0"
            + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", 200)
            + samples.tobytes() + b"trailing chunk")
    assert np.array_equal(_chunks_of(data, tmp_path), samples / np.float32(32768))


@pytest.mark.parametrize("name", sorted(SAMPLE_FORMATS))
def test_raw_sample_formats(tmp_path, name):
    fmt = SAMPLE_FORMATS[name]
    values = np.array([-1.0, -0.5, 0.0, 0.25, 0.5], dtype=np.float64)
    if fmt.dtype is None:
        ints = np.round(values * 2 ** 23).astype("<i4").clip(-2 ** 23, 2 ** 23 - 1)
        data = b"".join(int(v).to_bytes(3, "little", signed=True) for v in ints)
    elif fmt.dtype[-2] == "f":
        data = values.astype(fmt.dtype).tobytes()
    else:
        data = np.round(values * fmt.scale + fmt.offset).astype(fmt.dtype).tobytes()
    options = SourceOptions(raw=RawFormat(RATE, 1, name))
    assert np.allclose(_chunks_of(data, tmp_path, options), values, atol=1 / 127)


def test_resampling_does_not_depend_on_how_the_input_is_cut(tmp_path):
    rng = np.random.default_rng(2)
    samples = rng.uniform(-0.5, 0.5, 44100).astype(np.float32)
    data = samples.astype("<f4").tobytes()
    options = SourceOptions(raw=RawFormat(44100, 1, "f32le"))
    whole = _chunks_of(data, tmp_path, options)
    assert np.array_equal(whole, audio.resample(samples, 44100, RATE))
    read, write = os.pipe()
    pieces = [data[i:i + 4 * 37] for i in range(0, len(data), 4 * 37)]
    source = ByteStreamSource("pipe", read, options, owns_fd=True)

    def writer() -> None:
        for piece in pieces:
            os.write(write, piece)
        os.close(write)

    thread = threading.Thread(target=writer)
    thread.start()
    with source:
        got = [chunk.samples for chunk in source.chunks(RATE)]
    thread.join()
    assert np.array_equal(np.concatenate(got), whole)


def test_arrival_times_map_stream_time_to_wall_time(tmp_path):
    read, write = os.pipe()
    source = ByteStreamSource("pipe", read, SourceOptions(raw=RawFormat(RATE, 1, "s16le")),
                              owns_fd=True)
    with source:
        stream = source.chunks(RATE)
        os.write(write, bytes(RATE))  # 0.5 s, one read
        next(stream)
        first = time.monotonic()
        time.sleep(0.05)
        os.write(write, bytes(RATE))  # 0.5 s, one read
        next(stream)
        second = time.monotonic()
        os.close(write)
        list(stream)
    assert source.arrival(0.25) <= first < source.arrival(0.75) <= second
    assert source.arrival(99.0) == source.arrival(1.0)


def test_a_stream_without_samples_is_an_error(tmp_path):
    for data, options in [(_wav_bytes(np.zeros(0, np.float32), streaming_size=0), None),
                          (b"", SourceOptions(raw=RawFormat()))]:
        with pytest.raises(AudioError, match=r"^input: contains no audio samples"):
            _chunks_of(data, tmp_path, options)


def test_float64_samples_beyond_float32_are_refused_without_a_numpy_warning(tmp_path):
    import warnings

    samples = np.full(1600, 1e300)
    data = _wav_bytes(np.zeros(1600), subtype="DOUBLE")
    data = data[: len(data) - samples.nbytes] + samples.astype("<f8").tobytes()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(AudioError) as caught:
            _chunks_of(data, tmp_path)
    assert str(caught.value) == ("input: samples out of range after 0.00 s (NaN or infinite, "
                                 "or beyond the float range; audio samples lie within ±1)")


def test_headerless_raw_pcm_in_a_file_suggests_raw(tmp_path):
    path = tmp_path / "speech.raw"
    path.write_bytes(np.zeros(RATE, "<i2").tobytes())
    with open_source(str(path), SourceOptions()) as source, \
            pytest.raises(AudioError) as caught:
        list(source.chunks(RATE))
    assert str(caught.value) == (f"{path}: no audio header (headerless raw PCM?); for raw PCM "
                                 "give --raw with --rate, --channels and --sample-format")
    with open_source(str(path), SourceOptions(raw=RawFormat())) as source:
        assert sum(len(chunk.samples) for chunk in source.chunks(RATE)) == RATE


@pytest.mark.parametrize(("content", "problem"), [
    (b"hello", "not an audio file soundfile can read"),
    (b"", "empty file (0 bytes)"),
    (_wav_bytes(np.zeros(RATE, np.float32))[:1000], "truncated WAV: header declares"),
    (_wav_bytes(np.zeros(0, np.float32)), "contains no audio samples (zero length)"),
])
def test_open_source_refuses_a_regular_file_as_kws_predict_does(tmp_path, content, problem):
    path = tmp_path / "notes.wav"
    path.write_bytes(content)
    with pytest.raises(AudioError) as read:
        audio.read(path)
    with open_source(str(path), SourceOptions()) as source, \
            pytest.raises(AudioError) as listened:
        list(source.chunks(RATE))
    assert problem in str(listened.value) and str(listened.value) == str(read.value)
