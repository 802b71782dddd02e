"""Synthetic continuous speech for the phone benchmark: training sentences, many voices.

Reads the *training* split (kws's salted speaker/file hash with its default shares, 10 %
validation and 50 % testing: inside the training split of any smaller testing share with
the same validation share, such as the benchmark's 25 %) of folders of transcribed
recordings (``transcripts.tsv``: ``arctic_cathy``'s prompts were chosen to cover English
phones in context) and has espeak-ng say each sentence in many US-English voices
(variants, speaking rates, pitches), so the phone model hears the same phonetically rich
text from many speakers. Sentences saying an ``--exclude`` word are left out. Writes a
folder kws reads as transcribed speech::

    OUT/<speaker>/<n>.flac     16 kHz mono
    OUT/transcripts.tsv        file, speaker, transcript

    python bench/tts_sentences.py ../shared/data/arctic_cathy \\
        --out models/bench-data/tts-sentences --speakers 150 --per-speaker 25 \\
        --exclude happy,marvin,sheila,house,tree,enter,repeat,rubout,erase,help

Needs espeak-ng (``apt-get install espeak-ng``).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile

from kws.audio import load
from kws.dataset import TRAINING
from kws.recordings import read_recordings, split_of, words_of

RATE = 16000
VARIANTS = ("m1 m2 m3 m4 m5 m6 m7 m8 f1 f2 f3 f4 f5 klatt klatt2 klatt3 klatt4 adam Alex "
            "Alicia Andy Annie aunty belinda benjamin caleb david ed edward grandma grandpa "
            "john linda max Michael Mike norbert paul quincy rob robert shelby steph travis "
            "victor zac").split()


def training_sentences(folders: list[Path], exclude: set[str]) -> list[str]:
    """The transcripts of the training-split recordings that say no excluded word."""
    sentences = []
    for folder in folders:
        for recording in read_recordings(folder).recordings:
            words = words_of(recording.transcript or "")
            if words and split_of(recording) == TRAINING and not exclude & set(words):
                sentences.append(" ".join(words))
    return sorted(set(sentences))


def say(voice: str, speed: int, pitch: int, text: str, tmp: Path) -> np.ndarray:
    """espeak-ng's rendering of ``text``, resampled to 16 kHz, peak -3 dBFS."""
    path = tmp / "say.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w",
                    str(path), text], check=True, capture_output=True)
    audio = load(path, RATE)
    return (0.7 * audio / (np.abs(audio).max() + 1e-9)).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--speakers", type=int, default=150)
    parser.add_argument("--per-speaker", type=int, default=25)
    parser.add_argument("--exclude", default="", help="Comma-separated words.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if shutil.which("espeak-ng") is None:
        sys.exit("tts_sentences.py: espeak-ng is not installed (apt-get install espeak-ng)")
    if args.out.exists() and any(args.out.iterdir()):
        sys.exit(f"tts_sentences.py: {args.out} is not empty; nothing is written over")
    exclude = {w.strip().lower() for w in args.exclude.split(",") if w.strip()}
    sentences = training_sentences(args.folders, exclude)
    rng = random.Random(args.seed)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for number in range(args.speakers):
            voice = f"en-us+{VARIANTS[number % len(VARIANTS)]}"
            speed, pitch = rng.randint(130, 210), rng.randint(25, 75)
            speaker = hashlib.sha1(f"{voice}:{speed}:{pitch}:{number}".encode()).hexdigest()[:8]
            (args.out / speaker).mkdir(parents=True, exist_ok=True)
            for n, text in enumerate(rng.sample(sentences, min(args.per_speaker, len(sentences)))):
                file = f"{speaker}/{n}.flac"
                soundfile.write(args.out / file, say(voice, speed, pitch, text, Path(tmp)), RATE)
                rows.append((file, speaker, text))
            print(f"\r{number + 1}/{args.speakers} speakers", end="", file=sys.stderr)
    with open(args.out / "transcripts.tsv", "w", newline="") as table:
        writer = csv.writer(table, delimiter="\t", lineterminator="\n")
        writer.writerow(("file", "speaker", "transcript"))
        writer.writerows(rows)
    print(f"\n{len(rows)} utterances of {len(sentences)} sentences, {args.speakers} speakers: "
          f"{args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
