"""ELECTRA pretraining throughput and MFU, side by side with TF Model Garden and HF PyTorch.

Every system trains ELECTRA-small (configs/electra_small.json: 12 layers, hidden 256,
4 heads, FFN 1024, embedding 128, generator hidden 64 / 1 head / FFN 256, vocab 30522)
in fp32 on the CPU, on the same synthetic batches: random ids masked by electra_tf's
`mask_tokens` (15%, 19 predictions at seq 128). A step is a full training step
(forward, backward, optimizer update); after `--warmup_steps`, `--steps` steps are
timed in `--windows` windows and the median window gives the step time.

Each system runs in its own process (one's threads, memory or crash cannot touch the
next). They warm up one at a time, then take turns window by window, round after
round, so the load of other processes on a shared machine falls on all of them alike:
the ratios are measured side by side, under the same conditions.

One JSON line per system, then a summary line:

  fp32_matmul_peak   TF matmuls of two --peak_size² fp32 matrices, --peak_repeats per
                     step, windows taking turns with the systems; the fastest window
                     is the peak that MFU is measured against
  electra_tf         ElectraPretrainer + make_optimizer through model.fit, built and
                     compiled exactly as tools/pretrain.py does, on --strategy, in
                     --precision, with --jit_compile (default "auto": off on a
                     CPU-only machine); --cpu_replicas=N splits the CPU first
  electra_tf_xla     the same with jit_compile=True (XLA on each replica's step)
  model_garden       official.nlp ElectraPretrainTask.train_step (tf_keras,
                     AdamWeightDecay) in a tf.function; needs tf-models-official
  model_garden_xla   the same step with jit_compile=True
  hf_pytorch         transformers ElectraForMaskedLM + ElectraForPreTraining, shared
                     embeddings, MLM + 50·RTD, torch AdamW; needs transformers + torch

    mfu = flops.electra_step_flops(...).train_flops / step_time / peak

(see benchmarks/flops.py: the model's matmul FLOPs, the same for every system). A peer
that is not installed gets a line with "skipped"; one that fails, "failed" and why.
Run it from a venv with the `bench` extra (see benchmarks/README.md):

    python benchmarks/pretrain_throughput.py [--batch_size=32 --seq_length=128 --steps=6]
    python benchmarks/pretrain_throughput.py --systems=electra_tf,electra_tf_xla \
        --cpu_replicas=2 --strategy=mirrored --precision=mixed_bfloat16

--strategy, --precision, --jit_compile and --cpu_replicas apply to electra_tf and
electra_tf_xla only (the peers always run float32 on one device); their records
carry strategy, replicas and precision, so runs with different settings can be set
side by side. --batch_size is the global batch.
"""

import json
import os
import pathlib
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
sys.path.insert(0, str(REPO_ROOT / "tools"))

from absl import app, flags  # noqa: E402

import flops  # noqa: E402
# --strategy, --tpu, --precision, --jit_compile, --cpu_replicas: tools/pretrain.py's own.
import runtime_flags  # noqa: E402

PEAK = "fp32_matmul_peak"
OURS = ("electra_tf", "electra_tf_xla")
MODEL_GARDEN = ("model_garden", "model_garden_xla")
PYTORCH = "hf_pytorch"
SYSTEMS = OURS + MODEL_GARDEN + (PYTORCH,)
GOAL_VS_MODEL_GARDEN = 1.2
GOAL_VS_PYTORCH = 1.5

# The synthetic ids follow the layout of BERT's uncased vocabulary, the one ELECTRA uses.
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = 0, 100, 101, 102, 103
FIRST_WORD_ID = 999  # Ids below are [unusedN] and single characters.
NUM_DISTINCT_BATCHES = 4

_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Sequences per training step.")
_SEQ_LENGTH = flags.DEFINE_integer("seq_length", 128, "Tokens per sequence.")
_STEPS = flags.DEFINE_integer("steps", 6, "Timed training steps per system.")
_WINDOWS = flags.DEFINE_integer(
    "windows", 3, "The timed steps are split into this many windows; the median "
    "window's step time is reported.")
_WARMUP_STEPS = flags.DEFINE_integer(
    "warmup_steps", 2, "Untimed steps first (tracing, XLA compilation, allocator warm-up).")
