"""tools/export.py --with_explain: the explain signature equals the library in a bare
TensorFlow process and passes the TF Serving op check."""

import numpy as np
import pytest
import tensorflow as tf

from electra_tf.export import exporter, names, opset
from electra_tf.interpret.explainer import Explainer
from export.export_helpers import TEXTS, bare_process_outputs, make_model_dir
from interpret.interpret_helpers import LABELS, assert_one_error_line, make_finetuned, run_tool

PAIRS = ["a dog ran", "the small cat was slow " * 5, "", "hello"]
STEPS = 16


def test_export_with_explain_equals_the_library_in_a_bare_process(pair_dir, tmp_path):
    out, _, _ = pair_dir
    export_dir = tmp_path / "exports"
    result = run_tool("export.py", f"--model_dir={out}", f"--export_dir={export_dir}",
                      "--name=nli", "--with_explain", f"--explain_steps={STEPS}")
    assert result.returncode == 0, result.stderr[-3000:]
    path = str(export_dir / "nli" / "1")
    info = exporter.load_export_info(path)
    assert names.EXPLAIN in info["signatures"] and info["explain_steps"] == STEPS
    assert not set(opset.saved_model_op_types(path)) - opset.serving_allowed_ops()

    served = bare_process_outputs(path, str(tmp_path), {"text": TEXTS, "text_pair": PAIRS},
                                  ids={"token_ids": np.zeros([1, 2], np.int32),
                                       "segment_ids": np.zeros([1, 2], np.int32),
                                       "padding_mask": np.ones([1, 2], np.int32)})
    expected = Explainer.from_finetuned(out, steps=STEPS).explain(TEXTS, PAIRS)
    for i, e in enumerate(expected):
        n = len(e.tokens)
        assert [t.decode() for t in served["explain/tokens"][i, :n]] == list(e.tokens)
        np.testing.assert_allclose(served["explain/attributions"][i, :n], e.token_attributions,
                                   atol=1e-4)
        assert not served["explain/attributions"][i, n:].any()
        assert served["explain/label"][i].decode() == e.label
        np.testing.assert_allclose(served["explain/probabilities"][i],
                                   [e.probabilities[name] for name in LABELS], atol=1e-4)
    np.testing.assert_allclose(served["explain/probabilities"],
                               served["serving_default/probabilities"], atol=1e-6)


def test_regression_export_explains_the_score(tmp_path):
    out, model, _ = make_finetuned(tmp_path, num_labels=1)
    path = exporter.export_model(out, str(tmp_path / "exports"), "stsb", explain_steps=STEPS)
    fn = tf.saved_model.load(path).signatures[names.EXPLAIN]
    assert set(fn.structured_outputs) == {"tokens", "attributions", "score", "num_tokens",
                                          "truncated"}
    served = fn(text=tf.constant(TEXTS[:2]))
    for i, e in enumerate(Explainer.from_finetuned(out, steps=STEPS).explain(TEXTS[:2])):
        assert served["score"][i].numpy() == pytest.approx(e.score, abs=1e-5)
        np.testing.assert_allclose(served["attributions"][i, :len(e.tokens)],
                                   e.token_attributions, atol=1e-5)


def test_export_with_explain_refuses_a_discriminator(tmp_path):
    model_dir, *_ = make_model_dir(tmp_path)
    result = run_tool("export.py", f"--model_dir={model_dir}", f"--export_dir={tmp_path}/e",
                      "--name=electra", "--with_explain")
    assert_one_error_line(result, "holds a pretrained discriminator; the explain signature")
