"""Import models saved by Keras (the seed notebooks' `model.save`) into mnistlab checkpoints, without
TensorFlow or Keras: the files are read with h5py and zipfile.

Three file kinds: a Keras 2 `.h5` from `model.save`, a `to_json()` architecture with a `save_weights`
`.h5`, and a Keras 3 `.keras` zip. Supported: Sequential stacks of Dense, Conv2D, MaxPooling2D,
Dropout and Flatten (the seeds' three models among them), with ReLU, linear or (last layer only)
softmax activations. Keras works channels-last; the imported network works channels-first, so
kernels are transposed and the first Dense after Flatten has its rows reordered from (h, w, c) to
(c, h, w) order.
"""

import io
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import torch

from .errors import MnistlabError
from .models import Classifier, KerasSequential
from .runfolder import MODEL

SUPPORTED = ("InputLayer", "Dense", "Conv2D", "MaxPooling2D", "Dropout", "Flatten")


def read(path, weights_path=None) -> tuple[dict, dict]:
    """(Keras model config, {layer name: [arrays in Keras order]}) from any of the three file kinds."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise MnistlabError(f"{path}: no such file")
    try:
        if zipfile.is_zipfile(path):  # Keras 3 .keras
            with zipfile.ZipFile(path) as z:
                config = json.loads(z.read("config.json"))
                with h5py.File(io.BytesIO(z.read("model.weights.h5")), "r") as h5:
                    stored = h5["layers"]
                    weights = {}
                    for name, key in _keras3_keys(config).items():
                        arrays = stored[key]["vars"] if key in stored else {}
                        weights[name] = [np.array(arrays[str(i)]) for i in range(len(arrays))]
            return config, weights
        if path.suffix == ".json":  # to_json() architecture + save_weights() file
            if weights_path is None:
                raise MnistlabError(f"{path}: an architecture file needs its weights: --weights FILE.h5")
            config = json.loads(path.read_text())
            with h5py.File(weights_path, "r") as h5:
                return config, _h5_weights(h5)
        with h5py.File(path, "r") as h5:  # Keras 2 model.save('x.h5')
            if "model_config" not in h5.attrs:
                raise MnistlabError(f"{path}: an .h5 file without a model config (a weights-only file? give the "
                                    "architecture .json and pass this file as --weights)")
            config = json.loads(h5.attrs["model_config"])
            return config, _h5_weights(h5["model_weights"])
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
        if isinstance(e, MnistlabError):
            raise
        raise MnistlabError(f"{path}: not a readable Keras model file ({e})") from None


def _keras3_keys(config: dict) -> dict:
    """Keras 3 stores a Sequential's weights under each layer's class name in snake case, numbered by
    occurrence (dense, dense_1, ...), not under the layer's own name: {layer name: storage key}."""
    keys, seen = {}, {}
    for layer in config.get("config", {}).get("layers", []):
        if layer["class_name"] == "InputLayer":
            continue
        snake = re.sub("([a-z])([A-Z])", r"\1_\2", re.sub("(.)([A-Z][a-z]+)", r"\1_\2", layer["class_name"])).lower()
        n = seen.get(snake, 0)
        seen[snake] = n + 1
        keys[layer["config"]["name"]] = snake if n == 0 else f"{snake}_{n}"
    return keys


def _h5_weights(group) -> dict:
    """Keras 2 layout: one group per layer, its arrays listed in order by the `weight_names` attribute."""
    weights = {}
    for name in group.attrs["layer_names"]:
        name = name.decode() if isinstance(name, bytes) else name
        layer = group[name]
        names = [n.decode() if isinstance(n, bytes) else n for n in layer.attrs.get("weight_names", [])]
        weights[name] = [np.array(layer[n]) for n in names]
    return weights