_SYSTEMS = flags.DEFINE_list("systems", list(SYSTEMS), f"Any of {', '.join(SYSTEMS)}.")
_CONFIG = flags.DEFINE_string(
    "config", str(REPO_ROOT / "configs" / "electra_small.json"), "Model and optimizer config.")
_PEAK_SIZE = flags.DEFINE_integer("peak_size", 2048, "Side of the square peak matmul.")
_PEAK_REPEATS = flags.DEFINE_integer("peak_repeats", 10, "Peak matmuls per step.")
_TIMEOUT = flags.DEFINE_integer(
    "timeout", 3600, "Seconds a system's process may live (warm-up, waiting for its turns, "
    "timing) before it is killed and reported as failed.")
_TORCH_THREADS = flags.DEFINE_integer(
    "torch_threads", 0, "torch intra-op threads; 0 keeps torch's default (one per core).")
_RUN_ONE = flags.DEFINE_string(
    "run_one", None, "Internal: measure this one system in this process and print its line.")


# === Shared pieces (run in the child processes) ===


def load_config():
    from electra_tf import config as config_lib

    return config_lib.load_config(_CONFIG.value, [
        f"train.batch_size={_BATCH_SIZE.value}", f"data.max_seq_length={_SEQ_LENGTH.value}"])


def synthetic_batches(cfg):
    """`NUM_DISTINCT_BATCHES` masked batches, identical in every process (fixed seeds).

    Returns:
      dict of numpy arrays named by `schema`, leading dimension
      `NUM_DISTINCT_BATCHES * batch_size`: token_ids, segment_ids int32 and
      padding_mask bool `[n, L]`; mask_positions, mask_ids int32 and mask_weights
      float32 `[n, P]`.
    """
    import tensorflow as tf

    from electra_tf import schema

    from electra_tf.data import pretraining

    shape = [NUM_DISTINCT_BATCHES * cfg.train.batch_size, cfg.data.max_seq_length]
    words = tf.random.stateless_uniform(
        shape, seed=[0, 1], minval=FIRST_WORD_ID, maxval=cfg.model.vocab_size, dtype=tf.int32)
    # [CLS] words [SEP], one segment, no padding: every slot is a real token.
    token_ids = tf.concat([tf.fill([shape[0], 1], CLS_ID), words[:, 1:-1],
                           tf.fill([shape[0], 1], SEP_ID)], axis=1)
    padding_mask = tf.ones(shape, tf.bool)
    p = cfg.pretraining
    features = pretraining.mask_tokens(
        token_ids, padding_mask, special_ids=(PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID),
        mask_id=MASK_ID, vocab_size=cfg.model.vocab_size, mask_rate=p.mask_rate,
        mask_token_rate=p.mask_token_rate, random_token_rate=p.random_token_rate,
        max_predictions=cfg.max_predictions, seed=tf.constant([0, 2], tf.int64))
    features[schema.SEGMENT_IDS] = tf.zeros(shape, tf.int32)
    features[schema.PADDING_MASK] = padding_mask
    return {name: value.numpy() for name, value in features.items()}


def repeated_dataset(arrays, batch_size):
    """The batches cycled forever as a tf.data pipeline, as the trainers consume data."""
    import tensorflow as tf

    return (tf.data.Dataset.from_tensor_slices(arrays).batch(batch_size, drop_remainder=True)
            .cache().repeat().prefetch(tf.data.AUTOTUNE))


def send(message):
    """A message to the parent: one JSON line on stdout."""
    print(json.dumps(message), flush=True)


