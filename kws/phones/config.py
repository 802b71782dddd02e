"""The configuration of a ``kws phones train`` run: the shared run options plus phone settings.

Kept apart from the trainer (:mod:`kws.phones.train`) so the data layer of phone models
(:mod:`kws.phones.data`) can read it without importing the trainer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kws.dataset import parse_words
from kws.train.config import RunConfig, option

#: Sample rate of phone models unless told otherwise (Hz).
DEFAULT_RATE = 16000
#: Where ``kws phones train`` writes unless told otherwise.
DEFAULT_OUT = str(Path("models") / "tcphones")
#: Training augmentation of phone models: shorter shifts than the classifier's, so a word
#: near the edge of its clip is not pushed out of it while its phones remain the target;
#: lighter background noise than the classifier's (half the batches, 5-25 dB), because the
#: phone model underfits noisy one-word clips (bench/phones.py measured lower PER with it on
#: the held-out speakers of AN4, ARCTIC and Speech Commands). No speed perturbation: at
#: 0.9-1.1x it measured worse on all of them and on never-trained words. No band limiting
#: (the classifier's ``lowpass_probability``): at 0.3 it left PER where it was and found
#: fewer never-trained words.
PHONE_AUGMENTATION = {"shift": 0.05, "background_probability": 0.5, "snr_db": (5.0, 25.0)}
#: The saved model's input (s): a frame's context (about 0.6 s each side) fits well inside
#: the half of a window that the stitching keeps.
DEFAULT_WINDOW_SECONDS = 3.0
#: Frame periods are multiples of the front end's hop (ms).
FRONT_END_HOP_MS = 10.0


def parse_excluded(values: Any) -> tuple[str, ...]:
    """``--exclude`` values (repeatable, each possibly comma-separated) as lower-case words."""
    items = [values] if isinstance(values, str) else list(values or ())
    return tuple(dict.fromkeys(word.strip().lower() for item in items
                               for word in item.split(",") if word.strip()))


@dataclass
class PhoneTrainConfig(RunConfig):
    """A phone model's training run: :class:`kws.train.config.RunConfig` plus phone settings.

    ``words=None`` trains on every word of the data; ``exclude`` leaves words out entirely
    (to test spotting a word never heard); ``lexicon=None`` is the shipped lexicon;
    ``rate=None`` is :data:`DEFAULT_RATE`. Training takes recordings of any length, batched
    by length; ``window_seconds`` is the input of the saved model's runners (longer
    recordings are read in overlapping windows).
    """

    data: tuple[str, ...] = option(
        (), metavar="FOLDER",
        help="Dataset folder (repeatable): Speech Commands layout, transcribed speech "
             "(audio files and a transcripts.tsv), or TIMIT layout (.PHN files).")
    words: tuple[str, ...] | None = option(
        None, text=True, parse=parse_words, default_text="all",
        help="Comma-separated words to train on, or 'all'.")
    exclude: tuple[str, ...] = option(
        (), parse=parse_excluded, metavar="WORD",
        help="Leave a word out of training entirely (repeatable or comma-separated), e.g. to "
             "spot it later from its pronunciation only.")
    lexicon: str | None = option(
        None, metavar="FILE",
        help="Pronunciation lexicon (WORD PHONE ... per line) [default: the shipped one, "
             "kws/phones/lexicon.txt, with the Speech Commands words].")
    rate: int | None = option(None, help=f"Sample rate in Hz [default: {DEFAULT_RATE}].")
    frame_ms: float = option(20.0, help="Output frame period (a multiple of 10 ms).")
    window_seconds: float = option(
        DEFAULT_WINDOW_SECONDS,
        help="Input length of the saved model (LiteRT, windows of longer recordings).")
    silence_percent: float = option(
        10.0, help="Silence clips cut from background noise, as % of each split's words "
                   "(trained to emit no phone).")
    epochs: int = 80
    batch_size: int = 32
    learning_rate: float = 3e-3
    #: Epochs without a better validation PER before stopping (None: never).
    patience: int | None = 8
    augmentation: dict[str, Any] = field(default_factory=lambda: dict(PHONE_AUGMENTATION))
    out: str | None = option(None, metavar="FOLDER",
                             help=f"Model folder to write [default: {DEFAULT_OUT}].")

    def problems(self) -> list[str]:
        """The shared checks plus the phone settings'."""
        problems = super().problems()
        stride = self.frame_ms / FRONT_END_HOP_MS if _positive(self.frame_ms) else 0.0
        checks = [
            (self.rate is None or (isinstance(self.rate, int) and self.rate >= 1000),
             f"--rate: {self.rate} Hz is too low (at least 1000 Hz)"),
            (stride >= 1 and abs(stride - round(stride)) < 1e-6,
             f"--frame-ms: must be a multiple of {FRONT_END_HOP_MS:g} ms, got {self.frame_ms}"),
            (_positive(self.window_seconds), "--window-seconds must be positive"),
            (_positive(self.silence_percent, allow_zero=True) and self.silence_percent <= 100,
             "--silence-percent must be in 0..100"),
        ]
        return [*problems, *(message for ok, message in checks if not ok)]


def _positive(value: Any, allow_zero: bool = False) -> bool:
    if not isinstance(value, int | float) or isinstance(value, bool) or value != value:
        return False
    return value >= 0 if allow_zero else value > 0
