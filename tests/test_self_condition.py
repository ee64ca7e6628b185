"""Self-conditioned training (Liu et al. 2020): label-free runs on clusters of the images.

No label may reach a label-free run: the same images with other labels, or with none, give
the same run bit for bit. The clustering is part of every checkpoint, so a resume across a
re-clustering is exact.
"""

import dataclasses
import json
import shutil
import threading

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxgan
from jaxgan import checkpoint as checkpoint_lib
from jaxgan import cluster, trainer
from jaxgan.config import (
    AUTO_FIELDS,
    SELF_CONDITION_CLUSTERS,
    SELF_CONDITION_R1,
    ConfigError,
    TrainConfig,
)
from tests.support import tiny_config, tiny_gan

STATE_FIELDS = ("g_params", "d_params", "g_opt_state", "d_opt_state", "g_ema_params",
                "g_batch_stats", "step")


def assert_same_state(a, b):
    for field in STATE_FIELDS:
        xs, ys = jax.tree.leaves(getattr(a, field)), jax.tree.leaves(getattr(b, field))
        assert len(xs) == len(ys) and all(np.array_equal(x, y) for x, y in zip(xs, ys)), field


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """400 embedded digits as three npz files: with their labels, with the labels shuffled,
    and with none."""
    from jaxgan import data as data_lib

    source = data_lib.load_data("embedded")
    rows = np.random.default_rng(0).permutation(len(source.images))[:400]  # every class
    images, labels = source.images[rows, ..., 0], source.labels[rows]
    root = tmp_path_factory.mktemp("digits")
    paths = {"labelled": root / "labelled.npz", "shuffled": root / "shuffled.npz",
             "unlabelled": root / "unlabelled.npz"}
    np.savez(paths["labelled"], images=images, labels=labels)
    np.savez(paths["shuffled"], images=images,
             labels=np.random.default_rng(0).permutation(labels[::-1]))
    np.savez(paths["unlabelled"], images=images)
    return {name: f"npz:{path}" for name, path in paths.items()}


def config(data, **overrides):
    values = dict(data=data, steps=8, checkpoint_every=4, recluster_every=4)
    values.update(overrides)
    return tiny_config(**values)


def test_no_label_reaches_a_label_free_run(digits, tmp_path):
    """Labelled data trained with conditional false, the same images with other labels, and
    the images alone (auto: self-conditioned) are one run: labels cannot have been read."""
    runs = {
        "labelled": trainer.train(config(digits["labelled"], conditional=False, clusters=9),
                                  tmp_path / "labelled", progress=False),
        "shuffled": trainer.train(config(digits["shuffled"], conditional=False),
                                  tmp_path / "shuffled", progress=False),
        "unlabelled": trainer.train(config(digits["unlabelled"]), tmp_path / "unlabelled",
                                    progress=False),
    }
    for result in runs.values():
        assert result.gan.num_classes == 9 and result.gan.generated_labels == "data"
    assert_same_state(runs["labelled"].state, runs["shuffled"].state)
    assert_same_state(runs["labelled"].state, runs["unlabelled"].state)
    metas = [checkpoint_lib.Checkpointer(tmp_path / name / "checkpoints").restore_latest(
        result.state)[2]["clusters"] for name, result in runs.items()]
    assert metas[0] == metas[1] == metas[2] and metas[0]["step"] == 4
    saved = json.loads((tmp_path / "unlabelled" / "config.json").read_text())
    assert saved["clusters"] == 9 and saved["conditional"] is False  # sqrt(400 / 5.5) = 8.5
    assert saved["model"] == ("self-conditioned on 9 clusters of the images, no label used "
                              "(auto: the data has no labels)")
    # The labelled data, left on auto, keeps its labels: a different model.
    labelled = trainer.train(config(digits["labelled"], steps=4), tmp_path / "auto",
                             progress=False)
    assert labelled.gan.num_classes == 10 and labelled.gan.generated_labels == "uniform"