class Windows:
    """Times the steps of one system in windows that the parent schedules.

    Systems take turns: after its warm-up a system reports "ready" and blocks; the
    parent then lets each system run one window in turn, round after round. Load from
    other processes on a shared machine thus falls on every system alike instead of on
    whichever happened to run at the wrong time. Call `start()` before the first step
    and `step_done()` after every step (it blocks between windows).
    """

    def __init__(self):
        self.windows = min(_WINDOWS.value, _STEPS.value)
        self.per_window = _STEPS.value // self.windows
        self.total_steps = _WARMUP_STEPS.value + self.windows * self.per_window
        self.step_times = []  # Mean step time of each window, seconds.
        self.first_step_s = None
        self._steps = 0
        self._start = self._window_start = None

    def start(self):
        self._start = time.perf_counter()

    def step_done(self):
        now = time.perf_counter()
        self._steps += 1
        if self._steps == 1:
            self.first_step_s = now - self._start
        timed = self._steps - _WARMUP_STEPS.value
        if timed == 0:
            send({"ready": True})
        elif timed > 0 and timed % self.per_window == 0:
            self.step_times.append((now - self._window_start) / self.per_window)
            send({"window_step_time_s": self.step_times[-1]})
        else:
            return
        if len(self.step_times) < self.windows:
            if not sys.stdin.readline():
                raise RuntimeError("the benchmark's parent process went away")
            self._window_start = time.perf_counter()


def run_loop(step):
    """Runs `step()` for all warm-up and timed steps; returns (Windows, last result)."""
    windows = Windows()
    windows.start()
    for _ in range(windows.total_steps):
        result = step()
        windows.step_done()
    return windows, result


def measurement(system, cfg, windows, loss, **extra):
    """The JSON record of one measured system (MFU is added by the parent).

    `loss` (MLM + 50·RTD of the last step) shows every system optimizes the same
    objective: about ln(vocab) + 50·ln(2) ≈ 45 at initialization.
    """
    step_time = statistics.median(windows.step_times)
    return {
        "system": system,
        "tokens_per_sec": round(cfg.train.batch_size * cfg.data.max_seq_length / step_time, 1),
        "step_time_s": round(step_time, 4),
        "window_step_times_s": [round(t, 4) for t in windows.step_times],
        "model_flops_per_sec": model_flops(cfg).train_flops / step_time,
        "first_step_s": round(windows.first_step_s, 2),
        "loss": round(float(loss), 3),
        "batch_size": cfg.train.batch_size,
        "seq_length": cfg.data.max_seq_length,
        "num_predictions": cfg.max_predictions,
        "warmup_steps": _WARMUP_STEPS.value,
        "timed_steps": windows.windows * windows.per_window,
        "max_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        **extra,
    }


def model_flops(cfg):
    return flops.electra_step_flops(
        cfg.model.generator_encoder(), cfg.model.discriminator_encoder(),
        cfg.train.batch_size, cfg.data.max_seq_length, cfg.max_predictions)


# === Systems ===


def run_peak(cfg):
    """One "step" is --peak_repeats matmuls; the fastest window gives the peak."""
    del cfg
    import tensorflow as tf

    n = _PEAK_SIZE.value
    a = tf.random.stateless_normal([n, n], seed=[1, 2])
    b = tf.random.stateless_normal([n, n], seed=[3, 4])
    matmul = tf.function(tf.linalg.matmul)

    def step():
        for _ in range(_PEAK_REPEATS.value):
            matmul(a, b).numpy()

    windows, _ = run_loop(step)
    flops_per_step = 2 * n**3 * _PEAK_REPEATS.value
    return {"system": PEAK, "flops_per_sec": flops_per_step / min(windows.step_times),
            "window_flops_per_sec": [round(flops_per_step / t) for t in windows.step_times],
            "matmul_size": n}


def run_electra_tf(cfg, jit_compile):
    # Before anything initializes TensorFlow's devices (the strategy needs it so).
    from electra_tf.training import runtime

    strategy = runtime_flags.make_strategy()
    runtime.check_global_batch(strategy, cfg.train.batch_size, cfg.train.grad_accum_steps)

    import keras

    from electra_tf.training import pretrain

    keras.utils.set_random_seed(cfg.train.seed)
    dataset = repeated_dataset(synthetic_batches(cfg), cfg.train.batch_size)
    # As electra_tf.training.pretrain.run_pretraining builds and compiles the model.
    with runtime.precision_policy(runtime_flags.PRECISION.value), strategy.scope():
        model = pretrain.build_pretrainer(cfg)
        model.compile(optimizer=pretrain.build_optimizer(cfg),
                      steps_per_execution=cfg.train.steps_per_execution,
                      jit_compile=jit_compile)
        model.build_from_spec(dataset.element_spec)
        model.optimizer.build(model.trainable_variables)

    windows = Windows()

    class WindowsCallback(keras.callbacks.Callback):
        # TF runs each step synchronously on the CPU, so a step is done when this fires.
        def on_train_batch_end(self, batch, logs=None):
            windows.step_done()

    windows.start()
    # Keras deals each global batch out to the replicas.
    history = model.fit(dataset, epochs=1, steps_per_epoch=windows.total_steps,
                        callbacks=[WindowsCallback()], verbose=0)
    return measurement(
        "electra_tf_xla" if jit_compile is True else "electra_tf", cfg, windows,
        history.history["loss"][-1], jit_compile=model.replica_jit_compile,
        strategy=type(strategy).__name__, replicas=strategy.num_replicas_in_sync,
        precision=runtime_flags.PRECISION.value, keras=keras.__version__,
        steps_per_execution=cfg.train.steps_per_execution)


