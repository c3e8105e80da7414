"""THE feature names and dtypes shared by every stage.

Names follow keras-hub's conventions so its layers and presets plug in directly.
Every other module imports the names from here; none spells them out again.

Stored in TFRecords (unpadded, unmasked; one example = one packed sequence):
  token_ids     int64 [seq_len]  `[CLS] A [SEP] B [SEP]` or `[CLS] A [SEP]`
  segment_ids   int64 [seq_len]  0 for `[CLS] A [SEP]`, 1 for `B [SEP]`

Produced by the pretraining input pipeline (padded to max_seq_length L and masked):
  token_ids      int32 [batch, L]   with masked positions replaced (mostly by [MASK])
  segment_ids    int32 [batch, L]
  padding_mask   bool  [batch, L]   True on real tokens
  mask_positions int32 [batch, P]   positions chosen for masking (P = max predictions)
  mask_ids       int32 [batch, P]   the original ids at those positions
  mask_weights   float32 [batch, P] 1.0 for real predictions, 0.0 for padding

Extractive question answering labels (`data/squad.py`):
  start_positions int32 [batch]     the answer's first and last token (inclusive);
  end_positions   int32 [batch]     0 ([CLS]) when the window holds no answer
"""

import tensorflow as tf

TOKEN_IDS = "token_ids"
SEGMENT_IDS = "segment_ids"
PADDING_MASK = "padding_mask"
MASK_POSITIONS = "mask_positions"
MASK_IDS = "mask_ids"
MASK_WEIGHTS = "mask_weights"
START_POSITIONS = "start_positions"
END_POSITIONS = "end_positions"

# On-disk feature spec: variable length, so examples are stored unpadded.
TFRECORD_FEATURES = {
    TOKEN_IDS: tf.io.RaggedFeature(dtype=tf.int64),
    SEGMENT_IDS: tf.io.RaggedFeature(dtype=tf.int64),
}

SHARD_PATTERN = "pretrain-{index:05d}-of-{count:05d}.tfrecord"
SHARD_GLOB = "pretrain-*-of-*.tfrecord"
MANIFEST_NAME = "manifest.json"
# Bumped whenever the packing algorithm or the record layout changes.
BUILDER_VERSION = 1
