"""The library's numbers against the theory of Goodfellow et al. 2014.

Proposition 1 (the optimal discriminator), Theorem 1 (C(G) = -log 4 + 2 JSD(p_data || p_g),
with minimum -log 4 at p_g = p_data), the losses of Eq. 1 and Section 3 on hand-computed
values (extreme logits included), and Section 3's argument for the nonsaturating G loss.

The 1-D setting: p_data = N(0, 1) and a frozen affine generator G(z) = mean + std * z with
z ~ N(0, 1), so p_g = N(mean, std^2) and D* = p_data / (p_data + p_g) is known in closed form.
D is the toy experiment's MLP, trained with the library's ``d_step`` only.
"""

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.integrate
import scipy.stats

import jaxgan
import jaxgan.steps
from jaxgan.losses import cross_entropy_discriminator_loss as cross_entropy
from experiments.toy1d import ToyDiscriminator
from jaxgan import losses

LOG4 = math.log(4.0)
DATA_MEAN, DATA_STD = 0.0, 1.0
# The generator of the Proposition 1 and C(G) tests: wider and shifted, so that D* spans most
# of (0, 1) over the region with mass and C(G) is well above -log 4.
G_MEAN, G_STD = 1.0, 1.5


class AffineGenerator(nn.Module):
    """G(z) = mean + std * z, ``[batch, 1]`` -> ``[batch, 1]``: p_g = N(mean, std^2)."""

    mean: float
    std: float
    output_range = (-math.inf, math.inf)

    @nn.compact
    def __call__(self, z, *, train: bool):
        del train
        return nn.Dense(
            1,
            kernel_init=nn.initializers.constant(self.std),
            bias_init=nn.initializers.constant(self.mean),
        )(z)


def log_density(x, mean, std):
    return scipy.stats.norm.logpdf(x, mean, std)


def optimal_logit(x, g_mean, g_std):
    """logit D*(x) = log p_data(x) - log p_g(x) (Proposition 1)."""
    return log_density(x, DATA_MEAN, DATA_STD) - log_density(x, g_mean, g_std)


def _d_only(gan, state, real):
    """One ``d_step`` with the key ``train_step`` would use at ``state.step``; G untouched."""
    d_keys, _ = jaxgan.steps.step_keys(state, 1)
    state, _ = jaxgan.d_step(gan, state, real, d_keys[0])
    return state.replace(step=state.step + 1)


@functools.lru_cache(maxsize=None)
def train_discriminator(g_mean, g_std, *, steps=1500, batch=512, seed=0):
    """Trains D against the frozen G(z) = g_mean + g_std z with ``jaxgan.d_step`` alone.

    Returns ``(gan, g_params_before, final_state)``; ``g_params_before`` is a host copy (the
    state is donated).
    """
    gan = jaxgan.GAN(
        generator=AffineGenerator(g_mean, g_std),
        discriminator=ToyDiscriminator(hidden=32),
        g_optimizer=optax.sgd(1.0),  # never applied: only d_step runs
        d_optimizer=optax.adam(optax.cosine_decay_schedule(3e-3, steps, alpha=0.05), b1=0.5),
        latent_dim=1,
        noise="normal",
        data_shape=(1,),
    )
    state = jax.jit(gan.init)(jax.random.key(seed))
    g_params_before = jax.tree.map(np.array, state.g_params)
    real = np.random.default_rng(seed).normal(DATA_MEAN, DATA_STD, (steps, batch, 1))

    def d_steps(state, real):  # all D updates in one rolled scan: a dispatch-bound tiny MLP
        return jax.lax.scan(lambda s, x: (_d_only(gan, s, x), None), state, real)[0]

    state = jax.jit(d_steps, donate_argnums=0)(state, jnp.asarray(real, jnp.float32))
    return gan, g_params_before, state


def discriminator_on(gan, state, x):
    """D(x) (probabilities, float64) at the points ``x`` ``[n]``."""
    logits = gan.discriminate(state.d_params, jnp.asarray(x, jnp.float32)[:, None], train=False)
    return np.asarray(jax.nn.sigmoid(logits), np.float64)


# ---------------------------------------------------------------------------------------------
# Proposition 1


