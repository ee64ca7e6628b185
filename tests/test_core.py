"""The functional GAN core: models, the GAN spec, and the update steps of Algorithm 1."""

import dataclasses
import functools
import json
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxgan
import jaxgan.steps
from jaxgan import models
from tests.support import tiny_config, tiny_gan

BATCH = 4




def real_batch(d_steps=1, seed=0):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.uniform(-1, 1, (d_steps, BATCH, 28, 28, 1)).astype(np.float32))


def tree_equal(a, b):
    return all(jax.tree.leaves(jax.tree.map(lambda x, y: bool(jnp.array_equal(x, y)), a, b)))


def num_params(tree):
    return sum(x.size for x in jax.tree.leaves(tree))


# ---------------------------------------------------------------------------------------------
# Models


def test_dcgan_variants_layers_and_parameter_counts(key):
    """Two G widths (no stride-1 layer), dense hidden layers and kernel 3, counted by hand."""
    g = models.DCGANGenerator(widths=(4, 2), kernel_size=3, dense_width=6)
    d = models.DCGANDiscriminator(widths=(2,), kernel_size=3, dense_width=3)
    gan = jaxgan.GAN(g, d, optax.sgd(0.1), optax.sgd(0.1), latent_dim=5)
    state = gan.init(key)
    # G: dense 5*6 (no bias) + its batch norm 2*6; projection 6*7*7*4 + batch norm 2*4;
    # ConvT 3*3*4*2 (7x7 -> 14x14, no bias) + batch norm 2*2; ConvT 3*3*2*1 + 1 (-> 28x28).
    assert num_params(state.g_params) == 30 + 12 + 1176 + 8 + 72 + 4 + 19
    # D: conv 3*3*1*2 + 2 (-> 14x14x2); dense 14*14*2*3 + 3; logit 3 + 1.
    assert num_params(state.d_params) == 20 + 1179 + 4
    assert sorted(state.g_batch_stats) == ["BatchNorm_0", "BatchNorm_1", "BatchNorm_2"]
    z = gan.sample_noise(key, 3)
    images = gan.generate(state.g_params, z, batch_stats=state.g_batch_stats)
    assert images.shape == (3, 28, 28, 1)
    assert gan.discriminate(state.d_params, images, train=False).shape == (3,)


def test_minibatch_stddev_feature_by_hand():
    """Karras et al. 2018's feature: per group of consecutive rows, each feature's (population)
    standard deviation over the group, averaged over the features, as one more channel."""
    x = jnp.asarray([[1.0, 4.0], [3.0, 0.0], [5.0, 5.0], [5.0, 5.0]]).reshape(4, 1, 1, 2)
    out = models.minibatch_stddev(x, 2)
    assert out.shape == (4, 1, 1, 3)
    np.testing.assert_array_equal(out[..., :2], x)
    # rows 0-1: |1 - 3| / 2 = 1 and |4 - 0| / 2 = 2, mean 1.5; rows 2-3: 0 (+ the 1e-8).
    np.testing.assert_allclose(out[:, 0, 0, 2], [1.5, 1.5, 1e-4, 1e-4], rtol=1e-5)
    # A group size that does not divide the batch groups by their gcd: 4 rows, size 3 -> 1.
    np.testing.assert_allclose(models.minibatch_stddev(x, 3)[:, 0, 0, 2], [1e-4] * 4, rtol=1e-5)
    # Every pixel of a row carries its group's value.
    wide = jnp.arange(2 * 3 * 2 * 1, dtype=jnp.float32).reshape(2, 3, 2, 1)
    feature = models.minibatch_stddev(wide, 2)[..., 1]
    np.testing.assert_allclose(feature, np.full((2, 3, 2), 3.0), rtol=1e-6)  # |a - (a+6)| / 2


def test_minibatch_stddev_discriminator_judges_real_and_fake_halves_apart(key):
    """D's update calls D once on ``[real; fake]``; with groups that divide each half that is
    the same function as two calls, and the feature adds one channel to the logit layer."""
    plain = models.DCGANDiscriminator(widths=(2, 3), cpu_layers=False)
    d = models.DCGANDiscriminator(widths=(2, 3), minibatch_std=2, cpu_layers=False)
    x = jax.random.uniform(key, (8, 28, 28, 1), minval=-1, maxval=1)
    params = d.init(key, x, train=False)["params"]
    plain_params = plain.init(key, x, train=False)["params"]
    assert params["Dense_0"]["kernel"].shape == (7 * 7 * (3 + 1), 1)
    assert plain_params["Dense_0"]["kernel"].shape == (7 * 7 * 3, 1)
    both = d.apply({"params": params}, x, train=True)
    halves = jnp.concatenate([d.apply({"params": params}, x[:4], train=True),
                              d.apply({"params": params}, x[4:], train=True)])
    np.testing.assert_allclose(both, halves, rtol=1e-6, atol=1e-6)
    # The feature is live: copies of one image (no variation) score otherwise than a varied group.
    same = jnp.broadcast_to(x[:1], (2, 28, 28, 1))
    varied = jnp.concatenate([x[:1], x[1:2]])
    assert d.apply({"params": params}, same, train=True)[0] != d.apply(
        {"params": params}, varied, train=True)[0]


