"""Interpretability of fine-tuned classifiers: integrated-gradients token attributions.

  integrated_gradients  the attribution math on packed features (one pass per batch)
  explainer             `Explainer`: raw text in, `Explanation`s (words, label,
                        probabilities, completeness) out
  report                terminal, HTML and JSON-lines views of explanations
  serving               the `explain` signature of a classifier export

The modules are imported by name (`from electra_tf.interpret import explainer`): the
exporter imports `serving`, and `explainer` reads fine-tuned dirs through the exporter.
The discriminator's replaced-token scores are in `electra_tf.explain`.
"""
