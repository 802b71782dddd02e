"""``kws vae evaluate``: a VAE's samples judged by a fixed keyword classifier.

As generative-audio papers measure Speech Commands digits (WaveGAN, SaShiMi, DiffWave on
SC09): conditional samples of every word go through a classifier (the shipped one by
default), which gives

* recognition: the share of samples classified as the word they were made for (a word
  the classifier does not know counts as recognised when it says ``_unknown_``), overall
  and per word;
* the inception score of the classifier's probabilities (:func:`inception_score`);
* the Fréchet distance between the classifier's penultimate-layer embeddings (the input
  of its ``probabilities`` layer) of the samples and of held-out real clips
  (:func:`frechet_distance`).

The same figures of held-out real clips (the embeddings' distance measured against
training clips) are the reference: what real speech scores with this judge.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kws import audio
from kws.dataset import TESTING, TRAINING, UNKNOWN
from kws.errors import DatasetError, KwsError, UsageError
from kws.modelfolder import Task, load_keras_model, read_card, resolve_model_dir
from kws.train.events import TrainEvents
from kws.vae.metrics import frechet_distance, inception_score
from kws.vae.model import (
    DEFAULT_GUIDANCE,
    DEFAULT_ITERATIONS,
    DEFAULT_TEMPERATURE,
    Vae,
    sample,
)
from kws.vae.plot import held_out_clips
from kws.vae.spectrograms import RATE

#: Default samples per word, and the most real clips read per split.
DEFAULT_SAMPLES = 20
DEFAULT_MAX_CLIPS = 2000


class Judge:
    """A keyword classifier giving probabilities and penultimate-layer embeddings."""

    def __init__(self, folder: str | os.PathLike | None = None) -> None:
        self.folder = resolve_model_dir(folder)
        self.card = read_card(self.folder, Task.CLASSIFIER)
        self.labels = list(self.card.labels)
        self._model = _two_outputs(load_keras_model(self.folder), self.folder)

    def target(self, word: str) -> int | None:
        """The label that counts as recognising ``word`` (None: the judge cannot say)."""
        if word in self.labels:
            return self.labels.index(word)
        return self.labels.index(UNKNOWN) if UNKNOWN in self.labels else None

    def __call__(self, waveforms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(probabilities (n, labels), embeddings (n, dims))`` of one-second waveforms.

        Waveforms are at :data:`RATE`; they are resampled to the classifier's rate and
        padded or cut to its input length when those differ.
        """
        rate, length = int(self.card.sample_rate), int(self.card.input_length)
        x = np.stack([audio.fix_length(audio.resample(np.asarray(w, np.float32), RATE, rate),
                                       length) for w in waveforms])
        embeddings, probabilities = self._model.predict(x, batch_size=128, verbose=0)
        return (np.asarray(probabilities, np.float64),
                np.asarray(embeddings, np.float64).reshape(len(waveforms), -1))


def _two_outputs(model, folder: Path):
    """The classifier with its penultimate embedding (the output layer's input) as well."""
    from kws.models.classifier import OUTPUT_LAYER
    from kws.runtime import import_keras

    keras = import_keras()
    try:
        layer = model.get_layer(OUTPUT_LAYER)
    except ValueError:
        raise KwsError(f"{folder}: the classifier has no {OUTPUT_LAYER!r} layer") from None
    return keras.Model(model.inputs, [layer.input, layer.output])


@dataclass(frozen=True)
class RealReference:
    """The judge's outputs on real clips of a VAE's words: what its samples are compared with.

    ``held_out`` and ``training`` are the judge's ``(probabilities, embeddings)`` of the
    testing and training splits' clips, ``held_out_words`` the words of the former.
    """

    words: list[str]
    targets: dict[str, int | None]
    held_out_words: list[str]
    held_out: tuple[np.ndarray, np.ndarray]
    training: tuple[np.ndarray, np.ndarray]

    def scores(self) -> dict[str, Any]:
        """The real clips' own figures: held-out clips, distance against training clips."""
        return {**_scores(self.held_out, self.held_out_words, self.targets, self.training[1]),
                "training_clips": len(self.training[1])}


def real_reference(vae: Vae, judge: Judge, data: Sequence[str | os.PathLike] = (),
                   seed: int = 0, max_clips: int = DEFAULT_MAX_CLIPS,
                   events: TrainEvents | None = None) -> RealReference:
    """Judge the testing and training splits of ``data`` (default: the folders the VAE was
    trained on), at most ``max_clips`` of each (``seed`` picks them)."""
    events = events or TrainEvents()
    words = _judged_words(vae, judge, events)
    roots, recorded = _data(vae, data)
    held_out = held_out_clips(vae, roots, (TESTING,), events, limit=max_clips, seed=seed,
                              **recorded)
    training = held_out_clips(vae, roots, (TRAINING,), events, limit=max_clips, seed=seed,
                              **recorded)
    events.stage(f"classifying {len(held_out.x) + len(training.x)} real clips…")
    return RealReference(words, {word: judge.target(word) for word in words},
                         held_out.words, judge(held_out.x), judge(training.x))