def _model_garden_encoder(encoder):
    from official.nlp.configs import encoders

    return encoders.EncoderConfig(type="bert", bert=encoders.BertEncoderConfig(
        vocab_size=encoder.vocab_size, hidden_size=encoder.hidden_size,
        num_layers=encoder.num_layers, num_attention_heads=encoder.num_heads,
        intermediate_size=encoder.intermediate_size,
        hidden_activation=encoder.hidden_activation, dropout_rate=encoder.dropout_rate,
        attention_dropout_rate=encoder.attention_dropout_rate,
        max_position_embeddings=encoder.max_position_embeddings,
        type_vocab_size=encoder.type_vocab_size,
        initializer_range=encoder.initializer_range,
        embedding_size=encoder.embedding_size))


def _model_garden_optimizer(cfg):
    """Model Garden's ELECTRA optimizer: AdamWeightDecay, warmup + linear decay, clip 1."""
    from official.modeling import optimization

    t = cfg.train
    factory = optimization.OptimizerFactory(optimization.OptimizationConfig({
        "optimizer": {"type": "adamw", "adamw": {
            "weight_decay_rate": t.weight_decay, "beta_1": t.adam_beta1,
            "beta_2": t.adam_beta2, "epsilon": t.adam_epsilon,
            "gradient_clip_norm": t.clip_norm,
            "exclude_from_weight_decay": ["LayerNorm", "layer_norm", "bias"]}},
        "learning_rate": {"type": "polynomial", "polynomial": {
            "initial_learning_rate": t.learning_rate, "decay_steps": t.num_train_steps,
            "end_learning_rate": 0.0}},
        "warmup": {"type": "polynomial", "polynomial": {
            "power": 1, "warmup_steps": t.warmup_steps}},
    }))
    return factory.build_optimizer(factory.build_learning_rate())


def run_model_garden(cfg, xla):
    try:
        import tf_keras
        from official.nlp.configs import electra as electra_configs
        from official.nlp.data import pretrain_dataloader
        from official.nlp.tasks import electra_task
    except ImportError as e:
        return {"system": "model_garden_xla" if xla else "model_garden",
                "skipped": f"tf-models-official is not importable ({e}); "
                           "install the bench extra"}
    import tensorflow as tf

    from electra_tf import schema

    tf_keras.utils.set_random_seed(cfg.train.seed)
    task = electra_task.ElectraPretrainTask(electra_task.ElectraPretrainConfig(
        model=electra_configs.ElectraPretrainerConfig(
            num_masked_tokens=cfg.max_predictions, sequence_length=cfg.data.max_seq_length,
            discriminator_loss_weight=cfg.pretraining.discriminator_weight,
            tie_embeddings=True,
            generator_encoder=_model_garden_encoder(cfg.model.generator_encoder()),
            discriminator_encoder=_model_garden_encoder(cfg.model.discriminator_encoder())),
        # Read by build_metrics only; the batches come from synthetic_batches.
        train_data=pretrain_dataloader.BertPretrainDataConfig(
            seq_length=cfg.data.max_seq_length, max_predictions_per_seq=cfg.max_predictions,
            use_next_sentence_label=False)))
    model = task.build_model()
    optimizer = _model_garden_optimizer(cfg)
    metrics = task.build_metrics(training=True)
    arrays = synthetic_batches(cfg)
    dataset = repeated_dataset({
        "input_word_ids": arrays[schema.TOKEN_IDS],
        "input_mask": arrays[schema.PADDING_MASK].astype("int32"),
        "input_type_ids": arrays[schema.SEGMENT_IDS],
        "masked_lm_positions": arrays[schema.MASK_POSITIONS],
        "masked_lm_ids": arrays[schema.MASK_IDS],
        "masked_lm_weights": arrays[schema.MASK_WEIGHTS],
    }, cfg.train.batch_size)
    iterator = iter(dataset)

    # XLA cannot compile the iterator op: only the step itself, as Keras does.
    train_step = tf.function(
        lambda inputs: task.train_step(inputs, model, optimizer, metrics), jit_compile=xla)

    @tf.function
    def step_on_iterator():
        return train_step(next(iterator))

    windows, logs = run_loop(step_on_iterator)
    return measurement("model_garden_xla" if xla else "model_garden", cfg, windows,
                       logs[task.loss].numpy(), jit_compile=xla, tf_keras=tf_keras.__version__)


