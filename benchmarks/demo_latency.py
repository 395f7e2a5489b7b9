"""Seconds per detection of the ``ia demo`` page (issue 19's target: under 5 s on 2 CPU cores).

The time is printed, never asserted (machines differ):

    PYTHONPATH=src python benchmarks/demo_latency.py [--checkpoint MODEL] [--targets 2]
        [--repeats 5] [--size 640x480] [--threads 1]

The page is served in this process (``demo.app.build_app`` + ``launch``, as ``ia demo`` serves it)
and called over HTTP the way the browser calls it, through ``gradio_client``: upload the query and
the targets, run Detect, download the drawings and ``detections.json``. The same work is also
timed without the server (``demo.app.answer``). A detection is one (query, target) pair; each
request carries ``--targets`` of them. One request warms up first; the median and the slowest of
``--repeats`` requests are printed.

The model: ``--checkpoint``, else the shipped pretrained model (``IADETR.from_pretrained()``), else,
until one ships, the emoji recipe's architecture (``recipe()``) with random weights: the same
computation, since detection time does not depend on the weights' values.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def _model(checkpoint: str | None):  # -> (IADETR, str)
    from indirect_attention.detection.model import IADETR
    from indirect_attention.detection.release import load_detector

    if checkpoint is not None:
        return load_detector(checkpoint), checkpoint
    try:
        return IADETR.from_pretrained(), "the shipped pretrained model"
    except (TypeError, FileNotFoundError, ValueError) as error:  # none ships yet
        from indirect_attention.detection.sources import EmojiSource
        from indirect_attention.detection.train import recipe

        source = EmojiSource()
        torch.manual_seed(0)
        model = IADETR(recipe(source).model, input_spec=source.input_spec()).eval()
        reason = " ".join(str(error).split())[:80]
        return (
            model,
            f"the emoji recipe's architecture, random weights (no shipped model: {reason})",
        )


def _image(path: Path, height: int, width: int, seed: int) -> Path:
    """Random 16-pixel blocks of colour: compresses like a photo more than noise does."""
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, 256, (-(-height // 16), -(-width // 16), 3), dtype=np.uint8)
    pixels = np.repeat(np.repeat(cells, 16, axis=0), 16, axis=1)[:height, :width]
    Image.fromarray(pixels).save(path)
    return path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _report(name: str, seconds: list[float], per: int) -> None:
    each = [s / per for s in seconds]
    print(
        f"{name}: {statistics.median(each):.3f} s per detection (median), "
        f"{max(each):.3f} s slowest, over {len(seconds)} requests of {per} targets"
    )


def main() -> None:
    """Serve the page, call it, print seconds per detection."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--targets", type=int, default=2, help="targets per request")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", default="640x480", help="target WIDTHxHEIGHT in pixels")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (as ia demo's)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    torch.set_num_threads(args.threads)

    from indirect_attention.demo.app import answer, build_app, launch

    model, source = _model(args.checkpoint)
    spec = model.input_spec
    print(
        f"model: {source}; {model.config.kind}, dim {model.config.dim}, "
        f"{model.config.num_layers} layers, {model.config.num_queries} queries, targets resized "
        f"to {spec.target_size} px, queries {spec.query_size} px; {args.threads} threads, "
        f"load {os.getloadavg()[0]:.2f}"
    )
    with tempfile.TemporaryDirectory(prefix="demo-latency-") as folder:
        root = Path(folder)
        query = _image(root / "query.png", 128, 112, seed=0)
        targets = [
            _image(root / f"t{k}.png", height, width, seed=k + 1) for k in range(args.targets)
        ]

        direct = []
        for _ in range(args.repeats + 1):
            start = time.perf_counter()
            answer(model, query, targets, out_dir=root / "direct", threshold=0.5)
            direct.append(time.perf_counter() - start)

        from gradio_client import Client, handle_file

        work = root / "served"
        work.mkdir()
        app = build_app(model, work_dir=work, threshold=0.5)
        url = launch(app, port=_free_port(), work_dir=work)
        try:
            client = Client(url, verbose=False, download_files=str(root / "downloads"))
            served = []
            for _ in range(args.repeats + 1):
                start = time.perf_counter()
                client.predict(
                    handle_file(str(query)),
                    [handle_file(str(t)) for t in targets],
                    0.5,
                    1.0,
                    api_name="/detect",
                )
                served.append(time.perf_counter() - start)
        finally:
            app.close()
    _report("answer() in this process", direct[1:], args.targets)
    _report("the page over HTTP (upload, detect, draw, download)", served[1:], args.targets)


if __name__ == "__main__":
    main()
