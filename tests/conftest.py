"""Fixtures shared by the test suite: synthesized audio and small datasets on disk."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Keep decoded-audio caches of the tests out of the user's cache folder."""
    monkeypatch.setenv("KWS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "kws-cache"))


def tone(frequency: float, seconds: float = 1.0, rate: int = 16000, amplitude: float = 0.5):
    """A sine tone as float32."""
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def write_wav(path: Path, waveform, rate: int = 16000, subtype: str = "PCM_16") -> Path:
    """Write a waveform (mono or (n, channels)) to a WAV file, creating folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, waveform, rate, subtype=subtype)
    return path


#: Words, tone frequencies and speakers of the small synthetic dataset.
SYNTHETIC_WORDS = {"yes": 440.0, "no": 880.0, "up": 1320.0}
SYNTHETIC_SPEAKERS = ["aaaa0001", "bbbb0002", "cccc0003", "dddd0004"]


def make_speech_commands(root: Path, lists: bool = True, rate: int = 16000) -> Path:
    """A tiny dataset in the Speech Commands layout: tones per word, noise, lists.

    Speaker ``cccc0003`` is in the validation list and ``dddd0004`` in the testing list.
    """
    rng = np.random.default_rng(0)
    for word, frequency in SYNTHETIC_WORDS.items():
        for speaker_index, speaker in enumerate(SYNTHETIC_SPEAKERS):
            for n in range(2):
                wave = tone(frequency * (1 + 0.02 * speaker_index), 1.0, rate)
                wave += 0.01 * rng.standard_normal(wave.shape).astype(np.float32)
                write_wav(root / word / f"{speaker}_nohash_{n}.wav", wave, rate)
    noise = (0.1 * rng.standard_normal(3 * rate)).astype(np.float32)
    write_wav(root / "_background_noise_" / "white_noise.wav", noise, rate)
    if lists:
        for list_name, speaker in (
            ("validation_list.txt", "cccc0003"),
            ("testing_list.txt", "dddd0004"),
        ):
            names = [
                f"{word}/{speaker}_nohash_{n}.wav" for word in SYNTHETIC_WORDS for n in range(2)
            ]
            (root / list_name).write_text("\n".join(names) + "\n")
    return root


@pytest.fixture
def speech_commands(tmp_path) -> Path:
    """Path of a tiny Speech Commands dataset with list files."""
    return make_speech_commands(tmp_path / "speech_commands")


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    """A tiny Speech Commands dataset shared by the tests of one module."""
    return make_speech_commands(tmp_path_factory.mktemp("data") / "speech_commands")


@pytest.fixture
def project_env():
    """Environment for running the ``kws`` console command in a subprocess."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return env


#: Ways a model folder is damaged in the reliability tests: a card that is ``[]``, ``null``,
#: has a wrong section or field type, or a ``model.keras`` with flipped bytes.
MODEL_DAMAGE = ["[]", "null", '{"metrics": []}', '{"sample_rate": "sixteen"}', "flipped"]


def damage_model_folder(folder: Path, damage: str) -> Path:
    """Damage a model folder in place as ``damage`` (one of :data:`MODEL_DAMAGE`) says."""
    import json

    card = folder / "card.json"
    if damage == "flipped":
        keras_file = folder / "model.keras"
        content = bytearray(keras_file.read_bytes())
        for index in range(100, len(content), 97):
            content[index] ^= 0xFF
        keras_file.write_bytes(bytes(content))
    elif damage.startswith("{"):
        card.write_text(json.dumps({**json.loads(card.read_text()), **json.loads(damage)}))
    else:
        card.write_text(damage)
    return folder


@pytest.fixture
def run_cli(capsys):
    """Run ``kws`` in-process as the console script does (one-line errors, exit codes)."""
    from types import SimpleNamespace

    from kws.cli import main

    def run(args: list[str]) -> SimpleNamespace:
        with pytest.raises(SystemExit) as exited:
            main(args)
        out, err = capsys.readouterr()
        return SimpleNamespace(exit_code=exited.value.code, stdout=out, stderr=err,
                               output=out + err)

    return run
