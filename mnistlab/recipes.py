"""Named training presets: model, optimiser, schedule, batch size, epochs and augmentation in one word.

`mnistlab train --recipe NAME` starts from TrainConfig's defaults, applies the recipe, then any flag
given on the command line. Every figure quoted here was measured by bench/recipes.py on a 2-core CPU
(see docs/benchmarks.md).
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Recipe:
    summary: str
    settings: dict


RECIPES = {
    "seed": Recipe(
        "seed 000's Keras CNN as its notebook trains it: cnn-small, Adam 1e-3, batch 128, 15 epochs",
        dict(model="cnn-small", optimizer="adam", lr=1e-3, batch_size=128, epochs=15),
    ),
    "fast": Recipe(
        "time to 99%: one epoch of fast-cnn, SGD with a one-cycle schedule, label smoothing",
        dict(model="fast-cnn", epochs=1, batch_size=64, optimizer="sgd", lr=0.2, weight_decay=5e-4,
             schedule="onecycle", warmup=0.2, label_smoothing=0.1, precision="auto"),
    ),
    "balanced": Recipe(
        "99.5% within a minute: fast-cnn at width 32, light augmentation, EMA, bf16, 7 one-cycle epochs",
        dict(model="fast-cnn", model_args={"width": 32}, epochs=7, batch_size=64, optimizer="sgd", lr=0.2,
             weight_decay=5e-4, schedule="onecycle", warmup=0.2, label_smoothing=0.1, ema=0.999,
             rotate=8, scale=0.08, translate=2, precision="auto"),
    ),
    "robust": Recipe(
        "for people's own images: 12 epochs of bn-cnn with balanced's training, plus thicker and thinner strokes, "
        "random light (brighter and foggy pages), salt-and-pepper noise, printed digits, digits cut out of 3,000 "
        "synthetic photos as the photo reader sees them, and non-digits it learns to be unsure of (outlier "
        "exposure); calibrated on photos of the validation digits too; then a line reader for digits written into "
        "each other (6,000 steps)",
        dict(model="bn-cnn", model_args={"width": 32}, epochs=12, batch_size=64, optimizer="sgd", lr=0.2,
             weight_decay=5e-4, schedule="onecycle", warmup=0.2, label_smoothing=0.1, ema=0.999,
             rotate=8, scale=0.08, translate=2, stroke=0.3, light=0.8, noise=0.2, printed=0.05, outliers=0.2,
             photos=3000, line_reader=6000, precision="auto"),
    ),
    "best": Recipe(
        "the most accurate single model: bn-cnn, affine and elastic augmentation, EMA, bf16, 30 epochs",
        dict(model="bn-cnn", epochs=30, batch_size=128, optimizer="sgd", lr=0.1, weight_decay=5e-4,
             schedule="onecycle", warmup=0.15, label_smoothing=0.1, ema=0.999, precision="auto",
             rotate=10, scale=0.1, shear=5, translate=2, elastic=1.0),
    ),
}
