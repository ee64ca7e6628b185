"""Class-conditional GANs: G(z, y) and D(x, y) (the paper's Section 7), checked against hand
computations, plus the trainer, sampling, evaluation and command-line paths that carry labels."""

import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxgan
from experiments import mnist, report
from jaxgan import models, trainer
from jaxgan.config import TrainConfig
from jaxgan.errors import ConfigError
from jaxgan.eval import suite
from jaxgan.multistep import train_steps
from jaxgan.steps import _LABEL_FOLD
from tests.support import tiny_config

K = 10


def dcgan_pair(num_classes):
    return jaxgan.make_models("dcgan", g_widths=(8, 4, 4), d_widths=(4, 8),
                              num_classes=num_classes)


def conditional_gan(**kwargs):
    g, d = dcgan_pair(K)
    adam = optax.adam(1e-3, b1=0.5)
    return jaxgan.GAN(g, d, adam, adam, latent_dim=16, num_classes=K, **kwargs)


# ---------------------------------------------------------------------------------------------
# The modules


@pytest.mark.parametrize("cpu_layers", [True, False])  # jaxgan's BatchNorm, Flax's
def test_conditional_batch_norm_by_hand(cpu_layers):
    x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 3)), jnp.float32)
    labels = jnp.array([0, 1, 1, 2])
    module = models.ConditionalBatchNorm(3, use_running_average=False, cpu_layers=cpu_layers)
    variables = module.init(jax.random.key(0), x, labels)
    gamma = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0], [4.0, 0.0, 1.0]], np.float32)
    beta = np.array([[0.0, 0.1, 0.2], [1.0, 1.0, 1.0], [-2.0, 0.0, 3.0]], np.float32)
    params = {"scale": jnp.asarray(gamma), "bias": jnp.asarray(beta)}
    out, updates = module.apply({"params": params, "batch_stats": variables["batch_stats"]},
                                x, labels, mutable=["batch_stats"])
    xn = np.asarray(x, np.float64)
    normalized = (xn - xn.mean(0)) / np.sqrt(xn.var(0) + 1e-5)
    expected = normalized * gamma[np.asarray(labels)] + beta[np.asarray(labels)]
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    # The running statistics are those of the whole batch, whatever the labels.
    np.testing.assert_allclose(updates["batch_stats"]["BatchNorm_0"]["mean"],
                               0.1 * xn.mean(0), rtol=1e-5)
    # A float mixture of classes mixes the rows; a one-hot row is its class.
    mixed = jnp.array([[0.5, 0.5, 0.0]] * 4, jnp.float32)
    out_mixed, _ = module.apply({"params": params, "batch_stats": variables["batch_stats"]},
                                x, mixed, mutable=["batch_stats"])
    np.testing.assert_allclose(
        out_mixed, normalized * (gamma[0] + gamma[1]) / 2 + (beta[0] + beta[1]) / 2,
        rtol=1e-5, atol=1e-5)
    one_hot, _ = module.apply({"params": params, "batch_stats": variables["batch_stats"]},
                              x, jax.nn.one_hot(labels, 3), mutable=["batch_stats"])
    np.testing.assert_allclose(one_hot, out, rtol=1e-6, atol=1e-6)


def test_conditional_dcgan_generator_is_the_unconditional_one_with_per_class_scales(key):
    """At initialization (every class's gamma 1, beta 0) the conditional G is the
    unconditional G with the same kernels; a class's gamma/beta act as BatchNorm's scale/bias."""
    g0, _ = dcgan_pair(0)
    g1, _ = dcgan_pair(K)
    z = jax.random.normal(key, (6, 16))
    labels = jnp.array([3, 3, 3, 3, 3, 3])
    v0 = g0.init(jax.random.key(1), z, train=False)
    v1 = g1.init(jax.random.key(1), z, labels, train=False)
    assert "BatchNorm_0" in v0["params"] and "ConditionalBatchNorm_0" in v1["params"]
    params = dict(v1["params"])
    for name in ("Dense_0", "ConvTranspose_0", "ConvTranspose_1", "ConvTranspose_2"):
        params[name] = v0["params"][name]
    out0 = g0.apply(v0, z, train=True, mutable=["batch_stats"])[0]
    out1 = g1.apply({"params": params, "batch_stats": v1["batch_stats"]}, z, labels, train=True,
                    mutable=["batch_stats"])[0]
    np.testing.assert_allclose(out0, out1, rtol=1e-5, atol=1e-6)
    # Class 3's gamma/beta of layer i == BatchNorm_i's scale/bias in the unconditional G.
    rng = np.random.default_rng(2)
    p0 = jax.tree.map(lambda a: a, v0["params"])
    for i in range(3):
        cbn = dict(params[f"ConditionalBatchNorm_{i}"])
        gamma = rng.normal(size=cbn["scale"].shape).astype(np.float32)
        beta = rng.normal(size=cbn["bias"].shape).astype(np.float32)
        params[f"ConditionalBatchNorm_{i}"] = {"scale": jnp.asarray(gamma),
                                               "bias": jnp.asarray(beta)}
        p0[f"BatchNorm_{i}"] = {"scale": jnp.asarray(gamma[3]), "bias": jnp.asarray(beta[3])}
    out0 = g0.apply({"params": p0, "batch_stats": v0["batch_stats"]}, z, train=True,
                    mutable=["batch_stats"])[0]
    out1 = g1.apply({"params": params, "batch_stats": v1["batch_stats"]}, z, labels, train=True,
                    mutable=["batch_stats"])[0]
    np.testing.assert_allclose(out0, out1, rtol=1e-5, atol=1e-5)


