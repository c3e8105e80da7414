"""Fine-tuned classifier export: text / text-pair serving_default, predict_ids and encoder
signatures equal the Keras classifier in a bare TF process; labels and config assets."""

import dataclasses
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from electra_tf import config as config_lib
from electra_tf.export import exporter, names, opset, signatures, warmup
from electra_tf.models.classifier import ElectraClassifier
from electra_tf.text.packing import pack_pair, pack_single
from electra_tf.text.tokenizer import WordPieceTokenizer
from electra_tf.training import finetune
from export.export_helpers import MAX_SEQ_LENGTH, TEXTS, bare_process_outputs, write_vocab

PAIRS = ["a dog ran", "the small cat was slow " * 5, "", "hello"]
LABELS = ("negative", "neutral", "positive")
ENCODER = dict(vocab_size=None, embedding_size=8, hidden_size=16, num_layers=2, num_heads=2,
               intermediate_size=32, max_position_embeddings=32, initializer_range=0.5)


def finetuned_dir(root, regression):
    """A tools/finetune.py-style output dir: a pair classifier or a single-text regressor."""
    vocab = write_vocab(os.path.join(root, "vocab.txt"))
    tokenizer = WordPieceTokenizer(vocab)
    keras.utils.set_random_seed(1)
    model = ElectraClassifier(dict(ENCODER, vocab_size=tokenizer.vocab_size),
                              num_labels=1 if regression else len(LABELS))
    model.build_for_length(8)
    if regression:
        cfg = config_lib.FinetuneConfig(task="custom", init="none", regression=True,
                                      max_seq_length=MAX_SEQ_LENGTH)
    else:
        cfg = config_lib.FinetuneConfig(task="custom", init="none", text_pair_column="b",
                                      label_names=LABELS, max_seq_length=MAX_SEQ_LENGTH)
    out = os.path.join(root, "finetuned")
    finetune.save_finetuned(model, cfg, vocab, out)
    return out, model, tokenizer, cfg


@pytest.fixture(scope="module")
def pair_export(tmp_path_factory):
    root = tmp_path_factory.mktemp("pair_classifier")
    out, model, tokenizer, cfg = finetuned_dir(str(root), regression=False)
    path = exporter.export_model(out, str(root / "exports"), "nli")
    return dict(path=path, model=model, tokenizer=tokenizer, cfg=cfg)


def test_pair_classifier_signatures_match_keras_in_a_bare_process(pair_export, tmp_path):
    model, tok = pair_export["model"], pair_export["tokenizer"]
    specials = (tok.cls_id, tok.sep_id, tok.pad_id)
    packed = pack_pair(tok.tokenize(tf.constant(TEXTS)), tok.tokenize(tf.constant(PAIRS)),
                       MAX_SEQ_LENGTH, *specials)
    num_tokens = packed.pop("num_tokens").numpy().sum(axis=1)
    ids = {k: tf.cast(v, tf.int32).numpy() for k, v in packed.items()}
    single = pack_single(tok.tokenize(tf.constant(TEXTS)), MAX_SEQ_LENGTH, *specials)
    single.pop("num_tokens")
    out = bare_process_outputs(pair_export["path"], tmp_path,
                               {"text": TEXTS, "text_pair": PAIRS}, ids)

    logits = model(packed, training=False).numpy()
    probabilities = tf.nn.softmax(logits).numpy()
    np.testing.assert_allclose(out["serving_default/probabilities"], probabilities, atol=1e-5)
    np.testing.assert_allclose(out["serving_default/probabilities"].sum(1), 1.0, atol=1e-6)
    expected_labels = [LABELS[i].encode() for i in probabilities.argmax(1)]
    assert list(out["serving_default/label"]) == expected_labels
    np.testing.assert_array_equal(out["serving_default/num_tokens"], num_tokens)
    lengths = [len(tok.tokenize(tf.constant([a, b])).flat_values) for a, b in zip(TEXTS, PAIRS)]
    np.testing.assert_array_equal(out["serving_default/truncated"],
                                  np.array(lengths) > num_tokens)
    assert out["serving_default/truncated"].tolist() == [False, True, True, False]
    np.testing.assert_allclose(out["predict_ids/logits"], logits, atol=1e-5)
    sequence = model.encoder(single, training=False).numpy()
    np.testing.assert_allclose(out["encoder_features/sequence_output"], sequence, atol=1e-5)
    np.testing.assert_allclose(out["encoder_features/cls_output"], sequence[:, 0], atol=1e-5)
    assert not [k for k in out if k.startswith(names.REPLACED_TOKEN_SCORES)]


def test_pair_classifier_assets_warmup_and_ops(pair_export):
    path = pair_export["path"]
    assets = os.path.join(path, "assets")
    assert open(os.path.join(assets, "labels.txt")).read() == "negative\nneutral\npositive\n"
    config = json.load(open(os.path.join(assets, "config.json")))
    assert config == json.loads(json.dumps(dataclasses.asdict(pair_export["cfg"])))
    info = exporter.load_export_info(path)
    assert (info["kind"], info["task"], info["regression"], info["text_pair"]) == (
        "classifier", "custom", False, True)
    assert info["signatures"] == ["encoder_features", "encoder_features_ids", "predict_ids",
                                  "serving_default"]
    requests = [log.predict_log.request for log in warmup.read_warmup_requests(path)]
    default = [r for r in requests if r.model_spec.signature_name == "serving_default"]
    assert len(requests) == 4 and set(default[0].inputs) == {"text", "text_pair"}
    assert not set(opset.saved_model_op_types(path)) - opset.serving_allowed_ops()


def test_regression_export_returns_a_score_per_text(tmp_path):
    out, model, tok, _ = finetuned_dir(str(tmp_path), regression=True)
    path = exporter.export_model(out, str(tmp_path / "exports"), "stsb")
    assert not os.path.exists(os.path.join(path, "assets", "labels.txt"))
    fn = tf.saved_model.load(path).signatures[names.SERVING_DEFAULT]
    assert set(fn.structured_input_signature[1]) == {"text"}
    assert set(fn.structured_outputs) == {"score", "num_tokens", "truncated"}
    answer = fn(text=tf.constant(TEXTS))
    packed = pack_single(tok.tokenize(tf.constant(TEXTS)), MAX_SEQ_LENGTH,
                         tok.cls_id, tok.sep_id, tok.pad_id)
    packed.pop("num_tokens")
    expected = model(packed, training=False).numpy()[:, 0]
    np.testing.assert_allclose(answer["score"].numpy(), expected, atol=1e-5)
    assert answer["score"].shape == (len(TEXTS),) and np.std(expected) > 0


def test_wrong_number_of_label_names_is_refused(pair_export):
    packer = signatures.TextPacker(pair_export["tokenizer"], MAX_SEQ_LENGTH)
    with pytest.raises(ValueError, match="2 label names for 3 outputs"):
        signatures.classifier_endpoints(pair_export["model"], packer, ["a", "b"])
