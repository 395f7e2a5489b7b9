"""How long ``ia --help`` (and a few other cheap invocations) take, wall clock, in a new process.

Issue 18's target: ``ia --help`` under 1.5 s on 2 CPU cores. The time is printed, never asserted
(machines differ); run it after changing imports:

    PYTHONPATH=src python benchmarks/cli_startup.py [--repeats 5]

Each command runs ``--repeats`` times as ``python -m indirect_attention ...`` (what the ``ia``
console script runs); the median and the slowest are printed, and whether ``ia --help`` imported
torch at all.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = (
    ["--help"],
    ["--version"],
    ["detr", "--help"],
    ["detr", "detect", "--help"],
    ["data", "--help"],
)


def _time(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "indirect_attention", *argv],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def _imports_torch() -> bool:
    code = (
        "import sys, contextlib, io\n"
        "from indirect_attention.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()): main(['--help'])\n"
        "print('torch' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    )
    return result.stdout.strip() == "True"


def main() -> None:
    """Print the median and slowest wall time of each command."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    repeats = parser.parse_args().repeats
    _time(["--version"])  # warm the file cache once
    for argv in COMMANDS:
        times = [_time(argv) for _ in range(repeats)]
        print(
            f"ia {' '.join(argv):22s} median {statistics.median(times):.2f} s, "
            f"slowest {max(times):.2f} s ({repeats} runs)"
        )
    print(f"ia --help imports torch: {_imports_torch()}")


if __name__ == "__main__":
    main()
