"""The paper preset (Goodfellow et al. 2014's released MNIST recipe) as the trainer wires it,
and the held-out Parzen curve logged at checkpoints."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special

from jaxgan import trainer
from jaxgan.config import TrainConfig, preset
from jaxgan.data import heldout_split
from jaxgan.errors import ConfigError, DataError
from jaxgan.eval.metrics import GOODFELLOW_SIGMAS
from jaxgan.summary import read_metrics


def test_paper_preset_trains_the_released_codes_game():
    """Two iterations of the preset's GAN, as the trainer builds it, equal those of the game
    ../shared/PAPER-MNIST.md reads from the authors' code, built here from the library's
    pieces: the maxout pair, simultaneous updates, D's loss halved, the non-saturating G loss,
    the paper's SGD from 0.1 for both players at 500 minibatches an epoch, U(-sqrt 3, sqrt 3)
    noise of 100 dimensions, no EMA; and the preset trains on rows 0-49,999 in batches of 100,
    with the held-out Parzen curve."""
    import optax

    import jaxgan
    from jaxgan.optim import paper_sgd

    config = preset("paper").validate()
    by_preset = trainer.make_gan(config, batches_per_epoch=500)
    by_hand = jaxgan.GAN(*jaxgan.make_models("mlp"), paper_sgd(0.1, 500), paper_sgd(0.1, 500),
                         update="simultaneous", d_loss_scale=0.5, g_loss="nonsaturating",
                         noise="uniform_unit_variance", latent_dim=100, ema_decay=None)
    real = jax.random.uniform(jax.random.key(1), (2, 100, 28, 28, 1), minval=-1, maxval=1)
    step = jax.jit(jaxgan.train_step, static_argnums=0)
    states = []
    for gan in (by_preset, by_hand):
        state = gan.init(jax.random.key(0))
        for batch in real:
            state, _ = step(gan, state, batch)
        states.append(state)
    moved = optax.tree.norm(jax.tree.map(lambda a, b: a - b, states[0].g_params,
                                           by_hand.init(jax.random.key(0)).g_params))
    assert float(moved) > 0
    for a, b in zip(jax.tree.leaves(states[0].g_params) + jax.tree.leaves(states[0].d_params),
                    jax.tree.leaves(states[1].g_params) + jax.tree.leaves(states[1].d_params)):
        np.testing.assert_array_equal(a, b)
    assert (config.batch_size, config.train_split, config.parzen_samples) == (
        100, "train[:50000]", 10_000)


def test_paper_sgd_in_the_trainer_counts_epochs_per_player_by_hand():
    """k = 2, 4 minibatches per epoch: D's momentum moves after 4 D updates, G's after 2 G
    updates; the learning rate is the config's, divided by 1.000004 per update."""
    config = TrainConfig(arch="mlp", optimizer="paper_sgd", d_steps=2, g_lr=0.2, d_lr=0.1)
    gan = trainer.make_gan(config.validate(), batches_per_epoch=4)
    params = jnp.zeros(1)
    step_up = 0.2 / 249  # (0.7 - 0.5) / (250 - 1): one epoch of the ramp
    for optimizer, lr, per_epoch in ((gan.d_optimizer, 0.1, 4), (gan.g_optimizer, 0.2, 2)):
        state, v = optimizer.init(params), 0.0
        for t in range(6):
            g = float(t + 1)
            update, state = optimizer.update(jnp.array([g]), state, params)
            momentum = 0.5 + step_up * (t // per_epoch)
            v = momentum * v - lr / 1.000004**t * g
            np.testing.assert_allclose(update, [v], rtol=1e-6)
    with pytest.raises(ValueError, match="batches_per_epoch"):
        trainer.make_gan(config)


@pytest.mark.parametrize("changes, field", [
    (dict(update="simultaneous", d_steps=2), "d_steps"),
    (dict(optimizer="paper_sgd", lr_schedule="linear"), "lr_schedule"),
    (dict(parzen_samples=10), "parzen_samples"),
    (dict(parzen_samples=10, train_split="train[100:]"), "parzen_samples"),
    (dict(parzen_samples=-1, train_split="train[:100]"), "parzen_samples"),
    (dict(d_loss_scale=0.0), "d_loss_scale"),
    (dict(optimizer="rmsprop"), "optimizer"),
])
def test_recipe_settings_that_cannot_work_name_their_flag(changes, field):
    with pytest.raises(ConfigError) as error:
        TrainConfig(**changes).validate()
    assert error.value.field == field


def test_heldout_rows_follow_the_training_range():
    assert heldout_split("train[:50000]", 1000) == "train[50000:51000]"
    assert heldout_split("train[10:20]", 5) == "train[20:25]"
    for split in ("train", "train[100:]"):
        with pytest.raises(DataError, match="no rows after it"):
            heldout_split(split, 1000)


def _parzen_by_direct_differences(x, centres, sigma):
    """log (1/N) sum_i N(x; mu_i, sigma^2 I) from explicit differences (not the |x|^2 - 2 x.mu
    + |mu|^2 expansion the library uses), float64."""
    d2 = ((x[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
    dim = x.shape[1]
    return (scipy.special.logsumexp(-d2 / (2 * sigma**2), axis=1) - math.log(len(centres))
            - dim * math.log(sigma * math.sqrt(2 * math.pi)))


def test_heldout_parzen_is_logged_at_checkpoints_and_matches_a_direct_computation(tmp_path):
    """The paper's pair and recipe on 100 rows; the curve at each checkpoint is the Parzen
    log-likelihood of the next 1,000 rows under 30 samples (the fixed noise of fold 5 of the
    seed's key), best sigma of the grid, recomputed here from the final checkpoint."""
    config = preset(
        "paper", data="embedded", train_split="train[:100]", batch_size=10, steps=4,
        log_every=1, checkpoint_every=2, sample_every=4, parzen_samples=30, latent_dim=8,
        steps_per_call=1,
    )
    trainer.train(config, tmp_path, progress=False)
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in records if "parzen_heldout" in r] == [2, 4]
    logged = records[-1]

    _, gan, state, step = trainer.load_trained(tmp_path)
    assert step == 4 and state.g_ema_params is None
    z = gan.sample_noise(jax.random.fold_in(jax.random.key(config.seed), 5), 1000)[:30]
    samples = np.asarray(gan.to_unit_interval(gan.generate(state.g_params, z)), np.float64)
    from jaxgan.data import load_data

    heldout = load_data("embedded", "train[100:1100]").images.reshape(1000, -1) / 255.0
    means = [_parzen_by_direct_differences(heldout, samples.reshape(30, -1), s).mean()
             for s in GOODFELLOW_SIGMAS]
    assert logged["parzen_heldout"] == pytest.approx(max(means), rel=1e-9)
    assert logged["parzen_sigma"] == pytest.approx(GOODFELLOW_SIGMAS[int(np.argmax(means))])
