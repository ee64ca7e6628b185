"""The losses and penalties beyond the paper's game: hand-computed values, the gradients they
put into D's update, and a tiny problem that each of them trains."""

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxgan
from jaxgan import losses
from jaxgan.layers import spectral_norm, spectrally_normalized
from tests.support import tiny_gan

REAL = jnp.array([2.0, 0.5, -1.0])
FAKE = jnp.array([-3.0, 0.25, 1.5])


def test_discriminator_losses_by_hand():
    # hinge: mean relu(1 - r) = (0 + .5 + 2) / 3; mean relu(1 + f) = (0 + 1.25 + 2.5) / 3
    hinge = losses.DISCRIMINATOR_LOSSES["hinge"](real_logits=REAL, fake_logits=FAKE)
    np.testing.assert_allclose(float(hinge), 2.5 / 3 + 3.75 / 3, rtol=1e-6)
    # least squares: 1/2 mean (r - 1)^2 = 1/2 (1 + .25 + 4) / 3; 1/2 mean f^2 = 1/2 (9 + 1/16 + 2.25) / 3
    ls = losses.DISCRIMINATOR_LOSSES["least_squares"](real_logits=REAL, fake_logits=FAKE)
    np.testing.assert_allclose(float(ls), 0.5 * 5.25 / 3 + 0.5 * 11.3125 / 3, rtol=1e-6)
    # wasserstein: mean f - mean r = (-1.25 / 3) - (1.5 / 3)
    w = losses.DISCRIMINATOR_LOSSES["wasserstein"](real_logits=REAL, fake_logits=FAKE)
    np.testing.assert_allclose(float(w), -1.25 / 3 - 1.5 / 3, rtol=1e-6)
    # cross entropy: -V, i.e. mean softplus(-r) + mean softplus(f)
    softplus = lambda v: math.log1p(math.exp(v))
    ce = losses.DISCRIMINATOR_LOSSES["cross_entropy"](real_logits=REAL, fake_logits=FAKE)
    expected = np.mean([softplus(-r) for r in REAL.tolist()]) + np.mean([softplus(f) for f in FAKE.tolist()])
    np.testing.assert_allclose(float(ce), expected, rtol=1e-6)


def test_generator_losses_by_hand():
    g = losses.GENERATOR_LOSSES
    np.testing.assert_allclose(float(g["hinge"](fake_logits=FAKE)), 1.25 / 3, rtol=1e-6)
    np.testing.assert_allclose(float(g["wasserstein"](fake_logits=FAKE)), 1.25 / 3, rtol=1e-6)
    # 1/2 mean (f - 1)^2 = 1/2 (16 + .5625 + .25) / 3
    np.testing.assert_allclose(float(g["least_squares"](fake_logits=FAKE)), 0.5 * 16.8125 / 3, rtol=1e-6)


def test_forward_kl_generator_loss_by_hand():
    g = losses.GENERATOR_LOSSES["forward_kl"]
    # -log mean exp(f) = -log((e^-3 + e^.25 + e^1.5) / 3); its gradient -softmax(f)
    expected = -math.log((math.exp(-3.0) + math.exp(0.25) + math.exp(1.5)) / 3)
    np.testing.assert_allclose(float(g(fake_logits=FAKE)), expected, rtol=1e-6)
    weights = np.exp(np.asarray(FAKE)) / np.exp(np.asarray(FAKE)).sum()
    np.testing.assert_allclose(np.asarray(jax.grad(lambda f: g(fake_logits=f))(FAKE)), -weights, rtol=1e-5)
    # finite for logits far beyond exp's float32 range: -log((e^1000 + e^-1000) / 2) = log 2 - 1000
    np.testing.assert_allclose(float(g(fake_logits=jnp.array([1000.0, -1000.0]))), math.log(2) - 1000, rtol=1e-6)


def test_forward_kl_loss_follows_the_forward_kl_gradient_at_the_optimal_d():
    """p_data = N(0, 1), G(z) = theta + s z. The optimal D's logit is log p_data/p_g; held
    fixed at (theta, s) = (.5, 1.5), the forward-KL loss's pathwise gradient must equal that of
    KL(p_data || p_g) = log s + (1 + theta^2) / (2 s^2) - 1/2: d/dtheta = theta / s^2 = .2222,
    d/ds = 1/s - (1 + theta^2) / s^3 = .2963. The non-saturating loss's is another, about
    (.37, .65), nearer the reverse KL(p_g || p_data)'s (theta, s - 1/s) = (.5, .83): it pulls
    the spread in harder than the forward KL does."""
    theta0, s0 = 0.5, 1.5
    z = jax.random.normal(jax.random.key(0), (400_000,))

    def logit(x):  # log N(x; 0, 1) - log N(x; theta0, s0^2)
        return -0.5 * x**2 + 0.5 * ((x - theta0) / s0) ** 2 + math.log(s0)

    def grads(name):
        loss = losses.GENERATOR_LOSSES[name]
        return jax.grad(lambda p: loss(fake_logits=logit(p[0] + p[1] * z)))(jnp.array([theta0, s0]))

    kl = np.array([theta0 / s0**2, 1 / s0 - (1 + theta0**2) / s0**3])
    np.testing.assert_allclose(np.asarray(grads("forward_kl")), kl, atol=0.01)
    np.testing.assert_allclose(np.asarray(grads("nonsaturating")), [0.371, 0.655], atol=0.01)


