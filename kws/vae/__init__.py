"""Generating and transforming spoken words with a conditional auto-encoder (``kws vae``).

The package holds one task of kws, in these parts:

- :mod:`kws.vae.task`: :class:`VaeConfig` and :class:`VaeTask`, what the training engine
  (:func:`kws.train.fit`) needs to train a conditional VAE (or WAE, see
  :mod:`kws.models.vae`) of log-mel spectrograms;
- :mod:`kws.vae.model`: using a trained model folder (encode, decode, sample, reconstruct,
  interpolate);
- :mod:`kws.vae.density`: the per-word Gaussian mixture of latent codes (``latent.npz``);
- :mod:`kws.vae.plot`: the latent space of held-out clips in 2-D;
- :mod:`kws.vae.litert`: the decoder and encoder exported to LiteRT, and running them
  without TensorFlow;
- :mod:`kws.vae.evaluate` and :mod:`kws.vae.metrics`: samples judged by a keyword
  classifier (recognition, inception score, Fréchet distance);

and :mod:`kws.vae.spectrograms`, the feature helpers they share. The names most callers
need are re-exported here. TensorFlow and Keras are imported only when a model is built or
loaded, so importing this package is cheap.
"""

from kws.vae.density import (
    LATENT_FILE,
    LatentDensity,
    fit_gaussian_mixture,
    fit_latent_density,
    read_latent_density,
    write_latent_density,
)
from kws.vae.evaluate import (
    DEFAULT_MAX_CLIPS,
    DEFAULT_SAMPLES,
    Judge,
    RealReference,
    evaluate_samples,
    real_reference,
)
from kws.vae.litert import DECODER_FILE, ENCODER_FILE, LiteRTNetwork, export_networks
from kws.vae.metrics import frechet_distance, inception_score
from kws.vae.model import (
    DEFAULT_GUIDANCE,
    DEFAULT_ITERATIONS,
    DEFAULT_TEMPERATURE,
    PRIORS,
    RUNNERS,
    Reconstruction,
    Vae,
    best_word,
    check_sampling,
    check_steps,
    decode,
    decode_guided,
    encode,
    interpolate,
    load,
    nearest_other_word,
    read_clip,
    reconstruct,
    reconstruction_metrics,
    sample,
    sample_codes,
    synthesize,
)
from kws.vae.plot import HeldOut, held_out_clips, latent_plot, pca_2d
from kws.vae.spectrograms import (
    CLIP_SAMPLES,
    DEFAULT_BETA,
    OBJECTIVES,
    RATE,
    REGULARIZER_NAME,
    augment_spectrograms,
    mel_settings,
    one_hot,
    standardization,
)
from kws.vae.task import SpectrogramBatches, VaeConfig, VaeTask, split_metrics

__all__ = [
    "CLIP_SAMPLES", "DECODER_FILE", "DEFAULT_BETA", "DEFAULT_GUIDANCE", "DEFAULT_ITERATIONS",
    "DEFAULT_MAX_CLIPS",
    "DEFAULT_SAMPLES", "DEFAULT_TEMPERATURE",
    "ENCODER_FILE", "RUNNERS", "Judge", "LiteRTNetwork", "RealReference", "evaluate_samples",
    "real_reference",
    "export_networks", "frechet_distance", "inception_score", "LATENT_FILE", "OBJECTIVES",
    "PRIORS", "RATE",
    "REGULARIZER_NAME", "HeldOut", "LatentDensity", "Reconstruction", "SpectrogramBatches",
    "Vae", "VaeConfig", "VaeTask", "augment_spectrograms", "best_word", "check_sampling",
    "check_steps", "decode", "decode_guided", "encode",
    "fit_gaussian_mixture", "fit_latent_density", "held_out_clips", "interpolate",
    "latent_plot", "load", "mel_settings", "nearest_other_word", "one_hot", "pca_2d", "read_clip",
    "read_latent_density", "reconstruct", "reconstruction_metrics", "sample", "sample_codes",
    "split_metrics", "standardization", "synthesize", "write_latent_density",
]
