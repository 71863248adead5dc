"""The run report: one self-contained HTML file (figures embedded) from what a run folder holds."""

import base64
import json
from html import escape
from pathlib import Path

from . import checkpoint
from .errors import MnistlabError
from .files import write_text
from .runfolder import AUGMENTED, CONFIG, CURVES, DATA, METRICS, MODEL, REPORT, ROBUSTNESS, best_epoch, open_folder, \
    read_dict, read_history, train_seconds

CSS = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; max-width: 1040px;
       margin: 2em auto; padding: 0 1.2em; }
h1 { margin-bottom: .1em; } h2 { border-bottom: 2px solid #eee; padding-bottom: .2em; margin-top: 2em; }
.sub { color: #666; margin-top: 0; }
.cards { display: flex; flex-wrap: wrap; gap: .8em; margin: 1.2em 0; }
.card { background: #f5f7fa; border-radius: 8px; padding: .6em 1em; min-width: 9em; }
.card b { display: block; font-size: 1.5em; } .card span { color: #666; font-size: .85em; }
table { border-collapse: collapse; margin: .8em 0; font-size: .9em; }
th, td { padding: .25em .7em; border-bottom: 1px solid #eee; text-align: right; }
th:first-child, td:first-child { text-align: left; } th { background: #fafafa; }
tr.best td { background: #eef8ee; font-weight: 600; }
img { max-width: 100%; height: auto; display: block; margin: .6em 0; }
.row { display: flex; gap: 1em; align-items: flex-start; } .row img { max-width: 49%; }
.note { color: #666; font-size: .85em; }
code { background: #f3f3f3; padding: 0 .3em; border-radius: 3px; }
"""


def _img(path: Path, alt: str) -> str:
    if not path.exists():
        return ""
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{escape(alt)}">'


def _table(header, rows, classes=None) -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = "".join(
        f'<tr class="{classes[i] if classes else ""}">' + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>"
        for i, row in enumerate(rows))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _card(value: str, label: str) -> str:
    return f'<div class="card"><b>{escape(value)}</b><span>{escape(label)}</span></div>'


def build(run_dir) -> str:
    """The report's HTML for a run folder (or any folder holding evaluation results), section by section."""
    run = Path(run_dir)
    if not run.is_dir():
        raise MnistlabError(f"{run}: no such run folder")
    r = dict(run=run, config=read_dict(run / CONFIG), history=read_history(run), metrics=read_dict(run / METRICS),
             data=read_dict(run / DATA), robust=read_dict(run / ROBUSTNESS),
             meta=checkpoint.read_meta(run) if (run / MODEL).exists() else None)
    if not any((r["config"], r["history"], r["metrics"], r["meta"])):
        raise MnistlabError(f"{run}: nothing to report (no config, history, metrics or model)")
    sections = (_header, _data_section, _config_section, _training_section, _evaluation_section, _robustness_section)
    try:
        parts = [html for section in sections for html in section(**r)]
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        raise MnistlabError(f"{run}: malformed results, cannot report them ({type(e).__name__}: {e})") from None
    parts.append('<p class="note">Made by mnistlab. Figures are embedded; this file needs no network.</p>')
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>mnistlab: {escape(run.resolve().name)}</title><style>{CSS}</style></head><body>"
            + "\n".join(p for p in parts if p) + "</body></html>")


def _header(run, config, history, metrics, meta, **_) -> list[str]:
    model = (meta or {}).get("model") or (metrics or {}).get("model") or {"name": (config or {}).get("model", "?")}
    dataset = (meta or {}).get("dataset") or (config or {}).get("dataset", "?")
    parts = [f"<h1>mnistlab run: {escape(run.resolve().name)}</h1>",
             f'<p class="sub">{escape(model["name"])} on {escape(dataset)}'
             + (f', created {escape(meta["created"])}' if meta else "") + "</p>"]
    cards = []
    if metrics:
        cards += [_card(f"{metrics['test_accuracy']:.2%}", f"test accuracy ({metrics['n']:,} images)"),
                  _card(f"{metrics['test_loss']:.4f}", "test loss"),
                  _card(f"{metrics['misclassified']:,}", "misclassified")]
    if history:
        best = best_epoch(history)
        cards += [_card(f"{best['val_accuracy']:.2%}", f"validation accuracy (epoch {best['epoch']})"),
                  _card(f"{train_seconds(history):.1f} s", f"training, {len(history)} epoch{'s' * (len(history) > 1)}")]
    if "params" in model:
        cards.append(_card(f"{model['params']:,}", "parameters"))
    return parts + ['<div class="cards">' + "".join(cards) + "</div>"]


def _data_section(run, data, **_) -> list[str]:
    if not data:
        return []
    counts, px = data["counts"], data["pixels"]
    return ["<h2>Data</h2>",
            f"<p>Training images {data['shapes']['train_images']}, test images {data['shapes']['test_images']}, "
            f"dtype {escape(data['dtypes']['images'])}. Pixels (scaled to [0, 1]): mean {px['mean']:.4f}, "
            f"std {px['std']:.4f}; {px['fraction_zero']:.1%} of pixels are 0.</p>",
            _table(["class", "train", "test"],
                   [[c, counts["train"][i], counts["test"][i]] for i, c in enumerate(data["classes"])]),
            _img(run / "class_counts.png", "images per class"), _img(run / "samples.png", "sample grid"),
            _img(run / "mean_images.png", "mean image per class"),
            _img(run / "pixel_histogram.png", "pixel histogram")]


def _config_section(config, meta, **_) -> list[str]:
    parts = []
    if config:
        parts += ["<h2>Configuration</h2>",
                  _table(["setting", "value"], [[k, json.dumps(v)] for k, v in config.items()])]
    if meta:
        versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
        parts.append(f'<p class="note">Input standardisation mean {meta["input"]["mean"]:.4f}, '
                     f'std {meta["input"]["std"]:.4f}. Versions: {escape(versions)}.</p>')
    return parts


def _training_section(run, history, **_) -> list[str]:
    if not history:
        return []
    best = best_epoch(history)
    return ["<h2>Training</h2>", _img(run / CURVES, "accuracy and loss curves"),
            _img(run / AUGMENTED, "augmented training images"),
            _table(["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds"],
                   [[r["epoch"], f"{r['loss']:.4f}", f"{r['accuracy']:.4f}", f"{r['val_loss']:.4f}",
                     f"{r['val_accuracy']:.4f}", f"{r['seconds']:.1f}"] for r in history],
                   ["best" if r["epoch"] == best["epoch"] else "" for r in history]),
            '<p class="note">Highlighted: the epoch with the highest validation accuracy (then lowest '
            "loss), whose weights are kept. The test set plays no part in training or model selection.</p>"]


def _evaluation_section(run, metrics, **_) -> list[str]:
    if not metrics:
        return []
    report = metrics["classification_report"]
    rows = [[n, f"{report[n]['precision']:.4f}", f"{report[n]['recall']:.4f}", f"{report[n]['f1-score']:.4f}",
             f"{report[n]['support']:,.0f}", "n/a" if metrics["auroc"][n] is None else f"{metrics['auroc'][n]:.5f}"]
            for n in metrics["auroc"]]
    rows += [[avg, f"{report[avg]['precision']:.4f}", f"{report[avg]['recall']:.4f}",
              f"{report[avg]['f1-score']:.4f}", f"{report[avg]['support']:,.0f}", ""]
             for avg in ("macro avg", "weighted avg")]
    parts = ["<h2>Evaluation on the test set</h2>"]
    if metrics.get("members"):
        parts += [f"<p>The mean of {len(metrics['members'])} models' class probabilities"
                  + (", each averaged over one-pixel shifts of the image (test-time augmentation)"
                     if metrics.get("tta") else "") + ".</p>",
                  _table(["member", "model", "test accuracy"],
                         [[m["checkpoint"], m["model"], f"{m['test_accuracy']:.2%}"] for m in metrics["members"]])]
    parts += [_table(["metric", "value"], [
                  ["accuracy", f"{metrics['test_accuracy']:.2%}"],
                  ["top-2 accuracy", f"{metrics['top2_accuracy']:.2%}"],
                  ["loss (cross-entropy)", f"{metrics['test_loss']:.5f}"],
                  ["AUROC, macro", "n/a" if metrics["auroc_macro"] is None else f"{metrics['auroc_macro']:.6f}"],
                  ["AUROC, micro", f"{metrics['auroc_micro']:.6f}"]]),
              "<h3>Classification report</h3>",
              _table(["class", "precision", "recall", "F1", "support", "AUROC"], rows),
              "<h3>Confusion matrix and ROC curves</h3>",
              '<div class="row">' + _img(run / "confusion_matrix.png", "confusion matrix")
              + _img(run / "roc.png", "ROC curves") + "</div>",
              "<h3>Most confused pairs</h3>",
              _table(["true", "predicted as", "count"],
                     [[p["true"], p["predicted"], p["count"]] for p in metrics["most_confused"]]),
              "<h3>Mistakes</h3>", _img(run / "misclassified.png", "misclassified test images")]
    calibration = metrics.get("calibration") or {}
    if calibration:
        rows = [["expected calibration error (15 bins)", f"{calibration['ece']:.3%}"]]
        if "ece_uncalibrated" in calibration:
            rows = [["temperature (fitted on the validation split)", f"{calibration['temperature']:.4f}"],
                    ["ECE before temperature scaling", f"{calibration['ece_uncalibrated']:.3%}"],
                    ["ECE after", f"{calibration['ece']:.3%}"],
                    ["loss before temperature scaling", f"{calibration['loss_uncalibrated']:.5f}"],
                    ["loss after", f"{metrics['test_loss']:.5f}"]]
        parts += ["<h3>Calibration</h3>", _table(["", "test set"], rows),
                  _img(run / "reliability.png", "reliability diagram")]
    return parts


def _robustness_section(run, robust, **_) -> list[str]:
    if not robust:
        return []
    sure = robust.get("confidently_wrong")  # robustness.json written before it was measured has none

    def row(name, error, wrong, what=""):
        return [name, f"{error:.2%}"] + ([f"{wrong:.2%}"] if sure else []) + [what]

    rows = [row("clean", robust["clean_error"], robust.get("clean_confidently_wrong"))]
    rows += [row(name.replace("_", " "), e, (sure or {}).get(name), robust["severity"].get(name, ""))
             for name, e in robust["errors"].items()]
    rows.append(row("mean corruption error", robust["mean_corruption_error"], robust.get("mean_confidently_wrong")))
    head = ["corruption", "test error"] + ([f"confidently wrong (p ≥ {robust['min_confidence']:g})"] if sure else [])
    note = (" <em>Confidently wrong</em>: read wrong with a calibrated probability of at least "
            f"{robust['min_confidence']:g}, which <code>mnistlab predict</code> would claim instead of calling it "
            "unsure." if sure else "")
    return ["<h2>Robustness: MNIST-C corruptions</h2>",
            f"<p>Test error on the first {robust['n']:,} test images, clean and under each of MNIST-C's 15 "
            f"corruptions (seed {robust['seed']}).{note}</p>",
            _table(head + ["what it does"], rows),
            _img(run / "robustness.png", "test error per corruption"),
            _img(run / "corruptions.png", "test digits under each corruption")]


def write_report(run_dir, out=None) -> Path:
    out = Path(out) if out else open_folder(run_dir) / REPORT
    write_text(out, build(run_dir))
    return out
