"""The update steps of Algorithm 1 (Goodfellow et al. 2014) as pure functions.

``d_step`` ascends V(D, G) in D's parameters with G fixed; ``g_step`` descends the chosen
generator loss in G's parameters with D fixed; ``train_step`` is one iteration of Algorithm 1:
k = ``gan.d_steps`` discriminator updates, then one generator update.

None of them is decorated with ``jax.jit``: the caller compiles once, with donation::

    train_step = jax.jit(functools.partial(jaxgan.train_step, gan), donate_argnums=0)

Randomness: iteration ``state.step`` uses ``fold_in(state.key, state.step)`` split into one key
per D update and one for the G update (``step_keys``); each of those is split again into a
noise key and a dropout key (a conditional GAN's generated labels come from a fold of the
update's key). No key is used twice and nothing random comes from the host.

Class-conditional GANs (``gan.num_classes > 0``) take the real batch's integer labels as
``real_labels``, shaped like ``real_images`` without the image axes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxgan import losses
from jaxgan.gan import GAN
from jaxgan.state import GANState

Metrics = dict[str, jax.Array]
# The augmentation's key is this fold of an update's key (noise and dropout split it in two).
_AUGMENT_FOLD = 7
# Folds of an update's key for the penalties' own D calls (dropout) and WGAN-GP's mixing.
_R1_FOLD, _GP_FOLD, _GP_MIX_FOLD = 8, 9, 10
# The fold of an update's key that draws a conditional GAN's generated labels.
_LABEL_FOLD = 11


def step_keys(state: GANState, d_steps: int) -> tuple[jax.Array, jax.Array]:
    """Keys of iteration ``state.step``: ``(d_keys [d_steps], g_key)``."""
    d_root, g_key = jax.random.split(jax.random.fold_in(state.key, state.step))
    return jax.random.split(d_root, d_steps), g_key


def _fake_labels(gan: GAN, key: jax.Array, batch_size: int, real_labels=None):
    """The labels of an update's generated batch, or ``None`` (unconditional): uniform, or
    (``gan.generated_labels == "data"``) a permutation of the real minibatch's labels."""
    key = jax.random.fold_in(key, _LABEL_FOLD)
    if gan.generated_labels == "data" and gan.num_classes:
        if real_labels is None:
            raise ValueError("generated_labels 'data' draws from the real minibatch's labels: "
                             "pass real_labels")
        return jax.random.permutation(key, real_labels)
    return gan.sample_labels(key, batch_size)


def _both_labels(real_labels, fake_labels):
    """D's labels of ``[real; fake]``; real labels go with conditional GANs only."""
    if (real_labels is None) != (fake_labels is None):
        raise ValueError(
            "a conditional GAN's update needs real_labels [batch]" if real_labels is None
            else "this GAN is unconditional (num_classes 0): pass no real_labels"
        )
    return None if fake_labels is None else jnp.concatenate([real_labels, fake_labels])


def d_step(gan: GAN, state: GANState, real_images: jax.Array, key: jax.Array,
           real_labels: jax.Array | None = None):
    """One discriminator update with G fixed (the inner loop of Algorithm 1).

    Args:
      gan: the GAN description.
      state: the training state; only ``d_params`` and ``d_opt_state`` change.
      real_images: a minibatch of data ``[batch, *gan.data_shape]`` in ``gan.output_range``.
      key: this update's key (noise for G(z) and D's dropout).
      real_labels: int ``[batch]``, the real images' labels (conditional GANs only).

    Returns:
      ``(new_state, metrics)`` with ``d_loss`` (``gan.d_loss``; -V for the paper's cross
      entropy), ``d_real`` (mean D(x) = sigmoid(logit)), ``d_fake`` (mean D(G(z))) and, when
      on, the unweighted penalties ``d_r1`` and ``d_gp``.
    """
    batch_size = real_images.shape[0]
    noise_key, dropout_key = jax.random.split(key)
    z = gan.sample_noise(noise_key, batch_size)
    fake_labels = _fake_labels(gan, key, batch_size, real_labels)
    # G runs as in training (batch statistics), but G is fixed here: its running averages
    # are updated only by the G step.
    fake_images, _ = gan.generate_train(
        state.g_params, z, labels=fake_labels, batch_stats=state.g_batch_stats
    )
    both = _d_input(gan, real_images, fake_images, key)
    labels = _both_labels(real_labels, fake_labels)

    def loss_fn(d_params):
        objective, loss, real_logits, fake_logits, penalties = _d_objective(
            gan, d_params, both, key, dropout_key, labels
        )
        return objective, (loss, real_logits, fake_logits, penalties)

    (_, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.d_params)
    return _apply_d_grads(gan, state, grads), _d_metrics(*aux)


