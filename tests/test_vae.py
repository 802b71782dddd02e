"""``kws vae``: log-mel features and their inverse, the CVAE/WAE, training and its commands.

Models train for one or two epochs on a tiny synthetic dataset of tones (three words), so
the file runs in seconds; the tests check shapes, rates, finiteness, reproducibility and
errors, not the quality of the audio.
"""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
from click.testing import CliRunner
from conftest import SYNTHETIC_WORDS, tone, write_wav
from rich.console import Console

from kws import features, vae
from kws.cli import cli, main
from kws.cli._training import RichEvents
from kws.errors import AudioError, KwsError, UsageError
from kws.modelfolder import load_keras_model, read_card
from kws.train import TrainEvents, checkpoints, fit

TINY = {"latent_dim": 4, "batch_size": 4, "epochs": 2, "n_mels": 40}
WORDS = sorted(SYNTHETIC_WORDS)


def quiet() -> Console:
    """A console writing to memory (not a terminal), to read what was printed."""
    return Console(file=io.StringIO(), force_terminal=False, width=200)


class Recorder(TrainEvents):
    """Training events kept in a list (``(name, arguments)``), for the tests to read."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, tuple]] = []

    def epoch_end(self, *args) -> None:
        self.seen.append(("epoch_end", args))

    def interrupted(self, *args) -> None:
        self.seen.append(("interrupted", args))


def train(config: vae.VaeConfig, events: TrainEvents | None = None, **options):
    """Train through the engine (``kws vae train``'s road)."""
    return fit(vae.VaeTask(), config, events=events or RichEvents(quiet()), **options)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_data):
    """A two-epoch CVAE on the synthetic tones, shared by the tests that use a model."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KWS_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        out = tmp_path_factory.mktemp("models") / "tiny-vae"
        config = vae.VaeConfig(data=(str(tiny_data),), out=str(out), **TINY)
        recorder = Recorder()
        result = train(config, recorder)
    return config, result, vae.load(out), recorder


# ----------------------------------------------------------------------------- features


def test_log_mel_shape_floor_and_batches():
    wave = tone(440.0)
    spectrogram = features.log_mel(wave)
    assert spectrogram.shape == (features.num_frames(16000), 80) == (63, 80)
    assert spectrogram.dtype == np.float32
    assert spectrogram.min() >= features.DEFAULT_SETTINGS.floor_db - 1e-3
    assert spectrogram.max() > -20.0
    batch = features.log_mel(np.stack([wave, 0.5 * wave, np.zeros_like(wave)]))
    assert batch.shape == (3, 63, 80)
    np.testing.assert_allclose(batch[0], spectrogram, atol=1e-4)
    loud = batch[1] > features.DEFAULT_SETTINGS.floor_db + 1.0
    assert loud.mean() > 0.2
    np.testing.assert_allclose((batch[0] - batch[1])[loud], 20 * np.log10(2), atol=0.05,
                               err_msg="halving the amplitude lowers every bin by 6 dB")
    assert np.all(batch[2] == np.float32(features.DEFAULT_SETTINGS.floor_db))


def test_inverse_log_mel_gives_finite_audio_of_the_right_length():
    settings = features.MelSettings(n_mels=40)
    wave = tone(1000.0, amplitude=0.3)
    spectrogram = features.log_mel(wave, settings)
    audio = features.inverse_log_mel(spectrogram, settings, length=16000, n_iter=16)
    assert audio.shape == (16000,) and audio.dtype == np.float32
    assert np.isfinite(audio).all()
    again = features.log_mel(audio, settings)
    assert np.argmax(again.mean(axis=0)) == np.argmax(spectrogram.mean(axis=0))
    loud = spectrogram > spectrogram.max() - 30.0
    assert np.mean(np.square(again - spectrogram)[loud]) < 12.0
    default_length = features.inverse_log_mel(spectrogram[:10], settings, n_iter=2)
    assert default_length.shape == (9 * settings.hop_length,)
    with pytest.raises(ValueError, match="40"):
        features.inverse_log_mel(np.zeros((10, 80)), settings)


def test_mel_settings_round_trip_through_a_dict():
    settings = features.MelSettings(n_mels=64, fmax=7000.0)
    assert features.MelSettings.from_dict({**settings.to_dict(), "extra": 1}) == settings


# ----------------------------------------------------------------------------- model


@pytest.mark.parametrize("objective", ["vae", "wae"])
def test_models_build_save_and_load(objective, tmp_path):
    import keras

    from kws.models import vae as models

    model = models.build_vae(63, 40, 3, latent_dim=4, objective=objective, seed=1,
                             channels=(8, 8, 8), hidden=16)
    x = np.random.default_rng(0).standard_normal((4, 63, 40)).astype(np.float32)
    labels = np.eye(3, dtype=np.float32)[[0, 1, 2, 0]]
    out = model.predict([x, labels], verbose=0)
    assert out["reconstruction"].shape == (4, 63, 40)
    assert out["regularizer"].shape == (4,)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", compile=False)
    again = loaded.predict([x, labels], verbose=0)
    np.testing.assert_allclose(again["reconstruction"], out["reconstruction"], atol=1e-5)
    encoder = loaded.get_layer("encoder")
    codes = encoder.predict([x, labels], verbose=0)
    assert len(codes) == 2 if objective == "vae" else codes.shape == (4, 4)
    with pytest.raises(ValueError, match="objective"):
        models.build_vae(63, 40, 3, objective="gan")


def test_kl_term_is_the_closed_form():
    from kws.models.vae import KLDivergence

    mean = np.array([[0.0, 0.0], [1.0, -2.0]], np.float32)
    log_var = np.array([[0.0, 0.0], [np.log(2.0), 0.0]], np.float32)
    kl = np.asarray(KLDivergence()([mean, log_var]))
    expected = [0.0, 0.5 * (2.0 - 1.0 - np.log(2.0) + 1.0 + 4.0)]
    np.testing.assert_allclose(kl, expected, rtol=1e-5, atol=1e-6)


def test_mmd_is_small_for_prior_samples_and_large_for_shifted_ones():
    from kws.models.vae import MaximumMeanDiscrepancy

    rng = np.random.default_rng(0)
    layer = MaximumMeanDiscrepancy(seed=3)
    prior = rng.standard_normal((256, 8)).astype(np.float32)
    near = float(np.mean(np.asarray(layer(prior))))
    far = float(np.mean(np.asarray(layer(prior + 3.0))))
    assert abs(near) < 0.05 < far


# ----------------------------------------------------------------------------- training


def test_training_writes_a_self_describing_model_folder(trained):
    config, result, model, _ = trained
    out = Path(config.out)
    card = read_card(out)
    assert card.task == "vae" and card.labels == WORDS
    assert (card.sample_rate, card.input_length) == (16000, 16000)
    settings = card.recipe["features"]
    assert (settings["n_fft"], settings["hop_length"], settings["n_mels"]) == (512, 256, 40)
    assert len(settings["mean_db"]) == 40 and settings["std_db"] > 0
    assert card.recipe["objective"] == "vae" and card.recipe["beta"] == 1.0
    for split in ("training", "validation", "testing"):
        assert np.isfinite(card.metrics[f"{split}_mse_db"]) and card.metrics[f"{split}_kl"] >= 0
    assert card.data["clips"] == {"training": 12, "validation": 6, "testing": 6}
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (out / checkpoints.CHECKPOINT_FOLDER).exists()
    assert result.summary["metrics"]["validation_mse_db"] == card.metrics["validation_mse_db"]
    assert model.labels == WORDS and model.latent_dim == 4 and model.objective == "vae"
    assert (out / vae.LATENT_FILE).is_file()
    density = model.density
    assert density.means.shape == (3, 8, 4) and density.covariances.shape == (3, 8, 4, 4)
    np.testing.assert_allclose(density.weights.sum(axis=1), 1.0, atol=1e-5)


def test_sample_reconstruct_and_interpolate(trained):
    _, _, model, _ = trained
    clips = vae.sample(model, "yes", 3, seed=1, n_iter=4)
    assert clips.shape == (3, 16000) and np.isfinite(clips).all()
    assert np.abs(clips).max() <= 0.99 + 1e-6
    np.testing.assert_array_equal(vae.sample(model, "yes", 3, seed=1, n_iter=4), clips)
    assert not np.allclose(vae.sample(model, "yes", 3, seed=2, n_iter=4), clips)
    assert not np.allclose(vae.sample(model, "no", 3, seed=1, n_iter=4), clips)
    standard = vae.sample_codes(model, "yes", 500, seed=1, temperature=1.0, prior="standard")
    assert abs(standard.std() - 1.0) < 0.1
    np.testing.assert_array_equal(vae.sample_codes(model, "yes", 2, 1, temperature=0.0),
                                  vae.sample_codes(model, "yes", 2, 1, temperature=0.0))
    fitted = vae.sample_codes(model, "yes", 2, seed=1, temperature=0.0)
    centres = model.density.means[WORDS.index("yes")]
    assert all(np.isclose(centres, code).all(axis=1).any() for code in fitted)

    wave = tone(880.0)
    rebuilt = vae.reconstruct(model, wave, "no", n_iter=4)
    assert rebuilt.waveform.shape == (16000,) and np.isfinite(rebuilt.waveform).all()
    assert rebuilt.word == "no" and np.isfinite(rebuilt.mse_db)
    chosen = vae.reconstruct(model, wave, None, n_iter=4)
    assert set(chosen.errors) == set(WORDS)
    assert chosen.mse_db == min(chosen.errors.values())

    walk, words = vae.interpolate(model, tone(440.0), wave, 4, "yes", "no", n_iter=4)
    assert walk.shape == (4, 16000) and np.isfinite(walk).all() and words == ["yes", "no"]


def test_guidance_pushes_samples_away_from_the_nearest_other_word(trained):
    _, _, model, _ = trained
    codes = vae.sample_codes(model, "up", 3, seed=2)
    labels = model.label_vectors(["up"] * 3)
    plain = vae.decode(model, codes, labels)
    others = {word: vae.decode(model, codes, model.label_vectors([word] * 3))
              for word in WORDS if word != "up"}
    distances = {word: np.mean((d - plain) ** 2, axis=(1, 2)) for word, d in others.items()}
    nearest = np.stack([others[min(distances, key=lambda w: distances[w][i])][i]
                        for i in range(3)])
    np.testing.assert_array_equal(vae.nearest_other_word(model, codes, labels, plain), nearest)
    np.testing.assert_array_equal(vae.decode_guided(model, codes, labels, 0.0), plain)
    np.testing.assert_allclose(vae.decode_guided(model, codes, labels, 1.5),
                               plain + 1.5 * (plain - nearest), rtol=1e-5, atol=1e-4)
    guided = vae.sample(model, "up", 3, seed=2, n_iter=4, guidance=1.5)
    assert not np.allclose(guided, vae.sample(model, "up", 3, seed=2, n_iter=4, guidance=0))
    with pytest.raises(UsageError, match="--guidance must not be negative, not -0.5"):
        vae.check_sampling(1, 0.2, "fitted", -0.5)


def test_unknown_words_and_bad_counts_are_usage_errors(trained):
    _, _, model, _ = trained
    with pytest.raises(UsageError, match="no word 'cat'.*its words: no, up, yes"):
        vae.sample(model, "cat", 1)
    with pytest.raises(UsageError, match="-n"):
        vae.sample(model, "yes", 0)
    with pytest.raises(UsageError, match="--steps"):
        vae.interpolate(model, tone(440.0), tone(440.0), 1)


def test_latent_plot_of_held_out_clips(trained, tiny_data, tmp_path):
    _, _, model, _ = trained
    summary = vae.latent_plot(model, [str(tiny_data)], tmp_path / "latent.png",
                              events=TrainEvents())
    assert summary["clips"] == 12 and summary["per_word"] == {w: 4 for w in WORDS}
    assert (tmp_path / "latent.png").read_bytes()[:4] == b"\x89PNG"
    assert 0.0 < sum(summary["explained_variance"]) <= 1.0 + 1e-6


def test_gaussian_mixture_finds_two_clusters():
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.normal(-5.0, 1.0, (300, 2)), rng.normal(5.0, 0.5, (100, 2))])
    weights, means, covariances = vae.fit_gaussian_mixture(points, 2, seed=0)
    order = np.argsort(means[:, 0])
    np.testing.assert_allclose(weights[order], [0.75, 0.25], atol=0.02)
    np.testing.assert_allclose(means[order], [[-5, -5], [5, 5]], atol=0.2)
    np.testing.assert_allclose(np.sqrt(np.diagonal(covariances[order], axis1=1, axis2=2)),
                               [[1, 1], [0.5, 0.5]], atol=0.15)
    few = vae.fit_gaussian_mixture(points[:2], 4)
    assert few[0].tolist()[2:] == [0.0, 0.0] and np.isclose(few[0].sum(), 1.0)


def test_latent_density_round_trips_and_is_checked(tmp_path):
    rng = np.random.default_rng(1)
    codes = rng.standard_normal((40, 3))
    density = vae.fit_latent_density(codes, np.repeat([0, 1], 20), 3, components=2)
    assert density.weights[2].tolist() == [1.0, 0.0]
    vae.write_latent_density(tmp_path, ["a", "b", "c"], density)
    again = vae.read_latent_density(tmp_path, ["a", "b", "c"])
    np.testing.assert_array_equal(again.covariances, density.covariances)
    assert again.sample(1, 5, 1.0, np.random.default_rng(0)).shape == (5, 3)
    with pytest.raises(KwsError, match="does not match"):
        vae.read_latent_density(tmp_path, ["a", "b"])
    assert vae.read_latent_density(tmp_path / "elsewhere", ["a"]) is None


def test_spectrogram_augmentation_shifts_and_scales_above_the_floor():
    rng = np.random.default_rng(0)
    x = np.full((50, 20, 4), -80.0, np.float32)
    x[:, 8:12] = -20.0
    out = vae.augment_spectrograms(x, rng, -80.0, max_shift=3, max_gain_db=6.0)
    assert out.shape == x.shape and out.min() >= -80.0
    loud = out > -80.0
    assert np.all(loud.sum(axis=(1, 2)) == 16)
    assert np.all(np.abs(out[loud] + 20.0) <= 6.0)
    starts = np.argmax(loud[:, :, 0], axis=1)
    assert set(starts) <= set(range(5, 12)) and len(set(starts)) > 3


def test_pca_projects_onto_the_widest_directions():
    rng = np.random.default_rng(0)
    points = rng.standard_normal((200, 3)) * [10.0, 0.1, 3.0]
    projected, share = vae.pca_2d(points)
    assert projected.shape == (200, 2) and share[0] > share[1] > 0.05
    assert abs(np.corrcoef(projected[:, 0], points[:, 0])[0, 1]) > 0.99


def test_reconstruction_metrics_per_word(trained):
    _, _, model, _ = trained
    waves = np.stack([tone(440.0), tone(880.0), tone(1320.0)])
    metrics = vae.reconstruction_metrics(model, waves, ["yes", "no", "up"])
    assert metrics["clips"] == 3 and set(metrics["per_word"]) == {"yes", "no", "up"}
    assert np.isclose(metrics["mse_db"], np.mean(list(metrics["per_word"].values())))


def stop_after_first_epoch():
    """A callback that interrupts training as Ctrl-C would, once epoch 1 is checkpointed."""
    import keras

    class StopAfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                raise KeyboardInterrupt

    return StopAfterFirstEpoch()


def test_interrupted_run_resumes_to_the_same_model(trained, tmp_path):
    config, reference, _, _ = trained
    run = dataclasses.replace(config, out=str(tmp_path / "resumed"))
    console = quiet()
    with pytest.raises(KeyboardInterrupt):
        train(run, RichEvents(console), callbacks=[stop_after_first_epoch()])
    assert "--resume" in console.file.getvalue()
    with pytest.raises(UsageError, match="unfinished run"):
        train(run)
    with pytest.raises(UsageError, match="--latent-dim"):
        train(dataclasses.replace(run, latent_dim=3), resume=True)
    saved = vae.VaeConfig.from_json(checkpoints.saved_config(run.out))
    assert saved == vae.VaeTask().resolve(run)
    with pytest.raises(UsageError, match="has finished"):
        train(config, resume=True)
    result = train(run, resume=True)
    assert result.history == reference.history
    assert "val_regularizer_loss" in result.history
    for mine, theirs in zip(load_keras_model(run.out).get_weights(),
                            load_keras_model(config.out).get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)


def test_progress_and_summary_show_the_reconstruction_error_in_db(trained):
    """One unit for the reconstruction error: dB² in the progress line, history and card."""
    _, result, model, recorder = trained
    epochs = [args for name, args in recorder.seen if name == "epoch_end"]
    assert [args[0] for args in epochs] == [1, 2]
    scale = model.std ** 2
    for (_, _, shown, _, _, logs), rec_db in zip(
            epochs, result.history["reconstruction_db"], strict=True):
        figures = {figure.name: figure.value for figure in shown}
        assert set(figures) == {"rec", "reg", "val_rec", "val_reg"}
        assert figures["rec"] == pytest.approx(logs["reconstruction_loss"] * scale, rel=1e-5)
        assert figures["val_rec"] == pytest.approx(logs["val_reconstruction_loss"] * scale,
                                                   rel=1e-5)
        assert rec_db == pytest.approx(figures["rec"])
    # The last epoch's validation error in dB² is of the size of the card's measured one
    # (same clips, same unit; the card's is measured without the sampling noise).
    card = read_card(result.out)
    assert 0.2 < result.history["val_reconstruction_db"][-1] / card.metrics[
        "validation_mse_db"] < 5.0


@pytest.mark.parametrize(
    ("change", "message"),
    [({"objective": "gan"}, "--objective"), ({"latent_dim": 0}, "--latent-dim"),
     ({"epochs": 0}, "--epochs"), ({"beta": -1.0}, "--beta"),
     ({"validation_percent": 60.0, "testing_percent": 50.0}, "percent")],
)
def test_bad_options_are_usage_errors(change, message):
    with pytest.raises(UsageError, match=message):
        vae.VaeTask().resolve(vae.VaeConfig(**change))


def test_defaults_fill_beta_and_out():
    task = vae.VaeTask()
    assert task.resolve(vae.VaeConfig(objective="wae")).beta == vae.DEFAULT_BETA["wae"]
    assert task.resolve(vae.VaeConfig()).out == str(Path("models") / "vae")
    assert task.resolve(vae.VaeConfig(objective="wae")).out == str(Path("models") / "wae")


# ----------------------------------------------------------------------------- CLI


def test_cli_sample_writes_one_second_16k_wavs(trained, tmp_path):
    config, _, _, _ = trained
    out = tmp_path / "samples"
    args = ["vae", "sample", "--model", config.out, "--word", "up", "-n", "2", "--out",
            str(out), "--seed", "5", "--iterations", "4", "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    files = json.loads(result.stdout)["files"]
    assert [Path(f).name for f in files] == ["up_000.wav", "up_001.wav"]
    for file in files:
        info = soundfile.info(file)
        assert (info.samplerate, info.frames, info.channels) == (16000, 16000, 1)


def test_cli_reconstruct_and_interpolate(trained, tmp_path):
    config, _, _, _ = trained
    source = write_wav(tmp_path / "in.wav", tone(1320.0, seconds=0.7, rate=8000), rate=8000)
    target = tmp_path / "out" / "rebuilt.wav"
    result = CliRunner().invoke(cli, ["vae", "reconstruct", "-m", config.out, str(source),
                                      str(target), "--iterations", "4"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"{target}\tword ")
    info = soundfile.info(target)
    assert (info.samplerate, info.frames) == (16000, 16000)

    walk = tmp_path / "walk"
    result = CliRunner().invoke(cli, ["vae", "interpolate", "-m", config.out, str(source),
                                      str(target), "--steps", "3", "--out", str(walk),
                                      "--word-a", "up", "--word-b", "yes", "--iterations", "2"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in walk.iterdir()) == [f"step_0{i}.wav" for i in range(3)]


def test_cli_plot(trained, tiny_data, tmp_path):
    config, _, _, _ = trained
    out = tmp_path / "latent.png"
    result = CliRunner().invoke(cli, ["vae", "plot", "-m", config.out, "--data", str(tiny_data),
                                      "--split", "train", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["clips"] == 12 and out.is_file()


def _run_main(args, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    return exit_info.value.code, capsys.readouterr().err


def test_cli_errors_are_one_line(trained, tmp_path, capsys):
    config, _, _, _ = trained
    code, err = _run_main(["vae", "sample", "-m", config.out, "--word", "cat", "--out",
                           str(tmp_path / "s")], capsys)
    assert code == 2 and err.startswith("kws: error: ") and err.count("\n") == 1
    assert "no word 'cat'" in err

    missing = tmp_path / "no-model"
    code, err = _run_main(["vae", "sample", "-m", str(missing), "--word", "yes", "--out",
                           str(tmp_path / "s")], capsys)
    # A missing folder named on the command line is a usage error (exit 2, issue 9).
    assert (code, err) == (2, f"kws: error: {missing}: no such model folder\n")

    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not really a wave file")
    code, err = _run_main(["vae", "reconstruct", "-m", config.out, str(broken),
                           str(tmp_path / "o.wav")], capsys)
    assert code == 1 and err.startswith(f"kws: error: {broken}: ") and err.count("\n") == 1

    source = write_wav(tmp_path / "same.wav", tone(440.0))
    code, err = _run_main(["vae", "reconstruct", "-m", config.out, str(source), str(source)],
                          capsys)
    assert code == 2 and "would write over the input" in err


def test_other_model_folders_are_refused(tmp_path):
    from kws.modelfolder import ModelCard, write_card

    write_card(tmp_path, ModelCard(labels=["a", "b"], sample_rate=16000, input_length=16000,
                                   arch="tcres"))
    with pytest.raises(KwsError, match="a classifier model, not a kws vae model"):
        vae.load(tmp_path)


def test_read_clip_is_one_second_at_16k(tmp_path):
    short = write_wav(tmp_path / "short.wav", tone(300.0, seconds=0.4, rate=8000), rate=8000)
    assert vae.read_clip(short).shape == (16000,)
    with pytest.raises(AudioError, match="no such file"):
        vae.read_clip(tmp_path / "missing.wav")


def test_cli_trains_a_model_folder(tiny_data, tmp_path):
    out = tmp_path / "cli-vae"
    args = ["vae", "train", "--data", str(tiny_data), "--words", "yes,no", "--epochs", "1",
            "--objective", "wae", "--latent-dim", "2", "--n-mels", "32", "--batch-size", "4",
            "--out", str(out), "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["labels"] == ["no", "yes"] and summary["objective"] == "wae"
    assert "validation_mse_db" in summary["metrics"] and "validation_mmd" in summary["metrics"]
    card = read_card(out)
    assert card.arch == "cwae-conv1d" and card.recipe["beta"] == vae.DEFAULT_BETA["wae"]
    assert read_card(out).recipe["command"].startswith("kws ")


# ----------------------------------------------------------------------------- hostile input


def test_reconstruct_refuses_absurd_audio_loops_and_unwritable_outputs(trained, tmp_path,
                                                                       capsys):
    config, _, _, _ = trained
    huge = tmp_path / "huge.wav"
    soundfile.write(huge, np.full(16000, 1e30, dtype=np.float32), 16000, subtype="FLOAT")
    loop = tmp_path / "loop.wav"
    loop.symlink_to(loop)
    for source in (huge, loop):
        code, err = _run_main(["vae", "reconstruct", "-m", config.out, str(source),
                               str(tmp_path / "o.wav")], capsys)
        assert code == 1 and err.startswith(f"kws: error: {source}: ") and err.count("\n") == 1
    good = write_wav(tmp_path / "good.wav", tone(440.0))
    code, err = _run_main(["vae", "reconstruct", "-m", config.out, str(good),
                           "/proc/x.wav", "--iterations", "1"], capsys)
    # Refused before anything is loaded: a usage error (exit 2).
    assert (code, err) == (2, "kws: error: OUT /proc/x.wav: cannot write into /proc "
                              "(files cannot be made there)\n")
    assert not (tmp_path / "o.wav").exists()


@pytest.mark.parametrize("args", [
    ["plot", "--data", "/nonexistent"],
    ["reconstruct", "{good}", "/proc/x.wav"],
    ["sample", "--word", "yes", "--out", "/proc/clips"],
    ["interpolate", "{good}", "{good}", "--out", "/proc/walk"],
    ["plot", "--data", "{data}", "--out", "/proc/latent.png"],
])
def test_bad_paths_are_refused_before_tensorflow_loads(trained, tiny_data, tmp_path, args,
                                                       project_env):
    import subprocess
    import sys

    config, _, _, _ = trained
    good = write_wav(tmp_path / "good.wav", tone(440.0))
    args = [arg.format(good=good, data=tiny_data) for arg in args]
    code = ("import sys\nfrom kws.cli import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit as stop:\n"
            "    heavy = sorted(m for m in ('tensorflow', 'keras') if m in sys.modules)\n"
            "    print('STATUS', stop.code, *heavy, file=sys.stderr)\n")
    result = subprocess.run([sys.executable, "-c", code, "vae", args[0], "-m", config.out,
                             *args[1:]], capture_output=True, text=True, env=project_env,
                            timeout=120)
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == "STATUS 2", result.stderr
    assert len(lines) == 2 and lines[0].startswith("kws: error: ")
    assert "/nonexistent" in lines[0] or "/proc" in lines[0]


def test_outputs_never_land_on_inputs(trained, tiny_data, tmp_path, capsys):
    config, _, _, _ = trained
    source = write_wav(tmp_path / "in.wav", tone(440.0))
    link = tmp_path / "link.wav"
    link.symlink_to(source)
    before = source.read_bytes()
    code, err = _run_main(["vae", "reconstruct", "-m", config.out, str(source), str(link)],
                          capsys)
    assert code == 2 and "would write over the input" in err
    clip = next((tiny_data / "yes").glob("*.wav"))
    clip_bytes = clip.read_bytes()
    code, err = _run_main(["vae", "plot", "-m", config.out, "--data", str(tiny_data),
                           "--out", str(clip)], capsys)
    assert code == 2 and "would write over the input" in err
    assert source.read_bytes() == before and clip.read_bytes() == clip_bytes


def test_latent_density_writes_through_a_fresh_temporary_and_checks_damage(tmp_path):
    import os

    density = vae.fit_latent_density(np.zeros((4, 2)), np.array([0, 0, 1, 1]), 2, 1)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    for pid in range(os.getpid(), os.getpid() + 3):
        (tmp_path / f".{vae.LATENT_FILE}.{pid}.tmp").symlink_to(victim)
    path = vae.write_latent_density(tmp_path, ["a", "b"], density)
    assert victim.read_text() == "keep me" and not path.is_symlink()
    assert vae.read_latent_density(tmp_path, ["a", "b"]).means.shape == (2, 1, 2)
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(KwsError, match="unreadable latent density"):
        vae.read_latent_density(tmp_path, ["a", "b"])
    np.savez(path, labels=np.asarray(["a", "b"]), weights=np.ones((2, 1)),
             means=np.zeros((2, 1, 2)), covariances=np.zeros((2, 1, 3)))
    with pytest.raises(KwsError, match="damaged latent density"):
        vae.read_latent_density(tmp_path, ["a", "b"])

