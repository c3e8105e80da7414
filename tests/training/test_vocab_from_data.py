"""Pretraining takes the vocabulary (and model.vocab_size) from the data directory when
the config leaves data.vocab_path unset, and refuses another vocabulary naming both."""

import os

import pytest

from helpers import REPO_ROOT
from electra_tf import config as config_lib
from electra_tf.data import builder
from electra_tf.data import manifest as manifest_lib
from electra_tf.training import pretrain

TINY_CONFIG = str(REPO_ROOT / "configs" / "electra_tiny.json")


@pytest.fixture
def data_dir(tmp_path, tiny_vocab):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat on the mat .\nthe dog ran fast .\n\na big red car .\n"
                      "the house is green .\n", encoding="utf-8")
    out = str(tmp_path / "data")
    builder.build_pretraining_data(str(corpus), tiny_vocab, out, max_seq_length=16,
                                   num_shards=1)
    return out


def test_unset_vocab_comes_from_the_data_dir(data_dir, tiny_vocab):
    cfg = config_lib.load_config(TINY_CONFIG, ["data.max_seq_length=16"])
    assert cfg.data.vocab_path == "" and cfg.model.vocab_size == 8000
    resolved = pretrain.vocab_from_data(cfg, data_dir)
    size = len(open(tiny_vocab, encoding="utf-8").read().splitlines())
    assert resolved.data.vocab_path == os.path.join(data_dir, manifest_lib.VOCAB_NAME)
    assert resolved.model.vocab_size == size == manifest_lib.read_manifest(data_dir)["vocab_size"]
    # Nothing else moves.
    assert config_lib.diff_configs(cfg, resolved) == [
        f'model.vocab_size: 8000 != {size}',
        f'data.vocab_path: "" != "{resolved.data.vocab_path}"']
    # The tokenizer it gives passes the data's manifest check.
    pretrain.load_tokenizer(resolved)
    # An explicit setting of the same vocabulary is kept as it is.
    same = config_lib.apply_overrides(cfg, [f"data.vocab_path={tiny_vocab}",
                                            f"model.vocab_size={size}"])
    assert pretrain.vocab_from_data(same, data_dir) == same


def test_another_vocab_is_refused_naming_both(data_dir, bert_vocab, tmp_path):
    cfg = config_lib.load_config(TINY_CONFIG, [f"data.vocab_path={bert_vocab}",
                                               "model.vocab_size=30522",
                                               "data.max_seq_length=16"])
    data_vocab = os.path.join(data_dir, manifest_lib.VOCAB_NAME)
    expected = f"data.vocab_path={bert_vocab} is not the vocabulary {data_dir} was built with " \
               f"\\({data_vocab}\\)"
    with pytest.raises(ValueError, match=expected):
        pretrain.vocab_from_data(cfg, data_dir)
    # run_pretraining checks it first, before building anything.
    with pytest.raises(ValueError, match=expected):
        pretrain.run_pretraining(cfg, data_dir, str(tmp_path / "model"))
    assert not (tmp_path / "model").exists()

    os.remove(data_vocab)  # data built before the builder copied its vocabulary
    unset = config_lib.load_config(TINY_CONFIG)
    with pytest.raises(ValueError, match="data.vocab_path is unset and .* has no vocab.txt"):
        pretrain.vocab_from_data(unset, data_dir)
