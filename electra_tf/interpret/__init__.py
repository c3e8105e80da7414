"""Looking inside trained models: what a discriminator flags and why a classifier decides.

  replaced_tokens  the discriminator's per-token replaced probabilities, from a model
                   dir or an export, and their terminal/HTML views (tools/explain.py)
  explainer        `Explainer`: raw text in, integrated-gradients `Explanation`s (words,
                   label, probabilities, completeness) out
  report           terminal, HTML and JSON-lines views of explanations

The top of the library: it reads model dirs and exports. The attribution math is
`models/integrated_gradients.py`, and the `explain` signature of a classifier export
`export/attributions.py`, so exports never import this package. Modules are imported by
name (`from electra_tf.interpret import explainer`).
"""