def _d_input(gan: GAN, real_images: jax.Array, fake_images: jax.Array, key: jax.Array):
    """``[real; fake]`` as D sees them in training (augmented if ``gan.augment_shift``,
    packed if ``gan.pack``).

    One D call on the concatenated batch: D has no batch statistics, so this is the same
    function as two calls, with half the kernel launches (a minibatch standard deviation
    feature groups consecutive rows, within the real or the generated half:
    ``TrainConfig.d_minibatch_std`` divides each half).
    """
    both = jnp.concatenate([real_images.astype(fake_images.dtype), fake_images], axis=0)
    if gan.augment_shift:
        both = gan.augment(jax.random.fold_in(key, _AUGMENT_FOLD), both)
    if gan.pack > 1:  # real rows with real rows, generated with generated
        half = both.shape[0] // 2
        both = jnp.concatenate([gan.pack_samples(both[:half]), gan.pack_samples(both[half:])])
    return both


def _d_objective(gan: GAN, d_params, both: jax.Array, key: jax.Array, dropout_key: jax.Array,
                 labels: jax.Array | None = None):
    """What D's update descends, from D's view of ``[real; fake]`` (``_d_input``: as many
    real rows as generated ones) and, conditional, their ``labels`` ``[real; fake]``.

    Returns ``(objective, loss, real_logits, fake_logits, penalties)``: ``loss`` is
    ``gan.d_loss`` (-V for the paper's cross entropy), ``objective`` is
    ``gan.d_loss_scale * loss`` plus ``gan.r1_gamma / 2`` times R1 on the real rows and
    ``gan.gp_weight`` times WGAN-GP's penalty (``jaxgan.losses``); ``penalties`` holds the
    unweighted penalties that are on, for the metrics. D's dropout (if any) uses
    ``dropout_key``; each penalty's own D calls draw their dropout masks and mixing weights
    from other folds of the update's ``key``; both penalties take D at the real labels.
    """
    logits = gan.discriminate(d_params, both, labels=labels, train=True, key=dropout_key)
    batch_size = both.shape[0] // 2
    real_labels = None if labels is None else labels[:batch_size]
    real_logits, fake_logits = logits[:batch_size], logits[batch_size:]
    loss = losses.discriminator_loss(gan.d_loss)(real_logits=real_logits, fake_logits=fake_logits)
    objective = gan.d_loss_scale * loss
    penalties = {}
    real, fake = both[:batch_size], both[batch_size:]

    def critic(fold):
        return lambda x: gan.discriminate(
            d_params, x, labels=real_labels, train=True, key=jax.random.fold_in(key, fold)
        )

    if gan.r1_gamma:
        penalties["r1"] = losses.r1_penalty(critic(_R1_FOLD), real)
        objective = objective + 0.5 * gan.r1_gamma * penalties["r1"]
    if gan.gp_weight:
        penalties["gp"] = losses.gradient_penalty(
            critic(_GP_FOLD), real, fake, jax.random.fold_in(key, _GP_MIX_FOLD)
        )
        objective = objective + gan.gp_weight * penalties["gp"]
    return objective, loss, real_logits, fake_logits, penalties


def _d_metrics(loss, real_logits, fake_logits, penalties) -> Metrics:
    return {
        "d_loss": loss,
        "d_real": jnp.mean(jax.nn.sigmoid(real_logits)),
        "d_fake": jnp.mean(jax.nn.sigmoid(fake_logits)),
        **{f"d_{name}": value for name, value in penalties.items()},
    }


def _apply_d_grads(gan: GAN, state: GANState, grads) -> GANState:
    """D's optimizer step: ``d_params`` and ``d_opt_state``."""
    updates, d_opt_state = gan.d_optimizer.update(grads, state.d_opt_state, state.d_params)
    return state.replace(
        d_params=optax.apply_updates(state.d_params, updates), d_opt_state=d_opt_state
    )


