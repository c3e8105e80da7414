"""ELECTRA pretraining: a small generator (masked LM) and a discriminator (replaced-token
detection) trained jointly, as in Clark et al. (2020).

One step, on a batch already masked by the input pipeline (`data/pretraining.py`):
1. the generator predicts the original ids at the masked positions (MLM loss);
2. a replacement is sampled there from the generator (no gradient);
3. the discriminator sees the corrupted sequence and labels every real token
   "replaced" (sample != original; a sample equal to the original is "original");
4. loss = generator_weight · MLM + discriminator_weight · RTD.

The two networks share one `ElectraEmbeddings` (token, position and segment tables
and the embedding LayerNorm): the same variables, not copies.

The pure tensor functions (`sample_from_logits`, `scatter_at_positions`,
`replaced_token_labels`, `temperature_at`, `sampler_logits`, `unigram_log_prior`,
`draw_replacements`, `span_offsets`) are kept separate and tested alone.

With `sampling_passes` > 1, step 2 fills runs of adjacent masked positions (a whole
masked word, under whole-word masking) left to right: pass k draws the k-th position
of every run with the generator reading the earlier passes' samples, so a replaced
multi-piece word is spelled by a generator that saw its first pieces.

`MaskedLMPretrainer` is the control: the discriminator's architecture trained as a
BERT-style masked LM on the same batches (`pretraining.objective = "mlm"`). Both share
`_Pretrainer`'s step (accumulation, distribution, global metrics).

Distribution (any `tf.distribute` strategy, through `model.fit`): the losses are
global weighted means (`models/losses.py`), so a step over R replicas, or over N
accumulated micro-batches, is the step one device would take on the whole global
batch. The generator's samples come from uniforms keyed by (seed, step, row of the
global batch), so they do not depend on the split either; dropout masks do (Keras
draws them per replica), so exact equality across splits needs dropout 0.
"""

import math
import random

import keras
import tensorflow as tf

from electra_tf import schema
from electra_tf.models.encoder import ElectraEncoder
from electra_tf.models.heads import MaskedLMHead, ReplacedTokenHead
from electra_tf.models import losses, steps
from electra_tf.models.losses import binary_entropy, ranking_auc

# === Pure tensor functions ===


def sample_from_logits(logits, temperature, uniform):
    """Draws one id per row from softmax(logits / temperature) by inverting its CDF.

    One uniform number per row, rather than Gumbel-max's one per vocabulary entry,
    is what lets the pretrainer draw the numbers of a whole global batch from
    (seed, step) on every replica and keep only its own rows: the samples then do
    not depend on how the batch is split over replicas or micro-batches.

    Everything is float32. An id whose probability underflows to 0 has an empty
    CDF interval, so it is never drawn; any other id's probability is off by at
    most half a float32 ulp of the CDF there (below 3e-8).

    Args:
      logits: float `[batch, num_predictions, vocab]`.
      temperature: positive float.
      uniform: float32 `[batch, num_predictions]` in [0, 1).

    Returns:
      int32 `[batch, num_predictions]`.
    """
    probs = tf.nn.softmax(tf.cast(logits, tf.float32) / temperature, axis=-1)
    cdf = tf.cumsum(probs, axis=-1)
    # Scaled by the CDF's own total: float rounding leaves it slightly off 1.
    threshold = tf.cast(uniform, tf.float32)[..., tf.newaxis] * cdf[..., -1:]
    # Id i is drawn when cdf[i-1] <= threshold < cdf[i].
    drawn = tf.reduce_sum(tf.cast(cdf <= threshold, tf.int32), axis=-1)
    # Only a threshold rounded up to the total itself can count every entry.
    return tf.minimum(drawn, tf.shape(logits)[-1] - 1)


def scatter_at_positions(token_ids, positions, values, weights):
    """Writes `values` into `token_ids` at `positions` where `weights` > 0.

    Padded prediction slots (weight 0) point at position 0 by the pipeline's
    convention; they write back the id already there, so they change nothing.

    Args:
      token_ids: int `[batch, seq_len]`.
      positions: int `[batch, num_predictions]`.
      values: int `[batch, num_predictions]`, same dtype as token_ids.
      weights: float `[batch, num_predictions]`.

    Returns:
      `[batch, seq_len]`, token_ids with the updates.
    """
    current = tf.gather(token_ids, positions, batch_dims=1)
    values = tf.where(weights > 0, tf.cast(values, token_ids.dtype), current)
    batch_index = tf.broadcast_to(
        tf.range(tf.shape(positions)[0], dtype=positions.dtype)[:, None], tf.shape(positions)
    )
    indices = tf.stack([batch_index, positions], axis=-1)
    return tf.tensor_scatter_nd_update(token_ids, indices, values)


def replaced_token_labels(corrupted_ids, original_ids, padding_mask):
    """1.0 where the discriminator input differs from the original text, else 0.0.

    Args:
      corrupted_ids, original_ids: int `[batch, seq_len]`.
      padding_mask: bool `[batch, seq_len]`; padding is never "replaced".

    Returns:
      float32 `[batch, seq_len]`.
    """
    replaced = tf.logical_and(tf.not_equal(corrupted_ids, original_ids), padding_mask)
    return tf.cast(replaced, tf.float32)


