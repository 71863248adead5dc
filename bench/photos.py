"""Benchmark: reading digits in phone photos (mnistlab/scenes.py, or with --scenes b the
independently written bench/photo_scenes_b.py) with mnistlab's public `read`.

    python bench/photos.py RUN --data-dir ../shared/data/mnist [--per-condition 200] [--split holdout]
                           [--scenes a|b]
                           [--single] [--condition NAME ...] [--failures DIR] [--max-failures 10]

Every scene goes from its JPEG bytes through `predict.open_image` and `predict.read` (timed together,
end to end). With `--single`, scenes of one digit, blank and junk scenes are read with single=True
(the image holds one digit, as the drawing page says); numbers and pages of numbers always with
single=False. A reading is right when its status is "ok" and its text is the truth exactly (a page of
numbers: every line, with "\n" between lines); blank and junk scenes have no
right text, so for them any "ok" is a confident wrong answer. phone-12mp uses a fifth of
--per-condition scenes (each takes about a second to make). Prints a table and writes it into
docs/benchmarks.md between this benchmark's markers; `--failures DIR` keeps, per condition, up to
`--max-failures` wrong or abstaining scenes with the reading (confident wrongs first) and, when
mnistlab can draw one, its --debug picture.
"""

import argparse
import json
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import photo_scenes_b
import torch
from common import write_section

import mnistlab
from mnistlab import locate, predict
from mnistlab import scenes as photo_scenes
from mnistlab.scenes import DigitSource

# The scene generators: "a" (mnistlab/scenes.py, which the locator was tuned on, its tuning split)
# and "b" (bench/photo_scenes_b.py, written independently, never tuned on).
GENERATORS = {"a": photo_scenes, "b": photo_scenes_b}
KINDS = photo_scenes.KINDS | photo_scenes_b.KINDS  # condition names do not clash
CONDITIONS = tuple(KINDS)
# Overall rows: name -> conditions pooled.
GROUPS = {
    "single digits in photos": tuple(c for c in CONDITIONS if KINDS[c] == "digit" and c not in ("printed", "canvas")),
    "numbers (exact match)": tuple(c for c in CONDITIONS if KINDS[c] == "number"),
    "pages of numbers (every line exact)": tuple(c for c in CONDITIONS if KINDS[c] == "lines"),
    "blank and junk (nothing to read)": tuple(c for c in CONDITIONS if KINDS[c] in ("blank", "junk")),
    "printed (digit and number)": ("printed", "printed-number"),
    "canvas": ("canvas",),
}


def make_scene(condition: str, seed: int, digits: DigitSource):
    generator = photo_scenes_b if condition in photo_scenes_b.KINDS else photo_scenes
    return generator.make_scene(condition, seed, digits)


