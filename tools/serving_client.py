"""Sends texts to a running TensorFlow Serving REST endpoint and prints the answers.

    python tools/serving_client.py --model_name=electra "the cat sat on the car"
    python tools/serving_client.py --model_name=sst2 --format=inputs "a fine film"
    python tools/serving_client.py --model_name=mrpc --text_pair="b1" --text_pair="b2" "a1" "a2"

Replaced-token answers (tokens and scores) are printed one token per line, anything
else as one JSON object per text; --raw prints the server's whole answer.
"""

import json
import sys

from absl import app, flags  # noqa: E402

import tool_errors  # noqa: E402  (tools/, the script's directory)
from electra_tf.export import client, names  # noqa: E402

_SERVER = flags.DEFINE_string("server", "http://localhost:8501", "TF Serving REST address.")
_MODEL_NAME = flags.DEFINE_string("model_name", None, "The served model's name (MODEL_NAME).")
_VERSION = flags.DEFINE_integer("version", None, "A specific version; default: the latest.")
_SIGNATURE = flags.DEFINE_string("signature", names.SERVING_DEFAULT, "Signature to call.")
_FORMAT = flags.DEFINE_enum("format", "instances", list(client.FORMATS), "REST request format.")
_TEXT_PAIR = flags.DEFINE_multi_string("text_pair", None, "Second texts, one per text, in order.")
_THRESHOLD = flags.DEFINE_float("threshold", 0.5, "Replaced-token scores above this are marked.")
_TIMEOUT = flags.DEFINE_float("timeout", 30.0, "Seconds to wait for the answer.")
_RAW = flags.DEFINE_bool("raw", False, "Print the server's JSON answer as it is.")
flags.mark_flag_as_required("model_name")


def _format_row(row):
    if {names.TOKENS, names.SCORES, names.NUM_TOKENS} <= set(row):
        from electra_tf.interpret import replaced_tokens as explain  # loads TensorFlow: only when needed

        (scores,) = explain.token_scores_from_rows(
            [row[names.TOKENS]], [row[names.SCORES]], [row[names.NUM_TOKENS]])
        return explain.format_scores(scores, _THRESHOLD.value, sys.stdout.isatty())
    return json.dumps(row)


# client.predict raises RuntimeError for a server that cannot be reached or answers
# with an error: expected, one line.
@tool_errors.exit_on_user_error(also=(RuntimeError,))
def main(argv):
    texts = argv[1:]
    if not texts:
        raise app.UsageError("give at least one text")
    body = client.build_request(texts, _TEXT_PAIR.value, _SIGNATURE.value, _FORMAT.value)
    url = client.predict_url(_SERVER.value, _MODEL_NAME.value, _VERSION.value)
    response = client.predict(url, body, _TIMEOUT.value)
    if _RAW.value:
        print(json.dumps(response, indent=2))
        return
    for text, row in zip(texts, client.response_rows(response, len(texts))):
        print(f"\n{text}")
        print(_format_row(row))


if __name__ == "__main__":
    app.run(main)
