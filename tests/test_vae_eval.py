"""``kws vae``: the metrics of ``evaluate``, the LiteRT export and fast paths, ``--word all``.

The metrics are checked on inputs with known answers; the model tests train a one-epoch
VAE and a one-step classifier on the tiny synthetic tones, so they check plumbing, keys
and ranges, not quality.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import SYNTHETIC_WORDS
from rich.console import Console

from kws import vae
from kws.classifier import ClassifierConfig
from kws.classifier import train as train_classifier
from kws.cli import cli, main
from kws.cli._training import RichEvents
from kws.errors import UsageError
from kws.modelfolder import read_card, write_card
from kws.train import fit
from kws.vae.metrics import trace_sqrt_product

WORDS = sorted(SYNTHETIC_WORDS)
TINY_VAE = {"latent_dim": 4, "batch_size": 4, "epochs": 1, "n_mels": 40}
TINY_CLASSIFIER = {"arch": "seed", "rate": 2000, "batch_size": 4, "epochs": 1,
                   "steps_per_epoch": 1, "words": None, "workers": 1, "export": False}


def events() -> RichEvents:
    return RichEvents(Console(file=io.StringIO(), force_terminal=False, width=200))


# ----------------------------------------------------------------------------- metrics


def test_inception_score_of_confident_even_predictions_is_the_class_count():
    one_hot = np.eye(5)[np.arange(40) % 5]
    assert vae.inception_score(one_hot) == pytest.approx(5.0)
    assert vae.inception_score(np.eye(5)[np.zeros(40, dtype=int)]) == pytest.approx(1.0)
    assert vae.inception_score(np.full((40, 5), 0.2)) == pytest.approx(1.0)
    uneven = np.eye(5)[[0, 0, 0, 1]]
    assert 1.0 < vae.inception_score(uneven) < 2.0
    with pytest.raises(ValueError):
        vae.inception_score(np.zeros((0, 5)))


def whitened(rng: np.random.Generator, n: int, dims: int) -> np.ndarray:
    """Points whose sample mean is exactly 0 and sample covariance exactly the identity."""
    x = rng.standard_normal((n, dims))
    x -= x.mean(axis=0)
    factor = np.linalg.cholesky(np.cov(x, rowvar=False))
    return np.linalg.solve(factor, x.T).T


def test_frechet_distance_of_a_set_with_itself_is_zero():
    x = np.random.default_rng(0).standard_normal((200, 6)) * [1, 2, 3, 4, 5, 6]
    assert vae.frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    few = x[:4]  # fewer clips than dimensions: singular covariances
    assert vae.frechet_distance(few, few) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError):
        vae.frechet_distance(x[:1], x)
    with pytest.raises(ValueError):
        vae.frechet_distance(x, x[:, :3])


def test_frechet_distance_of_two_gaussians_is_the_closed_form():
    rng = np.random.default_rng(1)
    dims = 4
    rotation, _ = np.linalg.qr(rng.standard_normal((dims, dims)))
    var_a, var_b = np.array([1.0, 4.0, 9.0, 0.25]), np.array([4.0, 1.0, 9.0, 1.0])
    mu_a, mu_b = np.array([0.0, 1.0, 2.0, 3.0]), np.array([1.0, 1.0, 0.0, 3.0])
    a = whitened(rng, 500, dims) * np.sqrt(var_a) @ rotation.T + mu_a
    b = whitened(rng, 300, dims) * np.sqrt(var_b) @ rotation.T + mu_b
    # Both covariances are R diag(v) R^T: the trace term is sum (sqrt(v_a) - sqrt(v_b))^2.
    expected = np.sum(np.square(mu_a - mu_b)) + np.sum(np.square(np.sqrt(var_a) -
                                                                  np.sqrt(var_b)))
    assert vae.frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    assert vae.frechet_distance(b, a) == pytest.approx(expected, rel=1e-6)


def test_the_trace_of_the_square_root_is_scipys_on_non_commuting_covariances():
    linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(2)
    factors = rng.standard_normal((2, 5, 5))
    cov_a, cov_b = (f @ f.T + 0.1 * np.eye(5) for f in factors)
    reference = np.real(np.trace(linalg.sqrtm(cov_a @ cov_b)))
    assert trace_sqrt_product(cov_a, cov_b) == pytest.approx(reference, rel=1e-6)
    assert trace_sqrt_product(cov_a, cov_a) == pytest.approx(np.trace(cov_a), rel=1e-6)


def test_frechet_distance_of_few_wide_embeddings_is_that_of_their_covariances():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((6, 40)), rng.standard_normal((9, 40)) + 0.5
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    expected = (np.sum(np.square(a.mean(axis=0) - b.mean(axis=0))) + np.trace(cov_a)
                + np.trace(cov_b) - 2.0 * trace_sqrt_product(cov_a, cov_b))
    assert vae.frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)


# ----------------------------------------------------------------------------- models


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_data):
    """A one-epoch VAE (exported to LiteRT) and a one-step classifier of yes, no, up."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KWS_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        root = tmp_path_factory.mktemp("models")
        config = vae.VaeConfig(data=(str(tiny_data),), out=str(root / "vae"), **TINY_VAE)
        result = fit(vae.VaeTask(), config, events=events())
        classifier = root / "classifier"
        train_classifier(ClassifierConfig(data=(str(tiny_data),), out=str(classifier),
                                          **TINY_CLASSIFIER), events=events())
    return Path(config.out), classifier, result


