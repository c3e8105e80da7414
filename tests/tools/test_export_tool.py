"""tools/export.py: a pretraining model_dir in, EXPORT_DIR/NAME/VERSION out (refusing to
overwrite a version is tested on the library, tests/export)."""

import os
import subprocess
import sys

from helpers import REPO_ROOT
from electra_tf.export import exporter
from export.export_helpers import make_model_dir


def run_tool(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "export.py"), *args],
                          env=env, capture_output=True, text=True, timeout=300)


def test_export_tool_writes_the_requested_version(tmp_path):
    model_dir, *_ = make_model_dir(tmp_path)
    export_dir = tmp_path / "serving"
    flags = [f"--model_dir={model_dir}", f"--export_dir={export_dir}", "--name=electra"]
    result = run_tool(*flags, "--version=3")
    assert result.returncode == 0, result.stderr[-3000:]
    path = str(export_dir / "electra" / "3")
    assert result.stdout.splitlines() == [
        path,
        "kind: discriminator  signatures: encoder_features, encoder_features_ids, "
        "replaced_token_scores, replaced_token_scores_ids, serving_default",
    ]
    assert exporter.load_export_info(path)["source"] == os.path.join(model_dir, "discriminator")
    assert sorted(os.listdir(export_dir / "electra")) == ["3"]
