"""Signature, input and output names of the exports: a public, stable API (README
"Export and serving"). Plain strings with no TensorFlow import, so REST clients can use
them without TensorFlow; the id inputs are `electra_tf.schema`'s feature names."""

# === Signatures ===
SERVING_DEFAULT = "serving_default"
PREDICT_IDS = "predict_ids"
REPLACED_TOKEN_SCORES = "replaced_token_scores"
REPLACED_TOKEN_SCORES_IDS = "replaced_token_scores_ids"
ENCODER_FEATURES = "encoder_features"
ENCODER_FEATURES_IDS = "encoder_features_ids"
EXPLAIN = "explain"

# === Text inputs ===
TEXT = "text"
TEXT_PAIR = "text_pair"
QUESTION = "question"
CONTEXT = "context"

# === Outputs ===
TOKENS = "tokens"
SCORES = "scores"
LOGITS = "logits"
NUM_TOKENS = "num_tokens"
TRUNCATED = "truncated"
SEQUENCE_OUTPUT = "sequence_output"
CLS_OUTPUT = "cls_output"
PROBABILITIES = "probabilities"
LABEL = "label"
SCORE = "score"
ATTRIBUTIONS = "attributions"
# Question answering
ANSWER = "answer"
START_CHAR = "start_char"
END_CHAR = "end_char"
HAS_ANSWER = "has_answer"
START_LOGITS = "start_logits"
END_LOGITS = "end_logits"
# Token tagging
WORDS = "words"
TAGS = "tags"
WORD_STARTS = "word_starts"
WORD_ENDS = "word_ends"
NUM_WORDS = "num_words"
ENTITY_TYPES = "entity_types"
ENTITY_STARTS = "entity_starts"
ENTITY_ENDS = "entity_ends"
ENTITY_TEXTS = "entity_texts"
NUM_ENTITIES = "num_entities"
