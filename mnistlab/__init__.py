"""mnistlab: train, judge and use handwritten-digit classifiers on a laptop CPU."""

from .errors import MnistlabError

__all__ = ["MnistlabError"]