def test_training_exports_decoder_and_encoder_with_their_parity(models):
    folder, _, result = models
    card = read_card(folder)
    for name in (vae.DECODER_FILE, vae.ENCODER_FILE):
        assert (folder / name).is_file()
        record = card.exports[name]
        assert record.quantization == "float32" and record.bytes == (folder / name).stat().st_size
        assert 0.0 <= record.max_output_difference <= 1e-3 and record.parity_clips == 8
    assert result.summary["export"]["files"] == [vae.DECODER_FILE, vae.ENCODER_FILE]


def test_litert_and_keras_paths_agree(models):
    folder, _, _ = models
    fast, slow = vae.load(folder), vae.load(folder, runner="keras")
    assert (fast.runner, slow.runner) == ("litert", "keras")
    assert fast.latent_dim == slow.latent_dim == 4
    codes = vae.sample_codes(fast, "yes", 5, seed=3)
    labels = fast.label_vectors(["yes"] * 5)
    np.testing.assert_allclose(vae.decode(fast, codes, labels), vae.decode(slow, codes, labels),
                               atol=1e-3)
    clips = vae.sample(fast, "no", 2, seed=1, n_iter=2)
    np.testing.assert_allclose(vae.encode(fast, clips, fast.label_vectors(["no"] * 2)),
                               vae.encode(slow, clips, slow.label_vectors(["no"] * 2)),
                               atol=1e-3)
    with pytest.raises(UsageError, match="runner"):
        vae.load(folder, runner="fast")


def test_a_stale_or_missing_export_falls_back_to_keras(models, tmp_path):
    import shutil

    folder, _, _ = models
    copy = Path(shutil.copytree(folder, tmp_path / "copy"))
    card = read_card(copy)
    card.exports[vae.DECODER_FILE].keras_sha256 = "0" * 64
    write_card(copy, card)
    assert vae.load(copy).runner == "keras"
    (copy / vae.ENCODER_FILE).unlink()
    assert vae.load(copy).runner == "keras"


def test_no_export_writes_no_litert_files(tiny_data, tmp_path):
    out = tmp_path / "plain"
    config = vae.VaeConfig(data=(str(tiny_data),), out=str(out), export=False,
                           steps_per_epoch=1, **TINY_VAE)
    result = fit(vae.VaeTask(), config, events=events())
    assert not (out / vae.DECODER_FILE).exists() and not read_card(out).exports
    assert "export" not in result.summary and vae.load(out).runner == "keras"


@pytest.mark.parametrize("command", ["sample", "reconstruct", "interpolate"])
def test_fast_calls_run_through_litert_without_tensorflow(models, tiny_data, tmp_path,
                                                          project_env, command):
    folder, _, _ = models
    clips = sorted(str(path) for path in (tiny_data / "yes").glob("*.wav"))[:2]
    out = tmp_path / "out"
    args = {"sample": ["--word", "yes", "-n", "2", "--out", str(out)],
            "reconstruct": [clips[0], str(tmp_path / "rebuilt.wav")],
            "interpolate": [*clips, "--steps", "2", "--out", str(out)]}[command]
    code = ("import sys\nfrom kws.cli import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit as stop:\n"
            "    heavy = sorted(m for m in ('tensorflow', 'keras', 'librosa', 'scipy.signal')\n"
            "                   if m in sys.modules)\n"
            "    print('STATUS', stop.code, *heavy, file=sys.stderr)\n")
    result = subprocess.run([sys.executable, "-c", code, "vae", command, "-m", str(folder),
                             *args, "--iterations", "2", "--json"],
                            capture_output=True, text=True, env=project_env, timeout=120)
    assert result.stderr.strip().splitlines()[-1] == "STATUS 0", result.stderr
    report = json.loads(result.stdout)
    if command == "sample":
        assert report["runner"] == "litert"
        assert [Path(f).name for f in report["files"]] == ["yes_000.wav", "yes_001.wav"]
    else:
        assert Path(report.get("output") or report["files"][-1]).is_file()