def run_pytorch(cfg):
    try:
        import torch
        import transformers
    except ImportError as e:
        return {"system": PYTORCH,
                "skipped": f"transformers/torch not importable ({e}); install the bench extra"}
    from electra_tf import schema

    torch.manual_seed(cfg.train.seed)
    if _TORCH_THREADS.value:
        torch.set_num_threads(_TORCH_THREADS.value)

    def electra_config(encoder):
        return transformers.ElectraConfig(
            vocab_size=encoder.vocab_size, embedding_size=encoder.embedding_size,
            hidden_size=encoder.hidden_size, num_hidden_layers=encoder.num_layers,
            num_attention_heads=encoder.num_heads, intermediate_size=encoder.intermediate_size,
            hidden_act=encoder.hidden_activation, hidden_dropout_prob=encoder.dropout_rate,
            attention_probs_dropout_prob=encoder.attention_dropout_rate,
            max_position_embeddings=encoder.max_position_embeddings,
            type_vocab_size=encoder.type_vocab_size,
            initializer_range=encoder.initializer_range,
            layer_norm_eps=encoder.layer_norm_epsilon)

    generator = transformers.ElectraForMaskedLM(electra_config(cfg.model.generator_encoder()))
    discriminator = transformers.ElectraForPreTraining(
        electra_config(cfg.model.discriminator_encoder()))
    # Shared embeddings, and the generator's output layer tied to the shared table.
    generator.electra.embeddings = discriminator.electra.embeddings
    generator.generator_lm_head.weight = discriminator.electra.embeddings.word_embeddings.weight
    generator.train()
    discriminator.train()
    named = {}
    for model in (discriminator, generator):
        for name, param in model.named_parameters():
            named.setdefault(id(param), (name, param))
    no_decay = [p for n, p in named.values() if n.endswith("bias") or "LayerNorm" in n]
    decay = [p for n, p in named.values() if not (n.endswith("bias") or "LayerNorm" in n)]
    params = decay + no_decay
    t = cfg.train
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": t.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=t.learning_rate, betas=(t.adam_beta1, t.adam_beta2), eps=t.adam_epsilon)
    schedule = transformers.get_linear_schedule_with_warmup(
        optimizer, t.warmup_steps, t.num_train_steps)

    arrays = {k: torch.from_numpy(v) for k, v in synthetic_batches(cfg).items()}
    batches = []
    for i in range(NUM_DISTINCT_BATCHES):
        rows = slice(i * t.batch_size, (i + 1) * t.batch_size)
        batch = {k: v[rows] for k, v in arrays.items()}
        ids = batch[schema.TOKEN_IDS].long()
        positions = batch[schema.MASK_POSITIONS].long()
        real = batch[schema.MASK_WEIGHTS] > 0
        mask_ids = batch[schema.MASK_IDS].long()
        # HF's MLM loss takes per-token labels, -100 where nothing is predicted.
        labels = torch.full_like(ids, -100).scatter(1, positions, torch.where(real, mask_ids, -100))
        original = ids.scatter(1, positions, torch.where(real, mask_ids, ids.gather(1, positions)))
        batches.append({"ids": ids, "labels": labels, "original": original,
                        "positions": positions, "real": real,
                        "attention_mask": batch[schema.PADDING_MASK].long(),
                        "token_type_ids": batch[schema.SEGMENT_IDS].long()})
    weight = cfg.pretraining.discriminator_weight
    step_count = [0]

    def step():
        b = batches[step_count[0] % NUM_DISTINCT_BATCHES]
        step_count[0] += 1
        out = generator(input_ids=b["ids"], attention_mask=b["attention_mask"],
                        token_type_ids=b["token_type_ids"], labels=b["labels"])
        with torch.no_grad():
            index = b["positions"].unsqueeze(-1).expand(-1, -1, out.logits.shape[-1])
            masked_logits = out.logits.gather(1, index)
            uniform = torch.rand_like(masked_logits).clamp(1e-9, 1.0 - 1e-7)
            sampled = (masked_logits - torch.log(-torch.log(uniform))).argmax(-1)
            corrupted = b["ids"].scatter(
                1, b["positions"], torch.where(b["real"], sampled, b["ids"].gather(1, b["positions"])))
            rtd_labels = ((corrupted != b["original"]) & (b["attention_mask"] > 0)).long()
        disc = discriminator(input_ids=corrupted, attention_mask=b["attention_mask"],
                             token_type_ids=b["token_type_ids"], labels=rtd_labels)
        loss = out.loss + weight * disc.loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, t.clip_norm)
        optimizer.step()
        schedule.step()
        return loss.detach()

    windows, loss = run_loop(step)
    return measurement(PYTORCH, cfg, windows, loss.item(), torch=torch.__version__,
                       transformers=transformers.__version__,
                       torch_threads=torch.get_num_threads(),
                       attention=generator.config._attn_implementation,
                       note="HF's ElectraForMaskedLM computes vocab logits at all L positions")