def test_trained_discriminator_is_the_optimal_one():
    """With G fixed, D trained by ``d_step`` reaches D* = p_data / (p_data + p_g).

    Tolerance: max |D - D*| < 0.05 over the grid points where (p_data + p_g) / 2 is at least
    10% of its peak; outside it D is fitted from too few samples to be pinned down.
    """
    gan, g_params_before, state = train_discriminator(G_MEAN, G_STD)
    x = np.linspace(-5.0, 6.0, 1101)
    p_data = np.exp(log_density(x, DATA_MEAN, DATA_STD))
    p_g = np.exp(log_density(x, G_MEAN, G_STD))
    region = (p_data + p_g) >= 0.1 * np.max(p_data + p_g)
    d_star = p_data / (p_data + p_g)
    # The test is only informative if D* is far from constant where it is checked.
    assert d_star[region].max() - d_star[region].min() > 0.6
    error = np.abs(discriminator_on(gan, state, x) - d_star)[region]
    assert error.max() < 0.05, f"max |D - D*| = {error.max():.4f}"
    # ... and G did not move: d_step touches only D.
    same = jax.tree.map(lambda a, b: np.array_equal(a, np.asarray(b)), g_params_before,
                        state.g_params)
    assert all(jax.tree.leaves(same))
    assert int(state.step) == 1500


# ---------------------------------------------------------------------------------------------
# Theorem 1


def test_value_at_the_global_optimum_is_minus_log_4_exactly():
    """p_g = p_data makes D* = 1/2 (logit 0 = log p_data - log p_g): V(D*, G) = -log 4.

    Exact up to float32 rounding: rtol 1e-6 is about 8 float32 ulps at 1.386.
    """
    x = np.random.default_rng(0).normal(DATA_MEAN, DATA_STD, 64)
    logits = jnp.asarray(optimal_logit(x, DATA_MEAN, DATA_STD), jnp.float32)
    assert np.all(np.asarray(logits) == 0.0)
    value = losses.value_function(real_logits=logits, fake_logits=logits)
    assert value.dtype == jnp.float32
    np.testing.assert_allclose(float(value), -LOG4, rtol=1e-6)


def test_trained_discriminator_at_p_g_equal_p_data_gives_minus_log_4():
    """Monte Carlo: with p_g = p_data and D trained by ``d_step``, V(D, G) ~ -log 4.

    Tolerance: 4 standard errors of the Monte-Carlo mean plus 0.01 for D's distance from
    D* = 1/2: log(4 D (1 - D)) >= -4 (2D - 1)^2 / (1 - (2D - 1)^2) ~ -0.01 at |D - 1/2| = 0.05,
    and D is checked to be that close. V can exceed -log 4 only by sampling error, since
    -log 4 = max_D V(D, G) here.
    """
    gan, _, state = train_discriminator(DATA_MEAN, DATA_STD)
    x = np.linspace(-2.0, 2.0, 401)
    assert np.max(np.abs(discriminator_on(gan, state, x) - 0.5)) < 0.05

    n = 100_000
    rng = np.random.default_rng(1)
    real = jnp.asarray(rng.normal(DATA_MEAN, DATA_STD, (n, 1)), jnp.float32)
    z = gan.sample_noise(jax.random.key(7), n)
    fake = gan.generate(state.g_params, z)
    real_logits = gan.discriminate(state.d_params, real, train=False)
    fake_logits = gan.discriminate(state.d_params, fake, train=False)
    value = float(losses.value_function(real_logits=real_logits, fake_logits=fake_logits))
    terms_real = np.asarray(jax.nn.log_sigmoid(real_logits), np.float64)
    terms_fake = np.asarray(jax.nn.log_sigmoid(-fake_logits), np.float64)
    standard_error = math.sqrt(terms_real.var() / n + terms_fake.var() / n)
    assert -LOG4 - 0.01 - 4 * standard_error < value < -LOG4 + 4 * standard_error


def jensen_shannon_by_quadrature(g_mean, g_std):
    """JSD(p_data || N(g_mean, g_std^2)) in nats, by adaptive quadrature."""

    def integrand(x):
        p = math.exp(log_density(x, DATA_MEAN, DATA_STD))
        q = math.exp(log_density(x, g_mean, g_std))
        m = 0.5 * (p + q)
        return 0.5 * (p * math.log(p / m) if p > 0 else 0.0) + 0.5 * (
            q * math.log(q / m) if q > 0 else 0.0
        )

    value, abs_error = scipy.integrate.quad(integrand, -30.0, 30.0, points=[0.0, g_mean],
                                            limit=200)
    assert abs_error < 1e-8
    return value