def test_unknown_loss_names_are_refused():
    with pytest.raises(ValueError, match="unknown discriminator loss 'vanilla'.*cross_entropy"):
        tiny_gan(d_loss="vanilla")
    with pytest.raises(ValueError, match="r1_gamma must be >= 0"):
        tiny_gan(r1_gamma=-1.0)


def test_loss_getters_are_symmetric_and_name_each_game():
    """``generator_loss(name)`` and ``discriminator_loss(name)`` both take a name and return the
    loss function; the cross-entropy D loss at logits 0 (D = 1/2 everywhere) is 2 log 2."""
    for name, fn in losses.GENERATOR_LOSSES.items():
        assert losses.generator_loss(name) is fn
    for name, fn in losses.DISCRIMINATOR_LOSSES.items():
        assert losses.discriminator_loss(name) is fn
    zeros = jnp.zeros(3)
    d_loss = losses.discriminator_loss("cross_entropy")(real_logits=zeros, fake_logits=zeros)
    np.testing.assert_allclose(float(d_loss), 2 * np.log(2), rtol=1e-6)
    np.testing.assert_allclose(float(losses.generator_loss("nonsaturating")(fake_logits=zeros)),
                               np.log(2), rtol=1e-6)
    with pytest.raises(ValueError, match="unknown generator loss 'vanilla'.*nonsaturating"):
        losses.generator_loss("vanilla")
    with pytest.raises(ValueError, match="unknown discriminator loss 'minimax'.*cross_entropy"):
        losses.discriminator_loss("minimax")


def test_safe_norm_has_finite_gradient_at_zero():
    zero = jnp.zeros((2, 3))
    grad = jax.grad(lambda x: jnp.sum(losses.safe_norm(x, axis=1)))(zero)
    assert np.all(np.isfinite(grad)) and np.all(grad == 0)
    # jnp.linalg.norm is the failure this guards against: NaN at zero
    naive = jax.grad(lambda x: jnp.sum(jnp.linalg.norm(x, axis=1)))(zero)
    assert np.all(np.isnan(naive))
    x = jnp.array([[3.0, 4.0, 0.0]])
    np.testing.assert_allclose(losses.safe_norm(x, axis=1), [5.0])
    np.testing.assert_allclose(
        jax.grad(lambda x: jnp.sum(losses.safe_norm(x, axis=1)))(x), [[0.6, 0.8, 0.0]], rtol=1e-6
    )


class LinearCritic(nn.Module):
    """D(x) = w . x + b: its input gradient is w for every x, so R1 = ||w||^2 and WGAN-GP's
    penalty is (||w|| - 1)^2, whatever the batch."""

    @nn.compact
    def __call__(self, x, *, train: bool):
        del train
        return nn.Dense(1)(x.reshape((x.shape[0], -1)))[:, 0]


class AffineGenerator(nn.Module):
    output_range: tuple[float, float] = (-10.0, 10.0)

    @nn.compact
    def __call__(self, z, *, train: bool = False):
        del train
        return nn.Dense(2)(z)


def _linear_gan(**kwargs):
    sgd = optax.sgd(0.1)
    return jaxgan.GAN(AffineGenerator(), LinearCritic(), sgd, sgd, latent_dim=2,
                      data_shape=(2,), **kwargs)