@pytest.mark.parametrize(
    "arch, g_count, d_count",
    [
        # G: 100*1200+1200 + 1200*1200+1200 + 1200*784+784; D: maxout 784->240x5, 240->240x5, 1.
        ("mlp", 2_503_984, 1_231_441),
        # G: 100*7*7*256 + 25*256*128 + 25*128*64 + (25*64+1) + batch-norm scales and offsets
        # 2*(256+128+64) (the hidden layers have no bias before batch normalization);
        # D: (25*64+64) + (25*64*128+128) + (7*7*128+1).
        ("dcgan", 2_280_897, 212_865),
    ],
)
def test_model_shapes_and_parameter_counts(arch, g_count, d_count, key):
    g, d = jaxgan.make_models(arch)
    gan = jaxgan.GAN(g, d, optax.sgd(0.1), optax.sgd(0.1))
    state = gan.init(key)
    assert num_params(state.g_params) == g_count
    assert num_params(state.d_params) == d_count
    z = gan.sample_noise(jax.random.key(1), 3)
    assert z.shape == (3, 100)
    images = gan.generate(state.g_params, z, batch_stats=state.g_batch_stats)
    assert images.shape == (3, 28, 28, 1) and images.dtype == jnp.float32
    low, high = gan.output_range
    assert float(images.min()) >= low and float(images.max()) <= high
    logits = gan.discriminate(state.d_params, images, train=False)
    assert logits.shape == (3,) and logits.dtype == jnp.float32


def test_paper_pair_layer_sizes(key):
    """G 100-1200-1200-784 sigmoid; D maxout(240 x 5) -> maxout(240 x 5) -> 1."""
    g, d = jaxgan.make_models("mlp")
    gan = jaxgan.GAN(g, d, optax.sgd(0.1), optax.sgd(0.1))
    state = gan.init(key)
    g_shapes = [p["kernel"].shape for p in state.g_params.values()]
    assert g_shapes == [(100, 1200), (1200, 1200), (1200, 784)]
    d_shapes = [
        state.d_params["Maxout_0"]["Dense_0"]["kernel"].shape,
        state.d_params["Maxout_1"]["Dense_0"]["kernel"].shape,
        state.d_params["Dense_0"]["kernel"].shape,
    ]
    assert d_shapes == [(784, 240 * 5), (240, 240 * 5), (240, 1)]
    assert gan.output_range == (0.0, 1.0)


def test_maxout_takes_max_over_pieces():
    layer = models.Maxout(units=2, pieces=3)
    x = jnp.array([[1.0, -2.0]])
    params = layer.init(jax.random.key(0), x)
    kernel = params["params"]["Dense_0"]["kernel"]  # [2, 2 * 3], unit-major then piece
    bias = params["params"]["Dense_0"]["bias"]
    affine = (x @ kernel + bias[None]).reshape(1, 2, 3)
    np.testing.assert_allclose(layer.apply(params, x), affine.max(-1), rtol=1e-6)


def test_maxout_discriminator_dropout_only_in_training(key):
    d = models.MaxoutDiscriminator()
    x = jax.random.uniform(key, (8, 28, 28, 1))
    params = d.init(jax.random.key(1), x, train=False)
    eval1 = d.apply(params, x, train=False)
    eval2 = d.apply(params, x, train=False)
    np.testing.assert_array_equal(eval1, eval2)
    train_a = d.apply(params, x, train=True, rngs={"dropout": jax.random.key(2)})
    train_b = d.apply(params, x, train=True, rngs={"dropout": jax.random.key(3)})
    assert not np.allclose(train_a, eval1) and not np.allclose(train_a, train_b)
    with pytest.raises(Exception, match="dropout"):
        d.apply(params, x, train=True)  # training without a dropout key must not pass silently


def test_bfloat16_models_keep_float32_parameters_and_logits(key):
    gan = tiny_gan(dtype=jnp.bfloat16, g_optimizer=optax.sgd(0.1), d_optimizer=optax.sgd(0.1))
    state = gan.init(key)
    assert {x.dtype for x in jax.tree.leaves((state.g_params, state.d_params))} == {np.dtype(np.float32)}
    images = gan.generate(state.g_params, gan.sample_noise(key, 2), batch_stats=state.g_batch_stats)
    assert images.dtype == jnp.bfloat16
    assert gan.discriminate(state.d_params, images, train=False).dtype == jnp.float32


def test_generator_batch_norm_train_and_eval_modes(key):
    """Training mode normalizes by the batch's statistics and updates the running averages
    (momentum 0.9); evaluation mode uses the running averages, so a sample does not depend on
    the rest of its batch."""
    gan = tiny_gan()
    state = gan.init(key)
    stats = state.g_batch_stats
    assert set(stats) == {"BatchNorm_0", "BatchNorm_1", "BatchNorm_2"}
    np.testing.assert_array_equal(stats["BatchNorm_0"]["mean"], 0.0)
    np.testing.assert_array_equal(stats["BatchNorm_0"]["var"], 1.0)
    z = gan.sample_noise(key, 4)
    alone = gan.generate(state.g_params, z[:1], batch_stats=stats)
    together = gan.generate(state.g_params, z, batch_stats=stats)
    np.testing.assert_allclose(alone, together[:1], rtol=1e-5, atol=1e-6)
    train_alone, _ = gan.generate_train(state.g_params, z[:2], batch_stats=stats)
    train_together, new_stats = gan.generate_train(state.g_params, z, batch_stats=stats)
    assert not np.allclose(train_alone, train_together[:2], atol=1e-4)
    # The first normalization sees the 7x7x8 projection of z: check its running mean by hand.
    h = (z @ state.g_params["Dense_0"]["kernel"]).reshape(4, 7, 7, 8)
    np.testing.assert_allclose(
        new_stats["BatchNorm_0"]["mean"], 0.1 * h.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-6
    )
    with pytest.raises(Exception, match="batch_stats"):
        gan.generate(state.g_params, z)  # a normalizing G without its statistics must not run


