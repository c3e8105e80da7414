"""Fixtures shared by the interpret tests."""

import pytest

from interpret.interpret_helpers import make_finetuned


@pytest.fixture(scope="module")
def pair_dir(tmp_path_factory):
    """A tiny fine-tuned 3-label pair classifier: (output_dir, ...) from make_finetuned."""
    return make_finetuned(tmp_path_factory.mktemp("pair"), num_labels=3, pair=True)