def test_a_resume_across_a_reclustering_is_bit_identical(digits, tmp_path):
    """Re-clusterings at steps 3, 6 and 9, checkpoints every 4: a run stopped at 5 (its
    checkpoint holds step 3's clustering) and a run of 4 steps continued to 12 (it
    re-clusters at 6 and 9 itself) end as the uninterrupted run does."""
    event = threading.Event()
    run = config(digits["unlabelled"], steps=12, clusters=5, recluster_every=3)
    first = trainer.train(run, tmp_path / "a", progress=False, stop=event,
                          on_step=lambda step: step == 5 and event.set())
    assert first.stopped and first.step == 5
    resumed = trainer.train(run, tmp_path / "a", progress=False)
    assert resumed.resumed_from == 5
    trainer.train(dataclasses.replace(run, steps=4), tmp_path / "c", progress=False)
    continued = trainer.train(run, tmp_path / "c", progress=False)
    assert continued.resumed_from == 4
    straight = trainer.train(run, tmp_path / "b", progress=False)
    assert_same_state(resumed.state, straight.state)
    assert_same_state(continued.state, straight.state)
    metas = [checkpoint_lib.Checkpointer(tmp_path / name / "checkpoints").restore_latest(
        straight.state)[2]["clusters"] for name in ("a", "b", "c")]
    assert metas[0] == metas[1] == metas[2] and metas[0]["step"] == 9
    # Sampling needs no label; a cluster can be asked for too.
    images = trainer.sample(tmp_path / "a", 6, batch_size=4)
    assert images.shape == (6, 28, 28, 1)
    np.testing.assert_array_equal(images, trainer.sample(tmp_path / "b", 6, batch_size=4))
    assert trainer.sample(tmp_path / "a", 2, labels=4).shape == (2, 28, 28, 1)


def test_a_resume_on_auto_keeps_the_workdirs_model(tmp_path):
    """A workdir trained with explicit settings (as an older version's auto rules might have
    picked them) resumes under all-auto fields with those settings and its config.json's
    reason, not with what auto picks for this data (conditional on its labels)."""
    trainer.train(tiny_config(steps=2, checkpoint_every=2, conditional=False, clusters=3,
                              d_minibatch_std=0, r1_gamma=0.5), tmp_path, progress=False)
    saved = json.loads((tmp_path / "config.json").read_text())["model"]
    resumed = trainer.train(tiny_config(steps=4, checkpoint_every=2), tmp_path, progress=False)
    assert resumed.resumed_from == 2 and resumed.gan.num_classes == 3
    assert resumed.gan.r1_gamma == 0.5
    config = json.loads((tmp_path / "config.json").read_text())
    assert (config["conditional"], config["clusters"], config["d_minibatch_std"],
            config["r1_gamma"], config["model"]) == (False, 3, 0, 0.5, saved)


def test_auto_decides_anew_without_checkpoints_and_blames_the_workdir_for_labels(
        digits, tmp_path):
    """A workdir whose run left config.json but no checkpoint has nothing to keep: auto
    resolves for the data again. A labelled (conditional) workdir resumed on auto with data
    that has no labels is refused as the wrong workdir, not as a wrong flag."""
    first = tiny_config(data=digits["unlabelled"], steps=2, checkpoint_every=2, clusters=3,
                        d_minibatch_std=0)
    trainer.train(first, tmp_path / "a", progress=False)
    shutil.rmtree(tmp_path / "a" / "checkpoints")
    again = trainer.train(tiny_config(data=digits["unlabelled"], steps=2, checkpoint_every=2),
                          tmp_path / "a", progress=False)
    assert again.resumed_from is None and again.gan.num_classes == 9  # round(sqrt(400 / 5.5))
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert (config["clusters"], config["d_minibatch_std"]) == (9, 4)
    assert config["model"].endswith("(auto: the data has no labels)")
    trainer.train(tiny_config(steps=2, checkpoint_every=2), tmp_path / "b", progress=False)
    with pytest.raises(ConfigError, match="holds a conditional model") as error:
        trainer.train(tiny_config(data=digits["unlabelled"], steps=4), tmp_path / "b",
                      progress=False)
    assert error.value.field == "conditional"


def test_the_first_clustering_is_k_means_on_the_pixels_principal_components(digits, tmp_path):
    """The checkpoint's clusters before any re-clustering are jaxgan.cluster's k-means on
    the images' leading principal components, with the run's keys."""
    run = config(digits["unlabelled"], steps=4, recluster_every=0, clusters=6)
    result = trainer.train(run, tmp_path / "run", progress=False)
    meta = checkpoint_lib.Checkpointer(tmp_path / "run" / "checkpoints").restore_latest(
        result.state)[2]["clusters"]
    images = np.load(digits["unlabelled"][len("npz:"):])["images"]
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(run.seed), 6), 0)
    points = cluster.principal_components(jax.random.fold_in(key, 0),
                                          images.reshape(400, -1) / 255.0, 50)
    _, expected = cluster.kmeans(jax.random.fold_in(key, 1), points, 6)
    assert meta["step"] == 0
    np.testing.assert_array_equal(meta["assignments"], expected)
    assert len(set(meta["assignments"])) == 6


