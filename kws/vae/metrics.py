"""How generative-audio papers score samples: the inception score and the Fréchet distance.

Both judge a set of clips through a fixed classifier (WaveGAN, SaShiMi and DiffWave use
one trained on Speech Commands digits): the inception score from its label
probabilities, the Fréchet distance from its penultimate-layer embeddings. Pure numpy, so
they are cheap to test.
"""

from __future__ import annotations

import numpy as np

#: Smallest probability taken in logarithms (a zero probability contributes nothing).
_EPSILON = 1e-12


def inception_score(probabilities: np.ndarray) -> float:
    """Inception score ``exp(mean_x KL(p(y|x) || p(y)))`` of a set's label probabilities.

    High when each clip is classified confidently (low entropy of ``p(y|x)``) and the set
    covers the labels evenly (high entropy of the marginal ``p(y)``): at most the number
    of labels, reached by confident predictions spread uniformly over all of them; 1 for
    a set the classifier sees as one label, or as no label in particular.

    Parameters
    ----------
    probabilities
        ``(clips, labels)`` rows of class probabilities (each summing to 1).

    Returns
    -------
    float
        The score, between 1 and the number of labels.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or not len(p):
        raise ValueError(f"probabilities must be a non-empty (clips, labels) array, not "
                         f"shape {p.shape}")
    marginal = p.mean(axis=0)
    log_ratio = np.log(np.maximum(p, _EPSILON)) - np.log(np.maximum(marginal, _EPSILON))
    kl = np.sum(np.where(p > 0, p * log_ratio, 0.0), axis=1)
    return float(np.exp(np.mean(kl)))


def frechet_distance(emb_a: np.ndarray, emb_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two sets of embeddings.

    ``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))``, the squared 2-Wasserstein
    distance between ``N(mu_a, S_a)`` and ``N(mu_b, S_b)`` (the FID of images, the FAD or
    "FID" of audio papers when the embeddings are a classifier's). 0 for a set against
    itself; it grows with the sets' differences in mean and in spread. Biased upwards for
    small sets, so compare figures computed on sets of similar sizes. With fewer clips
    than dimensions it is computed from the clips' cross products (fast, exact).

    Parameters
    ----------
    emb_a, emb_b
        ``(clips, dims)`` embeddings of the two sets (at least two clips each).

    Returns
    -------
    float
        The distance (squared embedding units), at least 0.
    """
    a, b = (np.asarray(e, dtype=np.float64) for e in (emb_a, emb_b))
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(f"embeddings must be (clips, dims) arrays of the same width with at "
                         f"least two clips each, not shapes {a.shape} and {b.shape}")
    mean = np.sum(np.square(a.mean(axis=0) - b.mean(axis=0)))
    centred_a, centred_b = a - a.mean(axis=0), b - b.mean(axis=0)
    scale_a, scale_b = len(a) - 1, len(b) - 1
    traces = np.sum(np.square(centred_a)) / scale_a + np.sum(np.square(centred_b)) / scale_b
    if len(a) * len(b) < a.shape[1] ** 2:
        # Fewer clips than dimensions: tr((S_a S_b)^(1/2)) is the sum of the singular
        # values of the clips' cross products (the nonzero eigenvalues of S_a S_b are the
        # squared singular values of X_a X_b^T / sqrt(scale_a scale_b)).
        cross_products = centred_a @ centred_b.T / np.sqrt(scale_a * scale_b)
        cross = float(np.sum(np.linalg.svd(cross_products, compute_uv=False)))
    else:
        cross = trace_sqrt_product(centred_a.T @ centred_a / scale_a,
                                   centred_b.T @ centred_b / scale_b)
    return float(max(mean + traces - 2.0 * cross, 0.0))


def trace_sqrt_product(cov_a: np.ndarray, cov_b: np.ndarray) -> float:
    """``tr((A B)^(1/2))`` of two covariance matrices, by symmetric eigen-decompositions.

    ``A B`` is similar to the symmetric positive semi-definite ``A^(1/2) B A^(1/2)``, so
    the trace of its square root is the sum of the square roots of that matrix's
    eigenvalues (negative rounding errors clipped to 0). The reference FID code takes
    ``scipy.linalg.sqrtm`` of the product instead: the same value, but with imaginary
    rounding errors, and tens of seconds for the singular covariances of a few clips in
    1280 dimensions.
    """
    values, vectors = np.linalg.eigh((cov_a + cov_a.T) / 2)
    root_a = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T
    middle = root_a @ cov_b @ root_a
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2)
    return float(np.sum(np.sqrt(np.clip(eigenvalues, 0.0, None))))