def test_mlp_generator_has_no_batch_statistics(key):
    g, d = jaxgan.make_models("mlp")
    state = jaxgan.GAN(g, d, optax.sgd(0.1), optax.sgd(0.1)).init(key)
    assert state.g_batch_stats == {}


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: jaxgan.make_models("resnet"), "unknown arch 'resnet'"),
        (lambda: jaxgan.make_models("mlp", g_widths=(1, 2, 3)), "fixed widths"),
        (lambda: tiny_gan(g_loss="vanilla"), "unknown generator loss 'vanilla'"),
        (lambda: tiny_gan(noise="cauchy"), "unknown noise 'cauchy'"),
        (lambda: tiny_gan(d_steps=0), "d_steps must be >= 1"),
        (lambda: tiny_gan(latent_dim=0), "latent_dim must be >= 1"),
        (lambda: tiny_gan(ema_decay=1.0), "ema_decay must be in"),
    ],
)
def test_bad_configuration_names_the_problem(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("noise, low, high, expected_var", [
    ("uniform", -1.0, 1.0, 1.0 / 3.0),
    ("normal", -6.0, 6.0, 1.0),
    ("uniform_unit_variance", -math.sqrt(3.0), math.sqrt(3.0), 1.0),  # (2 sqrt 3)^2 / 12
])
def test_noise_prior(noise, low, high, expected_var, key):
    z = tiny_gan(noise=noise).sample_noise(key, 2000)
    assert z.shape == (2000, 100) and z.dtype == jnp.float32
    assert float(z.min()) >= low and float(z.max()) <= high
    if noise.startswith("uniform"):  # the whole interval is used
        assert float(z.min()) < low + 0.01 and float(z.max()) > high - 0.01
    assert abs(float(z.mean())) < 0.01
    assert abs(float(z.var()) - expected_var) < 0.01


# ---------------------------------------------------------------------------------------------
# Initialization


def test_init_gives_players_and_stream_distinct_keys(key):
    """G and D never share an init key, and the training stream is a third key."""
    gan = tiny_gan()
    state = gan.init(key)
    assert int(state.step) == 0
    g_init = jax.random.fold_in(key, 0)
    d_init = jax.random.fold_in(key, 1)
    assert tree_equal(state.g_params, gan.generator.init(g_init, jnp.zeros((1, 100)))["params"])
    x = jnp.zeros((1, 28, 28, 1))
    assert tree_equal(state.d_params, gan.discriminator.init(d_init, x, train=False)["params"])
    stream = jax.random.key_data(state.key)
    for other in (key, g_init, d_init):
        assert not np.array_equal(stream, jax.random.key_data(other))


def test_different_seeds_give_different_initial_parameters():
    gan = tiny_gan()
    a, b = gan.init(jax.random.key(0)), gan.init(jax.random.key(1))
    assert not tree_equal(a.g_params, b.g_params)
    assert not tree_equal(a.d_params, b.d_params)


# ---------------------------------------------------------------------------------------------
# One player's update leaves the other untouched


def test_d_step_leaves_generator_bit_identical(key):
    gan = tiny_gan(ema_decay=0.9)
    state = gan.init(key)
    new, _ = jax.jit(functools.partial(jaxgan.d_step, gan))(state, real_batch()[0], key)
    assert tree_equal(new.g_params, state.g_params)
    assert tree_equal(new.g_opt_state, state.g_opt_state)
    assert tree_equal(new.g_ema_params, state.g_ema_params)
    assert tree_equal(new.g_batch_stats, state.g_batch_stats)  # G's running stats untouched
    assert not tree_equal(new.d_params, state.d_params)
    assert int(new.step) == int(state.step)


def test_g_step_leaves_discriminator_bit_identical(key):
    gan = tiny_gan()
    state = gan.init(key)
    g_step = jax.jit(functools.partial(jaxgan.g_step, gan, batch_size=BATCH))
    new, _ = g_step(state, key)
    assert tree_equal(new.d_params, state.d_params)
    assert tree_equal(new.d_opt_state, state.d_opt_state)
    assert not tree_equal(new.g_params, state.g_params)
    assert not tree_equal(new.g_batch_stats, state.g_batch_stats)


# ---------------------------------------------------------------------------------------------
# Algorithm 1 and the losses inside the steps


def test_train_step_is_k_d_steps_then_one_g_step(key):
    """train_step == d_step with each of step_keys' D keys, then g_step, then step + 1."""
    gan = tiny_gan(d_steps=3)
    state = gan.init(key)
    real = real_batch(d_steps=3)
    got, got_metrics = jaxgan.train_step(gan, state, real)

    d_keys, g_key = jaxgan.steps.step_keys(state, 3)
    want = state
    for i in range(3):
        want, d_metrics = jaxgan.d_step(gan, want, real[i], d_keys[i])
    want, g_metrics = jaxgan.g_step(gan, want, g_key, batch_size=BATCH)
    assert tree_equal(got.d_params, want.d_params)
    assert tree_equal(got.g_params, want.g_params)
    assert int(got.step) == 1
    assert float(got_metrics["d_loss"]) == float(d_metrics["d_loss"])
    assert float(got_metrics["g_loss"]) == float(g_metrics["g_loss"])
    # Three D updates are not one: Adam's step count says how many happened.
    assert int(got.d_opt_state[0].count) == 3 and int(got.g_opt_state[0].count) == 1


def zero_discriminator(state):
    """D with all parameters zero outputs logit 0, i.e. D(x) = 1/2 everywhere."""
    return state.replace(d_params=jax.tree.map(jnp.zeros_like, state.d_params))


@pytest.mark.parametrize("g_loss, expected", [("nonsaturating", math.log(2)), ("minimax", -math.log(2))])
def test_step_losses_equal_hand_values_at_d_one_half(g_loss, expected, key):
    """At D = 1/2: -V = log 4 (Theorem 1's -C(G)); -log D = log 2; log(1 - D) = -log 2."""
    gan = tiny_gan(g_loss=g_loss, d_optimizer=optax.sgd(0.0))  # D stays at 1/2 for the G step
    state = zero_discriminator(gan.init(key))
    _, metrics = jaxgan.train_step(gan, state, real_batch())
    np.testing.assert_allclose(float(metrics["d_loss"]), math.log(4), rtol=1e-6)
    np.testing.assert_allclose(float(metrics["d_real"]), 0.5, rtol=1e-6)
    np.testing.assert_allclose(float(metrics["d_fake"]), 0.5, rtol=1e-6)
    np.testing.assert_allclose(float(metrics["g_loss"]), expected, rtol=1e-6)


def test_d_step_ascends_the_value_function(key):
    """A small SGD step on D raises V on the same data and noise (D has no dropout here)."""
    gan = tiny_gan(d_optimizer=optax.sgd(1e-2))
    state = gan.init(key)
    real, step_key = real_batch()[0], jax.random.key(7)
    z = gan.sample_noise(jax.random.split(step_key)[0], BATCH)
    fake, _ = gan.generate_train(state.g_params, z, batch_stats=state.g_batch_stats)

    def value(d_params):
        return jaxgan.losses.value_function(
            real_logits=gan.discriminate(d_params, real, train=False),
            fake_logits=gan.discriminate(d_params, fake, train=False),
        )

    new, metrics = jaxgan.d_step(gan, state, real, step_key)
    np.testing.assert_allclose(-float(metrics["d_loss"]), float(value(state.d_params)), rtol=1e-5)
    assert float(value(new.d_params)) > float(value(state.d_params))


def test_g_step_follows_the_chosen_loss_gradient(key):
    """With SGD, G's update is exactly -lr * d(loss)/d(params) of the named loss."""
    lr = 0.5
    for g_loss in ("minimax", "nonsaturating"):
        gan = tiny_gan(g_loss=g_loss, g_optimizer=optax.sgd(lr))
        state = gan.init(key)
        step_key = jax.random.key(3)
        noise_key, dropout_key = jax.random.split(step_key)
        z = gan.sample_noise(noise_key, BATCH)
        loss_fn = jaxgan.losses.generator_loss(g_loss)

        def loss(g_params):
            fake, _ = gan.generate_train(g_params, z, batch_stats=state.g_batch_stats)
            logits = gan.discriminate(state.d_params, fake, train=True, key=dropout_key)
            return loss_fn(fake_logits=logits)

        grads = jax.grad(loss)(state.g_params)
        new, _ = jaxgan.g_step(gan, state, step_key, batch_size=BATCH)
        expected = jax.tree.map(lambda p, g: p - lr * g, state.g_params, grads)
        for got, want in zip(jax.tree.leaves(new.g_params), jax.tree.leaves(expected)):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    "ema_decay, step, decay",
    [
        (0.999, 0, 0.1),  # warm-up: (1 + 0) / (10 + 0)
        (0.999, 90, 0.91),  # warm-up: 91 / 100
        (0.75, 90, 0.75),  # the configured decay once the warm-up value exceeds it
    ],
)
def test_ema_tracks_generator(ema_decay, step, decay, key):
    gan = tiny_gan(ema_decay=ema_decay)
    state = gan.init(key)
    assert tree_equal(state.g_ema_params, state.g_params)
    state = state.replace(step=jnp.asarray(step, jnp.int32))
    new, _ = jaxgan.train_step(gan, state, real_batch())
    expected = jax.tree.map(lambda old, p: decay * old + (1 - decay) * p, state.g_params, new.g_params)
    for got, want in zip(jax.tree.leaves(new.g_ema_params), jax.tree.leaves(expected)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    assert tiny_gan().init(key).g_ema_params is None


def test_train_step_rejects_wrong_number_of_minibatches(key):
    gan = tiny_gan(d_steps=2)
    with pytest.raises(ValueError, match="needs 2 minibatches"):
        jaxgan.train_step(gan, gan.init(key), real_batch(d_steps=1))
    with pytest.raises(ValueError, match="needs 2 minibatches"):
        jaxgan.train_step(gan, gan.init(key), real_batch(d_steps=2)[:, :, :14])


# ---------------------------------------------------------------------------------------------
# Randomness: determinism, distinct draws, no key reuse


def run(seed, steps=3, **kwargs):
    gan = tiny_gan(**kwargs)
    step = jax.jit(functools.partial(jaxgan.train_step, gan), donate_argnums=0)
    state = gan.init(jax.random.key(seed))
    for i in range(steps):
        state, _ = step(state, real_batch(seed=i))
    return state


def test_same_seed_is_bit_identical_and_other_seed_differs():
    a, b, c = run(0), run(0), run(1)
    assert tree_equal(a.g_params, b.g_params) and tree_equal(a.d_params, b.d_params)
    assert tree_equal(a.g_opt_state, b.g_opt_state) and tree_equal(a.d_opt_state, b.d_opt_state)
    assert not tree_equal(a.g_params, c.g_params)
    assert not tree_equal(a.d_params, c.d_params)


@dataclasses.dataclass(frozen=True)
class RecordingGAN(jaxgan.GAN):
    """Records every noise batch and every key it is given (run eagerly, outside jit)."""

    def sample_noise(self, key, batch_size):
        z = super().sample_noise(key, batch_size)
        LOG["noise"].append(np.asarray(z))
        LOG["keys"].append(np.asarray(jax.random.key_data(key)))
        return z

    def discriminate(self, d_params, x, *, labels=None, train, key=None):
        if key is not None:
            LOG["keys"].append(np.asarray(jax.random.key_data(key)))
        return super().discriminate(d_params, x, labels=labels, train=train, key=key)


LOG: dict = {}


def test_every_update_draws_fresh_noise_and_keys(key):
    """Each D and G update of each iteration gets its own noise and its own dropout key."""
    g, d = jaxgan.make_models("mlp")
    gan = RecordingGAN(g, d, optax.sgd(0.1), optax.sgd(0.1), d_steps=2)
    state = gan.init(key)
    LOG.update(noise=[], keys=[])
    for _ in range(2):
        state, _ = jaxgan.train_step(gan, state, real_batch(d_steps=2))
    noise, keys = LOG["noise"], LOG["keys"]
    assert len(noise) == 6  # 2 iterations x (2 D updates + 1 G update)
    assert len(keys) == 12  # a noise key and a dropout key per update
    for i in range(len(noise)):
        for j in range(i):
            assert not np.allclose(noise[i], noise[j]), (i, j)
    assert len({k.tobytes() for k in keys}) == len(keys)


def test_no_key_is_used_twice(key):
    """JAX's key-reuse checker finds no reuse in a jitted train_step (with k = 2, dropout).

    The checker sees draws and splits, not Flax's fold_in-derived dropout keys; those are
    covered by test_every_update_draws_fresh_noise_and_keys.
    """
    g, d = jaxgan.make_models("mlp")
    gan = jaxgan.GAN(g, d, optax.sgd(0.1), optax.sgd(0.1), d_steps=2)
    real = jnp.zeros((2, BATCH, 28, 28, 1))
    with jax.debug_key_reuse(True):
        state = gan.init(key)
        jax.jit(functools.partial(jaxgan.train_step, gan))(state, real)
        # The checker is live: reusing a key inside a step is caught.
        with pytest.raises(Exception, match="reuse|consumed"):
            jax.jit(lambda k: jax.random.normal(k) + jax.random.normal(k))(jax.random.key(1))


def test_jitted_train_step_compiles_once(key):
    gan = tiny_gan()
    traced = chex.assert_max_traces(lambda state, real: jaxgan.train_step(gan, state, real), n=1)
    step = jax.jit(traced, donate_argnums=0)
    state = gan.init(key)
    for i in range(3):  # a second trace (a recompilation) would raise
        state, _ = step(state, real_batch(seed=i))
    with pytest.raises(AssertionError, match="traced"):  # the guard is live
        step(state, real_batch(seed=0)[:, :2])


def test_sigmoid_bias_from_marginals_starts_g_at_the_mean_image(key):
    """The paper's code initializes G's output bias to logit(mean pixel): at z = 0 (hidden
    units all zero) G draws exactly the data's mean image."""
    g, d = jaxgan.make_models("mlp")
    gan = jaxgan.GAN(g, d, optax.sgd(0.1), optax.sgd(0.1))
    images = np.random.default_rng(0).uniform(0, 1, (50, 28, 28))
    params = models.init_sigmoid_bias_from_marginals(gan.init(key).g_params, images)
    drawn = gan.generate(params, jnp.zeros((1, 100)))[0, ..., 0]
    np.testing.assert_allclose(drawn, images.mean(0), atol=1e-6)


def _recorded_batch_norm_inputs(gan, g_params, z):
    """The input of every batch-normalization layer of G(z) in training mode, recorded with
    ``nn.intercept_methods`` (independent of the library's statistics code)."""
    import flax.linen as nn

    inputs = {}  # layer name -> its input

    def record(next_fun, args, kwargs, context):
        if isinstance(context.module, nn.BatchNorm) and context.method_name == "__call__":
            inputs[context.module.name] = np.asarray(args[0], np.float64)
        return next_fun(*args, **kwargs)

    variables = {"params": g_params, "batch_stats": gan.init(jax.random.key(0)).g_batch_stats}
    with nn.intercept_methods(record):
        gan.generator.apply(variables, z, train=True, mutable=["batch_stats"])
    return [inputs[name] for name in sorted(inputs)]


def test_standing_statistics_are_the_sampling_weights_batch_statistics(key):
    """Samples from the EMA weights are normalized by the EMA weights' own batch statistics,
    averaged over the standing batches (and those differ from the live G's running averages)."""
    gan = tiny_gan(ema_decay=0.5)
    state = gan.init(key)
    step = jax.jit(functools.partial(jaxgan.train_step, gan))
    for i in range(4):
        state, _ = step(state, real_batch(seed=i))
    ema = state.g_ema_params
    stats_key, num_batches, batch_size = jax.random.key(7), 3, 16
    standing = gan.standing_batch_stats(
        ema, stats_key, num_batches=num_batches, batch_size=batch_size
    )

    # By hand: the same noise batches, each layer's per-channel mean and (biased) variance
    # of its recorded input, averaged over the batches.
    per_batch = []
    for batch_key in jax.random.split(stats_key, num_batches):
        z = gan.sample_noise(batch_key, batch_size)
        layers = _recorded_batch_norm_inputs(gan, ema, z)
        per_batch.append([(x.reshape(-1, x.shape[-1]).mean(0), x.reshape(-1, x.shape[-1]).var(0))
                          for x in layers])
    names = sorted(standing)
    assert names == [f"BatchNorm_{i}" for i in range(len(per_batch[0]))]
    for i, name in enumerate(names):
        mean = np.mean([batch[i][0] for batch in per_batch], axis=0)
        var = np.mean([batch[i][1] for batch in per_batch], axis=0)
        np.testing.assert_allclose(standing[name]["mean"], mean, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(standing[name]["var"], var, rtol=1e-4, atol=1e-5)
        # The live generator's running averages are other numbers.
        assert not np.allclose(state.g_batch_stats[name]["mean"], mean, rtol=1e-2, atol=1e-3)

    # Sampling with them is G in evaluation mode normalized by exactly these statistics.
    z = gan.sample_noise(jax.random.key(1), 5)
    by_hand = {name: {"mean": jnp.asarray(np.mean([b[i][0] for b in per_batch], 0), jnp.float32),
                      "var": jnp.asarray(np.mean([b[i][1] for b in per_batch], 0), jnp.float32)}
               for i, name in enumerate(names)}
    np.testing.assert_allclose(gan.generate(ema, z, batch_stats=standing),
                               gan.generate(ema, z, batch_stats=by_hand), atol=1e-5)
    assert not np.allclose(gan.generate(ema, z, batch_stats=standing),
                           gan.generate(ema, z, batch_stats=state.g_batch_stats), atol=1e-3)


def test_standing_statistics_of_a_generator_without_normalization_are_empty(key):
    g, d = jaxgan.make_models("mlp")
    gan = jaxgan.GAN(generator=g, discriminator=d, g_optimizer=optax.sgd(0.1),
                     d_optimizer=optax.sgd(0.1))
    assert gan.standing_batch_stats(gan.init(key).g_params, key, num_batches=2) == {}


# ---------------------------------------------------------------------------------------------
# DiffAugment translation


def shift_by_hand(image, dy, dx, fill):
    """Output (y, x) = input (y - dy, x - dx), ``fill`` outside."""
    height, width = image.shape[:2]
    out = np.full_like(image, fill)
    for y in range(height):
        for x in range(width):
            if 0 <= y - dy < height and 0 <= x - dx < width:
                out[y, x] = image[y - dy, x - dx]
    return out


def test_random_translate_shifts_each_image_by_its_own_offset():
    from jaxgan.augment import random_translate

    images = np.random.default_rng(0).uniform(0, 1, (64, 6, 5, 1)).astype(np.float32)
    out = np.asarray(random_translate(jax.random.key(3), jnp.asarray(images), 2, -1.0))
    offsets = []
    for image, shifted in zip(images, out):
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                   if np.array_equal(shifted, shift_by_hand(image, dy, dx, -1.0))]
        assert len(matches) == 1
        offsets.append(matches[0])
    assert len(set(offsets)) >= 15  # 64 draws over 25 offsets: most come up
    same = random_translate(jax.random.key(0), jnp.asarray(images), 0, -1.0)
    np.testing.assert_array_equal(same, images)


def test_random_translate_passes_gradients_to_the_pixels_it_keeps():
    from jaxgan.augment import random_translate

    images = jnp.asarray(np.random.default_rng(1).uniform(0, 1, (8, 5, 5, 1)), jnp.float32)
    key = jax.random.key(5)
    out = np.asarray(random_translate(key, images, 1, 0.0))
    grad = jax.grad(lambda x: jnp.sum(random_translate(key, x, 1, 0.0)))(images)
    for image, shifted, g in zip(np.asarray(images), out, np.asarray(grad)):
        (dy, dx), = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                     if np.array_equal(shifted, shift_by_hand(image, dy, dx, 0.0))]
        kept = shift_by_hand(np.ones_like(image), -dy, -dx, 0.0)  # inputs that land inside
        np.testing.assert_array_equal(g, kept)


