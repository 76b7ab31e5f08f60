"""What a benchmark's timings ran on, in one line for its JSON.

Sessions get machines of one kind (2 cores) but not always the same processor: the int8 embedder is about 4x
faster where the CPU has VNNI dot-product instructions (AVX-512 VNNI or AVX-VNNI), so a figure is read with the
processor it was measured on, and compared across runs only as a ratio measured in the same run.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path


def _cpuinfo() -> tuple[str, set[str]]:
    """(model name, flags) of the first processor in /proc/cpuinfo; ("", set()) where there is none."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "", set()
    fields = dict(line.split(":", 1) for line in text.split("\n\n", 1)[0].splitlines() if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    return fields.get("model name", ""), set(fields.get("flags", "").split())


def description() -> str:
    """E.g. "AMD EPYC, 2 cores, AVX-512 VNNI": the processor, the cores, and whether int8 has VNNI."""
    model, flags = _cpuinfo()
    vnni = ("AVX-512 VNNI" if "avx512_vnni" in flags else "AVX-VNNI" if "avx_vnni" in flags
            else "no VNNI" if flags else "")
    parts = [model or platform.processor() or platform.machine(), f"{os.cpu_count()} cores", vnni]
    return ", ".join(part for part in parts if part)