def g_step(gan: GAN, state: GANState, key: jax.Array, *, batch_size: int,
           real_labels: jax.Array | None = None):
    """One generator update with D fixed (the last line of Algorithm 1's loop).

    Args:
      gan: the GAN description.
      state: the training state; only G's fields (``g_params``, ``g_opt_state``,
        ``g_batch_stats``, ``g_ema_params``) change.
      key: this update's key (noise, D's dropout and, conditional, the generated labels).
      batch_size: number of noise samples m.
      real_labels: int ``[batch_size]`` labels of a real minibatch, which the generated
        labels permute (``gan.generated_labels == "data"`` only).

    Returns:
      ``(new_state, metrics)`` with ``g_loss`` (the chosen generator loss).
    """
    noise_key, dropout_key = jax.random.split(key)
    z = gan.sample_noise(noise_key, batch_size)
    fake_labels = _fake_labels(gan, key, batch_size, real_labels)
    g_loss_fn = losses.generator_loss(gan.g_loss)

    def loss_fn(g_params):
        fake_images, batch_stats = gan.generate_train(
            g_params, z, labels=fake_labels, batch_stats=state.g_batch_stats
        )
        if gan.augment_shift:
            fake_images = gan.augment(jax.random.fold_in(key, _AUGMENT_FOLD), fake_images)
        fake_images = gan.pack_samples(fake_images)
        fake_logits = gan.discriminate(
            state.d_params, fake_images, labels=fake_labels, train=True, key=dropout_key
        )
        return g_loss_fn(fake_logits=fake_logits), batch_stats

    (loss, g_batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.g_params)
    return _apply_g_grads(gan, state, grads, g_batch_stats), {"g_loss": loss}


def _apply_g_grads(gan: GAN, state: GANState, grads, g_batch_stats) -> GANState:
    """G's optimizer step, new batch statistics and EMA: every G field of the state."""
    updates, g_opt_state = gan.g_optimizer.update(grads, state.g_opt_state, state.g_params)
    g_params = optax.apply_updates(state.g_params, updates)
    g_ema_params = state.g_ema_params
    if gan.ema_decay is not None:
        # Warm-up (as tf.train.ExponentialMovingAverage with num_updates): early on, when the
        # EMA would still be dominated by the random initialization, it follows G closely.
        t = state.step.astype(jnp.float32)
        decay = jnp.minimum(gan.ema_decay, (1.0 + t) / (10.0 + t))
        g_ema_params = optax.incremental_update(g_params, g_ema_params, 1.0 - decay)
    return state.replace(
        g_params=g_params,
        g_opt_state=g_opt_state,
        g_batch_stats=g_batch_stats,
        g_ema_params=g_ema_params,
    )


def simultaneous_step(gan: GAN, state: GANState, real_images: jax.Array, key: jax.Array,
                      real_labels: jax.Array | None = None):
    """One simultaneous update of both players (the paper's released MNIST code).

    One batch of noise, one generated batch G(z) (G in training mode) and one D call on
    ``[real; G(z)]`` with one dropout key; D's loss (times ``gan.d_loss_scale``) and G's loss
    both read those logits, so G's loss sees the fakes through the same dropout mask as D's
    fake term. Both gradients are taken at the current parameters (one forward pass, two
    backward passes) and both optimizers step: G's update uses D from before this step.

    Args:
      gan: the GAN description.
      state: the training state.
      real_images: ``[batch, *gan.data_shape]`` in ``gan.output_range``.
      key: this step's key, split as ``d_step`` splits its key (noise, dropout, labels), so
        that the D half equals ``d_step`` with the same key.
      real_labels: int ``[batch]`` (conditional GANs only).

    Returns:
      ``(new_state, metrics)`` with ``d_loss``, ``d_real``, ``d_fake`` (and penalties) as
      ``d_step``'s and ``g_loss`` (all at the parameters before the update).
    """
    batch_size = real_images.shape[0]
    noise_key, dropout_key = jax.random.split(key)
    z = gan.sample_noise(noise_key, batch_size)
    fake_labels = _fake_labels(gan, key, batch_size, real_labels)
    labels = _both_labels(real_labels, fake_labels)
    g_loss_fn = losses.generator_loss(gan.g_loss)

    def both_losses(d_params, g_params):
        fake_images, g_batch_stats = gan.generate_train(
            g_params, z, labels=fake_labels, batch_stats=state.g_batch_stats
        )
        objective, d_loss, real_logits, fake_logits, penalties = _d_objective(
            gan, d_params, _d_input(gan, real_images, fake_images, key), key, dropout_key,
            labels,
        )
        g_loss = g_loss_fn(fake_logits=fake_logits)
        return (objective, g_loss), (d_loss, real_logits, fake_logits, penalties, g_batch_stats)

    (_, g_loss), pullback, (*d_aux, g_batch_stats) = jax.vjp(
        both_losses, state.d_params, state.g_params, has_aux=True
    )
    one, zero = jnp.ones((), jnp.float32), jnp.zeros((), jnp.float32)
    d_grads, _ = pullback((one, zero))
    _, g_grads = pullback((zero, one))
    new_state = _apply_g_grads(gan, _apply_d_grads(gan, state, d_grads), g_grads, g_batch_stats)
    return new_state, {**_d_metrics(*d_aux), "g_loss": g_loss}


