"""electra_tf: ELECTRA pretraining, fine-tuning and serving for TensorFlow 2 / Keras 3.

The Python API (README "Python API"):

    import electra_tf
    tokenizer = electra_tf.WordPieceTokenizer("vocab.txt")
    tokenizer(["some text"])                       # ragged WordPiece ids
    preprocessor = electra_tf.Preprocessor("vocab.txt", max_seq_length=128)
    model = electra_tf.ElectraClassifier.from_model_dir("pretrain_dir", num_labels=2)
    model = electra_tf.ElectraDiscriminator.from_model_dir("pretrain_dir")
    electra_tf.load_config, electra_tf.run_pretraining, electra_tf.run_finetuning,
    electra_tf.export_model, electra_tf.convert_checkpoint

Names are imported on first use: `import electra_tf` loads neither TensorFlow nor Keras.
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "WordPieceTokenizer": "electra_tf.text.tokenizer",
    "Preprocessor": "electra_tf.text.preprocessor",
    "ElectraDiscriminator": "electra_tf.models",
    "ElectraGenerator": "electra_tf.models",
    "ElectraClassifier": "electra_tf.models",
    "ElectraForQuestionAnswering": "electra_tf.models",
    "ElectraForTokenClassification": "electra_tf.models",
    "ElectraConfig": "electra_tf.config",
    "ConfigError": "electra_tf.config",
    "load_config": "electra_tf.config",
    "FinetuneConfig": "electra_tf.config",
    "run_pretraining": "electra_tf.training.pretrain",
    "run_finetuning": "electra_tf.training.finetune",
    "export_model": "electra_tf.export.exporter",
    "convert_checkpoint": "electra_tf.convert.checkpoint",
    "load_model_dir": "electra_tf.models.artifacts",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(_EXPORTS[name])
    # artifacts.load is exported under a name that says what it loads.
    return getattr(module, "load" if name == "load_model_dir" else name)


def __dir__():
    return sorted(list(globals()) + __all__)