def temperature_at(step, temperature, temperature_schedule="constant", temperature_end=1.0,
                   temperature_decay_start=0, temperature_decay_steps=0):
    """The sampling temperature at global `step` (see `config.PretrainingConfig`).

    Returns:
      float32 scalar: `temperature` until `temperature_decay_start`, then moving to
      `temperature_end` over `temperature_decay_steps` steps, linearly or along a
      half cosine, and `temperature_end` after that.
    """
    if temperature_schedule == "constant":
        return tf.constant(temperature, tf.float32)
    if temperature_schedule not in ("linear", "cosine"):
        raise ValueError(f"unknown temperature_schedule {temperature_schedule!r}; expected "
                         "constant, linear or cosine")
    if temperature_decay_steps <= 0:
        raise ValueError(f"temperature_schedule {temperature_schedule!r} needs "
                         f"temperature_decay_steps > 0, got {temperature_decay_steps}")
    progress = tf.clip_by_value(
        (tf.cast(step, tf.float32) - float(temperature_decay_start))
        / float(temperature_decay_steps), 0.0, 1.0)
    if temperature_schedule == "cosine":
        progress = 0.5 * (1.0 - tf.cos(math.pi * progress))
    return temperature + (temperature_end - temperature) * progress


def sampler_logits(logits, original_ids, disallow_correct=False, top_k=0):
    """The generator's logits as the sampler draws from them.

    Args:
      logits: float `[batch, num_predictions, vocab]` (no gradient flows through).
      original_ids: int `[batch, num_predictions]`, the masked positions' originals.
      disallow_correct: never sample the original token (Google's option), so every
        masked position is replaced.
      top_k: keep only the k most probable ids of each row (0: all). Applied after
        `disallow_correct`, so the original is not one of the k.

    Returns:
      float32 `[batch, num_predictions, vocab]`.
    """
    logits = tf.cast(tf.stop_gradient(logits), tf.float32)
    if disallow_correct:
        # A large finite penalty, as Google's code does: -inf would make a row whose
        # only probable token is the original one all-NaN after the softmax.
        logits -= 1000.0 * tf.one_hot(original_ids, tf.shape(logits)[-1])
    if top_k:
        # A temperature above 1 flattens the whole tail, and the discriminator then
        # learns that rare tokens are often replacements; truncating first flattens
        # only among the ids the generator finds plausible here.
        k = min(top_k, logits.shape[-1]) if logits.shape[-1] is not None else top_k
        kth = tf.math.top_k(logits, k=k, sorted=True).values[..., -1:]
        logits = tf.where(logits < kth, logits - 1e4, logits)
    return logits


def unigram_log_prior(counts):
    """Log frequencies, float32 `[vocab]`, from token counts `[vocab]`; half a count is
    added to each, so an unseen id stays drawable, rarely."""
    counts = tf.cast(counts, tf.float32) + 0.5
    return tf.math.log(counts / tf.reduce_sum(counts))


def draw_replacements(logits, original_ids, temperature, uniform, disallow_correct=False,
                      top_k=0, log_prior=None):
    """One replacement per prediction slot from the generator's logits.

    Args:
      logits: float `[batch, num_predictions, vocab]`.
      original_ids: int `[batch, num_predictions]`.
      temperature: float or float32 scalar tensor.
      uniform: float32 `[batch, num_predictions]` in [0, 1).
      disallow_correct, top_k: see `sampler_logits`.
      log_prior: float32 `[vocab]` log frequencies to flatten toward (None: uniform):
        the draw is from p^(1/T) * prior^(1 - 1/T).

    Returns:
      int32 `[batch, num_predictions]`.
    """
    logits = sampler_logits(logits, original_ids, disallow_correct, top_k)
    if log_prior is not None:
        # (logits + (T - 1) log u) / T = logits / T + (1 - 1/T) log u.
        logits += (temperature - 1.0) * tf.cast(log_prior, tf.float32)
    return sample_from_logits(logits, temperature, uniform)


def span_offsets(positions, weights, seq_len, max_offset):
    """How many masked positions come right before each prediction slot, capped.

    Args:
      positions: int `[batch, num_predictions]`.
      weights: float `[batch, num_predictions]` (0: a padded slot).
      seq_len: int, the sequence length `L`.
      max_offset: the cap (a Python int >= 0).

    Returns:
      int32 `[batch, num_predictions]`: 0 for a slot whose left neighbour is not
      masked, k for the (k+1)-th masked position of a run, at most `max_offset`.
    """
    positions = tf.cast(positions, tf.int32)
    masked = tf.reduce_max(
        tf.one_hot(positions, seq_len) * tf.cast(weights > 0, tf.float32)[..., None], axis=1)
    run = masked
    count = tf.zeros_like(masked)
    for shift in range(1, max_offset + 1):
        # Position i is at least `shift` into a run when i - shift .. i are all masked.
        run = run * tf.pad(masked[:, :-shift], [[0, 0], [shift, 0]])
        count += run
    return tf.cast(tf.gather(count, positions, batch_dims=1), tf.int32)


