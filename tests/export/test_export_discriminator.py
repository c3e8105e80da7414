"""Discriminator export: layout, signatures against the Keras model (in a bare TF process),
op set, saved_model_cli, warmup requests, versions."""

import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text as tf_text

from electra_tf import config as config_lib
from electra_tf import schema
from electra_tf.export import exporter, names, opset, signatures, versioning, warmup
from electra_tf.models import artifacts
from export.export_helpers import (
    MAX_SEQ_LENGTH, TEXTS, bare_process_outputs, reference_features, reference_scores,
    shared_export)

SIGNATURES = {
    names.SERVING_DEFAULT, names.REPLACED_TOKEN_SCORES, names.REPLACED_TOKEN_SCORES_IDS,
    names.ENCODER_FEATURES, names.ENCODER_FEATURES_IDS,
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return shared_export(tmp_path_factory)


@pytest.fixture(scope="module")
def loaded(exported):
    return tf.saved_model.load(exported["path"])


def test_layout_and_assets(exported):
    path = exported["path"]
    assert path == os.path.join(exported["export_dir"], "electra", "1")
    assets = os.path.join(path, "assets")
    vocab = exported["tokenizer"].vocab_path
    assert open(os.path.join(assets, "vocab.txt")).read() == open(vocab).read()
    saved_cfg = config_lib.load_config(os.path.join(assets, "config.json"))
    assert saved_cfg == exported["cfg"]
    info = exporter.load_export_info(path)
    assert info["kind"] == "discriminator"
    assert info["max_seq_length"] == MAX_SEQ_LENGTH and info["lowercase"] is True
    assert info["step"] == 7
    assert set(info["signatures"]) == SIGNATURES
    assert os.path.isfile(os.path.join(path, "assets.extra", warmup.WARMUP_FILE))
    # Nothing half-written is left next to the version.
    assert sorted(os.listdir(os.path.dirname(path))) == ["1"]


def test_signature_names_inputs_and_outputs(loaded):
    # Spelled out: these names are the public API that clients depend on.
    assert set(loaded.signatures) == SIGNATURES
    expected = {
        names.REPLACED_TOKEN_SCORES: ({"text"}, {"tokens", "scores", "token_ids",
                                                 "padding_mask", "num_tokens", "truncated"}),
        names.REPLACED_TOKEN_SCORES_IDS: ({"token_ids", "segment_ids", "padding_mask"},
                                          {"scores", "logits"}),
        names.ENCODER_FEATURES: ({"text"}, {"sequence_output", "cls_output", "token_ids",
                                            "padding_mask"}),
        names.ENCODER_FEATURES_IDS: ({"token_ids", "segment_ids", "padding_mask"},
                                     {"sequence_output", "cls_output"}),
    }
    for name, (inputs, outputs) in expected.items():
        fn = loaded.signatures[name]
        assert set(fn.structured_input_signature[1]) == inputs, name
        assert set(fn.structured_outputs) == outputs, name
    assert (set(loaded.signatures[names.SERVING_DEFAULT].structured_outputs)
            == expected[names.REPLACED_TOKEN_SCORES][1])


def test_text_signature_packs_truncates_and_trims(exported, loaded):
    fn = loaded.signatures[names.REPLACED_TOKEN_SCORES]
    out = {k: v.numpy() for k, v in fn(text=tf.constant(TEXTS)).items()}
    L = MAX_SEQ_LENGTH
    assert out["tokens"].shape == out["scores"].shape == (4, L)  # the long text fills L
    first = [t.decode() for t in out["tokens"][0][: out["padding_mask"][0].sum()]]
    assert first == ["[CLS]", "the", "cat", "##s", "sat", "on", "the", "mat", ".", "[SEP]"]
    np.testing.assert_array_equal(out["num_tokens"], [8, 0, L - 2, 3])
    np.testing.assert_array_equal(out["truncated"], [False, False, True, False])
    assert [t.decode() for t in out["tokens"][1][:3]] == ["[CLS]", "[SEP]", "[PAD]"]
    np.testing.assert_array_equal(out["padding_mask"].sum(1), out["num_tokens"] + 2)
    assert np.all(out["scores"][out["padding_mask"] == 0] == 0.0)
    real = out["scores"][out["padding_mask"] == 1]
    assert np.all((real > 0) & (real < 1)) and real.std() > 0.01

    # Without the long text the batch is padded only to its longest sequence, and
    # each text's scores do not depend on its batch-mates.
    short = {k: v.numpy() for k, v in fn(text=tf.constant([TEXTS[0], TEXTS[3]])).items()}
    assert short["tokens"].shape == (2, 10)
    np.testing.assert_allclose(short["scores"], out["scores"][[0, 3], :10], atol=1e-6)
    np.testing.assert_array_equal(fn(text=tf.constant([""]))["num_tokens"].numpy(), [0])


def test_bare_tensorflow_process_matches_keras(exported, tmp_path):
    disc, tokenizer = exported["disc"], exported["tokenizer"]
    features, num_tokens = reference_features(tokenizer, TEXTS)
    ids = {k: tf.cast(v, tf.int32).numpy() for k, v in features.items()}
    out = bare_process_outputs(exported["path"], tmp_path, {"text": TEXTS}, ids)

    scores = reference_scores(disc, features)
    logits = disc(features, training=False).numpy()
    sequence = disc.encoder(features, training=False).numpy()
    mask = ids[schema.PADDING_MASK]
    for name in (names.REPLACED_TOKEN_SCORES, names.SERVING_DEFAULT):
        np.testing.assert_allclose(out[f"{name}/scores"], scores, atol=1e-5)
        np.testing.assert_array_equal(out[f"{name}/token_ids"], ids[schema.TOKEN_IDS])
        np.testing.assert_array_equal(out[f"{name}/padding_mask"], mask)
        np.testing.assert_array_equal(out[f"{name}/num_tokens"], num_tokens)
        np.testing.assert_array_equal(
            out[f"{name}/tokens"],
            tokenizer.id_to_token(features[schema.TOKEN_IDS]).numpy().astype(bytes))
    ids_name = names.REPLACED_TOKEN_SCORES_IDS
    np.testing.assert_allclose(out[f"{ids_name}/logits"], logits, atol=1e-5)
    np.testing.assert_allclose(out[f"{ids_name}/scores"], scores, atol=1e-5)
    for name in (names.ENCODER_FEATURES, names.ENCODER_FEATURES_IDS):
        np.testing.assert_allclose(out[f"{name}/sequence_output"], sequence, atol=1e-5)
        np.testing.assert_allclose(out[f"{name}/cls_output"], sequence[:, 0], atol=1e-5)


def test_every_op_is_one_tensorflow_serving_has(exported):
    """Every op type of the export, in its graphs and all library functions, must be a
    core op of this TensorFlow that TF 2.12 also has, or a tf-text op of tf-text 2.12.1
    (the version TF Serving embeds); see electra_tf/export/opset.py for how the sets
    were made. Checking only op names is enough for attributes too: SavedModels strip
    default-valued attributes, which is how newer attributes stay loadable."""
    used = opset.saved_model_op_types(exported["path"])
    assert not set(used) - opset.serving_allowed_ops()
    # The check sees the tokenizer inside the functions: it is not vacuous.
    assert {"NormalizeUTF8", "FastWordpieceTokenizeWithOffsets", "MatMul"} <= set(used)
    assert not [op for op in used if op.startswith("TFText>")]


def test_saved_model_cli_shows_and_runs_the_signatures(exported):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    show = subprocess.run([cli, "show", "--dir", exported["path"], "--all"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert show.returncode == 0, show.stderr[-3000:]
    for name in SIGNATURES:
        assert f"signature_def['{name}']" in show.stdout
    assert "inputs['text'] tensor_info:\n        dtype: DT_STRING" in show.stdout

    # The README's `saved_model_cli run` line: tensorflow_text must be imported first so
    # its ops are registered; the graph is then loaded into a TF1 session as TF Serving does.
    run = subprocess.run(
        [sys.executable, "-c", "import tensorflow_text; from tensorflow.python.tools."
         "saved_model_cli import main; main()", "run", "--dir", exported["path"],
         "--tag_set", "serve", "--signature_def", names.REPLACED_TOKEN_SCORES,
         "--input_exprs", 'text=["the cats sat", ""]'],
        env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Result for output key num_tokens:\n[4 0]" in run.stdout
    assert "[b'[CLS]' b'the' b'cat' b'##s' b'sat' b'[SEP]']" in run.stdout


def test_warmup_requests_parse_and_run(exported, loaded):
    logs = warmup.read_warmup_requests(exported["path"])
    requests = [log.predict_log.request for log in logs]
    assert {r.model_spec.signature_name for r in requests} == SIGNATURES
    assert len(requests) == len(SIGNATURES)
    for request in requests:
        assert request.model_spec.name == "electra"
        fn = loaded.signatures[request.model_spec.signature_name]
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        assert set(inputs) == set(fn.structured_input_signature[1])
        if "text" in inputs:
            texts = [t.decode() for t in inputs["text"]]
            assert texts[0] == "" and len(texts[-1]) > 10 * MAX_SEQ_LENGTH
        outputs = fn(**{k: tf.constant(v) for k, v in inputs.items()})
        assert all(v.shape[0] == 3 for v in outputs.values())


def test_versions_are_never_overwritten(exported, tmp_path):
    # A copy of the shared export, which other tests read.
    export_dir, model_dir = str(tmp_path), exported["model_dir"]
    base = os.path.join(export_dir, "electra")
    shutil.copytree(exported["path"], os.path.join(base, "1"))
    before = open(os.path.join(base, "1", "saved_model.pb"), "rb").read()
    with pytest.raises(FileExistsError, match="never overwrite"):
        exporter.export_model(model_dir, export_dir, "electra", version=1)
    with pytest.raises(ValueError, match="positive integer"):
        exporter.export_model(model_dir, export_dir, "electra", version=0)
    assert open(os.path.join(base, "1", "saved_model.pb"), "rb").read() == before
    assert sorted(os.listdir(base)) == ["1"]
    # The next free number (resolve_version, tests/export/test_versioning.py) is 2.
    assert versioning.resolve_version(base) == 2


def test_an_export_with_a_disallowed_op_is_not_published(tmp_path):
    dense = keras.layers.Dense(1)
    dense.build((None, 1))

    def endpoint(text):
        ids = tf.strings.to_hash_bucket_fast(tf.strings.split(text), 10)
        # keras-hub's packers trim this way; TF Serving's tf-text 2.12 lacks the op.
        trimmed = tf_text.RoundRobinTrimmer(4).trim([ids, ids])[0]
        return {"n": dense(tf.cast(trimmed.row_lengths()[:, None], tf.float32))}

    with pytest.raises(ValueError, match=r"TFText>RoundRobinTrim \(in __inference"):
        exporter.write_export(dense, {"f": (endpoint, [signatures.text_spec()])}, None,
                              str(tmp_path), "trimmed")
    assert os.listdir(tmp_path / "trimmed") == []


def test_model_dir_without_a_discriminator_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="discriminator"):
        exporter.export_model(str(tmp_path), str(tmp_path / "out"), "x")
    with pytest.raises(ValueError, match="plain directory name"):
        exporter.write_export(None, {}, None, str(tmp_path), "../x")


def test_the_loader_resolves_a_model_dir_or_its_artifact(exported):
    artifact = os.path.join(exported["model_dir"], "discriminator")
    assert artifacts.resolve(artifact) == (artifact, "discriminator")
    assert artifacts.resolve(exported["model_dir"]) == (artifact, "discriminator")
    assert os.path.exists(os.path.join(artifact, artifacts.ARTIFACT_JSON))