def test_augmented_d_step_shows_d_the_translated_real_and_fake_batch(key):
    from jaxgan.augment import random_translate
    from jaxgan.steps import _AUGMENT_FOLD

    gan = tiny_gan(augment_shift=2)
    state = gan.init(key)
    real, step_key = real_batch()[0], jax.random.key(11)
    noise_key, _ = jax.random.split(step_key)
    fake, _ = gan.generate_train(state.g_params, gan.sample_noise(noise_key, BATCH),
                                 batch_stats=state.g_batch_stats)
    shown = random_translate(jax.random.fold_in(step_key, _AUGMENT_FOLD),
                             jnp.concatenate([real, fake]), 2, -1.0)
    logits = gan.discriminate(state.d_params, shown, train=False)  # D has no dropout
    expected = -jaxgan.losses.value_function(real_logits=logits[:BATCH],
                                             fake_logits=logits[BATCH:])
    _, metrics = jaxgan.d_step(gan, state, real, step_key)
    np.testing.assert_allclose(float(metrics["d_loss"]), float(expected), rtol=1e-5)
    _, plain = jaxgan.d_step(tiny_gan(), state, real, step_key)
    assert abs(float(plain["d_loss"]) - float(metrics["d_loss"])) > 1e-4


# ---------------------------------------------------------------------------------------------
# Learning-rate schedules of the training configuration


