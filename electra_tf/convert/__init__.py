"""Checkpoint interop: Hugging Face and original Google ELECTRA checkpoints <-> electra_tf.

    convert_checkpoint("hf", "electra_tf", ["electra-small-discriminator/"], "model_dir/")
    convert_checkpoint("google", "electra_tf", ["electra_small/"], "model_dir/",
                       hparams={"model_size": "small"})
    convert_checkpoint("electra_tf", "hf", ["model_dir/"], "hf_dir/", kind="generator")

`mapping` holds the single tensor-name mapping both formats share, `hf` and
`google` the format specifics, `checkpoint` the model_dir / HF directory writing.
"""

from electra_tf.convert.checkpoint import convert_checkpoint
from electra_tf.convert.checkpoint import experiment_config
from electra_tf.convert.checkpoint import load_electra_tf
from electra_tf.convert.hf import load_hf_task_model
from electra_tf.convert.hf import load_hf_model
from electra_tf.convert.hf import save_hf_model
from electra_tf.convert.google import load_google_models
from electra_tf.convert.mapping import ConversionError
