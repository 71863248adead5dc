"""What every benchmark script shares: a description of the machine and a writer for its section of
docs/benchmarks.md (between `<!-- bench:NAME -->` markers, so scripts can run separately)."""

import os
import platform
import re
import time
from pathlib import Path

import torch


DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    return (f"{os.cpu_count()} cores ({cpu}), torch {torch.__version__} with {torch.get_num_threads()} threads, "
            f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}")


def cpu() -> str:
    """The CPU as lscpu names it, and whether it has the instruction sets the figures depend on."""
    import subprocess

    info = dict(line.split(":", 1) for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout
                .splitlines() if ":" in line)
    flags = set(info.get("Flags", "").split())
    wanted = {"avx2": "AVX2", "avx512_bf16": "AVX512-BF16", "amx_bf16": "AMX"}
    has = ", ".join(name for flag, name in wanted.items() if flag in flags) or "none of AVX2, AVX512-BF16, AMX"
    return f"{info.get('Model name', '?').strip()}, {info.get('CPU(s)', '?').strip()} CPUs ({has})"


def load_average() -> str:
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


def write_section(name: str, body: str):
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n\nFigures measured by the scripts in bench/.\n"
    block = f"{begin}\n{body.strip()}\n{end}"
    if begin in text:
        text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(text)