def test_linear_lr_schedule_scales_adam_updates_over_each_players_updates():
    from jaxgan.trainer import make_gan

    config = tiny_config(steps=4, d_steps=2, lr_schedule="linear", g_lr=1e-2, d_lr=3e-2)
    gan = make_gan(config)
    constant = make_gan(tiny_config(steps=4, d_steps=2, g_lr=1e-2, d_lr=3e-2))
    params = {"w": jnp.ones(3)}
    grads = [{"w": jnp.asarray([0.5, -1.0, 2.0]) * (t + 1)} for t in range(8)]
    for player, updates in (("g", 4), ("d", 8)):  # D updates twice per iteration
        opt = getattr(gan, f"{player}_optimizer")
        base = getattr(constant, f"{player}_optimizer")
        state, base_state = opt.init(params), base.init(params)
        for t in range(updates):
            step, state = opt.update(grads[t], state, params)
            base_step, base_state = base.update(grads[t], base_state, params)
            np.testing.assert_allclose(step["w"], base_step["w"] * (1 - t / updates),
                                       rtol=1e-5, atol=1e-9)


def test_a_config_round_trips_through_json_and_refuses_fields_it_does_not_have():
    from jaxgan.config import TrainConfig

    config = TrainConfig(g_widths=(8, 4, 4), lr_schedule="linear", clusters=5)
    values = json.loads(json.dumps(config.to_json()))  # tuples become lists in the file
    assert TrainConfig.from_json({**values, "model": "why, as save writes it"}) == config
    with pytest.raises(ValueError, match="unknown fields adam_b2, g_dense"):
        TrainConfig.from_json({**values, "g_dense": 7, "adam_b2": 0.99})