def test_projection_discriminator_adds_the_label_embedding_inner_product(key):
    """logit(x, y) = w.h + b + embed[y].h: with w = 0, b = 0 it is the unconditional D whose
    output layer's weights are embed[y]."""
    _, d0 = dcgan_pair(0)
    _, d1 = dcgan_pair(K)
    x = jax.random.uniform(key, (5, 28, 28, 1), minval=-1, maxval=1)
    labels = jnp.array([0, 4, 4, 9, 2])
    p0 = d0.init(jax.random.key(1), x, train=False)["params"]
    p1 = dict(d1.init(jax.random.key(1), x, labels, train=False)["params"])
    assert set(p1) == set(p0) | {"projection"} and p1["projection"].shape == (K, 7 * 7 * 8)
    p1.update(Conv_0=p0["Conv_0"], Conv_1=p0["Conv_1"],
              Dense_0={"kernel": jnp.zeros_like(p0["Dense_0"]["kernel"]),
                       "bias": jnp.zeros_like(p0["Dense_0"]["bias"])})
    conditional = d1.apply({"params": p1}, x, labels, train=False)
    for i, y in enumerate(np.asarray(labels)):
        as_weights = {**p0, "Dense_0": {"kernel": p1["projection"][y][:, None],
                                        "bias": jnp.zeros((1,))}}
        expected = d0.apply({"params": as_weights}, x[i : i + 1], train=False)
        np.testing.assert_allclose(conditional[i], expected[0], rtol=1e-5, atol=1e-6)


def test_mlp_pair_concatenates_one_hot_labels(key):
    """Mirza & Osindero: G's first layer sees [z, one_hot(y)], so G(z, y) is the unconditional
    G whose first bias gains the kernel row of y."""
    g0 = models.MLPGenerator(hidden=(8,), num_classes=0)
    g1 = models.MLPGenerator(hidden=(8,), num_classes=K)
    z = jax.random.normal(key, (3, 4))
    p1 = g1.init(jax.random.key(1), z, jnp.zeros((3,), jnp.int32))["params"]
    assert p1["Dense_0"]["kernel"].shape == (4 + K, 8)
    for y in (0, 7):
        shifted = {**p1, "Dense_0": {
            "kernel": p1["Dense_0"]["kernel"][:4],
            "bias": p1["Dense_0"]["bias"] + p1["Dense_0"]["kernel"][4 + y]}}
        np.testing.assert_allclose(g1.apply({"params": p1}, z, jnp.full((3,), y)),
                                   g0.apply({"params": shifted}, z), rtol=1e-5, atol=1e-6)
    d1 = models.MaxoutDiscriminator(units=4, pieces=2, num_classes=K)
    x = jnp.zeros((3, 28, 28, 1))
    pd = d1.init(jax.random.key(2), x, jnp.zeros((3,), jnp.int32), train=False)["params"]
    assert pd["Maxout_0"]["Dense_0"]["kernel"].shape == (784 + K, 8)