def train_step(gan: GAN, state: GANState, real_images: jax.Array,
               real_labels: jax.Array | None = None):
    """One iteration of Algorithm 1: ``gan.d_steps`` D updates, then one G update (or, with
    ``gan.update == "simultaneous"``, one ``simultaneous_step`` with the first D key).

    Args:
      gan: the GAN description.
      state: the training state.
      real_images: ``[d_steps, batch, *gan.data_shape]``, one data minibatch per D update
        (or ``[batch, *gan.data_shape]`` when ``d_steps == 1``), in ``gan.output_range``.
      real_labels: a conditional GAN's labels of those images, int ``[d_steps, batch]``
        (or ``[batch]``); ``None`` (required) for an unconditional one.

    Returns:
      ``(new_state, metrics)``: the state with ``step`` advanced by one, and the last D
      update's ``d_loss``, ``d_real``, ``d_fake`` with the G update's ``g_loss``.
    """
    data_shape = tuple(gan.data_shape)
    if real_images.ndim == len(data_shape) + 1:
        real_images = real_images[None]
        real_labels = None if real_labels is None else real_labels[None]
    if real_images.shape[0] != gan.d_steps or real_images.shape[2:] != data_shape:
        raise ValueError(
            f"train_step needs {gan.d_steps} minibatches (one per D step) of samples "
            f"{data_shape}: real_images [{gan.d_steps}, batch, *{data_shape}], "
            f"got shape {real_images.shape}"
        )
    if gan.num_classes and (real_labels is None or real_labels.shape != real_images.shape[:2]):
        raise ValueError(
            f"a conditional GAN's train_step needs real_labels {list(real_images.shape[:2])} "
            f"(one label per real image), got "
            f"{None if real_labels is None else list(real_labels.shape)}"
        )
    if not gan.num_classes and real_labels is not None:
        raise ValueError("this GAN is unconditional (num_classes 0): pass no real_labels")
    labels = (lambda i: None) if real_labels is None else (lambda i: real_labels[i])
    d_keys, g_key = step_keys(state, gan.d_steps)
    if gan.update == "simultaneous":
        state, metrics = simultaneous_step(gan, state, real_images[0], d_keys[0], labels(0))
        return state.replace(step=state.step + 1), metrics
    metrics: Metrics = {}
    # A Python loop, unrolled at trace time: k is small, and a rolled scan of conv steps is
    # much slower on XLA:CPU (jaxgan.multistep says more).
    for i in range(gan.d_steps):
        state, metrics = d_step(gan, state, real_images[i], d_keys[i], labels(i))
    # The generated labels of "data" permute the last minibatch's.
    g_labels = labels(gan.d_steps - 1) if gan.generated_labels == "data" else None
    state, g_metrics = g_step(gan, state, g_key, batch_size=real_images.shape[1],
                              real_labels=g_labels)
    return state.replace(step=state.step + 1), {**metrics, **g_metrics}