def with_replacements(inputs, sampled):
    """The discriminator's batch: `sampled` `[batch, num_predictions]` written into the
    text at the masked positions.

    Returns:
      dict: disc_inputs (token_ids = corrupted_ids, segment_ids, padding_mask bool),
      sampled_ids `[B, P]`, original_ids, corrupted_ids `[B, L]`, rtd_labels float32
      `[B, L]`.
    """
    masked_ids = inputs[schema.TOKEN_IDS]
    positions = inputs[schema.MASK_POSITIONS]
    mask_weights = inputs[schema.MASK_WEIGHTS]
    padding_mask = tf.cast(inputs[schema.PADDING_MASK], tf.bool)
    original_ids = scatter_at_positions(
        masked_ids, positions, tf.cast(inputs[schema.MASK_IDS], masked_ids.dtype), mask_weights)
    corrupted_ids = scatter_at_positions(masked_ids, positions, sampled, mask_weights)
    return {
        "disc_inputs": {
            schema.TOKEN_IDS: corrupted_ids,
            schema.SEGMENT_IDS: inputs[schema.SEGMENT_IDS],
            schema.PADDING_MASK: padding_mask,
        },
        "sampled_ids": sampled,
        "original_ids": original_ids,
        "corrupted_ids": corrupted_ids,
        "rtd_labels": replaced_token_labels(corrupted_ids, original_ids, padding_mask),
    }


def corrupt(inputs, mlm_logits, temperature, uniform, disallow_correct=False, top_k=0,
            log_prior=None):
    """The discriminator's batch: one draw from the generator at every masked position.

    Args:
      inputs: a pretraining batch (token_ids with [MASK]s, segment_ids, padding_mask,
        mask_positions, mask_ids, mask_weights; see `electra_tf/schema.py`).
      mlm_logits: the generator's logits `[batch, num_predictions, vocab]` (no
        gradient flows through the sampling).
      temperature: sampling temperature (float or float32 scalar tensor).
      uniform: float32 `[batch, num_predictions]` in [0, 1), the sampling noise.
      disallow_correct, top_k, log_prior: see `draw_replacements`.

    Returns:
      `with_replacements`'s dict.
    """
    return with_replacements(inputs, draw_replacements(
        mlm_logits, inputs[schema.MASK_IDS], temperature, uniform, disallow_correct, top_k,
        log_prior))


# === Generator and discriminator ===


@keras.saving.register_keras_serializable(package="electra_tf")
class ElectraDiscriminator(keras.Model):
    """Encoder + replaced-token head: the model ELECTRA users keep and fine-tune.

    Args:
      encoder_config: dict of `ElectraEncoder` keyword arguments
        (`dataclasses.asdict(ModelConfig.discriminator_encoder())`).

    Call args:
      inputs: dict with token_ids, segment_ids `[batch, seq_len]` int and
        padding_mask `[batch, seq_len]` bool.

    Returns:
      float32 logits `[batch, seq_len]` (positive: "replaced").
    """

    def __init__(self, encoder_config, **kwargs):
        super().__init__(**kwargs)
        self.encoder_config = dict(encoder_config)
        self.encoder = ElectraEncoder(**self.encoder_config, name="encoder")
        self.rtd_head = ReplacedTokenHead(
            hidden_activation=self.encoder_config.get("hidden_activation", "gelu"),
            initializer_range=self.encoder_config.get("initializer_range", 0.02),
            name="rtd_head",
        )

    @property
    def embeddings(self):
        return self.encoder.embeddings

    def call(self, inputs, training=None):
        return self.rtd_head(self.encoder(inputs, training=training))

    def get_config(self):
        return {**super().get_config(), "encoder_config": self.encoder_config}


@keras.saving.register_keras_serializable(package="electra_tf")
class ElectraGenerator(keras.Model):
    """Encoder + masked-LM head tied to the (shared) token embedding table.

    Args:
      encoder_config: dict of `ElectraEncoder` keyword arguments
        (`dataclasses.asdict(ModelConfig.generator_encoder())`).
      embeddings: an `ElectraEmbeddings` to share (the discriminator's); None
        builds the generator's own, as when it is loaded alone.

    Call args:
      inputs: the encoder inputs plus mask_positions int `[batch, num_predictions]`.

    Returns:
      float32 logits `[batch, num_predictions, vocab]`.
    """

    def __init__(self, encoder_config, embeddings=None, **kwargs):
        super().__init__(**kwargs)
        self.encoder_config = dict(encoder_config)
        self.encoder = ElectraEncoder(**self.encoder_config, embeddings=embeddings, name="encoder")
        self.mlm_head = MaskedLMHead(
            self.encoder.embeddings.token_embedding,
            layer_norm_epsilon=self.encoder_config.get("layer_norm_epsilon", 1e-12),
            initializer_range=self.encoder_config.get("initializer_range", 0.02),
            name="mlm_head",
        )

    def call(self, inputs, training=None):
        sequence = self.encoder(inputs, training=training)
        return self.mlm_head(sequence, inputs[schema.MASK_POSITIONS])

    def get_config(self):
        # The shared embedding is not serialized: a generator loaded alone owns its own.
        return {**super().get_config(), "encoder_config": self.encoder_config}


# === Pretrainers ===

