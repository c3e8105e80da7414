"""The REST client and tools/serving_client.py against a stand-in for TensorFlow Serving.

docker is not available here, so a small HTTP server plays TF Serving's REST predict
API (`/v1/models/NAME[/versions/N]:predict`, "instances" and "inputs" formats, answers
as "predictions"/"outputs", errors as {"error": ...}) on top of the real export.
"""

import http.server
import json
import os
import re
import subprocess
import sys
import threading

import numpy as np
import pytest
import tensorflow as tf

from helpers import REPO_ROOT
from electra_tf.export import client, names
from export.export_helpers import TEXTS, shared_export

_PATH = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+))?:predict$")


def _json_ready(array):
    return np.vectorize(lambda b: b.decode())(array) if array.dtype == object else array


def serve(saved_model, name, version, request_path, body):
    """TF Serving's REST predict semantics: (HTTP status, answer)."""
    match = _PATH.match(request_path)
    if not match or match["name"] != name or match["version"] not in (None, str(version)):
        return 404, {"error": f"Servable not found for request: {request_path}"}
    signature = body.get("signature_name", names.SERVING_DEFAULT)
    if signature not in saved_model.signatures:
        return 400, {"error": f"Serving signature name: \"{signature}\" not found"}
    if "instances" in body:
        rows = body["instances"]
        columns = {key: [row[key] for row in rows] for key in rows[0]}
    else:
        columns = body["inputs"]
    outputs = saved_model.signatures[signature](
        **{key: tf.constant(value) for key, value in columns.items()})
    outputs = {key: _json_ready(value.numpy()).tolist() for key, value in outputs.items()}
    if "instances" in body:
        n = len(body["instances"])
        return 200, {"predictions": [{k: v[i] for k, v in outputs.items()} for i in range(n)]}
    return 200, {"outputs": outputs}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    exported = shared_export(tmp_path_factory)
    saved_model = tf.saved_model.load(exported["path"])

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            status, answer = serve(saved_model, "electra", 1, self.path, body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield dict(url=f"http://127.0.0.1:{httpd.server_address[1]}", saved_model=saved_model)
    httpd.shutdown()
    thread.join()


def test_request_bodies():
    assert client.build_request(["a", "b"], signature_name="s") == {
        "signature_name": "s", "instances": [{"text": "a"}, {"text": "b"}]}
    assert client.build_request(["a"], ["x"], request_format="inputs") == {
        "signature_name": "serving_default", "inputs": {"text": ["a"], "text_pair": ["x"]}}
    with pytest.raises(ValueError, match="2 texts but 1 text pairs"):
        client.build_request(["a", "b"], ["x"])
    with pytest.raises(ValueError, match="request_format"):
        client.build_request(["a"], request_format="rows")
    assert (client.predict_url("http://h:8501/", "m", 3)
            == "http://h:8501/v1/models/m/versions/3:predict")


@pytest.mark.parametrize("request_format", client.FORMATS)
def test_both_formats_give_the_signature_outputs(server, request_format):
    url = client.predict_url(server["url"], "electra")
    body = client.build_request(TEXTS, signature_name=names.REPLACED_TOKEN_SCORES,
                                request_format=request_format)
    rows = client.response_rows(client.predict(url, body), len(TEXTS))
    direct = server["saved_model"].signatures[names.REPLACED_TOKEN_SCORES](text=tf.constant(TEXTS))
    assert len(rows) == len(TEXTS)
    for i, row in enumerate(rows):
        np.testing.assert_allclose(row["scores"], direct["scores"][i].numpy(), atol=1e-6)
        assert row["tokens"] == [t.decode() for t in direct["tokens"][i].numpy()]
        assert row["num_tokens"] == direct["num_tokens"][i]


def test_server_errors_are_reported_with_their_message(server):
    with pytest.raises(RuntimeError, match=r"HTTP 404: Servable not found"):
        client.predict(client.predict_url(server["url"], "other"), client.build_request(["a"]))
    with pytest.raises(RuntimeError, match=r"HTTP 400: Serving signature name: \"nope\""):
        client.predict(client.predict_url(server["url"], "electra", 1),
                       client.build_request(["a"], signature_name="nope"))
    with pytest.raises(RuntimeError, match="cannot reach"):
        client.predict("http://127.0.0.1:9/v1/models/x:predict", {}, timeout=5)


def test_single_output_answers_become_rows():
    assert client.response_rows({"predictions": [0.5, 0.7]}, 2) == [
        {"output": 0.5}, {"output": 0.7}]
    assert client.response_rows({"outputs": [[1, 2], [3, 4]]}, 2) == [
        {"output": [1, 2]}, {"output": [3, 4]}]
    with pytest.raises(ValueError, match="not a TensorFlow Serving predict answer"):
        client.response_rows({"error": "x"}, 1)


def test_client_module_needs_no_tensorflow():
    code = ("import sys; import electra_tf.export.client; "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_serving_client_tool_prints_tokens_and_json(server):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    tool = [sys.executable, str(REPO_ROOT / "tools" / "serving_client.py"),
            f"--server={server['url']}", "--model_name=electra"]
    result = subprocess.run(tool + ["--format=inputs", "the cats sat", "dog"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    blocks = [block.splitlines() for block in result.stdout.strip().split("\n\n")]
    assert [block[0] for block in blocks] == ["the cats sat", "dog"]
    printed = [[line.split()[:2] for line in block[1:]] for block in blocks]
    assert [[token for _, token in rows] for rows in printed] == [
        ["the", "cat", "##s", "sat"], ["dog"]]
    served = server["saved_model"].signatures[names.REPLACED_TOKEN_SCORES](
        text=tf.constant(["the cats sat"]))["scores"].numpy()[0, 1:5]
    np.testing.assert_allclose([float(score) for score, _ in printed[0]], served, atol=5e-4)

    result = subprocess.run(tool + [f"--signature={names.ENCODER_FEATURES}", "dog"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    row = json.loads(result.stdout.splitlines()[2])
    assert len(row["cls_output"]) == 16 and row["padding_mask"] == [1, 1, 1]

    result = subprocess.run(tool + ["--version=9", "dog"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "HTTP 404" in result.stderr