def test_virtual_training_criterion_is_minus_log_4_plus_twice_jsd():
    """Theorem 1: C(G) = V(D*, G) = -log 4 + 2 JSD(p_data || p_g), for p_g != p_data.

    V(D*, G) is a Monte-Carlo mean of ``value_function`` on D*'s exact logits; JSD is a
    quadrature. Tolerance: 4 standard errors of the Monte-Carlo mean.
    """
    n = 400_000
    rng = np.random.default_rng(2)
    x_real = rng.normal(DATA_MEAN, DATA_STD, n)
    x_fake = G_MEAN + G_STD * rng.standard_normal(n)  # G(z), z ~ N(0, 1)
    real_logits = jnp.asarray(optimal_logit(x_real, G_MEAN, G_STD), jnp.float32)
    fake_logits = jnp.asarray(optimal_logit(x_fake, G_MEAN, G_STD), jnp.float32)
    value = float(losses.value_function(real_logits=real_logits, fake_logits=fake_logits))
    terms_real = np.asarray(jax.nn.log_sigmoid(real_logits), np.float64)
    terms_fake = np.asarray(jax.nn.log_sigmoid(-fake_logits), np.float64)
    standard_error = math.sqrt(terms_real.var() / n + terms_fake.var() / n)

    jsd = jensen_shannon_by_quadrature(G_MEAN, G_STD)
    expected = -LOG4 + 2.0 * jsd
    # The JSD term is resolved: leaving it out would be caught.
    assert 2.0 * jsd > 20 * standard_error
    assert abs(value - expected) < 4 * standard_error, (value, expected, standard_error)


# ---------------------------------------------------------------------------------------------
# Losses on hand-computed values


def log_sigmoid(logit):
    """log(1 / (1 + e^-l)), by hand."""
    return -math.log1p(math.exp(-logit))


REAL = [0.0, 2.0]
FAKE = [-1.0, 3.0]


def test_losses_on_small_logits_equal_hand_values():
    real, fake = jnp.asarray(REAL), jnp.asarray(FAKE)
    # log D(x) at logits 0 and 2: -0.693147, -0.126928; log(1 - D(G(z))) at logits -1 and 3:
    # log_sigmoid(1) = -0.313262, log_sigmoid(-3) = -3.048587.
    expected_value = 0.5 * (log_sigmoid(0.0) + log_sigmoid(2.0)) + 0.5 * (
        log_sigmoid(1.0) + log_sigmoid(-3.0)
    )
    np.testing.assert_allclose(expected_value, -2.0909621, rtol=1e-7)
    value = losses.value_function(real_logits=real, fake_logits=fake)
    np.testing.assert_allclose(float(value), expected_value, rtol=1e-6)
    np.testing.assert_allclose(
        float(cross_entropy(real_logits=real, fake_logits=fake)),
        -expected_value, rtol=1e-6,
    )
    # E[log(1 - D(G(z)))] = (log_sigmoid(1) + log_sigmoid(-3)) / 2 = -1.6809245.
    np.testing.assert_allclose(
        float(losses.minimax_generator_loss(fake_logits=fake)), -1.6809245, rtol=1e-6
    )
    # -E[log D(G(z))] = -(log_sigmoid(-1) + log_sigmoid(3)) / 2 = 0.6809245.
    np.testing.assert_allclose(
        float(losses.nonsaturating_generator_loss(fake_logits=fake)), 0.6809245, rtol=1e-6
    )


EXTREME = [1e4, -1e4, 100.0, -100.0]


def test_losses_at_extreme_logits_are_exact_and_finite():
    """log_sigmoid(+-1e4) = 0, -1e4 and log_sigmoid(+-100) = 0, -100 (to float32).

    A log(sigmoid(l)) implementation gives -inf at l = -1e4 (and -100) and fails here.
    """
    logits = jnp.asarray(EXTREME, jnp.float32)
    # mean log D(x) = (0 - 1e4 + 0 - 100) / 4; mean log(1 - D) on the same logits likewise.
    half = (0.0 - 1e4 + 0.0 - 100.0) / 4  # -2525
    results = {
        "value": (losses.value_function(real_logits=logits, fake_logits=logits), 2 * half),
        "d_loss": (cross_entropy(real_logits=logits, fake_logits=logits), -2 * half),
        "minimax": (losses.minimax_generator_loss(fake_logits=logits), half),
        "nonsaturating": (losses.nonsaturating_generator_loss(fake_logits=logits), -half),
    }
    for name, (got, expected) in results.items():
        assert got.dtype == jnp.float32 and got.shape == (), name
        assert np.isfinite(float(got)), name
        np.testing.assert_allclose(float(got), expected, rtol=1e-6, err_msg=name)


