"""The ``ia demo`` page's work without a browser (demo/app.py, paper §6.2): what the button runs
against ``detect`` + ``detections_to_coco`` + ``draw_detections`` called directly, the page's
same-origin policy, the lazy Gradio import, and ``ia demo``'s refusals that need a live port."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from indirect_attention.cli import main
from indirect_attention.demo.app import PAGE_POLICY, SameOriginOnly, answer
from indirect_attention.detection.detect import detect, detections_to_coco
from indirect_attention.detection.draw import draw_detections
from indirect_attention.detection.model import IADETR, DetrModelConfig
from indirect_attention.detection.preprocess import InputSpec, read_image
from indirect_attention.detection.release import load_detector

TINY = dict(dim=32, num_heads=2, num_layers=2, ffn_dim=64, num_queries=5, bias_hidden=16)
SRC = Path(__file__).resolve().parents[2] / "src"


def tiny_detector(folder: Path) -> Path:
    """A small random IA-DETR saved with ``save_pretrained``: weights shaken and the class
    prior removed, so that scores spread around 0.5 and boxes differ per image."""
    torch.manual_seed(0)
    model = IADETR(DetrModelConfig(**TINY), input_spec=InputSpec(64, 24))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))
        model.class_head.bias.zero_()
    model.save_pretrained(folder)
    return folder


def save_image(path: Path, height: int, width: int, seed: int) -> Path:
    """Random blocks of colour (an 8-pixel grid), saved losslessly or as JPEG by the suffix."""
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, 256, (-(-height // 8), -(-width // 8), 3), dtype=np.uint8)
    pixels = np.repeat(np.repeat(cells, 8, axis=0), 8, axis=1)[:height, :width]
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("demo")
    return {
        "detector": tiny_detector(root / "detector"),
        "query": save_image(root / "query.png", 30, 24, seed=1),
        "a": save_image(root / "a.png", 72, 96, seed=2),
        "b": save_image(root / "b.jpg", 120, 64, seed=3),
    }


@pytest.fixture(scope="module")
def model(files: dict[str, Path]) -> IADETR:
    torch.set_num_threads(1)
    return load_detector(files["detector"])


def reference(model: IADETR, files: dict[str, Path], threshold: float) -> list[dict]:
    """The rows ``ia detr detect`` would write for the query on targets a, b (ids 1, 2)."""
    rows = []
    for image_id, key in enumerate(("a", "b"), start=1):
        found = detect(model, files[key], files["query"], threshold=threshold)
        rows += detections_to_coco(found, image_id=image_id, file_name=files[key].name)
    return rows


@pytest.mark.parametrize("threshold", [0.0, 0.65])
def test_answer_is_detect_and_its_coco_rows(
    model: IADETR, files: dict[str, Path], tmp_path: Path, threshold: float
) -> None:
    found = answer(
        model, files["query"], [files["a"], files["b"]], out_dir=tmp_path, threshold=threshold
    )
    expected = reference(model, files, threshold)
    assert found.rows == expected
    assert json.loads(found.results_file.read_text()) == expected
    assert len(found.results_file.read_text().splitlines()) == len(expected) + 2  # one per line
    if threshold == 0.0:
        assert len(expected) == 2 * TINY["num_queries"]  # every query of both targets
    else:  # the threshold keeps some detections and drops others
        assert 0 < len(expected) < 2 * TINY["num_queries"]
    assert [caption for _, caption in found.drawings] == ["a.png", "b.jpg"]
    assert len(found.seconds) == 2 and all(s > 0 for s in found.seconds)
    assert found.summary().startswith(f"2 targets, {len(expected)} detections, ")


def test_drawings_are_draw_detections_of_each_target(
    model: IADETR, files: dict[str, Path], tmp_path: Path
) -> None:
    found = answer(model, files["query"], [files["a"], files["b"]], out_dir=tmp_path / "page")
    query = read_image(files["query"])
    for (drawn, _), key in zip(found.drawings, ("a", "b"), strict=True):
        target = read_image(files[key])
        alone = detect(model, target, query, threshold=0.5)
        path = draw_detections(target, query, alone, tmp_path / f"{key}.png")
        assert np.array_equal(np.asarray(Image.open(drawn)), np.asarray(Image.open(path)))


def test_nms_and_max_detections_reach_detect(
    model: IADETR, files: dict[str, Path], tmp_path: Path
) -> None:
    found = answer(
        model, files["query"], [files["a"]], out_dir=tmp_path, threshold=0.0, nms_iou=0.1
    )
    suppressed = detect(model, files["a"], files["query"], threshold=0.0, nms_iou=0.1)
    assert found.rows == detections_to_coco(suppressed, image_id=1, file_name="a.png")
    capped = answer(
        model, files["query"], [files["a"]], out_dir=tmp_path, threshold=0.0, max_detections=2
    )
    assert len(capped.rows) == 2


def test_answer_refuses_no_targets_and_unreadable_images(
    model: IADETR, files: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="no target images"):
        answer(model, files["query"], [], out_dir=tmp_path)
    (tmp_path / "notes.png").write_text("not an image\n")
    with pytest.raises(ValueError, match=r"notes\.png"):
        answer(model, files["query"], [tmp_path / "notes.png"], out_dir=tmp_path)
    with pytest.raises(ValueError, match=r"threshold must lie in \[0, 1\]"):
        answer(model, files["query"], [files["a"]], out_dir=tmp_path, threshold=1.5)


def test_every_response_carries_the_same_origin_policy() -> None:
    sent: list[dict] = []

    async def page(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x", b"1")]})
        await send({"type": "http.response.body", "body": b"<html></html>"})

    async def record(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request"}

    asyncio.run(SameOriginOnly(page)({"type": "http"}, receive, record))
    headers = dict(sent[0]["headers"])
    assert headers[b"content-security-policy"] == PAGE_POLICY
    assert headers[b"x"] == b"1" and sent[1]["body"] == b"<html></html>"
    assert b"default-src 'self'" in PAGE_POLICY and b"http" not in PAGE_POLICY


def test_the_library_and_the_help_never_import_gradio() -> None:
    code = (
        "import sys, contextlib, io\n"
        "import indirect_attention.demo.app\n"
        "from indirect_attention.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert main(['--help']) == 0 and main(['demo', '--help']) == 0\n"
        "assert 'gradio' not in sys.modules\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def _one_line(code: int, err: str, culprit: str) -> None:
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("ia demo: error:"), err
    assert culprit in err and "Traceback" not in err


def test_a_port_in_use_is_refused_before_the_model_loads(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["demo", "--checkpoint", str(files["query"]), "--port", str(port)])
    captured = capsys.readouterr()
    _one_line(code, captured.err, f"--port {port}")  # not the query.png that is no checkpoint
    assert captured.out == ""


def test_a_file_that_is_no_detector_is_refused(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    code = main(["demo", "--checkpoint", str(files["query"]), "--port", str(port)])
    _one_line(code, capsys.readouterr().err, "query.png")


def test_only_ia_demo_needs_gradio(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without Gradio, ``ia demo`` is refused naming the extra; the emoji commands still run."""
    import argparse
    import importlib.util

    from indirect_attention.cli.errors import UserError
    from indirect_attention.cli.extras import check_extras

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "gradio" else real(name)
    )
    with pytest.raises(UserError, match=r"ia demo needs gradio.*indirect-attention\[demo\]"):
        check_extras(argparse.Namespace(), ("demo",))
    check_extras(argparse.Namespace(), ("data", "show"))  # the same extra, without the page
    check_extras(argparse.Namespace(data="emoji"), ("detr", "train"))