RUNNERS = {
    PEAK: run_peak,
    "electra_tf": lambda cfg: run_electra_tf(
        cfg, jit_compile=runtime_flags.jit_compile()),
    "electra_tf_xla": lambda cfg: run_electra_tf(cfg, jit_compile=True),
    "model_garden": lambda cfg: run_model_garden(cfg, xla=False),
    "model_garden_xla": lambda cfg: run_model_garden(cfg, xla=True),
    PYTORCH: run_pytorch,
}


# === Orchestration (parent process) ===


class Child:
    """One system measured in its own process, driven window by window."""

    def __init__(self, system, log_dir):
        self.system = system
        self.stderr_path = os.path.join(log_dir, f"{system}.stderr")
        command = [sys.executable, __file__, f"--run_one={system}"] + [
            f"--{name}={flags.FLAGS[name].value}"
            for name in ("batch_size", "seq_length", "steps", "windows", "warmup_steps",
                         "config", "peak_size", "peak_repeats", "torch_threads", "strategy", "tpu",
                         "precision", "jit_compile", "cpu_replicas")
            if flags.FLAGS[name].value is not None]
        with open(self.stderr_path, "w") as stderr:
            self.process = subprocess.Popen(command, stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, stderr=stderr, text=True)
        self.timed_out = False
        self.timer = threading.Timer(_TIMEOUT.value, self._kill)
        self.timer.start()
        self.load_1min = [round(os.getloadavg()[0], 2)]

    def _kill(self):
        self.timed_out = True
        self.process.kill()

    def receive(self):
        """The child's next JSON message; a "failed" record when it died."""
        for line in self.process.stdout:
            if line.startswith("{"):
                return json.loads(line)
        self.process.wait()
        self.timer.cancel()
        with open(self.stderr_path) as f:
            tail = f.read().strip().splitlines()[-4:]
        if self.timed_out:
            reason = f"killed after --timeout={_TIMEOUT.value} s"
        elif self.process.returncode == -signal.SIGKILL:
            reason = "killed by SIGKILL (out of memory?)"
        else:
            reason = f"exit code {self.process.returncode}"
        return {"system": self.system, "failed": f"{reason}: " + " | ".join(tail)}

    def run_window(self):
        """Lets the child time one window; returns its message."""
        try:
            self.process.stdin.write("go\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            pass  # It died; receive() says how.
        return self.receive()

    def finish(self):
        record = self.receive()
        self.process.wait()
        self.timer.cancel()
        self.load_1min.append(round(os.getloadavg()[0], 2))
        return {**record, "load_1min": self.load_1min}


def measure_all(systems, log_dir):
    """Warms every system up in turn, then times their windows round-robin.

    Returns:
      {system: record} in the order of `systems`.
    """
    records, running = {}, []
    for system in systems:
        child = Child(system, log_dir)
        message = child.receive()
        if message.get("ready"):
            running.append(child)
        else:  # Skipped or failed before timing started.
            child.process.wait()
            child.timer.cancel()
            records[system] = message
    for _ in range(min(_WINDOWS.value, _STEPS.value)):
        for child in list(running):
            message = child.run_window()
            if "window_step_time_s" not in message:
                running.remove(child)
                records[child.system] = message
    for child in running:
        records[child.system] = child.finish()
    return {system: records[system] for system in systems}


def summary(records, peak):
    """Our best setting against each peer's best, and the goals.

    Three estimates of each speed ratio (ours / peer, in tokens per second):
      ratio_*         of the median step times;
      paired_ratio_*  the median over rounds of the ratio within a round: systems
                      that take turns in one round see about the same load, so
                      this one cancels most of the drift of a shared machine and
                      decides whether a goal is met;
      best_ratio_*    of each system's fastest window (its least disturbed).
    """
    def best(names):
        measured = [r for r in records if r["system"] in names and "tokens_per_sec" in r]
        return max(measured, key=lambda r: r["tokens_per_sec"], default=None)

    ours, garden, torch = best(OURS), best(MODEL_GARDEN), best((PYTORCH,))
    default = best(("electra_tf",))

    def ratios(a, b):
        if not (a and b):
            return None, None, None
        mine, theirs = a["window_step_times_s"], b["window_step_times_s"]
        return (round(b["step_time_s"] / a["step_time_s"], 3),
                round(statistics.median(t / m for m, t in zip(mine, theirs)), 3),
                round(min(theirs) / min(mine), 3))

    def met(paired, goal):
        return None if paired is None else paired >= goal

    result = {"summary": "pretrain_throughput", "ours_best": ours and ours["system"],
              "model_garden_best": garden and garden["system"]}
    for peer_name, peer, goal in (("model_garden", garden, GOAL_VS_MODEL_GARDEN),
                                  ("pytorch", torch, GOAL_VS_PYTORCH)):
        median, paired, fastest = ratios(ours, peer)
        result.update({f"ratio_vs_{peer_name}": median, f"paired_ratio_vs_{peer_name}": paired,
                       f"best_ratio_vs_{peer_name}": fastest,
                       f"paired_ratio_default_vs_{peer_name}": ratios(default, peer)[1],
                       f"goal_vs_{peer_name}": goal, f"met_vs_{peer_name}": met(paired, goal)})
    result.update({"peak_flops_per_sec": peak.get("flops_per_sec"), "cpu_count": os.cpu_count()})
    return result


def main(argv):
    del argv
    if _RUN_ONE.value:
        send(RUNNERS[_RUN_ONE.value](load_config()))
        return
    unknown = sorted(set(_SYSTEMS.value) - set(SYSTEMS))
    if unknown:
        raise app.UsageError(f"unknown --systems {unknown}; choose from {list(SYSTEMS)}")
    if _WARMUP_STEPS.value < 1 or _STEPS.value < 1 or _WINDOWS.value < 1:
        raise app.UsageError("--warmup_steps, --steps and --windows must be >= 1")

    with tempfile.TemporaryDirectory() as log_dir:
        records = measure_all([PEAK] + _SYSTEMS.value, log_dir)
    peak = records.pop(PEAK)
    print(json.dumps(peak), flush=True)
    peak_flops = peak.get("flops_per_sec")
    for record in records.values():
        if peak_flops and "model_flops_per_sec" in record:
            record["mfu"] = round(record["model_flops_per_sec"] / peak_flops, 4)
        print(json.dumps(record), flush=True)
    print(json.dumps(summary(list(records.values()), peak)), flush=True)


if __name__ == "__main__":
    app.run(main)