def conditional_gan(**kwargs):
    g, d = jaxgan.make_models("dcgan", g_widths=(8, 4, 4), d_widths=(4, 8), num_classes=3)
    adam = optax.adam(1e-3, b1=0.5)
    return jaxgan.GAN(g, d, adam, adam, latent_dim=16, num_classes=3, **kwargs)


def test_generated_labels_from_the_data_permute_the_real_batch(key):
    """generated_labels="data": with every real label 2, every generated one is 2 too, and
    D's loss is -V computed by hand with those labels."""
    gan = conditional_gan(generated_labels="data")
    state = gan.init(key)
    images = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (8, 28, 28, 1)), jnp.float32)
    labels = jnp.full((8,), 2, jnp.int32)
    step_key = jax.random.key(4)
    _, metrics = jaxgan.d_step(gan, state, images, step_key, labels)
    z = gan.sample_noise(jax.random.split(step_key)[0], 8)
    fakes, _ = gan.generate_train(state.g_params, z, labels=labels, batch_stats=state.g_batch_stats)
    real = gan.discriminate(state.d_params, images, labels=labels, train=True)
    fake = gan.discriminate(state.d_params, fakes, labels=labels, train=True)
    v = np.mean(np.log(jax.nn.sigmoid(real))) + np.mean(np.log(1 - jax.nn.sigmoid(fake)))
    np.testing.assert_allclose(metrics["d_loss"], -v, rtol=1e-5)
    with pytest.raises(ValueError, match="pass real_labels"):
        jaxgan.g_step(gan, state, step_key, batch_size=8)
    with pytest.raises(ValueError, match="generated_labels"):
        conditional_gan(generated_labels="balanced")


def test_discriminator_features_are_the_logit_layers_input(key):
    gan = tiny_gan()
    state = gan.init(key)
    x = jnp.zeros((3, 28, 28, 1), jnp.float32)
    features = gan.discriminator_features(state.d_params, x)
    assert features.shape == (3, 7 * 7 * 8)  # widths (4, 8): 28 -> 14 -> 7
    dense = state.d_params["Dense_0"]
    logits = features @ dense["kernel"][:, 0] + dense["bias"][0]
    np.testing.assert_allclose(logits, gan.discriminate(state.d_params, x, train=False),
                               rtol=1e-5, atol=1e-6)