@pytest.mark.parametrize("update", ["alternating", "simultaneous"])
def test_r1_and_gp_add_their_hand_gradients_to_d(update, key):
    real = jax.random.normal(jax.random.key(3), (8, 2))
    base = _linear_gan(update=update)
    state = base.init(key)
    w = np.asarray(state.d_params["Dense_0"]["kernel"])[:, 0]
    norm = float(np.linalg.norm(w))

    def d_kernel_after(gan):
        new_state, metrics = jaxgan.train_step(gan, state, real)
        return np.asarray(new_state.d_params["Dense_0"]["kernel"])[:, 0], metrics

    without, _ = d_kernel_after(base)
    # R1 = ||w||^2: gamma / 2 * grad ||w||^2 = gamma * w, times the learning rate 0.1
    with_r1, metrics = d_kernel_after(_linear_gan(update=update, r1_gamma=3.0))
    np.testing.assert_allclose(without - with_r1, 0.1 * 3.0 * w, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(float(metrics["d_r1"]), norm**2, rtol=1e-5)
    # GP = (||w|| - 1)^2: lambda * 2 (||w|| - 1) w / ||w||
    with_gp, metrics = d_kernel_after(_linear_gan(update=update, gp_weight=10.0))
    np.testing.assert_allclose(
        without - with_gp, 0.1 * 10.0 * 2 * (norm - 1) * w / norm, rtol=1e-5, atol=1e-7
    )
    np.testing.assert_allclose(float(metrics["d_gp"]), (norm - 1) ** 2, rtol=1e-5)
    if update == "simultaneous":  # G's half uses the pre-update D: the penalties stay out of it
        g_kernel = lambda gan: np.asarray(
            jaxgan.train_step(gan, state, real)[0].g_params["Dense_0"]["kernel"]
        )
        np.testing.assert_array_equal(
            g_kernel(base), g_kernel(_linear_gan(update=update, gp_weight=10.0, r1_gamma=3.0))
        )


def test_gradient_penalty_stays_finite_where_d_has_no_input_gradient(key):
    gan = _linear_gan(gp_weight=10.0, d_loss="wasserstein", g_loss="wasserstein")
    state = gan.init(key)
    zero_d = jax.tree.map(jnp.zeros_like, state.d_params)
    state = state.replace(d_params=zero_d)
    new_state, metrics = jaxgan.train_step(gan, state, jnp.ones((4, 2)))
    assert np.isfinite(float(metrics["d_gp"])) and float(metrics["d_gp"]) == 1.0
    for leaf in jax.tree.leaves(new_state.d_params):
        assert np.all(np.isfinite(np.asarray(leaf)))


def test_r1_penalty_on_a_dcgan_matches_per_example_gradients(key):
    gan = tiny_gan(r1_gamma=1.0)
    state = gan.init(key)
    images = jax.random.uniform(jax.random.key(1), (3, 28, 28, 1), minval=-1, maxval=1)
    critic = lambda x: gan.discriminate(state.d_params, x, train=True)
    got = losses.r1_penalty(critic, images)
    per_example = [
        jnp.sum(jnp.square(jax.grad(lambda x: critic(x[None])[0])(images[i]))) for i in range(3)
    ]
    np.testing.assert_allclose(float(got), float(np.mean(per_example)), rtol=1e-5)


class MLP(nn.Module):
    widths: tuple[int, ...]
    output_range: tuple[float, float] = (-10.0, 10.0)

    @nn.compact
    def __call__(self, x, *, train: bool = False):
        del train
        for width in self.widths[:-1]:
            x = nn.leaky_relu(nn.Dense(width)(x), 0.2)
        return nn.Dense(self.widths[-1])(x)


class MLPCritic(nn.Module):
    spectral_norm: bool = False

    @nn.compact
    def __call__(self, x, *, train: bool):
        del train
        dense = nn.Dense
        if self.spectral_norm:
            dense = spectrally_normalized(self, nn.Dense, 20)
        for i, width in enumerate((32, 32)):
            x = nn.leaky_relu(dense(width, name=f"Dense_{i}")(x), 0.2)
        return dense(1, name="Dense_2")(x)[:, 0]


@pytest.mark.parametrize("d_loss, g_loss, extra", [
    ("cross_entropy", "nonsaturating", {}),
    ("cross_entropy", "nonsaturating", {"r1_gamma": 1.0}),
    ("cross_entropy", "forward_kl", {}),
    ("hinge", "hinge", {}),
    ("hinge", "hinge", {"spectral_norm": True}),  # SNGAN's pair
    ("cross_entropy", "nonsaturating", {"pack": 2}),  # PacGAN2
    ("least_squares", "least_squares", {}),
    # WGAN-GP as Gulrajani et al. 2017's Algorithm 1: five critic steps per G step
    ("wasserstein", "wasserstein", {"gp_weight": 10.0, "d_steps": 5}),
])
def test_each_loss_learns_a_shifted_gaussian(d_loss, g_loss, extra, key):
    """Data N((1.5, -1), 0.5^2 I); G starts near 0. After 1,500 steps of each game the
    samples of G's EMA (the games oscillate, WGAN-GP's most) lie on the data: mean within
    0.15, spread between 0.3 and 0.75 per axis (the data's: 0.5). A sign error in any loss
    sends G away instead."""
    adam = optax.adam(2e-3, b1=0.5)
    extra = dict(extra)  # the parametrize dict is shared: do not mutate it
    critic = MLPCritic(spectral_norm=extra.pop("spectral_norm", False))
    gan = jaxgan.GAN(MLP((16, 2)), critic, adam, adam, latent_dim=2, data_shape=(2,),
                     d_loss=d_loss, g_loss=g_loss, ema_decay=0.99, **extra)
    center = jnp.array([1.5, -1.0])
    step = jax.jit(functools.partial(jaxgan.train_step, gan))

    def run(state, key):
        def body(state, key):
            real = center[None, None] + 0.5 * jax.random.normal(key, (gan.d_steps, 64, 2))
            return step(state, real)[0], None
        return jax.lax.scan(body, state, jax.random.split(key, 1500))[0]

    state = jax.jit(run)(gan.init(key), jax.random.key(7))
    samples = np.asarray(gan.generate(state.g_ema_params, gan.sample_noise(jax.random.key(8), 2000)))
    assert np.abs(samples.mean(0) - np.asarray(center)).max() < 0.15, samples.mean(0)
    assert np.all((samples.std(0) > 0.3) & (samples.std(0) < 0.75)), samples.std(0)


def test_power_iteration_finds_the_largest_singular_value_and_its_gradient():
    w = jax.random.normal(jax.random.key(5), (400, 32))
    exact = np.linalg.svd(np.asarray(w, np.float64), compute_uv=True)
    # a hard case: sigma_1 / sigma_2 = 1.035 for this Gaussian matrix, so the iteration is
    # slow; 20 rounds (the default) come within 0.5% from below, 100 within 1e-4
    assert exact[1][0] * 0.995 < float(spectral_norm(w, 20)) <= exact[1][0] * (1 + 1e-6)
    np.testing.assert_allclose(float(spectral_norm(w, 100)), exact[1][0], rtol=1e-4)
    # d sigma / dW = u1 v1^T (the top singular pair), up to the power iteration's accuracy
    grad = np.asarray(jax.grad(lambda w: spectral_norm(w, 100))(w))
    u1, v1 = exact[0][:, 0], exact[2][0]
    np.testing.assert_allclose(grad, np.outer(u1, v1) * np.sign(grad[0, 0] / (u1[0] * v1[0])),
                               atol=2e-3)


def test_spectrally_normalized_discriminator_divides_each_kernel_by_its_norm(key):
    from jaxgan.models import DCGANDiscriminator
    plain = DCGANDiscriminator(widths=(4, 8), dense_width=16)
    normed = plain.clone(spectral_norm=True, power_iterations=200)
    x = jax.random.uniform(jax.random.key(2), (3, 28, 28, 1))
    params = plain.init(key, x, train=False)["params"]
    assert jax.tree.map(jnp.shape, normed.init(key, x, train=False)["params"]) == jax.tree.map(
        jnp.shape, params)
    # the same network with every kernel divided by its largest singular value, by SVD
    by_hand = {
        name: {**layer, "kernel": layer["kernel"] / np.linalg.svd(
            np.asarray(layer["kernel"]).reshape(-1, layer["kernel"].shape[-1]), compute_uv=False)[0]}
        for name, layer in params.items()
    }
    np.testing.assert_allclose(
        normed.apply({"params": params}, x, train=True),
        plain.apply({"params": by_hand}, x, train=True), rtol=1e-4, atol=1e-6,
    )
    assert not np.allclose(plain.apply({"params": params}, x, train=True),
                           plain.apply({"params": by_hand}, x, train=True))


def test_pack_stacks_consecutive_samples_along_channels(key):
    gan = tiny_gan(pack=2)
    images = jnp.arange(4.0)[:, None, None, None] * jnp.ones((4, 28, 28, 1))
    packed = np.asarray(gan.pack_samples(images))
    assert packed.shape == (2, 28, 28, 2)
    np.testing.assert_array_equal(packed[:, 0, 0, :], [[0.0, 1.0], [2.0, 3.0]])
    with pytest.raises(ValueError, match="pack=2 needs a batch divisible by it, got 3"):
        gan.pack_samples(images[:3])


def test_packed_d_judges_groups_of_real_and_of_generated_samples(key):
    gan = tiny_gan(pack=2)
    state = gan.init(key)
    assert state.d_params["Conv_0"]["kernel"].shape[2] == 2  # two samples' channels
    seen = []

    def record(next_fun, args, kwargs, context):
        if context.method_name == "__call__" and type(context.module).__name__ == "DCGANDiscriminator":
            seen.append(args[0])
        return next_fun(*args, **kwargs)

    real = jnp.full((4, 28, 28, 1), 0.5)
    with nn.intercept_methods(record):
        _, metrics = jaxgan.d_step(gan, state, real, jax.random.key(1))
    # one D call on [packed real; packed fake]: 2 + 2 rows of 2 channels
    assert seen[0].shape == (4, 28, 28, 2)
    np.testing.assert_array_equal(np.asarray(seen[0][:2]), 0.5)
    assert not np.any(np.asarray(seen[0][2:]) == 0.5)