def convert(config: dict, weights: dict) -> tuple[list, dict]:
    """Keras config and weights -> (layer specs for KerasSequential, torch state dict)."""
    if config.get("class_name") != "Sequential":
        raise MnistlabError(f"only Sequential models can be imported, not {config.get('class_name')}")
    layers = config["config"]["layers"]
    shape = None  # current activation shape, channels-first: (C, H, W) or (N,)
    specs, state = [], {}
    for i, layer in enumerate(layers):
        kind, cfg = layer["class_name"], layer["config"]
        if kind not in SUPPORTED:
            raise MnistlabError(f"layer {cfg.get('name')!r} is a {kind}; supported: {', '.join(SUPPORTED)}")
        input_shape = cfg.get("batch_input_shape") or cfg.get("batch_shape")
        if input_shape and shape is None:
            dims = list(input_shape[1:])
            if dims not in ([28, 28], [28, 28, 1]):
                raise MnistlabError(f"input shape {dims} is not a 28x28 greyscale image")
            shape = (1, 28, 28)
        if kind == "InputLayer":
            continue
        if shape is None:
            raise MnistlabError("the model does not declare its input shape")
        activation = cfg.get("activation", "linear")
        last = i == len(layers) - 1
        if activation not in ("relu", "linear") and not (activation == "softmax" and last):
            raise MnistlabError(f"layer {cfg['name']!r}: activation {activation!r} is not supported here")
        arrays = weights.get(cfg["name"], [])
        n = len(specs)
        if kind == "Conv2D":
            if cfg.get("strides", [1, 1]) != [1, 1] or cfg.get("dilation_rate", [1, 1]) not in ([1, 1], 1):
                raise MnistlabError(f"layer {cfg['name']!r}: only stride-1, undilated convolutions are supported")
            kh, kw = cfg["kernel_size"]
            padding = {"valid": 0, "same": kh // 2}[cfg["padding"]]
            if cfg["padding"] == "same" and (kh % 2 == 0 or kh != kw):
                raise MnistlabError(f"layer {cfg['name']!r}: 'same' padding needs an odd, square kernel")
            kernel, bias = _kernel_and_bias(arrays, cfg["name"])
            specs.append(dict(kind="conv", **{"in": shape[0]}, out=cfg["filters"], kernel=[kh, kw],
                              padding=padding, relu=activation == "relu"))
            state[f"layers.{n}.weight"] = torch.from_numpy(kernel).permute(3, 2, 0, 1).contiguous()
            state[f"layers.{n}.bias"] = torch.from_numpy(bias)
            shape = (cfg["filters"], shape[1] - kh + 1 + 2 * padding, shape[2] - kw + 1 + 2 * padding)
        elif kind == "MaxPooling2D":
            size, stride = cfg["pool_size"], cfg.get("strides") or cfg["pool_size"]
            if cfg.get("padding", "valid") != "valid":
                raise MnistlabError(f"layer {cfg['name']!r}: only 'valid' pooling is supported")
            specs.append(dict(kind="pool", size=size, stride=stride))
            shape = (shape[0], (shape[1] - size[0]) // stride[0] + 1, (shape[2] - size[1]) // stride[1] + 1)
        elif kind == "Flatten":
            specs.append(dict(kind="flatten"))
            flattened_from, shape = shape, (int(np.prod(shape)),)
        elif kind == "Dropout":
            specs.append(dict(kind="dropout"))
        elif kind == "Dense":
            if len(shape) != 1:
                raise MnistlabError(f"layer {cfg['name']!r}: Dense on an image needs a Flatten first")
            kernel, bias = _kernel_and_bias(arrays, cfg["name"])  # (in, out), inputs in (h, w, c) order
            if kernel.shape[0] != shape[0]:
                raise MnistlabError(f"layer {cfg['name']!r}: weights for {kernel.shape[0]} inputs, the model gives "
                                    f"it {shape[0]}")
            if specs and specs[-1]["kind"] in ("flatten", "dropout") and len(flattened_from) == 3:
                c, h, w = flattened_from  # the first Dense after Flatten: rows (h, w, c) -> (c, h, w)
                kernel = kernel.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(c * h * w, -1)
            specs.append(dict(kind="dense", **{"in": shape[0]}, out=cfg["units"], relu=activation == "relu"))
            state[f"layers.{n}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.T))
            state[f"layers.{n}.bias"] = torch.from_numpy(bias)
            shape = (cfg["units"],)
    return specs, state


def _kernel_and_bias(arrays: list, name: str):
    if len(arrays) != 2:
        raise MnistlabError(f"layer {name!r}: the weights file has {len(arrays)} arrays for it, not a kernel "
                            "and a bias (weights of another model?)")
    return arrays


def import_model(path, out_dir, weights_path=None) -> Path:
    """Import a Keras file and write an mnistlab checkpoint `out_dir/model.safetensors`; returns its path."""
    from . import checkpoint

    config, weights = read(path, weights_path)
    specs, state = convert(config, weights)
    classes = [str(d) for d in range(specs[-1]["out"])]
    net = KerasSequential(specs, len(classes))
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise MnistlabError(f"{path}: weights do not match the architecture ({str(e).splitlines()[0]})") from None
    model = Classifier(net)  # the seeds feed x/255 with no standardisation: mean 0, std 1
    out = Path(out_dir) / MODEL
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    meta = checkpoint.model_meta(model, "keras-sequential", {"layers": specs, "num_classes": len(classes)}, classes,
                                 "mnist", seed=None, imported_from=str(path))
    checkpoint.save_model(out, model, meta)
    return out