# Which global count each loss is a mean over: masked predictions or real tokens.
_PREDICTIONS, _TOKENS = 0, 1
_LOSS_COUNT = {"mlm": _PREDICTIONS, "rtd": _TOKENS}


class _Pretrainer(steps.ReplicaJitCompile, keras.Model):
    """The train step both pretrainers share, through `model.fit`; `compile` takes
    `jit_compile` for each replica's pass (`steps.ReplicaJitCompile`).

    A subclass defines `_forward` (the objective's outputs), `_objective_losses`
    (named losses, each this replica's share of a global mean, "mlm" over masked
    predictions and "rtd" over real tokens) and `_update_token_metrics`, and passes
    the losses' weights and its token metrics' names. This class splits the step into micro-batches,
    draws the sampling noise from (seed, step), sums gradients, applies one update
    and reports every metric over all replicas.

    Args:
      loss_weights: {loss name: weight in the total loss}.
      token_metric_names: the subclass's metrics besides the losses.
      seed: seed of the sampling noise (None: drawn from Python's `random`).
      grad_accum_steps: each train step splits its batch into this many
        micro-batches, one forward/backward pass each, and applies one update:
        the same update as the whole batch in one pass, with the activation
        memory of one micro-batch. The per-replica batch must be divisible by it.
    """

    def __init__(self, loss_weights, token_metric_names, seed=None, grad_accum_steps=1,
                 **kwargs):
        super().__init__(**kwargs)
        if grad_accum_steps < 1:
            raise ValueError(f"grad_accum_steps must be >= 1, got {grad_accum_steps}")
        self.seed = seed
        self.grad_accum_steps = grad_accum_steps
        self._sampling_key = seed if seed is not None else random.randrange(2**31)
        self._built_from_spec = False
        # Noise of `call`/`evaluate`; training draws its own from (seed, step).
        self.sampling_seed = keras.random.SeedGenerator(seed)
        self._loss_weights = dict(loss_weights)
        names = ["loss", *(f"{name}_loss" for name in loss_weights), *token_metric_names]
        self._trackers = {name: keras.metrics.Mean(name=name) for name in names}

    @property
    def metrics(self):
        return list(self._trackers.values())

    @property
    def draws_per_prediction(self):
        """Uniforms per prediction slot and step (a subclass's sampling passes)."""
        return 1

    def call(self, inputs, training=None):
        """Runs the whole objective. Returns a dict of tensors (see `_forward`)."""
        return self._forward(inputs, self._fresh_uniform(inputs), training=training)

    def _noise_shape(self, inputs):
        shape = tf.shape(inputs[schema.MASK_POSITIONS])
        return tf.stack([shape[0], shape[1] * self.draws_per_prediction])

    def _fresh_uniform(self, inputs):
        return keras.random.uniform(
            self._noise_shape(inputs), dtype="float32", seed=self.sampling_seed
        )

    def _step_uniform(self, inputs):
        """This replica's rows of the step's sampling noise,
        `[batch, num_predictions * draws_per_prediction]`.

        The noise of the whole global batch, `[replicas * batch, P * draws]`, is drawn from
        (seed, step) on every replica (it is small), and replica r keeps rows
        `[r * batch, (r + 1) * batch)`: the global batch is the replicas' batches
        in replica order, as `distribute_datasets_from_function` deals them out.
        """
        context = tf.distribute.get_replica_context()
        shape = self._noise_shape(inputs)
        seed = tf.stack([
            tf.constant(self._sampling_key, tf.int64),
            tf.cast(self.optimizer.iterations, tf.int64),
        ])
        # Philox by name: "auto_select" picks another generator inside XLA, and
        # the noise would change with jit_compile.
        noise = tf.random.stateless_uniform(
            tf.stack([context.num_replicas_in_sync * shape[0], shape[1]]), seed, alg="philox"
        )
        first_row = tf.cast(context.replica_id_in_sync_group, tf.int32) * shape[0]
        return tf.slice(noise, tf.stack([first_row, 0]), shape)

    def _update_mlm_accuracy(self, inputs, mlm_logits):
        mlm_correct = tf.cast(
            tf.equal(
                tf.argmax(mlm_logits, axis=-1, output_type=tf.int32),
                tf.cast(inputs[schema.MASK_IDS], tf.int32),
            ),
            tf.float32,
        )
        self._trackers["mlm_accuracy"].update_state(
            mlm_correct, sample_weight=tf.cast(inputs[schema.MASK_WEIGHTS], tf.float32))

    def _step_statistics(self, inputs, outputs):
        """Float32 `[k]` sums over a micro-batch, added up over the step (none here)."""
        return tf.zeros([0])

    def _step_rankings(self, inputs, outputs):
        """Float32 `[n, 3]` (score, label, weight) rows of a micro-batch, gathered over
        the step's micro-batches and replicas for a whole-batch ranking metric (none
        here)."""
        return tf.zeros([0, 3])

    def _update_ranking_metrics(self, rankings):
        """Metrics of the whole global batch's `_step_rankings`, `[n, 3]` (none here)."""
        del rankings

    def _update_loss_metrics(self, totals, statistics):
        """loss and the named losses, from this replica's shares of the global means.

        Args:
          totals: {name: this replica's share of the step's global mean}.
          statistics: this replica's `_step_statistics`, summed over micro-batches.
        """
        del statistics
        total = sum(self._loss_weights[name] * value for name, value in totals.items())
        self._trackers["loss"].update_state(losses.metric_value(total))
        for name, value in totals.items():
            self._trackers[f"{name}_loss"].update_state(losses.metric_value(value))

    def _step_logs(self):
        return {"learning_rate": self.optimizer.learning_rate}

    def _metric_results(self):
        """Each metric over all replicas, the same value on every replica.

        Keras reports the mean of the replicas' own results, which for a weighted
        mean (an accuracy over unequal token counts) is not the global value; the
        sums behind each mean are all-reduced instead.
        """
        sums = tf.stack([
            tf.stack([tf.convert_to_tensor(t.total), tf.convert_to_tensor(t.count)])
            for t in self._trackers.values()
        ])
        sums = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, sums)
        return {
            name: tf.math.divide_no_nan(sums[i, 0], sums[i, 1])
            for i, name in enumerate(self._trackers)
        }

    def _micro_batch_shares(self, micro_batches):
        """Each micro-batch's share of the global prediction and token counts.

        `losses` divide each micro-batch by its own global count; multiplying by
        this share turns that into a division by the whole batch's count, so the
        accumulated loss is the mean over the whole batch, not a mean of means.

        Returns:
          float32 `[num_micro_batches, 2]`: (predictions, tokens) shares.
        """
        local = tf.stack([
            tf.stack([
                tf.reduce_sum(tf.cast(batch[schema.MASK_WEIGHTS], tf.float32)),
                tf.reduce_sum(tf.cast(batch[schema.PADDING_MASK], tf.float32)),
            ])
            for batch in micro_batches
        ])
        counts = tf.distribute.get_replica_context().all_reduce(
            tf.distribute.ReduceOp.SUM, local
        )
        return tf.math.divide_no_nan(counts, tf.reduce_sum(counts, axis=0, keepdims=True))

    def train_step(self, data):
        forward = self._forward
        if self.replica_jit_compile:
            # The cross-replica sums of the losses stay outside XLA; the gradient
            # of a jit-compiled function is compiled too.
            forward = tf.function(self._forward, jit_compile=True)
        micro_batches = steps.split_rows(data, self.grad_accum_steps)
        uniforms = tf.split(self._step_uniform(data), self.grad_accum_steps)
        if self.grad_accum_steps == 1:
            shares = tf.ones([1, 2])
        else:
            shares = self._micro_batch_shares(micro_batches)
        grads = None
        totals = {name: 0.0 for name in self._loss_weights}
        statistics, rankings = 0.0, []
        for k, (batch, uniform) in enumerate(zip(micro_batches, uniforms)):
            batch = steps.after_gradients(grads, batch)
            with tf.GradientTape() as tape:
                outputs = forward(batch, uniform, training=True)
                parts = {name: value * shares[k, _LOSS_COUNT[name]]
                         for name, value in self._objective_losses(batch, outputs).items()}
                loss = sum(self._loss_weights[name] * value for name, value in parts.items())
                scaled = self.optimizer.scale_loss(loss)
            # Read after the forward pass, which builds a model not built yet.
            variables = self.trainable_variables
            grads = steps.accumulate(grads, tape.gradient(scaled, variables))
            self._update_token_metrics(batch, outputs)
            totals = {name: totals[name] + parts[name] for name in totals}
            statistics += self._step_statistics(batch, outputs)
            rankings.append(self._step_rankings(batch, outputs))
        self._update_loss_metrics(totals, statistics)
        self._update_ranking_metrics(self._gather_rankings(rankings))
        self.optimizer.apply(steps.agree_on_finiteness(self.optimizer, grads), variables)
        return steps.reducible_logs(
            self.distribute_strategy, {**self._metric_results(), **self._step_logs()})

    def _gather_rankings(self, rankings):
        """This step's ranking rows of every micro-batch and replica, `[n, 3]`: a
        ranking metric over them does not depend on how the batch was split."""
        return tf.distribute.get_replica_context().all_gather(tf.concat(rankings, 0), axis=0)

    def test_step(self, data):
        outputs = self._forward(data, self._fresh_uniform(data), training=False)
        self._update_token_metrics(data, outputs)
        self._update_loss_metrics(self._objective_losses(data, outputs),
                                  self._step_statistics(data, outputs))
        self._update_ranking_metrics(self._gather_rankings([self._step_rankings(data, outputs)]))
        return steps.reducible_logs(self.distribute_strategy, self._metric_results())

    def build_from_spec(self, element_spec):
        """Creates every variable by tracing one call on zeros shaped like a batch.

        Needed before `fit` under a distribution strategy (and before restoring a
        checkpoint): variables cannot be created inside the replicated step.

        Args:
          element_spec: the dataset's `element_spec` (dict of `tf.TensorSpec`).
        """
        dummy = {
            name: tf.zeros([1 if d is None else d for d in spec.shape], spec.dtype)
            for name, spec in element_spec.items()
        }
        self._forward(dummy, self._fresh_uniform(dummy), training=False)
        self._built_from_spec = True

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Under a strategy, Keras would average a first batch over the replicas
        # to build the model symbolically, which fails on the bool padding_mask.
        if self._distribute_strategy is None or self._built_from_spec:
            return
        raise RuntimeError(
            f"{type(self).__name__} under a distribution strategy: call "
            "build_from_spec(dataset.element_spec) inside strategy.scope() before "
            "fit or evaluate"
        )

    def get_config(self):
        return {**super().get_config(), "seed": self.seed,
                "grad_accum_steps": self.grad_accum_steps}