def evaluate_samples(
    vae: Vae, judge: Judge, data: Sequence[str | os.PathLike] = (),
    samples: int = DEFAULT_SAMPLES, seed: int = 0, n_iter: int = DEFAULT_ITERATIONS,
    max_clips: int = DEFAULT_MAX_CLIPS, events: TrainEvents | None = None,
    temperature: float = DEFAULT_TEMPERATURE, guidance: float = DEFAULT_GUIDANCE,
    reference: RealReference | None = None,
) -> dict[str, Any]:
    """Recognition, inception score and Fréchet distance of samples and of real clips.

    ``samples`` clips of each word the judge can score are drawn (``seed``; codes from
    the fitted density at ``temperature``, label ``guidance``; :func:`kws.vae.sample`) and
    compared with ``reference`` (default: :func:`real_reference` of ``data``,
    ``max_clips``), whose own figures are the report's ``real``. Pass one reference to
    several calls to judge several sampling settings against the same real clips.
    """
    events = events or TrainEvents()
    if samples < 2:
        raise UsageError(f"--samples must be at least 2, not {samples}")
    reference = reference or real_reference(vae, judge, data, seed, max_clips, events)
    generated = []
    with events.counting("sampling", len(reference.words) * samples) as advance:
        for word in reference.words:
            generated.append(sample(vae, word, samples, seed=seed, temperature=temperature,
                                    n_iter=n_iter, guidance=guidance))
            advance(samples)
    sampled_words = [word for word in reference.words for _ in range(samples)]
    events.stage(f"classifying {len(sampled_words)} samples…")
    fake = judge(np.concatenate(generated))
    return {
        "model": str(vae.folder), "classifier": str(judge.folder),
        "classifier_labels": len(judge.labels), "samples_per_word": samples,
        "words": reference.words, "runner": vae.runner, "temperature": temperature,
        "guidance": guidance,
        "samples": _scores(fake, sampled_words, reference.targets, reference.held_out[1]),
        "real": reference.scores(),
    }


def _judged_words(vae: Vae, judge: Judge, events: TrainEvents) -> list[str]:
    words = [word for word in vae.labels if judge.target(word) is not None]
    left_out = [word for word in vae.labels if word not in words]
    if left_out:
        events.warn(f"{judge.folder} knows neither {', '.join(left_out)} nor {UNKNOWN}: "
                    "left out")
    if not words:
        raise KwsError(f"{judge.folder}: the classifier can judge none of the VAE's words")
    return words


def _data(vae: Vae, data: Sequence[str | os.PathLike]) -> tuple[list, dict[str, Any]]:
    """The dataset folders of the real clips, and the split settings recorded with them."""
    recorded = vae.card.data if isinstance(vae.card.data, dict) else {}
    settings = {"validation_percent": recorded.get("validation_percent", 10.0),
                "testing_percent": recorded.get("testing_percent", 10.0)}
    if data:
        return list(data), settings
    folders = recorded.get("folders")
    if not (isinstance(folders, list) and folders and all(Path(f).is_dir() for f in folders)):
        raise UsageError(f"{vae.folder}: the folders it was trained on are not here; pass "
                         "--data FOLDER (real clips of its words)")
    return folders, {**settings, "resplit": list(recorded.get("resplit") or ())}


def _scores(judged: tuple[np.ndarray, np.ndarray], words: list[str],
            targets: dict[str, int | None], against: np.ndarray) -> dict[str, Any]:
    """Recognition (overall, per word, the worst word), inception score, Fréchet distance."""
    probabilities, embeddings = judged
    scored = np.asarray([word in targets for word in words], dtype=bool)
    if scored.sum() < 2 or len(against) < 2:
        raise DatasetError("too few clips to compare (at least two real clips of the "
                           "model's words are needed in the testing and training splits)")
    predicted = probabilities.argmax(axis=1)
    hits = np.asarray([word in targets and predicted[i] == targets[word]
                       for i, word in enumerate(words)], dtype=bool)
    per_word = {word: float(np.mean(hits[[w == word for w in words]]))
                for word in targets if word in words}
    worst = min(per_word, key=per_word.__getitem__)
    return {
        "clips": int(scored.sum()),
        "recognition": float(np.mean(hits[scored])),
        "inception_score": inception_score(probabilities[scored]),
        "frechet_distance": frechet_distance(embeddings[scored], against),
        "per_word": per_word, "worst_word": worst, "worst_recognition": per_word[worst],
    }
