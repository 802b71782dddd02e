"""The shipped models under another Keras backend (and on a GPU): same outputs, speed, fp16.

Two steps, because a GPU machine may have no TensorFlow (this project's lent one has JAX):

1. ``--reference FILE`` (under TensorFlow, here): reads 512 one-second clips of
   ``sc_v2_test_half`` and 32 three-second windows of AN4 recordings, and writes them (as
   16-bit samples) with the outputs of ``models/default`` and ``models/phones`` on them.
2. ``--compare FILE`` (under any backend, e.g. ``KERAS_BACKEND=jax`` on a GPU): the same
   models' outputs on the same input against TensorFlow's; inference speed; and the time
   of a training step of the default architectures built fresh, in float32 and in
   mixed_float16 (what ``kws train`` uses on a GPU), with the losses of six short epochs
   on the reference clips (a step of the phone model trains on random phone targets).
   Needs only Keras, NumPy and this checkout: no TensorFlow, librosa or data folder.

Usage::

    .venv/bin/python bench/backends.py --reference /tmp/reference.npz
    KERAS_BACKEND=jax python bench/backends.py --compare /tmp/reference.npz [--json F]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"
CLASSIFIER, PHONES = ROOT / "models" / "default", ROOT / "models" / "phones"
RATE, CLIPS, WINDOWS, WINDOW_SECONDS = 16000, 512, 32, 3
#: Epochs (one pass over the reference input, repeated) each training timing runs.
EPOCHS = 6
#: How many times the reference input is repeated per training epoch.
CLIP_REPEAT, WINDOW_REPEAT = 8, 4
SCALE = 32767.0


def load_models():
    """The two shipped models (Keras files), loaded under the current backend."""
    from kws.modelfolder import load_keras_model

    return load_keras_model(CLASSIFIER), load_keras_model(PHONES)


def write_reference(path: Path) -> None:
    """Real clips and windows (16-bit) and TensorFlow's outputs on them."""
    from kws import audio
    from kws.modelfolder import read_card

    rng = random.Random(0)
    labels = read_card(CLASSIFIER).labels
    files = [p for p in sorted((SHARED / "sc_v2_test_half").rglob("*.wav"))
             if p.parent.name in labels and p.parent.name != "_silence_"]
    files = rng.sample(files, CLIPS)
    clips = np.stack([audio.fix_length(audio.load(p, RATE), RATE) for p in files])
    recordings = rng.sample(sorted((SHARED / "an4").rglob("*.flac")), WINDOWS)
    windows = np.stack([audio.fix_length(audio.load(p, RATE), WINDOW_SECONDS * RATE)
                        for p in recordings])
    clips16, windows16 = (np.round(x * SCALE).astype(np.int16) for x in (clips, windows))
    classifier, phones = load_models()
    np.savez_compressed(
        path, clips=clips16, windows=windows16,
        labels=np.array([labels.index(p.parent.name) for p in files], dtype=np.int32),
        classifier=classifier.predict(clips16 / SCALE, batch_size=128, verbose=0),
        phones=phones.predict(windows16 / SCALE, batch_size=16, verbose=0))
    print(f"reference: {path} ({CLIPS} clips, {WINDOWS} windows of {WINDOW_SECONDS} s)")