def test_labels_go_with_conditional_modules_only(key):
    g0, d0 = dcgan_pair(0)
    g1, _ = dcgan_pair(K)
    z = jnp.zeros((2, 16))
    with pytest.raises(ValueError, match="conditional .*pass labels"):
        g1.init(key, z, train=False)
    with pytest.raises(ValueError, match="unconditional"):
        g0.init(key, z, jnp.zeros((2,), jnp.int32), train=False)
    gan = conditional_gan()
    state = gan.init(key)
    with pytest.raises(ValueError, match="conditional"):
        gan.generate(state.g_params, z, batch_stats=state.g_batch_stats)
    with pytest.raises(ValueError, match="does not pack"):
        conditional_gan(pack=2)


# ---------------------------------------------------------------------------------------------
# The steps


def labelled_batch(batch=8):
    rng = np.random.default_rng(3)
    images = jnp.asarray(rng.uniform(-1, 1, size=(batch, 28, 28, 1)), jnp.float32)
    return images, jnp.asarray(np.arange(batch) % K, jnp.int32)


def test_d_step_sees_real_labels_and_uniform_generated_labels(key):
    """D's loss is -V with D(x, y_real) on the data and D(G(z, y_fake), y_fake) on the
    generated batch, y_fake drawn uniformly from the update key's label fold."""
    gan = conditional_gan()
    state = gan.init(key)
    images, labels = labelled_batch()
    step_key = jax.random.key(5)
    _, metrics = jaxgan.d_step(gan, state, images, step_key, labels)
    noise_key, _ = jax.random.split(step_key)
    z = gan.sample_noise(noise_key, 8)
    fake_labels = gan.sample_labels(jax.random.fold_in(step_key, _LABEL_FOLD), 8)
    assert fake_labels.dtype == jnp.int32 and 0 <= int(fake_labels.min()) <= int(fake_labels.max()) < K
    fakes, _ = gan.generate_train(state.g_params, z, labels=fake_labels,
                                  batch_stats=state.g_batch_stats)
    real_logits = gan.discriminate(state.d_params, images, labels=labels, train=True)
    fake_logits = gan.discriminate(state.d_params, fakes, labels=fake_labels, train=True)
    v = np.mean(np.log(jax.nn.sigmoid(real_logits))) + np.mean(np.log(1 - jax.nn.sigmoid(fake_logits)))
    np.testing.assert_allclose(metrics["d_loss"], -v, rtol=1e-5)
    # Other labels on the same real images: another loss (the labels reach D).
    _, other = jaxgan.d_step(gan, state, images, step_key, (labels + 1) % K)
    assert abs(float(other["d_loss"]) - float(metrics["d_loss"])) > 1e-6


def test_simultaneous_conditional_step_d_half_equals_d_step(key):
    gan = conditional_gan(update="simultaneous")
    state = gan.init(key)
    images, labels = labelled_batch()
    step_key = jax.random.key(9)
    d_only, d_metrics = jaxgan.d_step(gan, state, images, step_key, labels)
    both, metrics = jaxgan.simultaneous_step(gan, state, images, step_key, labels)
    for a, b in zip(jax.tree.leaves(d_only.d_params), jax.tree.leaves(both.d_params)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(metrics["d_loss"], d_metrics["d_loss"], rtol=1e-6)


def test_train_step_needs_labels_exactly_when_conditional(key):
    gan = conditional_gan()
    state = gan.init(key)
    images, labels = labelled_batch()
    with pytest.raises(ValueError, match="needs real_labels"):
        jaxgan.train_step(gan, state, images)
    with pytest.raises(ValueError, match="needs real_labels"):
        jaxgan.train_step(gan, state, images, labels[:4])
    from tests.support import tiny_gan

    plain = tiny_gan(latent_dim=16)
    with pytest.raises(ValueError, match="unconditional"):
        jaxgan.train_step(plain, plain.init(key), images, labels)
    # The halves of a step check as well.
    with pytest.raises(ValueError, match="needs real_labels"):
        jaxgan.d_step(gan, state, images, key)
    with pytest.raises(ValueError, match="unconditional"):
        jaxgan.d_step(plain, plain.init(key), images, key, labels)


def test_multistep_with_labels_equals_sequential_steps(key):
    gan = conditional_gan()
    state = gan.init(key)
    rng = np.random.default_rng(4)
    images = jnp.asarray(rng.uniform(-1, 1, size=(3, 8, 28, 28, 1)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, K, size=(3, 8)), jnp.int32)
    step = jax.jit(lambda s, x, y: jaxgan.train_step(gan, s, x, y))
    sequential = state
    for i in range(3):
        sequential, _ = step(sequential, images[i], labels[i])
    scanned, metrics = jax.jit(
        lambda s, x, y: train_steps(gan, s, x, y, unroll=True))(state, images, labels)
    assert metrics["d_loss"].shape == (3,)
    for a, b in zip(jax.tree.leaves(sequential.g_params), jax.tree.leaves(scanned.g_params)):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)