def test_sample_word_all_writes_every_word(models, tmp_path):
    folder, _, _ = models
    out = tmp_path / "all"
    args = ["vae", "sample", "-m", str(folder), "--word", "all", "-n", "2", "--out", str(out),
            "--iterations", "2", "--seed", "4", "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["words"] == WORDS
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{word}_{i:03d}.wav" for word in WORDS for i in range(2))
    single = tmp_path / "one"
    result = CliRunner().invoke(cli, [*args[:4], "--word", "up", "-n", "2", "--out",
                                      str(single), "--iterations", "2", "--seed", "4"])
    assert result.exit_code == 0, result.output
    assert (single / "up_001.wav").read_bytes() == (out / "up_001.wav").read_bytes()


def test_evaluate_json_gives_every_figure_in_range(models, tiny_data):
    folder, classifier, _ = models
    result = CliRunner().invoke(cli, ["vae", "evaluate", str(folder), "--classifier",
                                      str(classifier), "--samples", "3", "--iterations", "2",
                                      "--temperature", "0.7", "--guidance", "0", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["words"] == WORDS and report["samples_per_word"] == 3
    assert report["temperature"] == 0.7 and report["guidance"] == 0
    labels = report["classifier_labels"]
    assert labels == len(read_card(classifier).labels)
    for row, clips in (("samples", 9), ("real", 6)):
        figures = report[row]
        assert figures["clips"] == clips
        assert 0.0 <= figures["recognition"] <= 1.0
        assert 1.0 - 1e-9 <= figures["inception_score"] <= labels + 1e-9
        assert figures["frechet_distance"] >= 0.0
        assert set(figures["per_word"]) == set(WORDS)
        assert figures["worst_recognition"] == min(figures["per_word"].values())
        assert figures["per_word"][figures["worst_word"]] == figures["worst_recognition"]
    assert report["real"]["training_clips"] == 12

    table = CliRunner().invoke(cli, ["vae", "evaluate", str(folder), "--classifier",
                                     str(classifier), "--samples", "2", "--iterations", "1",
                                     "--data", str(tiny_data)])
    assert table.exit_code == 0, table.output
    assert "\nsamples\t6\t" in table.stdout and "\nreal held-out" in table.stdout


def test_one_real_reference_serves_several_sampling_settings(models):
    folder, classifier, _ = models
    model, judge = vae.load(folder), vae.Judge(classifier)
    reference = vae.real_reference(model, judge)
    assert reference.words == WORDS and len(reference.held_out_words) == 6
    settings = {"samples": 2, "n_iter": 1}
    alone = vae.evaluate_samples(model, judge, guidance=0.5, **settings)
    shared = [vae.evaluate_samples(model, judge, guidance=g, reference=reference, **settings)
              for g in (0.0, 0.5)]
    assert shared[0]["real"] == shared[1]["real"] == alone["real"] == reference.scores()
    assert shared[1]["samples"] == alone["samples"]
    assert shared[0]["samples"] != shared[1]["samples"]


@pytest.mark.parametrize("args, message", [
    (["--samples", "1"], "--samples must be at least 2"),
    (["--max-clips", "1"], "--max-clips must be at least 2"),
    (["--temperature", "-1"], "--temperature must not be negative"),
    (["--guidance", "-1"], "--guidance must not be negative"),
    (["--data", "/nonexistent"], "/nonexistent"),
    (["--classifier", "/nonexistent"], "no such model folder"),
])
def test_evaluate_refuses_bad_options(models, args, message, capsys):
    folder, _, _ = models
    with pytest.raises(SystemExit) as stop:
        main(["vae", "evaluate", str(folder), *args])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.startswith("kws: error: ") and message in err
    assert err.count("\n") == 1