def median_seconds(run, repeat: int) -> float:
    """Median wall time of ``run()`` over ``repeat`` calls, after one untimed call."""
    run()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def training_timing(policy: str, build, x, y, loss, batch: int) -> dict:
    """Train a fresh model ``EPOCHS`` short epochs under ``policy``; time its steps."""
    from kws.runtime import import_keras, precision_policy

    keras = import_keras()
    losses, seconds = [], []
    with precision_policy(policy):
        model = build()
        model.compile(optimizer=keras.optimizers.AdamW(3e-3, weight_decay=1e-4), loss=loss)
        for _ in range(EPOCHS):
            started = time.perf_counter()
            history = model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0)
            seconds.append(time.perf_counter() - started)
            losses.append(float(history.history["loss"][0]))
    step = float(np.median(seconds[1:])) / (len(x) // batch)
    return {"first_epoch_s": round(seconds[0], 2), "ms_per_step": round(1000 * step, 2),
            "examples_per_s": round(batch / step), "losses": [round(v, 3) for v in losses],
            "finite": bool(np.all(np.isfinite(losses)))}


def compare(path: Path) -> dict:
    """Every figure of step 2 (see the module docstring)."""
    from kws.models.classifier import build_classifier
    from kws.models.losses import classification_loss
    from kws.models.phones import build_phone_model
    from kws.phones.ctc import ctc_loss, encode_targets
    from kws.runtime import import_keras

    keras = import_keras()
    reference = np.load(path)
    clips, windows = (np.float32(reference[name] / SCALE) for name in ("clips", "windows"))
    labels = reference["labels"]
    classifier, phones = load_models()
    ours = classifier.predict(clips, batch_size=128, verbose=0)
    posteriors = phones.predict(windows, batch_size=16, verbose=0)
    many = np.tile(clips, (8, 1))
    targets = encode_targets([[list(random.Random(i).choices(range(1, 40), k=30))]
                              for i in range(len(windows))])
    report = {
        "backend": keras.backend.backend(), "devices": devices(),
        "classifier_max_difference": float(np.abs(ours - reference["classifier"]).max()),
        "classifier_same_answer": float(np.mean(
            ours.argmax(1) == reference["classifier"].argmax(1))),
        "classifier_accuracy": [float(np.mean(ours.argmax(1) == labels)),
                                float(np.mean(reference["classifier"].argmax(1) == labels))],
        "phones_max_difference": float(np.abs(posteriors - reference["phones"]).max()),
        "phones_same_frame_answer": float(np.mean(
            posteriors.argmax(-1) == reference["phones"].argmax(-1))),
        "classifier_clips_per_s": round(len(many) / median_seconds(
            lambda: classifier.predict(many, batch_size=1024, verbose=0), 3)),
        "classifier_one_clip_ms": round(1000 * median_seconds(
            lambda: classifier.predict_on_batch(clips[:1]), 50), 2),
        "phones_audio_seconds_per_s": round(len(windows) * WINDOW_SECONDS / median_seconds(
            lambda: phones.predict(windows, batch_size=WINDOWS, verbose=0), 3)),
    }
    for policy in ("float32", "mixed_float16"):
        report[f"train_classifier_{policy}"] = training_timing(
            policy, lambda: build_classifier("tcres", 32, RATE, RATE, seed=0),
            np.tile(clips, (CLIP_REPEAT, 1)), np.tile(labels, CLIP_REPEAT),
            classification_loss(0.1), 64)
        report[f"train_phones_{policy}"] = training_timing(
            policy, lambda: build_phone_model(40, RATE, None, seed=0),
            np.tile(windows, (WINDOW_REPEAT, 1)), np.tile(targets, (WINDOW_REPEAT, 1, 1)),
            ctc_loss, 32)
    return report


def devices() -> list[str]:
    """The backend's devices, as it names them."""
    from kws.runtime import import_keras

    backend = import_keras().backend.backend()
    if backend == "jax":
        import jax

        return [str(device) for device in jax.devices()]
    if backend == "tensorflow":
        import tensorflow as tf

        return [device.name for device in tf.config.list_logical_devices()]
    return [backend]


def print_report(report: dict) -> None:
    """The figures as two plain tables."""
    print(f"backend {report['backend']} on {', '.join(report['devices'])}")
    rows = [
        ("classifier: largest |difference| from TensorFlow",
         f"{report['classifier_max_difference']:.2g}"),
        ("classifier: same label as TensorFlow", f"{report['classifier_same_answer']:.1%}"),
        ("classifier: accuracy here / under TensorFlow",
         " / ".join(f"{a:.1%}" for a in report["classifier_accuracy"])),
        ("phones: largest |difference| from TensorFlow",
         f"{report['phones_max_difference']:.2g}"),
        ("phones: same phone per frame as TensorFlow",
         f"{report['phones_same_frame_answer']:.1%}"),
        ("classifier: clips per second (batches of 1024)", report["classifier_clips_per_s"]),
        ("classifier: one clip (ms)", report["classifier_one_clip_ms"]),
        ("phones: seconds of audio per second", report["phones_audio_seconds_per_s"]),
    ]
    print("| check | value |\n| --- | --- |")
    for name, value in rows:
        print(f"| {name} | {value} |")
    print(f"\n| training step ({EPOCHS} short epochs) | ms/step | examples/s | first epoch (s) "
          f"| losses |\n| --- | --- | --- | --- | --- |")
    for model, batch in (("classifier", "64 clips"), ("phones", "32 x 3 s")):
        for policy in ("float32", "mixed_float16"):
            timing = report[f"train_{model}_{policy}"]
            losses = " ".join(f"{v:g}" for v in timing["losses"])
            print(f"| {model}, {policy}, {batch} | {timing['ms_per_step']} | "
                  f"{timing['examples_per_s']} | {timing['first_epoch_s']} | {losses} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    step = parser.add_mutually_exclusive_group(required=True)
    step.add_argument("--reference", type=Path, help="Write the reference (TensorFlow).")
    step.add_argument("--compare", type=Path, help="Compare with this reference.")
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    args = parser.parse_args()
    if args.reference:
        write_reference(args.reference)
        return
    report = compare(args.compare)
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
