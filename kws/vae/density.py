"""The latent density of a ``kws vae`` model folder: a Gaussian mixture of codes per word.

Fitted to the training clips' latent codes after training and saved as ``latent.npz``
(see :func:`fit_latent_density`); ``kws vae sample`` draws codes from it.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kws.errors import KwsError
from kws.files import atomic_write

#: The model folder's fitted latent density (a Gaussian mixture of training codes per word).
LATENT_FILE = "latent.npz"


@dataclass
class LatentDensity:
    """A Gaussian mixture per word over latent codes.

    ``weights`` is ``(labels, k)``, ``means`` ``(labels, k, d)`` and ``covariances``
    ``(labels, k, d, d)``; a component a word does not use has weight 0.
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray

    def sample(self, label: int, count: int, temperature: float,
               rng: np.random.Generator) -> np.ndarray:
        """``count`` codes of one label; ``temperature`` scales each component's spread."""
        chosen = rng.choice(len(self.weights[label]), size=count, p=self.weights[label])
        noise = rng.standard_normal((count, self.means.shape[2]))
        factors = np.linalg.cholesky(self.covariances[label].astype(np.float64))
        spread = np.einsum("nij,nj->ni", factors[chosen], noise)
        return (self.means[label][chosen] + temperature * spread).astype(np.float32)


def fit_gaussian_mixture(
    points: np.ndarray, components: int, seed: int = 0, iterations: int = 200,
    regularization: float = 1e-3,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit a full-covariance Gaussian mixture by expectation-maximisation.

    Means start at points chosen k-means++ style (seeded); ``regularization`` is added to
    every covariance's diagonal so components on few points stay well conditioned. With
    fewer points than ``components``, only as many components are used (the others get
    weight 0). Returns ``(weights (k,), means (k, d), covariances (k, d, d))``.
    """
    points = np.asarray(points, dtype=np.float64)
    n, dim = points.shape
    k = max(1, min(components, n))
    rng = np.random.default_rng(seed)
    centres = [points[rng.integers(n)]]
    for _ in range(1, k):
        distance = np.min([np.sum(np.square(points - c), axis=1) for c in centres], axis=0)
        total = distance.sum()
        centres.append(points[rng.choice(n, p=distance / total) if total > 0 else
                              rng.integers(n)])
    means = np.stack(centres)
    spread = np.cov(points, rowvar=False).reshape(dim, dim) if n > 1 else np.eye(dim)
    covariances = np.repeat((spread + regularization * np.eye(dim))[None], k, axis=0)
    weights = np.full(k, 1.0 / k)
    previous = -np.inf
    for _ in range(iterations):
        log_density = np.stack([
            _log_gaussian(points, means[j], covariances[j]) for j in range(k)
        ], axis=1) + np.log(np.maximum(weights, 1e-300))
        top = log_density.max(axis=1, keepdims=True)
        log_total = top + np.log(np.exp(log_density - top).sum(axis=1, keepdims=True))
        responsibility = np.exp(log_density - log_total)
        counts = responsibility.sum(axis=0) + 1e-10
        weights = counts / n
        means = responsibility.T @ points / counts[:, None]
        for j in range(k):
            centred = points - means[j]
            covariances[j] = ((responsibility[:, j, None] * centred).T @ centred / counts[j]
                              + regularization * np.eye(dim))
        likelihood = float(log_total.mean())
        if likelihood - previous < 1e-6:
            break
        previous = likelihood
    pad = components - k
    return (np.pad(weights, (0, pad)), np.pad(means, ((0, pad), (0, 0))),
            np.concatenate([covariances, np.repeat(np.eye(dim)[None], pad, axis=0)]))


def _log_gaussian(points: np.ndarray, mean: np.ndarray, covariance: np.ndarray) -> np.ndarray:
    """Log density of ``N(mean, covariance)`` at each row of ``points``."""
    factor = np.linalg.cholesky(covariance)
    solved = np.linalg.solve(factor, (points - mean).T)
    log_det = 2.0 * np.sum(np.log(np.diag(factor)))
    return -0.5 * (np.sum(np.square(solved), axis=0) + log_det + len(mean) * np.log(2 * np.pi))


def fit_latent_density(codes: np.ndarray, y: np.ndarray, num_labels: int,
                       components: int = 8, seed: int = 0) -> LatentDensity:
    """A Gaussian mixture per word fitted to the latent codes of its training clips.

    Sampling a VAE from its prior ``N(0, I)`` decodes codes where the encoder put few
    clips of that word (the "holes" between the aggregate posterior and the prior);
    drawing from a density fitted to the codes of real clips after training (ex-post
    density estimation, Ghosh et al. 2020, "From variational to deterministic
    autoencoders") gives far more recognisable words. A word's codes are not one blob
    (synthetic and real voices, digits from few speakers), hence a mixture. A word
    without clips gets ``N(0, I)``.
    """
    dim = codes.shape[1]
    weights = np.zeros((num_labels, components))
    weights[:, 0] = 1.0
    means = np.zeros((num_labels, components, dim))
    covariances = np.tile(np.eye(dim), (num_labels, components, 1, 1))
    for label in range(num_labels):
        chosen = codes[y == label]
        if len(chosen):
            weights[label], means[label], covariances[label] = fit_gaussian_mixture(
                chosen, components, seed=seed + label)
    return LatentDensity(weights.astype(np.float32), means.astype(np.float32),
                         covariances.astype(np.float32))


def write_latent_density(folder: str | os.PathLike, labels: Sequence[str],
                         density: LatentDensity) -> Path:
    """Write the fitted latent density into a model folder atomically; return its path."""
    path = Path(folder) / LATENT_FILE
    with atomic_write(path) as temporary, open(temporary, "wb") as handle:
        np.savez(handle, labels=np.asarray(labels), weights=density.weights,
                 means=density.means, covariances=density.covariances)
    return path


def read_latent_density(folder: str | os.PathLike, labels: Sequence[str]
                        ) -> LatentDensity | None:
    """The latent density of a model folder (None when it has none)."""
    path = Path(folder) / LATENT_FILE
    if not path.is_file():
        return None
    try:
        with np.load(path) as stored:
            found = stored["labels"].tolist()
            density = LatentDensity(stored["weights"], stored["means"], stored["covariances"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise KwsError(f"{path}: unreadable latent density ({error})") from None
    if found != list(labels) or density.means.shape[0] != len(labels):
        raise KwsError(f"{path}: does not match the words of card.json")
    if not _consistent(density):
        raise KwsError(f"{path}: damaged latent density (array shapes do not agree)")
    return density


def _consistent(density: LatentDensity) -> bool:
    """Whether the arrays have the shapes of one mixture per label, and finite values."""
    weights, means, covariances = density.weights, density.means, density.covariances
    if weights.ndim != 2 or means.ndim != 3 or covariances.ndim != 4:
        return False
    labels, k, dim = means.shape
    return (weights.shape == (labels, k) and covariances.shape == (labels, k, dim, dim)
            and all(np.issubdtype(a.dtype, np.floating) and np.isfinite(a).all()
                    for a in (weights, means, covariances)))
