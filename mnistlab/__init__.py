"""mnistlab: train, judge and use handwritten-digit classifiers on a laptop CPU.

    import mnistlab as ml
    run = ml.train(recipe="fast", data_dir="...")     # train -> calibrate -> evaluate -> report
    model = ml.load(run)                               # or "model.safetensors", "model.onnx"
    model.predict("photo.png")

Every `mnistlab` command is one of these functions (see api.py). Names are imported on first use, so
`import mnistlab` stays light.
"""

import sys
import types

from .errors import MnistlabError

_API = ("load_data", "explore", "train", "evaluate", "ensemble", "report", "load", "Model", "robustness",
        "calibrate", "export", "runs", "compare", "import_keras", "list_models", "list_recipes", "config", "sweep")
_ELSEWHERE = {"Run": "runs", "TrainConfig": "config", "ConfigError": "config"}

__all__ = ["MnistlabError", *_API, *_ELSEWHERE]


def __getattr__(name: str):
    import importlib

    if name in _API:
        return getattr(importlib.import_module(".api", __name__), name)
    if name in _ELSEWHERE:
        return getattr(importlib.import_module(f".{_ELSEWHERE[name]}", __name__), name)
    raise AttributeError(f"module 'mnistlab' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """Some API functions share their name with the module that does the work (`mnistlab.train` the
    function, mnistlab/train.py the module). Importing such a module must not replace the function on
    the package; the module stays importable by its full name (`from mnistlab.train import ...`)."""

    def __setattr__(self, name, value):
        if name in _API and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