def test_loss_gradients_at_extreme_logits_are_finite_and_exact():
    """d log_sigmoid(l) / dl = sigmoid(-l): 0 or 1 at the extremes, never NaN."""
    logits = jnp.asarray(EXTREME, jnp.float32)
    n = len(EXTREME)
    sigmoid = np.asarray([1.0, 0.0, 1.0, 0.0])  # sigmoid of EXTREME, to float32
    grad_real, grad_fake = jax.grad(
        lambda r, f: losses.value_function(real_logits=r, fake_logits=f), argnums=(0, 1)
    )(logits, logits)
    expected = {
        "value wrt real": (grad_real, (1.0 - sigmoid) / n),  # sigmoid(-l) / n
        "value wrt fake": (grad_fake, -sigmoid / n),  # -sigmoid(l) / n
        "d_loss wrt real": (
            jax.grad(lambda r: cross_entropy(real_logits=r, fake_logits=logits))(
                logits
            ),
            -(1.0 - sigmoid) / n,
        ),
        "minimax": (
            jax.grad(lambda f: losses.minimax_generator_loss(fake_logits=f))(logits),
            -sigmoid / n,
        ),
        "nonsaturating": (
            jax.grad(lambda f: losses.nonsaturating_generator_loss(fake_logits=f))(logits),
            -(1.0 - sigmoid) / n,
        ),
    }
    for name, (got, want) in expected.items():
        got = np.asarray(got)
        assert np.all(np.isfinite(got)), name
        np.testing.assert_allclose(got, want, atol=1e-7, err_msg=name)


def test_unknown_generator_loss_names_the_options():
    with pytest.raises(ValueError, match="bogus") as error:
        losses.generator_loss("bogus")
    assert "minimax" in str(error.value) and "nonsaturating" in str(error.value)
    assert losses.generator_loss("minimax") is losses.minimax_generator_loss
    assert losses.generator_loss("nonsaturating") is losses.nonsaturating_generator_loss


# ---------------------------------------------------------------------------------------------
# Section 3: why G maximizes log D(G(z)) early in training


def test_nonsaturating_loss_has_the_stronger_gradient_when_d_rejects_fakes():
    """At logit -10 (D(G(z)) = 4.5e-5) the minimax gradient saturates, the other does not.

    d/dl log(1 - sigmoid(l)) = -sigmoid(l) = -4.54e-5, d/dl -log sigmoid(l) = -sigmoid(-l)
    = -0.99995: both move D(G(z)) up, the nonsaturating one about 22,000 times faster.
    """
    logit = jnp.full((1,), -10.0, jnp.float32)
    minimax = float(jax.grad(lambda f: losses.minimax_generator_loss(fake_logits=f))(logit)[0])
    nonsat = float(
        jax.grad(lambda f: losses.nonsaturating_generator_loss(fake_logits=f))(logit)[0]
    )
    np.testing.assert_allclose(minimax, -1.0 / (1.0 + math.exp(10.0)), rtol=1e-5)
    np.testing.assert_allclose(nonsat, -1.0 / (1.0 + math.exp(-10.0)), rtol=1e-5)
    assert minimax < 0 and nonsat < 0  # both descend towards a larger D(G(z))
    assert abs(nonsat) > 1e4 * abs(minimax)
    # Where D is fooled (logit +10) it is the other way round: the two losses share their
    # fixed points but not their gradient magnitudes.
    logit = -logit
    minimax = float(jax.grad(lambda f: losses.minimax_generator_loss(fake_logits=f))(logit)[0])
    nonsat = float(
        jax.grad(lambda f: losses.nonsaturating_generator_loss(fake_logits=f))(logit)[0]
    )
    assert abs(minimax) > 1e4 * abs(nonsat)
