"""How fast ``kws predict`` is, end to end, with the LiteRT and the Keras runner.

Creates (in a temporary folder) a model folder and one-second 16-bit WAV files in the
Speech Commands layout, exports the model to TFLite with ``kws export`` (parity checked on
those files), then times the real ``kws`` console command in a subprocess: one file, and
all files (``kws predict DIR``). Each timing is the best of ``--repeat`` runs (wall clock,
process start to exit, with the CPU time of that run beside it: on a shared machine the
wall time depends on the others' load, the CPU time much less). The model is untrained:
speed does not depend on the weights.

The floor, measured in the same run the same way: a Python process that merely reads
every file with soundfile and resamples it with soxr to the model's rate, one after the
other. ``x floor`` is ``kws predict DIR``'s wall time over the floor's (the goal: <= 2).

Usage::

    .venv/bin/python bench/predict_speed.py [--model FOLDER] [--files 2000] [--repeat 3]
        [--runners tflite,keras] [--int8]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RATE = 16000
WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")


def kws_command() -> list[str]:
    """The installed ``kws`` console script next to this Python, else the one on PATH."""
    beside = Path(sys.executable).parent / "kws"
    found = str(beside) if beside.is_file() else shutil.which("kws")
    if not found:
        sys.exit("bench: no `kws` command found (pip install -e . first)")
    return [found]


def write_clips(folder: Path, count: int, seed: int = 0) -> Path:
    """``count`` one-second clips (a tone burst in noise) as ``word/spkNNNN_nohash_N.wav``."""
    import soundfile

    rng = np.random.default_rng(seed)
    t = np.arange(RATE) / RATE
    for index in range(count):
        word = WORDS[index % len(WORDS)]
        wave = 0.01 * rng.standard_normal(RATE)
        start, length = rng.integers(0, RATE // 2), rng.integers(RATE // 4, RATE // 2)
        burst = np.sin(2 * np.pi * (300 + 150 * (index % len(WORDS))) * t[:length])
        wave[start : start + length] += 0.4 * burst
        path = folder / word / f"spk{index // 5:04d}_nohash_{index % 5}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(path, wave.astype(np.float32), RATE, subtype="PCM_16")
    return folder


def make_model(folder: Path) -> str:
    """An untrained default-architecture classifier (a tiny one if unavailable)."""
    from kws.modelfolder import ModelCard, save_keras_model, write_card
    from kws.runtime import import_keras

    keras = import_keras()

    labels = ["_silence_", "_unknown_", *sorted(WORDS)]
    try:
        from kws.models.classifier import DEFAULT_ARCH, build_classifier

        arch = DEFAULT_ARCH
        model = build_classifier(arch, len(labels), RATE, RATE, seed=0)
    except ImportError:
        arch = "tiny"
        model = keras.Sequential([
            keras.Input((RATE,)), keras.layers.Reshape((RATE, 1)),
            keras.layers.Conv1D(16, 64, strides=16, activation="relu"),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(len(labels), activation="softmax"),
        ])
    save_keras_model(folder, model)
    write_card(folder, ModelCard(labels=labels, sample_rate=RATE, input_length=RATE, arch=arch,
                                 parameters=int(model.count_params())))
    return arch


#: The floor: read and resample every file under a folder, in one process.
FLOOR = """
import sys
from pathlib import Path
import soundfile, soxr
rate = int(sys.argv[2])
for path in sorted(Path(sys.argv[1]).rglob("*.wav")):
    data, file_rate = soundfile.read(path, dtype="float32", always_2d=True)
    wave = data.mean(axis=1)
    if file_rate != rate:
        wave = soxr.resample(wave, file_rate, rate, quality="HQ")
    print(len(wave))
"""


def timed(command: list[str], repeat: int) -> tuple[float, float, int]:
    """Best wall time of ``repeat`` runs, its CPU time (user + system, all threads), and the
    number of result lines.

    On a shared machine the wall time depends on the other load; the CPU time much less.
    """
    best = (float("inf"), 0.0, 0)
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        elapsed = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            sys.exit(f"bench: {' '.join(command)} failed:\n{done.stderr}")
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if elapsed < best[0]:
            best = (elapsed, cpu, len(done.stdout.splitlines()))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="Model folder to use (copied, not changed).")
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--runners", default="tflite,keras")
    parser.add_argument("--int8", action="store_true", help="Also export and time int8.")
    args = parser.parse_args()
    kws = kws_command()
    runners = [r for r in args.runners.split(",") if r]
    with tempfile.TemporaryDirectory(prefix="kws-bench-") as tmp:
        tmp = Path(tmp)
        env = {**os.environ, "KWS_CACHE_DIR": str(tmp / "cache")}
        clips = write_clips(tmp / "clips", args.files)
        model = tmp / "model"
        if args.model:
            shutil.copytree(args.model, model)
            from kws.modelfolder import read_card

            arch = read_card(model).arch
        else:
            arch = make_model(model)
        exports = [[]] + ([["--int8"]] if args.int8 else [])
        for extra in exports:
            subprocess.run([*kws, "export", str(model), "--data", str(clips), "--clips", "300",
                            *extra], check=True, env=env, stdout=subprocess.DEVNULL)
        if args.int8:
            runners.insert(1, "tflite-int8")
        one = next(clips.glob("*/*.wav"))
        floor, floor_cpu, count = timed([sys.executable, "-c", FLOOR, str(clips), str(RATE)],
                                        args.repeat)
        if count != args.files:
            sys.exit(f"bench: the floor read {count} files, not {args.files}")
        rows = []
        for runner in runners:
            base = [*kws, "predict", "--model", str(model), "--runner", runner, "-f", "jsonl"]
            single, single_cpu, _ = timed([*base, str(one)], args.repeat)
            many, many_cpu, lines = timed([*base, str(clips)], args.repeat)
            if lines != args.files:
                sys.exit(f"bench: expected {args.files} results from {runner}, got {lines}")
            rows.append((runner, single, single_cpu, many, many_cpu, args.files / many))
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"kws predict, model {arch}, {args.files} one-second 16 kHz WAV files, "
          f"{os.cpu_count()} CPUs (load average {load}), best of {args.repeat}")
    print(f"{'runner':<12} {'one file (s)':>13} {'cpu (s)':>8} {f'{args.files} files (s)':>16} "
          f"{'cpu (s)':>8} {'files/s':>8} {'x floor':>8}")
    print(f"{'floor':<12} {'':>13} {'':>8} {floor:>16.2f} {floor_cpu:>8.2f} "
          f"{args.files / floor:>8.0f} {1.0:>8.2f}")
    for runner, single, single_cpu, many, many_cpu, rate in rows:
        print(f"{runner:<12} {single:>13.3f} {single_cpu:>8.2f} {many:>16.2f} {many_cpu:>8.2f} "
              f"{rate:>8.0f} {many / floor:>8.2f}")


if __name__ == "__main__":
    main()