@keras.saving.register_keras_serializable(package="electra_tf")
class ElectraPretrainer(_Pretrainer):
    """Generator and discriminator trained jointly through `model.fit`.

    Args:
      generator_config: `ElectraEncoder` kwargs for the generator.
      discriminator_config: `ElectraEncoder` kwargs for the discriminator; the
        embedding sizes must match the generator's (they share the embeddings).
      temperature, temperature_schedule, temperature_end, temperature_decay_start,
        temperature_decay_steps: the generator's sampling temperature over the
        global step (`temperature_at`; `config.PretrainingConfig`).
      disallow_correct: never sample the original token.
      sampling_top_k: sample among the generator's k most probable ids (0: all).
      flatten_toward: "uniform" (the paper) or "unigram": a temperature T samples
        from p^(1/T) * u^(1 - 1/T), u the unigram distribution `set_unigram_counts`
        sets (a non-trainable weight, so checkpoints keep it).
      sampling_passes: generator passes that draw the replacements; pass k > 1
        draws the k-th position of each run of adjacent masked positions (and the
        ones after it) given the earlier passes' samples (1: one pass, as the paper).
      generator_weight: weight of the MLM loss.
      discriminator_weight: weight of the RTD loss.
      seed, grad_accum_steps: see `_Pretrainer`.

    Inputs (`fit`/`evaluate` batches): dicts from
    `data.pretraining.make_pretraining_dataset` (feature names in `electra_tf/schema.py`).
    Before `fit` under a distribution strategy, call `build_from_spec`.

    Metrics: loss, mlm_loss, rtd_loss, mlm_accuracy, rtd_accuracy, rtd_precision,
    rtd_recall (both on the "replaced" class), replaced_fraction, rtd_auc (ranking
    AUC of replaced against original tokens of each step's global batch, [CLS]/[SEP]
    included),
    rtd_prior_gap (entropy of the step's replaced fraction minus rtd_loss, in nats:
    what the discriminator knows beyond the constant prior), temperature,
    learning_rate.
    """

    METRIC_NAMES = ("mlm_accuracy", "rtd_accuracy", "rtd_precision", "rtd_recall",
                    "replaced_fraction", "rtd_auc", "rtd_prior_gap")

    def __init__(
        self,
        generator_config,
        discriminator_config,
        temperature=1.0,
        generator_weight=1.0,
        discriminator_weight=50.0,
        seed=None,
        grad_accum_steps=1,
        temperature_schedule="constant",
        temperature_end=1.0,
        temperature_decay_start=0,
        temperature_decay_steps=0,
        disallow_correct=False,
        sampling_top_k=0,
        sampling_passes=1,
        flatten_toward="uniform",
        **kwargs,
    ):
        super().__init__({"mlm": generator_weight, "rtd": discriminator_weight},
                         self.METRIC_NAMES, seed=seed, grad_accum_steps=grad_accum_steps,
                         **kwargs)
        self.generator_config = dict(generator_config)
        self.discriminator_config = dict(discriminator_config)
        self.temperature = temperature
        self.temperature_schedule = temperature_schedule
        self.temperature_end = temperature_end
        self.temperature_decay_start = temperature_decay_start
        self.temperature_decay_steps = temperature_decay_steps
        self.disallow_correct = disallow_correct
        if sampling_top_k < 0 or sampling_passes < 1:
            raise ValueError(f"sampling_top_k must be >= 0 and sampling_passes >= 1, got "
                             f"{sampling_top_k} and {sampling_passes}")
        self.sampling_top_k = sampling_top_k
        self.sampling_passes = sampling_passes
        if flatten_toward not in ("uniform", "unigram"):
            raise ValueError(f"flatten_toward must be 'uniform' or 'unigram', got "
                             f"{flatten_toward!r}")
        self.flatten_toward = flatten_toward
        if flatten_toward == "unigram":
            # Log frequencies; zeros (until set) are the uniform distribution.
            self.unigram_log_prior = self.add_weight(
                name="unigram_log_prior", shape=(self.discriminator_config["vocab_size"],),
                initializer="zeros", trainable=False)
        self.generator_weight = generator_weight
        self.discriminator_weight = discriminator_weight

        self.discriminator = ElectraDiscriminator(self.discriminator_config, name="discriminator")
        self.generator = ElectraGenerator(
            self.generator_config, embeddings=self.discriminator.embeddings, name="generator"
        )

    def current_temperature(self):
        """The sampling temperature at the optimizer's step (the start one before it)."""
        optimizer = getattr(self, "optimizer", None)
        step = 0 if optimizer is None else optimizer.iterations
        return temperature_at(
            step, self.temperature, self.temperature_schedule, self.temperature_end,
            self.temperature_decay_start, self.temperature_decay_steps)

    def _forward(self, inputs, uniform, training):
        """One pass of the ELECTRA objective.

        Args:
          inputs: a batch (see the class docstring).
          uniform: float32 `[batch, num_predictions * sampling_passes]` in [0, 1),
            the sampling noise.
          training: Python bool.

        Returns:
          dict: mlm_logits `[B, P, V]` (the first pass's, which the MLM loss
          scores), sampled_ids `[B, P]`, rtd_logits `[B, L]`, rtd_labels `[B, L]`,
          original_ids `[B, L]`, corrupted_ids `[B, L]`.
        """
        mlm_logits = self.generator(inputs, training=training)
        outputs = with_replacements(inputs, self._sample(inputs, mlm_logits, uniform, training))
        disc_inputs = outputs.pop("disc_inputs")
        outputs["mlm_logits"] = mlm_logits
        outputs["rtd_logits"] = self.discriminator(disc_inputs, training=training)
        return outputs

    @property
    def draws_per_prediction(self):
        return self.sampling_passes

    def set_unigram_counts(self, counts):
        """Sets the distribution `flatten_toward="unigram"` flattens toward.

        Args:
          counts: `[vocab_size]` token counts (`data.pretraining.token_counts`), made
            log frequencies by `unigram_log_prior`.
        """
        self.unigram_log_prior.assign(unigram_log_prior(counts))

    def _sample(self, inputs, mlm_logits, uniform, training):
        """The replacements, int32 `[batch, num_predictions]`, drawn in `sampling_passes`."""
        temperature = self.current_temperature()
        uniforms = tf.split(uniform, self.sampling_passes, axis=-1)

        log_prior = self.unigram_log_prior if self.flatten_toward == "unigram" else None

        def draw(logits, noise):
            return draw_replacements(logits, inputs[schema.MASK_IDS], temperature, noise,
                                     self.disallow_correct, self.sampling_top_k, log_prior)

        sampled = draw(mlm_logits, uniforms[0])
        if self.sampling_passes == 1:
            return sampled
        positions = inputs[schema.MASK_POSITIONS]
        weights = inputs[schema.MASK_WEIGHTS]
        offsets = span_offsets(positions, weights, inputs[schema.TOKEN_IDS].shape[1],
                               self.sampling_passes - 1)
        for k in range(1, self.sampling_passes):
            # The slots of earlier passes are written in; the rest stay as masked.
            known = tf.cast(weights, tf.float32) * tf.cast(offsets < k, tf.float32)
            token_ids = scatter_at_positions(inputs[schema.TOKEN_IDS], positions, sampled,
                                             known)
            logits = self.generator({**inputs, schema.TOKEN_IDS: token_ids}, training=training)
            sampled = tf.where(offsets >= k, draw(logits, uniforms[k]), sampled)
        return sampled

    def token_scores(self, inputs, mask_id=None):
        """The discriminator's logits `[batch, seq_len]` (higher: "replaced").

        Args:
          inputs: token_ids, segment_ids `[batch, seq_len]` int, padding_mask bool.
          mask_id: unused (the masked LM's `token_scores` needs it).
        """
        del mask_id
        return self.discriminator(inputs, training=False)

    def _objective_losses(self, inputs, outputs):
        """MLM and RTD losses: this replica's shares of the global means."""
        return {
            "mlm": losses.mlm_loss(
                outputs["mlm_logits"], inputs[schema.MASK_IDS], inputs[schema.MASK_WEIGHTS]),
            "rtd": losses.rtd_loss(
                outputs["rtd_logits"], outputs["rtd_labels"], inputs[schema.PADDING_MASK]),
        }

    def _update_token_metrics(self, inputs, outputs):
        """Accuracies, precision, recall, replaced fraction of this batch's tokens.

        They are weighted means, so updating them once per micro-batch gives the
        same result as once on the whole batch.
        """
        token_weights = tf.cast(inputs[schema.PADDING_MASK], tf.float32)
        labels = outputs["rtd_labels"]
        predicted = tf.cast(outputs["rtd_logits"] > 0.0, tf.float32)
        t = self._trackers
        self._update_mlm_accuracy(inputs, outputs["mlm_logits"])
        t["rtd_accuracy"].update_state(
            tf.cast(tf.equal(predicted, labels), tf.float32), sample_weight=token_weights
        )
        # Precision: of the tokens flagged, how many were replaced; recall: of the
        # replaced tokens, how many were flagged.
        t["rtd_precision"].update_state(labels, sample_weight=predicted * token_weights)
        t["rtd_recall"].update_state(predicted, sample_weight=labels)
        t["replaced_fraction"].update_state(labels, sample_weight=token_weights)

    def _step_rankings(self, inputs, outputs):
        """(logit, replaced, real) of every token of the micro-batch, `[n, 3]`."""
        return tf.stack([
            tf.reshape(tf.cast(outputs["rtd_logits"], tf.float32), [-1]),
            tf.reshape(outputs["rtd_labels"], [-1]),
            tf.reshape(tf.cast(inputs[schema.PADDING_MASK], tf.float32), [-1]),
        ], axis=1)

    def _update_ranking_metrics(self, rankings):
        auc, defined = ranking_auc(rankings[:, 0], rankings[:, 1], rankings[:, 2])
        self._trackers["rtd_auc"].update_state(auc, sample_weight=tf.cast(defined, tf.float32))

    def _step_statistics(self, inputs, outputs):
        """(replaced tokens, real tokens) of this micro-batch."""
        return tf.stack([tf.reduce_sum(outputs["rtd_labels"]),
                         tf.reduce_sum(tf.cast(inputs[schema.PADDING_MASK], tf.float32))])

    def _update_loss_metrics(self, totals, statistics):
        super()._update_loss_metrics(totals, statistics)
        # The constant answer's loss is the entropy of the whole step's replaced
        # fraction, so the counts are summed over replicas before the entropy.
        replaced, tokens = tf.unstack(tf.distribute.get_replica_context().all_reduce(
            tf.distribute.ReduceOp.SUM, statistics))
        prior = binary_entropy(tf.math.divide_no_nan(replaced, tokens))
        self._trackers["rtd_prior_gap"].update_state(
            prior - losses.metric_value(totals["rtd"]))

    def _step_logs(self):
        return {**super()._step_logs(), "temperature": self.current_temperature()}

    def get_config(self):
        return {
            **super().get_config(),
            "generator_config": self.generator_config,
            "discriminator_config": self.discriminator_config,
            "temperature": self.temperature,
            "temperature_schedule": self.temperature_schedule,
            "temperature_end": self.temperature_end,
            "temperature_decay_start": self.temperature_decay_start,
            "temperature_decay_steps": self.temperature_decay_steps,
            "disallow_correct": self.disallow_correct,
            "sampling_top_k": self.sampling_top_k,
            "sampling_passes": self.sampling_passes,
            "flatten_toward": self.flatten_toward,
            "generator_weight": self.generator_weight,
            "discriminator_weight": self.discriminator_weight,
        }