# ---------------------------------------------------------------------------------------------
# The paper code's optimizer (jaxgan.optim), against updates computed by hand


def test_pylearn2_momentum_keeps_the_learning_rate_inside_the_velocity():
    from jaxgan import optim

    lrs, ms = [0.5, 0.25, 0.125], [0.0, 0.5, 0.9]
    opt = optim.pylearn2_momentum(lambda t: jnp.asarray(lrs)[t], lambda t: jnp.asarray(ms)[t])
    params = {"w": jnp.zeros(2)}
    state = opt.init(params)
    grads = [jnp.array([1.0, -2.0]), jnp.array([4.0, 0.0]), jnp.array([-1.0, 1.0])]
    v = np.zeros(2)
    for t, g in enumerate(grads):
        update, state = opt.update({"w": g}, state, params)
        v = ms[t] * v - lrs[t] * np.asarray(g)  # by hand
        np.testing.assert_allclose(update["w"], v, rtol=1e-6)
    # By hand, the third update: 0.9 * (0.5 * (-0.5, 1) - 0.25 * (4, 0)) - 0.125 * (-1, 1)
    np.testing.assert_allclose(update["w"], [0.9 * (-0.25 - 1.0) + 0.125, 0.9 * 0.5 - 0.125])
    assert int(state.count) == 3
    # optax's momentum scales the velocity by the learning rate afterwards: a different rule.
    optax_opt = optax.sgd(lambda t: jnp.asarray(lrs)[t], momentum=0.5)
    o_state = optax_opt.init(params)
    for g in grads[:2]:
        o_update, o_state = optax_opt.update({"w": g}, o_state, params)
    assert not np.allclose(o_update["w"], 0.5 * (-0.5 * np.asarray(grads[0])) - 0.25 * np.asarray(grads[1]))


