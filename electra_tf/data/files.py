"""Writing files so that readers never see half of one."""

import os
import uuid

import tensorflow as tf


def write_text_atomic(path, text):
    """Writes `text` to `path` (local or any tf.io.gfile URL) via a temp file + rename.

    The temp name is unique per call, so two writers of one path never write into
    each other's temp file; the last rename wins whole.
    """
    tmp = f"{path}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        with tf.io.gfile.GFile(tmp, "w") as f:
            f.write(text)
        tf.io.gfile.rename(tmp, path, overwrite=True)
    finally:
        if tf.io.gfile.exists(tmp):
            tf.io.gfile.remove(tmp)