def cpu() -> str:
    """lscpu's model name and whether the CPU has the AVX2 and AVX512-BF16 instructions."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        out = ""
    model = next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")), "?")
    flags = set(next((line.split(":", 1)[1].split() for line in out.splitlines() if line.startswith("Flags")), []))
    has = {flag: "yes" if flag in flags else "no" for flag in ("avx2", "avx512_bf16")}
    return f"{model} (avx2 {has['avx2']}, avx512_bf16 {has['avx512_bf16']})"


def fonts() -> str:
    """Which of the scenes' TrueType fonts this machine has: the printed scenes depend on them
    (Debian's fonts-liberation, pulled in by Chromium, adds eight)."""
    have = [d / f for d in photo_scenes.FONT_DIRS for f in photo_scenes.FONT_FILES if (d / f).exists()]
    return f"{len(have)} of the {len(photo_scenes.FONT_FILES)} font files"


def commit() -> str:
    """The commit of the mnistlab being measured (+ if its work tree has changes)."""
    folder = Path(mnistlab.__file__).resolve().parent
    try:
        head = subprocess.run(["git", "-C", str(folder), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(folder), "status", "--porcelain", "--", "."],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"
    return head + ("+ (uncommitted changes)" if dirty else "")


def scene_count(condition: str, per_condition: int) -> int:
    return max(1, per_condition // 5) if condition == "phone-12mp" else per_condition


READS = ("digit", "number", "lines")  # the kinds of scene that hold digits to read (not blank, not junk)


def judge(kind: str, truth: str | None, reading: dict) -> str:
    """"right", "wrong" (confidently wrong) or "abstain"."""
    status = reading.get("status")
    if status != "ok":
        return "abstain"
    return "right" if kind in READS and reading.get("text") == truth else "wrong"


def reader_of(model) -> str:
    """What the run's line reader (lines.py) is, in words."""
    if model.lines is None:
        return "without a line reader"
    photo_lines = model.lines.meta.get("photo_lines")
    cut = f", {photo_lines:,} of its lines cut out of photos" if photo_lines else ""
    return f"with its line reader ({model.lines.meta.get('steps', '?')} steps{cut})"


def run_condition(model, condition: str, digits: DigitSource, count: int, single: bool) -> list[dict]:
    """Read `count` scenes of one condition; one record per scene."""
    records = []
    for seed in range(count):
        scene = make_scene(condition, seed, digits)
        start = time.perf_counter()
        try:
            image = predict.open_image(scene.jpeg, size=locate.WORK_SIZE)  # as predict and serve decode it
            reading = predict.read(model, image, single=single and scene.kind == "digit")
        except Exception as e:  # a crash is a result too: counted, not fatal
            reading = {"status": "error", "text": None, "error": f"{type(e).__name__}: {e}"}
        ms = (time.perf_counter() - start) * 1000
        records.append({"condition": condition, "seed": seed, "kind": scene.kind, "truth": scene.text,
                        "status": reading.get("status"), "text": reading.get("text"), "ms": ms,
                        "verdict": judge(scene.kind, scene.text, reading), "reading": reading,
                        "details": scene.details})
    return records


def summarise(records: list[dict]) -> dict:
    """Rates over the records; no_digit over the blank ones only and not_ok over the junk ones only."""
    n = len(records)
    ms = np.array([r["ms"] for r in records])
    share = lambda test, among=records: sum(map(test, among)) / max(1, len(among))  # noqa: E731
    blank, junk = [r for r in records if r["kind"] == "blank"], [r for r in records if r["kind"] == "junk"]
    return {
        "kinds": {r["kind"] for r in records},
        "scenes": n,
        "read": share(lambda r: r["verdict"] == "right"),
        "wrong": share(lambda r: r["verdict"] == "wrong"),
        "abstain": share(lambda r: r["status"] in ("no_digit", "unsure")),
        "errors": sum(r["status"] == "error" for r in records),
        "no_digit": share(lambda r: r["status"] == "no_digit", blank),
        "not_ok": share(lambda r: r["status"] != "ok", junk),
        "ms_median": float(np.median(ms)),
        "ms_p95": float(np.percentile(ms, 95)),
    }


def row(name: str, s: dict) -> str:
    pct = lambda x: f"{x:.1%}"  # noqa: E731
    kinds = s["kinds"]
    reads = kinds & set(READS)
    return (f"| {name} | {s['scenes']} | {pct(s['read']) if reads else '-'} | {pct(s['wrong'])} | "
            f"{pct(s['abstain'])} | "
            f"{pct(s['no_digit']) if 'blank' in kinds else '-'} | {pct(s['not_ok']) if 'junk' in kinds else '-'} | "
            f"{s['errors']} | {s['ms_median']:.0f} | {s['ms_p95']:.0f} |")


def table(by_condition: dict[str, list[dict]]) -> list[str]:
    lines = ["| condition | scenes | read | confident wrong | abstain | blank: no_digit | junk: not ok | errors | "
             "ms median | ms p95 |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for condition, records in by_condition.items():
        lines.append(row(f"{condition} ({KINDS[condition]})", summarise(records)))
    for name, members in GROUPS.items():
        pooled = [r for c in members for r in by_condition.get(c, [])]
        if pooled:
            lines.append(row(f"**{name}**", summarise(pooled)))
    return lines


def keep_failures(model, records: list[dict], digits: DigitSource, folder: Path, most: int, single: bool):
    """Write up to `most` failing scenes of a condition (confident wrongs first), their readings, and
    mnistlab's --debug pictures (in folder/debug)."""
    failing = sorted((r for r in records if r["verdict"] != "right" and r["kind"] in READS
                      or r["verdict"] == "wrong"), key=lambda r: r["verdict"] != "wrong")[:most]
    if not failing:
        return
    folder.mkdir(parents=True, exist_ok=True)
    for r in failing:
        scene = make_scene(r["condition"], r["seed"], digits)
        path = folder / f"{r['condition']}-{r['seed']}{scene.suffix}"
        path.write_bytes(scene.jpeg)
        record = {k: v for k, v in r.items() if k != "reading"} | {"boxes": scene.boxes}
        record["reading"] = {k: v for k, v in r["reading"].items() if k != "digits"} | {
            "digits": [{k: d.get(k) for k in ("digit", "confidence", "box")} for d in r["reading"].get("digits", [])]}
        path.with_suffix(".json").write_text(json.dumps(record, indent=1, default=str))
        predict.read_files(model, [path], single=single and scene.kind == "digit", debug_dir=folder / "debug")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="run folder or .safetensors checkpoint")
    parser.add_argument("--data-dir")
    parser.add_argument("--per-condition", type=int, default=200)
    parser.add_argument("--split", choices=("tune", "holdout"), default="holdout")
    parser.add_argument("--single", action="store_true", help="read one-digit, blank and junk scenes with single=True")
    parser.add_argument("--scenes", choices=tuple(GENERATORS), default="a",
                        help="a: bench/photo_scenes.py (default); b: bench/photo_scenes_b.py, written independently")
    parser.add_argument("--condition", action="append", choices=CONDITIONS,
                        help="repeatable; default: all of --scenes")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    parser.add_argument("--failures", type=Path, help="folder for failing scenes, their readings and debug pictures")
    parser.add_argument("--max-failures", type=int, default=10)
    parser.add_argument("--no-write", action="store_true", help="print the table only; leave docs/benchmarks.md")
    args = parser.parse_args()

    if not hasattr(predict, "read"):
        parser.error("this mnistlab has no predict.read yet")
    if args.threads:
        torch.set_num_threads(args.threads)
    model = predict.TorchModel(args.run)
    digits = DigitSource.load(args.data_dir, args.split)
    for warm_up in ("canvas", "number"):  # first calls pay for lazy initialisation: not measured
        predict.read(model, predict.open_image(make_scene(warm_up, 0, digits).jpeg, size=locate.WORK_SIZE))
    generator = GENERATORS[args.scenes]
    by_condition = {}
    for condition in args.condition or generator.CONDITIONS:
        records = run_condition(model, condition, digits, scene_count(condition, args.per_condition), args.single)
        by_condition[condition] = records
        s = summarise(records)
        print(f"{condition:20s} {s['scenes']:4d} scenes  read {s['read']:6.1%}  wrong {s['wrong']:6.1%}  "
              f"abstain {s['abstain']:6.1%}  {s['ms_median']:5.0f} ms median  {s['ms_p95']:5.0f} ms p95", flush=True)
        if args.failures:
            keep_failures(model, records, digits, args.failures, args.max_failures, args.single)
        errors = [r for r in records if r["status"] == "error"]
        if errors:
            print(f"  {len(errors)} errors, e.g. seed {errors[0]['seed']}: {errors[0]['reading']['error']}")

    lines = table(by_condition)
    print("\n".join(lines))
    setup = (f"CPU: {cpu()}; torch {torch.__version__} with {torch.get_num_threads()} threads; "
             f"OpenCV {cv2.__version__}; {time.strftime('%Y-%m-%d')}; mnistlab commit {commit()}; "
             f"{fonts()} (the printed digits and the independent scenes' words are drawn in them).")
    source = ("mnistlab/scenes.py (whose scenes of training digits the robust recipe also trains on)"
              if args.scenes == "a" else "bench/photo_scenes_b.py")
    body = "\n".join([
        "## Reading digits in phone photos" + (" (the independent scenes)" if args.scenes == "b" else ""),
        "",
        setup,
        f"`python bench/photos.py {args.run.name} --per-condition {args.per_condition} --split {args.split}"
        f"{' --scenes b' if args.scenes == 'b' else ''}"
        f"{' --single' if args.single else ''}`: scenes from {source} (handwriting from MNIST's test"
        f" images {'5000-9999, held out from tuning' if args.split == 'holdout' else '0-4999, the tuning split'}),"
        " each read from its JPEG bytes by `predict.open_image` (JPEG draft decoding, as `mnistlab predict`"
        " and `serve` do) and `predict.read`. *read*: status ok and the text"
        " exactly the truth; *confident wrong*: status ok and any other text (for blank and junk scenes, any ok);"
        " *abstain*: status no_digit or unsure; *errors*: exceptions. Times are end to end, decoding included,"
        f" one image at a time. Model: `{args.run}`, {reader_of(model)}.",
        "",
        *lines,
    ])
    if not args.no_write:
        write_section("photos" if args.scenes == "a" else "photos-b", body)


if __name__ == "__main__":
    main()
