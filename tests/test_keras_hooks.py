"""The private Keras hooks the library overrides still exist, with the arguments the
overrides expect. A Keras release that renames one would otherwise make the override
dead code silently (clipping or weight decay skipped, a model built wrongly); setup.py
pins Keras below the first untested minor version, and this test names the hook."""

import inspect

import keras
import pytest

from electra_tf.models.classifier import ElectraClassifier
from electra_tf.models.pretrainer import ElectraPretrainer
from electra_tf.training.optimization import LayerwiseAdamW

# (our class, the Keras class whose private method it overrides, method name)
HOOKS = [
    (LayerwiseAdamW, keras.optimizers.AdamW, "_backend_apply_gradients"),
    (LayerwiseAdamW, keras.optimizers.AdamW, "_all_reduce_sum_gradients"),
    (LayerwiseAdamW, keras.optimizers.AdamW, "_clip_gradients"),
    (LayerwiseAdamW, keras.optimizers.AdamW, "_apply_weight_decay"),
    (ElectraPretrainer, keras.Model, "_maybe_symbolic_build"),
    (ElectraClassifier, keras.Model, "_maybe_symbolic_build"),
]


@pytest.mark.parametrize("ours, base, name", HOOKS,
                         ids=[f"{o.__name__}.{n}" for o, _, n in HOOKS])
def test_overridden_private_hook_exists_with_our_arguments(ours, base, name):
    inherited = [k for k in base.__mro__ if name in vars(k)]
    assert inherited, (f"Keras {keras.__version__}: {base.__name__} has no {name}; "
                       f"{ours.__name__}'s override of it would never run")
    theirs = inspect.signature(getattr(base, name))
    mine = inspect.signature(getattr(ours, name))
    assert list(mine.parameters) == list(theirs.parameters), (
        f"Keras {keras.__version__} changed {base.__name__}.{name}{theirs}; "
        f"{ours.__name__} overrides it as {name}{mine}")
    assert name in vars(ours) or any(name in vars(k) for k in ours.__mro__[1:]
                                     if k not in base.__mro__)