def test_per_update_decay_and_its_floor():
    from jaxgan import optim

    schedule = optim.per_update_decay(0.1, 1.000004, 1e-6)
    for t, expected in [(0, 0.1), (1, 0.1 / 1.000004), (500, 0.1 / 1.000004**500),
                        (50_000, 0.1 / 1.000004**50_000)]:
        np.testing.assert_allclose(float(schedule(jnp.int32(t))), expected, rtol=1e-5)
    # PAPER-MNIST.md: 0.0998 after epoch 1, 0.0819 after 100 epochs, 0.0368 after 500.
    for epochs, expected in [(1, 0.0998), (100, 0.0819), (500, 0.0368)]:
        assert round(float(schedule(jnp.int32(epochs * 500))), 4) == expected
    assert float(schedule(jnp.int32(3_000_000))) == pytest.approx(1e-6)  # the floor
    fast = optim.per_update_decay(1.0, 2.0, 0.1)
    assert [float(fast(jnp.int32(t))) for t in range(5)] == pytest.approx([1.0, 0.5, 0.25, 0.125, 0.1])


def test_epoch_momentum_ramp_changes_only_at_epoch_boundaries():
    from jaxgan import optim

    ramp = optim.epoch_momentum_ramp(0.5, 0.7, 250, steps_per_epoch=500)
    values = {t: float(ramp(jnp.int32(t))) for t in (0, 499, 500, 999, 1000, 124_999, 125_000)}
    assert values[0] == values[499] == 0.5  # epoch 1
    assert values[500] == values[999] == pytest.approx(0.5 + 0.2 / 249)  # epoch 2
    assert values[1000] == pytest.approx(0.5 + 0.4 / 249)  # epoch 3
    assert values[124_999] == pytest.approx(0.7)  # epoch 250
    assert float(ramp(jnp.int32(10**7))) == pytest.approx(0.7)


def test_paper_sgd_over_an_epoch_boundary_by_hand():
    """Three updates with 2 updates per epoch: the momentum moves at the third."""
    from jaxgan import optim

    opt = optim.pylearn2_momentum(optim.per_update_decay(0.1, 2.0, 1e-6),
                                  optim.epoch_momentum_ramp(0.5, 0.7, 3, steps_per_epoch=2))
    params = jnp.zeros(1)
    state = opt.init(params)
    v, lrs, ms = 0.0, [0.1, 0.05, 0.025], [0.5, 0.5, 0.6]
    for t, g in enumerate([1.0, 2.0, 3.0]):
        update, state = opt.update(jnp.array([g]), state, params)
        v = ms[t] * v - lrs[t] * g
        np.testing.assert_allclose(update, [v], rtol=1e-6)
    assert v == pytest.approx(0.6 * (0.5 * -0.1 - 0.1) - 0.075)
    assert optim.paper_sgd().init(params).count == 0