def test_discriminator_features_judge_each_image_alone_under_the_minibatch_feature(key):
    """With D's minibatch standard deviation (group 2) the logit depends on the image beside
    each one; the clustering features do not: each row is that image's features alone, the
    conv features plus a channel of the constant sqrt(1e-8) (a group of one)."""
    g, d = jaxgan.make_models("dcgan", g_widths=(8, 4, 4), d_widths=(4, 8), d_minibatch_std=2)
    gan = jaxgan.GAN(g, d, g_optimizer=optax.adam(1e-3), d_optimizer=optax.adam(1e-3))
    state = gan.init(key)
    x = jax.random.uniform(jax.random.key(1), (4, 28, 28, 1), jnp.float32, -1.0, 1.0)
    swapped = x[jnp.array([0, 2, 1, 3])]  # image 0's group partner changes from 1 to 2
    logits = gan.discriminate(state.d_params, x, train=False)
    assert abs(float(logits[0] - gan.discriminate(state.d_params, swapped, train=False)[0])) > 1e-6
    features = gan.discriminator_features(state.d_params, x)
    assert features.shape == (4, 7 * 7 * 9)  # 8 channels and the minibatch one
    for i in range(4):  # to float rounding: XLA may compute other batch sizes in another order
        np.testing.assert_allclose(features[i], gan.discriminator_features(
            state.d_params, x[i:i + 1])[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(features[0], gan.discriminator_features(
        state.d_params, swapped)[0], rtol=1e-5, atol=1e-6)
    channel = features.reshape(4, 7, 7, 9)[..., 8]
    np.testing.assert_allclose(channel, np.sqrt(1e-8), rtol=1e-5)  # in float32


@pytest.mark.parametrize("overrides, has_labels, num_examples, expected, reason", [
    # auto clusters: round(sqrt(n / 5.5)) up to 50: sqrt(909.1) = 30.15 for 5,000 images
    ({}, False, 5000, (False, 30), "auto: the data has no labels"),
    ({}, True, 5000, (True, 0), "auto: the data has labels"),
    ({"conditional": False}, True, 5000, (False, 30), "conditional set"),
    ({"clusters": 7}, True, 5000, (False, 7), "clusters set"),
    ({"conditional": False, "clusters": 0}, True, 5000, (False, 0), "conditional set"),
    ({}, False, 13_477, (False, SELF_CONDITION_CLUSTERS), "auto: the data has no labels"),  # 49.501
    ({}, False, 13_476, (False, 49), "auto: the data has no labels"),  # sqrt(2450.18) = 49.4993
    ({}, False, 60_000, (False, SELF_CONDITION_CLUSTERS), "auto: the data has no labels"),
    ({}, False, None, (False, SELF_CONDITION_CLUSTERS), "auto: the data has no labels"),
    ({}, False, 100, (False, 4), "auto: the data has no labels"),  # sqrt(18.2) = 4.26
    ({}, False, 13, (False, 2), "auto: the data has no labels"),  # sqrt(2.36) = 1.54
    ({}, False, 12, (False, 0), "auto: the data has no labels"),  # sqrt(2.18) = 1.48: too few
    ({"arch": "mlp"}, False, 5000, (False, 0), "auto: the data has no labels"),
    ({"pack": 2}, True, 5000, (False, 0), "auto: pack > 1"),
])
def test_auto_resolution_of_labels_and_clusters(overrides, has_labels, num_examples, expected,
                                                reason):
    config = TrainConfig(**overrides)
    resolved = config.resolved(has_labels, num_examples)
    assert (resolved.conditional, resolved.clusters) == expected
    # R1 and the minibatch standard deviation (auto) go with self-conditioning; a value given
    # stays; arch mlp has no minibatch feature.
    assert resolved.r1_gamma == (SELF_CONDITION_R1 if expected[1] else 0.0)
    assert TrainConfig(**overrides, r1_gamma=0.0).resolved(has_labels, num_examples).r1_gamma == 0
    assert resolved.d_minibatch_std == (None if config.arch == "mlp" else 4 if expected[1] else 0)
    assert TrainConfig(**overrides, d_minibatch_std=2).resolved(
        has_labels, num_examples).d_minibatch_std == 2
    assert config.resolution_reason(has_labels, num_examples).endswith(f"({reason})")


def test_auto_minibatch_std_only_where_its_groups_divide_the_batch():
    for batch_size, group in ((32, 4), (36, 4), (30, 0), (2, 0)):
        resolved = TrainConfig(batch_size=batch_size).resolved(False, 5000)
        assert (resolved.clusters, resolved.d_minibatch_std) == (30, group), batch_size
        resolved.validate()
    # AUTO_FIELDS are the fields auto leaves None and resolve() decides.
    assert all(getattr(TrainConfig(), f) is None for f in AUTO_FIELDS)
    assert all(getattr(TrainConfig().resolved(False, 5000), f) is not None for f in AUTO_FIELDS)
    # The paper's pair has no such feature: auto and 0 are accepted, a group is refused.
    TrainConfig(arch="mlp", d_minibatch_std=0).validate()
    with pytest.raises(ConfigError, match="d_minibatch_std: arch mlp"):
        TrainConfig(arch="mlp", d_minibatch_std=4).validate()
    # On the command line "auto" (or "none", as for every auto field) is auto, 0 is off.
    from experiments.mnist import _train_parser

    for word, value in (("auto", None), ("none", None), ("0", 0)):
        assert _train_parser().parse_args(["--d-minibatch-std", word]).d_minibatch_std == value


def test_self_conditioning_settings_are_checked():
    for overrides, match in (
        (dict(clusters=1), "clusters: must be 0"),
        (dict(clusters=4, conditional=True), "clusters: a run conditioned"),
        (dict(clusters=4, arch="mlp"), "clusters: self-conditioning uses"),
        (dict(clusters=4, pack=2), "pack: a self-conditioned GAN"),
        (dict(recluster_every=-1), "recluster_every: must be an integer >= 0"),
    ):
        with pytest.raises(ConfigError, match=match):
            TrainConfig(**overrides).validate()
    with pytest.raises(ConfigError, match="clusters: 30 clusters of 20 images"):
        TrainConfig(clusters=30).resolved(False, 20)