@keras.saving.register_keras_serializable(package="electra_tf")
class MaskedLMPretrainer(_Pretrainer):
    """The MLM control: the discriminator's architecture trained as a BERT-style masked LM.

    Same batches, masking, optimizer and step as `ElectraPretrainer`; the model is an
    `ElectraGenerator` (encoder + MLM head tied to its token embeddings) built with
    the discriminator's encoder config, so its encoder is a drop-in for the
    discriminator's in fine-tuning and export.

    Args:
      encoder_config: `ElectraEncoder` kwargs (the discriminator's).
      seed, grad_accum_steps: see `_Pretrainer` (the noise is unused: nothing is
        sampled).

    Metrics: loss, mlm_loss, mlm_accuracy, learning_rate.
    """

    def __init__(self, encoder_config, seed=None, grad_accum_steps=1, **kwargs):
        super().__init__({"mlm": 1.0}, ("mlm_accuracy",), seed=seed,
                         grad_accum_steps=grad_accum_steps, **kwargs)
        self.encoder_config = dict(encoder_config)
        self.masked_lm = ElectraGenerator(self.encoder_config, name="masked_lm")

    def _forward(self, inputs, uniform, training):
        """Returns {"mlm_logits": `[batch, num_predictions, vocab]`}."""
        del uniform
        return {"mlm_logits": self.masked_lm(inputs, training=training)}

    def token_scores(self, inputs, mask_id, num_passes=8):
        """Each token's surprisal, -log p(token | the rest of the text), `[batch, seq_len]`.

        The masked LM's analogue of a discriminator score: a token that does not fit
        its context is improbable, if the model uses context. Each position is scored
        with itself masked (in `num_passes` passes, each masking every
        `num_passes`-th position): unmasked, a masked LM mostly copies the token it
        sees, which says nothing about context.

        Args:
          inputs: token_ids, segment_ids `[batch, seq_len]` int, padding_mask bool.
          mask_id: the vocabulary's [MASK] id.
          num_passes: forward passes; position i is masked in pass i % num_passes.
        """
        token_ids = tf.cast(inputs[schema.TOKEN_IDS], tf.int32)
        seq_len = token_ids.shape[1]
        scores = tf.zeros(tf.shape(token_ids), tf.float32)
        for k in range(min(num_passes, seq_len)):
            columns = tf.range(k, seq_len, num_passes)
            masked = tf.range(seq_len) % num_passes == k
            positions = tf.broadcast_to(columns, [tf.shape(token_ids)[0], len(columns)])
            logits = self.masked_lm({
                **inputs,
                schema.TOKEN_IDS: tf.where(masked, mask_id, token_ids),
                schema.MASK_POSITIONS: positions,
            }, training=False)
            log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)
            surprisal = -tf.gather(log_probs, tf.gather(token_ids, columns, axis=1),
                                   batch_dims=2)
            # Back to [batch, seq_len]: column c of pass k is position k + c * num_passes.
            scatter = tf.one_hot(columns, seq_len)  # [columns, seq_len]
            scores += tf.matmul(surprisal, scatter)
        return scores

    def _objective_losses(self, inputs, outputs):
        return {"mlm": losses.mlm_loss(
            outputs["mlm_logits"], inputs[schema.MASK_IDS], inputs[schema.MASK_WEIGHTS])}

    def _update_token_metrics(self, inputs, outputs):
        self._update_mlm_accuracy(inputs, outputs["mlm_logits"])

    def get_config(self):
        return {**super().get_config(), "encoder_config": self.encoder_config}