# ---------------------------------------------------------------------------------------------
# The simultaneous update of the paper's released code


def paper_pair_gan(**kwargs):
    """The paper's maxout pair (D has dropout, so masks matter), plain SGD for both."""
    g, d = jaxgan.make_models("mlp")
    opts = dict(g_optimizer=optax.sgd(0.1), d_optimizer=optax.sgd(0.1), update="simultaneous",
                noise="uniform_unit_variance")
    opts.update(kwargs)
    return jaxgan.GAN(g, d, **opts)


def test_simultaneous_d_half_is_d_step_with_the_same_key(key):
    gan = paper_pair_gan()
    state = gan.init(key)
    real, step_key = jnp.clip(real_batch()[0] * 0.5 + 0.5, 0, 1), jax.random.key(3)
    new, metrics = jaxgan.simultaneous_step(gan, state, real, step_key)
    ref, ref_metrics = jaxgan.d_step(gan, state, real, step_key)
    for a, b in zip(jax.tree.leaves(new.d_params), jax.tree.leaves(ref.d_params)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    for name in ("d_loss", "d_real", "d_fake"):
        np.testing.assert_allclose(metrics[name], ref_metrics[name], rtol=1e-6)
    assert not tree_equal(new.d_params, state.d_params)


def test_simultaneous_g_half_uses_the_pre_update_d_the_same_fakes_and_the_same_mask(key):
    gan = paper_pair_gan(d_optimizer=optax.sgd(100.0))  # a large D step: one a G update would see
    state = gan.init(key)
    real, step_key = jnp.clip(real_batch()[0] * 0.5 + 0.5, 0, 1), jax.random.key(3)
    noise_key, dropout_key = jax.random.split(step_key)
    z = gan.sample_noise(noise_key, BATCH)

    def g_loss(g_params, d_params, mask_key):  # by hand: D sees [real; G(z)] in one call
        fake, _ = gan.generate_train(g_params, z)
        logits = gan.discriminate(d_params, jnp.concatenate([real, fake]), train=True,
                                  key=mask_key)
        return jaxgan.losses.nonsaturating_generator_loss(fake_logits=logits[BATCH:])

    def sgd(d_params, mask_key):
        grads = jax.grad(g_loss)(state.g_params, d_params, mask_key)
        return jax.tree.map(lambda p, g: p - 0.1 * g, state.g_params, grads)

    new, metrics = jaxgan.simultaneous_step(gan, state, real, step_key)

    def relative_gap(g_params):
        """max |update - new's update| / max |new's update|, over every G parameter."""
        moved = [a - p for a, p in zip(jax.tree.leaves(new.g_params), jax.tree.leaves(state.g_params))]
        other = [a - p for a, p in zip(jax.tree.leaves(g_params), jax.tree.leaves(state.g_params))]
        scale = max(float(jnp.max(jnp.abs(m))) for m in moved)
        return max(float(jnp.max(jnp.abs(o - m))) for o, m in zip(other, moved)) / scale

    assert relative_gap(sgd(state.d_params, dropout_key)) < 1e-4
    np.testing.assert_allclose(metrics["g_loss"], g_loss(state.g_params, state.d_params,
                                                         dropout_key), rtol=1e-6)
    # The test can tell: the updated D, or another dropout mask, gives another G update.
    assert relative_gap(sgd(new.d_params, dropout_key)) > 1e-2
    assert relative_gap(sgd(state.d_params, jax.random.key(99))) > 1e-2


def test_d_loss_scale_scales_d_gradients_not_the_metric(key):
    half = paper_pair_gan(d_loss_scale=0.5)
    full = paper_pair_gan()
    state = full.init(key)
    real, step_key = jnp.clip(real_batch()[0] * 0.5 + 0.5, 0, 1), jax.random.key(4)
    a, a_metrics = jaxgan.simultaneous_step(half, state, real, step_key)
    b, b_metrics = jaxgan.simultaneous_step(full, state, real, step_key)
    for p0, pa, pb in zip(*(jax.tree.leaves(s.d_params) for s in (state, a, b))):
        np.testing.assert_allclose(pa - p0, 0.5 * (pb - p0), rtol=1e-4, atol=1e-9)
    assert float(a_metrics["d_loss"]) == float(b_metrics["d_loss"])
    assert tree_equal(a.g_params, b.g_params)  # G's update does not see the scale


def test_train_step_runs_the_simultaneous_update_with_the_first_d_key(key):
    gan = paper_pair_gan()
    state = gan.init(key)
    real = jnp.clip(real_batch() * 0.5 + 0.5, 0, 1)
    stepped, metrics = jax.jit(functools.partial(jaxgan.train_step, gan))(state, real)
    d_keys, _ = jaxgan.steps.step_keys(state, 1)
    direct, _ = jaxgan.simultaneous_step(gan, state, real[0], d_keys[0])
    assert int(stepped.step) == 1 and set(metrics) == {"d_loss", "d_real", "d_fake", "g_loss"}
    for a, b in zip(jax.tree.leaves(stepped.g_params), jax.tree.leaves(direct.g_params)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="one D step per G step"):
        paper_pair_gan(d_steps=2)
    with pytest.raises(ValueError, match="unknown update"):
        paper_pair_gan(update="sometimes")
