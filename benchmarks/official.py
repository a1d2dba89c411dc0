"""The official GRU4Rec (Hidasi's ``GRU4Rec_PyTorch_Official``), loaded from a checkout outside this
repository for measuring only: nothing of it is copied here.

    git clone https://github.com/hidasib/GRU4Rec_PyTorch_Official /tmp/gru4rec_official
    git -C /tmp/gru4rec_official checkout d1fc31105577665d2f105de1c8d9a38d223a9a22
"""

import importlib.util
import sys
from pathlib import Path

import numpy as np

MODULE = "gru4rec_pytorch"


def load_gru4rec(checkout):
    """The checkout's ``gru4rec_pytorch`` module (imported once per process, by its file path), with
    its NumPy-2 float32 fix applied."""
    if MODULE in sys.modules:
        return sys.modules[MODULE]
    path = Path(checkout) / f"{MODULE}.py"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no official GRU4Rec there; clone it as this module's docstring says")
    spec = importlib.util.spec_from_file_location(MODULE, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE] = module
    spec.loader.exec_module(module)
    _float32_init_weights(module.GRU4RecModel)
    return module


def _float32_init_weights(model_class):
    """NumPy 2 fix for the official code's compatibility-mode init: its float32 weights times a
    float64 scalar became float64 under NumPy 2's promotion rules (NEP 50), which ``Tensor.set_``
    refuses for a float32 parameter. Cast back to the float32 it had under NumPy 1."""
    original = model_class.__dict__["_init_numpy_weights"]

    def init_numpy_weights(self, shape):
        return original(self, shape).astype(np.float32)

    model_class._init_numpy_weights = init_numpy_weights


def load_evaluation(checkout):
    """The checkout's ``evaluation`` module (its ``batch_eval``), imported by file path after
    :func:`load_gru4rec`, whose module it imports by name."""
    load_gru4rec(checkout)
    path = Path(checkout) / "evaluation.py"
    spec = importlib.util.spec_from_file_location("evaluation", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