class _ToyG(nn.Module):
    num_classes: int = 2
    output_range: tuple = (-4.0, 4.0)

    @nn.compact
    def __call__(self, z, labels, *, train=False):
        x = jnp.concatenate([z, jax.nn.one_hot(labels, self.num_classes)], -1)
        return nn.Dense(1)(nn.relu(nn.Dense(32)(x)))


class _ToyD(nn.Module):
    num_classes: int = 2

    @nn.compact
    def __call__(self, x, labels, *, train=False):
        x = jnp.concatenate([x, jax.nn.one_hot(labels, self.num_classes)], -1)
        return nn.Dense(1)(nn.leaky_relu(nn.Dense(32)(x), 0.2))[:, 0]


def test_a_conditional_gan_learns_one_mode_per_class():
    """1-D data: class 0 at -2, class 1 at +2 (std 0.1). After training, G(z, 0) lies near -2
    and G(z, 1) near +2: the labels, not the noise, pick the mode."""
    adam = optax.adam(2e-3, b1=0.5)
    gan = jaxgan.GAN(_ToyG(), _ToyD(), adam, adam, latent_dim=4, num_classes=2, data_shape=(1,))
    state = gan.init(jax.random.key(0))
    step = jax.jit(lambda s, x, y: jaxgan.train_step(gan, s, x, y))
    rng = np.random.default_rng(0)
    for _ in range(1500):
        labels = rng.integers(0, 2, size=64)
        x = (np.where(labels == 1, 2.0, -2.0) + 0.1 * rng.normal(size=64))[:, None]
        state, _ = step(state, jnp.asarray(x, jnp.float32), jnp.asarray(labels, jnp.int32))
    z = gan.sample_noise(jax.random.key(1), 500)
    for label, centre in ((0, -2.0), (1, 2.0)):
        out = np.asarray(gan.generate(state.g_params, z, labels=jnp.full((500,), label)))
        assert abs(np.median(out) - centre) < 0.3, (label, np.median(out))
        assert np.mean(np.abs(out - centre) < 1.0) > 0.9


# ---------------------------------------------------------------------------------------------
# Data, trainer, sampling


def test_batch_iterator_yields_each_images_own_label():
    images = np.arange(20, dtype=np.uint8)[:, None, None].repeat(2, 1).repeat(2, 2)
    labels = np.arange(20) * 3
    it = jaxgan.data.BatchIterator(images, batch_size=4, seed=1, labels=labels, minibatches=2)
    for _ in range(6):  # across an epoch boundary (5 batches per epoch)
        batch, batch_labels = next(it)
        assert batch.shape == (2, 4, 2, 2, 1) and batch_labels.shape == (2, 4)
        assert batch_labels.dtype == np.int32
        pixel = np.round(batch[..., 0, 0, 0] * 255).astype(int)
        np.testing.assert_array_equal(batch_labels, pixel * 3)
    with pytest.raises(ValueError, match="one per image"):
        jaxgan.data.BatchIterator(images, batch_size=4, labels=labels[:5])


def tiny_conditional(**overrides):
    return tiny_config(conditional=True, **overrides)


@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("conditional") / "run"
    result = trainer.train(tiny_conditional(), workdir, progress=False)
    return workdir, result


def test_conditional_run_grids_samples_and_resume(conditional_run, tmp_path):
    workdir, result = conditional_run
    assert result.gan.num_classes == 10
    assert json.loads((workdir / "data.json").read_text())["num_classes"] == 10
    from PIL import Image

    with Image.open(workdir / "samples" / "latest.png") as grid:
        size = grid.size
    # 10 rows (classes) x 10 columns of 28x28 with 2-pixel padding, scaled 2x.
    assert size == (2 * (10 * 30 + 2), 2 * (10 * 30 + 2))
    sevens = trainer.sample(workdir, 12, labels=7, batch_size=5)
    assert sevens.shape == (12, 28, 28, 1)
    balanced = trainer.sample(workdir, 12, batch_size=5)
    mixed = trainer.sample(workdir, 12, labels=[7] * 12, batch_size=5)
    np.testing.assert_array_equal(mixed, sevens)
    # Image 7 of the balanced draw is class 7 with the same noise as image 7 of sevens.
    np.testing.assert_array_equal(balanced[7], sevens[7])
    assert not np.array_equal(balanced[3], sevens[3])
    with pytest.raises(ValueError, match="classes 0..9"):
        trainer.sample(workdir, 2, labels=10)
    # Exact resume carries the labels' data position: 3 + 3 steps == 6 steps.
    split = tmp_path / "split"
    trainer.train(tiny_conditional(steps=3), split, progress=False)
    resumed = trainer.train(tiny_conditional(), split, progress=False)
    assert resumed.resumed_from == 3
    for a, b in zip(jax.tree.leaves(resumed.state.g_params), jax.tree.leaves(result.state.g_params)):
        np.testing.assert_array_equal(a, b)


