"""The `explain` signature of a classifier export: integrated gradients in the graph.

Text in (tokenized and packed as `serving_default`) -> tokens string `[batch, seq]`,
attributions float32 `[batch, seq]` (0 on [CLS], [SEP] and padding), label string
`[batch]` and probabilities float32 `[batch, num_labels]` (regression: score float32
`[batch]`), num_tokens int32 and truncated bool `[batch]`. The predicted label is
explained, with the number of steps fixed at export time.

Each text runs as one pass of `steps + 1` rows of its own length (a `tf.map_fn` over
the request), so a request's memory is that of its longest text, whatever its size.
The result equals `Explainer.explain`'s (which batches texts differently; padding does
not change attributions).
"""

import tensorflow as tf

from electra_tf import schema
from electra_tf.export import names, signatures
from electra_tf.models import integrated_gradients as ig

_PER_TEXT = (schema.TOKEN_IDS, schema.SEGMENT_IDS, schema.PADDING_MASK)


def explain_endpoint(classifier, packer, label_names=(), pair=False, steps=32):
    """{"explain": (function, input specs)} for `exporter.write_export`.

    Args:
      classifier: an `ElectraClassifier`.
      packer: a `signatures.TextPacker` with its tokenizer and max_seq_length.
      label_names: class names in output order ("0", "1", ... when empty).
      pair: whether the signature takes `text_pair` too.
      steps: trapezoid intervals of the integral.
    """
    regression = classifier.is_regression
    if not regression:
        label_names = signatures.resolve_label_names(classifier.num_labels, label_names)
    specials = (packer.tokenizer.cls_id, packer.tokenizer.sep_id)
    num_outputs = classifier.num_labels

    def one_text(row):
        """Attributions `[seq]` and logits `[num_labels]` of one packed text."""
        features = dict(zip(_PER_TEXT, row))
        length = tf.reduce_sum(tf.cast(features[schema.PADDING_MASK], tf.int32))
        # Cut to the text's own length: no padded rows in its pass.
        trimmed = {key: value[None, :length] for key, value in features.items()}
        out = ig.integrated_gradients(classifier, trimmed, ig.content_mask(trimmed, specials),
                                      steps=steps)
        seq = tf.shape(features[schema.TOKEN_IDS])[0]
        return tf.pad(out["attributions"][0], [[0, seq - length]]), out["logits"][0]

    def answer(features, info):
        attributions, logits = tf.map_fn(
            one_text, tuple(features[key] for key in _PER_TEXT),
            fn_output_signature=(tf.TensorSpec([None], tf.float32),
                                 tf.TensorSpec([num_outputs], tf.float32)))
        outputs = {
            names.TOKENS: packer.tokenizer.id_to_token(features[schema.TOKEN_IDS]),
            names.ATTRIBUTIONS: attributions,
            **info,
        }
        if regression:
            outputs[names.SCORE] = logits[:, 0]
        else:
            probabilities = tf.nn.softmax(logits, axis=-1)
            outputs[names.PROBABILITIES] = probabilities
            outputs[names.LABEL] = tf.gather(tf.constant(label_names),
                                             tf.argmax(probabilities, axis=-1))
        return outputs

    if pair:
        def explain(text, text_pair):
            return answer(*packer(text, text_pair))

        specs = [signatures.text_spec(names.TEXT), signatures.text_spec(names.TEXT_PAIR)]
    else:
        def explain(text):
            return answer(*packer(text))

        specs = [signatures.text_spec(names.TEXT)]
    return {names.EXPLAIN: (explain, specs)}