def test_unconditional_runs_refuse_labels_and_conditional_runs_need_them(conditional_run, tmp_path):
    plain = tmp_path / "plain"
    trainer.train(tiny_config(steps=2, checkpoint_every=2, conditional=False, clusters=0), plain,
                  progress=False)
    with pytest.raises(ValueError, match="unconditional run"):
        trainer.sample(plain, 2, labels=1)
    np.savez(tmp_path / "unlabelled.npz", images=np.zeros((16, 28, 28), np.uint8))
    with pytest.raises(ConfigError, match="conditional: .*has no labels"):
        trainer.train(tiny_conditional(data=f"npz:{tmp_path}/unlabelled.npz"), tmp_path / "u",
                      progress=False)
    assert not (tmp_path / "u").exists()
    with pytest.raises(ConfigError, match="pack"):
        tiny_conditional(pack=2).validate()
    # A conditional workdir resumes only with data of as many classes.
    np.savez(tmp_path / "three.npz", images=np.zeros((16, 28, 28), np.uint8),
             labels=np.arange(16) % 3)
    workdir, _ = conditional_run
    with pytest.raises(ConfigError, match="10 classes"):
        trainer.train(tiny_conditional(data=f"npz:{tmp_path}/three.npz", steps=9), workdir,
                      progress=False)


def test_sample_and_figures_commands_for_a_conditional_run(conditional_run, tmp_path, capsys):
    workdir, _ = conditional_run
    out = tmp_path / "sevens.npy"
    mnist.main(["sample", "--workdir", str(workdir), "--num", "5", "--label", "7", "--out", str(out)])
    np.testing.assert_array_equal(np.load(out), trainer.sample(workdir, 5, labels=7))
    with pytest.raises(SystemExit) as exit_info:
        mnist.main(["sample", "--workdir", str(workdir), "--num", "5", "--label", "12",
                    "--out", str(tmp_path / "bad.npy")])
    assert exit_info.value.code == 2
    assert "--label: labels must be classes 0..9" in capsys.readouterr().err
    mnist.main(["figures", "--workdir", str(workdir), "--rows", "2", "--columns", "3",
                "--steps", "4", "--out-dir", str(tmp_path / "figures")])
    written = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert os.path.exists(written["figure3_classes"])


# ---------------------------------------------------------------------------------------------
# Evaluation


def test_conditional_metrics_by_hand(monkeypatch):
    """Accuracy is the share of samples classified as their requested class; the per-class
    FID compares the samples of class c with the test images of class c."""
    rng = np.random.default_rng(6)
    test_features = rng.normal(size=(40, 3))
    test_labels = np.arange(40) % 4
    test_logits = np.eye(4)[test_labels]
    test_logits[0] = np.eye(4)[1]  # the classifier misreads one test image of class 0
    sample_features = rng.normal(size=(24, 3)) + 1.0
    requested = np.arange(24) % 4
    predicted = requested.copy()
    predicted[[0, 4, 1]] = [2, 2, 3]  # two class-0 samples and one class-1 sample misread

    def fake_outputs(classifier, images):
        return np.eye(4)[predicted], sample_features

    monkeypatch.setattr(suite, "classifier_outputs", fake_outputs)
    data = suite.EvalData(train=None, validation=None, real=None,
                          test=np.zeros((40, 2, 2), np.float32), test_labels=test_labels)
    reference = suite.EvalReference(data=data, classifier=None, test_logits=test_logits,
                                    test_features=test_features, test_accuracy=39 / 40,
                                    heldout_distances=None, seconds={})
    row = suite.conditional_metrics(reference, np.zeros((24, 2, 2), np.float32), requested)
    assert row["accuracy"] == pytest.approx(21 / 24)
    assert row["accuracy_per_class"] == pytest.approx([4 / 6, 5 / 6, 1.0, 1.0])
    assert row["worst_class_accuracy"] == pytest.approx(4 / 6)
    assert row["num_per_class"] == [6] * 4 and row["num_test_per_class"] == [10] * 4
    assert row["classifier_test_accuracy_per_class"] == pytest.approx([0.9, 1.0, 1.0, 1.0])
    for c in range(4):
        expected = jaxgan.eval.metrics.frechet_distance_from_activations(
            test_features[test_labels == c], sample_features[requested == c])
        assert row["fid_per_class"][c] == pytest.approx(expected)
    assert row["mean_fid_per_class"] == pytest.approx(np.mean(row["fid_per_class"]))
    table = report.format_conditional_table({"generator": row})
    assert table.splitlines()[-1].split()[:2] == ["all", f"{21 / 24:.4f}"]
    with pytest.raises(ValueError, match="classes 0..3"):
        suite.conditional_metrics(reference, np.zeros((24, 2, 2), np.float32), requested + 1)


def test_auto_conditional_follows_the_data_and_is_recorded(tmp_path):
    """conditional=None (the default): conditional on labelled data with pack 1, else not;
    config.json records the resolved value, and a resume with auto or the resolved value
    works while the other value is refused."""
    assert TrainConfig().conditional is None
    labelled = trainer.train(tiny_config(steps=2, checkpoint_every=2), tmp_path / "a",
                             progress=False)
    assert labelled.gan.num_classes == 10
    assert TrainConfig.load(tmp_path / "a" / "config.json").conditional is True
    np.savez(tmp_path / "unlabelled.npz", images=np.zeros((16, 28, 28), np.uint8))
    plain = trainer.train(tiny_config(data=f"npz:{tmp_path}/unlabelled.npz", steps=2,
                                           checkpoint_every=2), tmp_path / "b", progress=False)
    # not conditional: self-conditioned on round(sqrt(16 / 5.5)) = 2 clusters, no labels read
    assert plain.gan.num_classes == 2 and plain.gan.generated_labels == "data"
    assert TrainConfig.load(tmp_path / "b" / "config.json").conditional is False
    packed = trainer.train(tiny_config(pack=2, steps=2, checkpoint_every=2),
                           tmp_path / "c", progress=False)
    assert packed.gan.num_classes == 0
    for value in (None, True):
        again = trainer.train(tiny_config(steps=4, checkpoint_every=2, conditional=value),
                              tmp_path / "a", progress=False)
        assert again.resumed_from in (2, 4) and again.gan.num_classes == 10
    with pytest.raises(ConfigError, match="conditional"):
        trainer.train(tiny_config(steps=6, conditional=False), tmp_path / "a",
                      progress=False)
    # The paper's and the TF tutorial's models stay unconditional.
    from jaxgan.config import preset

    assert preset("paper").conditional is False and preset("dcgan").conditional is False


def test_evaluate_command_on_conditional_and_stacked_runs(conditional_run, tmp_path, capsys):
    """experiments.evaluate adds the per-class table for a conditional workdir, and reports
    Stacked MNIST's modes for a workdir trained on a stacked: source."""
    from experiments import evaluate

    workdir, _ = conditional_run
    common = ["--classifier-preset", "tiny", "--test-data", "embedded", "--test-split", "train",
              "--reference-data", "embedded", "--cache-dir", str(tmp_path / "cache")]
    out = tmp_path / "conditional.json"
    evaluate.main(["--workdir", str(workdir), "--num-samples", "40", "--output", str(out),
                   *common])
    row = json.loads(out.read_text())["rows"]["generator"]["conditional"]
    assert row["num_per_class"] == [4] * 10 and 0.0 <= row["accuracy"] <= 1.0
    assert "generator acc" in capsys.readouterr().out
    stacked = tmp_path / "stacked"
    trainer.train(tiny_config(data="stacked:embedded", conditional=False, steps=2,
                                   checkpoint_every=2), stacked, progress=False)
    out = tmp_path / "stacked.json"
    evaluate.main(["--workdir", str(stacked), "--num-samples", "30", "--reference",
                   "--output", str(out), *common])
    modes = json.loads(out.read_text())["stacked_mnist"]
    assert modes["generator"]["num_samples"] == 30 and modes["real"]["num_samples"] == 30
    assert modes["generator"]["num_modes"] == 1000 and 1 <= modes["real"]["modes"] <= 30
