"""The ``ia demo`` page: a Gradio app around an already-loaded IA-DETR detector (paper §6.2).

:func:`answer` is what the page's button runs and holds no Gradio: read the query and each
target, :func:`~indirect_attention.detection.detect.detect` (the project's one prediction path),
:func:`~indirect_attention.detection.detect.detections_to_coco` (the rows ``ia detr detect``
writes, image ids 1, 2, ... in target order) and
:func:`~indirect_attention.detection.draw.draw_detections`. :func:`build_app` lays the page out
around it and :func:`launch` serves it on this machine. Gradio is imported by those two only, so
the library and ``ia --help`` never load it.

Nothing goes to the network: :func:`offline_environment` turns off Gradio's analytics (and its
version check, which rides on them) and Hugging Face telemetry before Gradio is imported, the
page uses the system's fonts instead of Google Fonts, and no share link is made.

Shapes:
    images (3, H, W) float in [0, 1]; a target's boxes (K, 4) xyxy in its original pixels.
"""

from __future__ import annotations

import itertools
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..detection.detect import coco_results_text, detect, detections_to_coco
from ..detection.draw import draw_detections
from ..detection.model import IADETR
from ..detection.preprocess import read_image

__all__ = ["OFFLINE_ENVIRONMENT", "DemoAnswer", "answer", "build_app", "launch"]
__all__ += ["SameOriginOnly", "offline_environment"]

#: Environment that keeps Gradio and huggingface_hub from reporting or fetching anything.
OFFLINE_ENVIRONMENT = {
    "GRADIO_ANALYTICS_ENABLED": "False",  # usage reports and the PyPI version check
    "GRADIO_SHARE": "False",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_OFFLINE": "1",
}
#: The page's fonts: the system's own (Gradio's default theme loads Inter from Google Fonts).
SYSTEM_FONTS = ("ui-sans-serif", "system-ui", "sans-serif")
MONO_FONTS = ("ui-monospace", "monospace")
RESULTS_NAME = "detections.json"
#: The page may load and connect to its own server only (Gradio's page asks a CDN for a script).
PAGE_POLICY = b"default-src 'self' 'unsafe-inline' 'unsafe-eval' data: blob:"


def offline_environment() -> None:
    """Set :data:`OFFLINE_ENVIRONMENT` in this process (before Gradio is imported)."""
    os.environ.update(OFFLINE_ENVIRONMENT)


class SameOriginOnly:
    """ASGI middleware: every response carries :data:`PAGE_POLICY` as its
    ``Content-Security-Policy``, so the browser fetches nothing from another server."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_policy(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                message = {
                    **message,
                    "headers": [*headers, (b"content-security-policy", PAGE_POLICY)],
                }
            await send(message)

        await self.app(scope, receive, send_with_policy)


@dataclass
class DemoAnswer:
    """What the page shows for one query and its targets.

    Attributes:
        drawings: Per target, its PNG (the target with its boxes, the query beside it) and its
            caption (the file name).
        rows: COCO results rows of every target (:func:`detections_to_coco`), target order.
        results_file: ``detections.json`` holding ``rows`` as ``ia detr detect`` writes them.
        seconds: Wall time per target: reading, detecting and drawing it.
    """

    drawings: list[tuple[Path, str]]
    rows: list[dict[str, Any]]
    results_file: Path
    seconds: list[float]

    def summary(self) -> str:
        """One line: targets, detections and seconds per target."""
        per = sum(self.seconds) / max(1, len(self.seconds))
        return f"{len(self.drawings)} targets, {len(self.rows)} detections, {per:.2f} s per target"


def answer(
    model: IADETR,
    query: str | Path,
    targets: Sequence[str | Path],
    *,
    out_dir: str | Path,
    threshold: float = 0.5,
    nms_iou: float | None = None,
    max_detections: int = 100,
) -> DemoAnswer:
    """Detect the query's class in each target and draw the results (paper §6.2).

    Args:
        model: The detector, with ``input_spec`` set (:func:`~..detection.release.load_detector`).
        query: The query image file.
        targets: Target image files; image ids 1, 2, ... in this order.
        out_dir: Folder (created) for the drawings and ``detections.json``.
        threshold: Minimum score, in [0, 1].
        nms_iou: Class-agnostic non-maximum suppression IoU in [0, 1]; None: none.
        max_detections: Most detections per target.

    Returns:
        The :class:`DemoAnswer`.

    Raises:
        ValueError: no targets, an unreadable image or a bad threshold (the message names it).
    """
    if not targets:
        raise ValueError("no target images: give one or more")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    query_image = read_image(query)  # (3, h, w)
    drawings, rows, seconds = [], [], []
    for image_id, path in enumerate(targets, start=1):
        start = time.perf_counter()
        name = Path(path).name
        target = read_image(path)  # (3, H, W)
        found = detect(
            model,
            target,
            query_image,
            threshold=threshold,
            max_detections=max_detections,
            nms_iou=nms_iou,
        )
        rows += detections_to_coco(found, image_id=image_id, file_name=name)
        drawn = draw_detections(target, query_image, found, out / f"{image_id:03d}.png")
        drawings.append((drawn, name))
        seconds.append(time.perf_counter() - start)
    results = out / RESULTS_NAME
    results.write_text(coco_results_text(rows), encoding="utf-8")
    return DemoAnswer(drawings=drawings, rows=rows, results_file=results, seconds=seconds)


def build_app(
    model: IADETR,
    *,
    work_dir: str | Path,
    threshold: float = 0.5,
    nms_iou: float | None = None,
    max_detections: int = 100,
    title: str = "IA-DETR one-shot detection",
):  # -> gradio.Blocks
    """The page: a query, targets, the threshold and NMS sliders; drawings, rows and the file.

    The button runs :func:`answer`; releasing a slider runs it again when a query and targets
    are given. Each answer is written to a new folder under ``work_dir`` (the last few are kept).

    Args:
        model: The loaded detector (its device is where detection runs).
        work_dir: Folder for the answers' files (:func:`launch` serves it).
        threshold: The threshold slider's starting value, in [0, 1].
        nms_iou: The NMS slider's starting value; None starts at 1 (off).
        max_detections: Most detections per target.
        title: The page's heading.
    """
    offline_environment()
    import gradio as gr

    work = Path(work_dir)
    answers = itertools.count(1)

    def fresh_folder(keep: int = 4) -> Path:
        """A new folder for an answer; older ones beyond the newest ``keep`` are removed (Gradio
        copied their files to its cache when it sent them; one answer runs at a time)."""
        folder = work / f"answer-{next(answers):06d}"
        folder.mkdir(parents=True)
        for old in sorted(work.glob("answer-*"))[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
        return folder

    def run(query, targets, score, iou, *, quiet=False):
        if not query or not targets:
            if quiet:  # a slider moved before the images were given
                return gr.skip(), gr.skip(), gr.skip(), gr.skip()
            raise gr.Error("give a query image and one or more target images")
        paths = [t if isinstance(t, str) else t.name for t in targets]
        try:
            found = answer(
                model,
                query,
                paths,
                out_dir=fresh_folder(),
                threshold=float(score),
                nms_iou=None if float(iou) >= 1.0 else float(iou),
                max_detections=max_detections,
            )
        except ValueError as error:  # an unreadable image: shown on the page, not a crash
            raise gr.Error(str(error)) from None
        drawn = [(str(path), caption) for path, caption in found.drawings]
        return drawn, found.summary(), found.rows, str(found.results_file)

    def rerun(query, targets, score, iou):
        return run(query, targets, score, iou, quiet=True)

    theme = gr.themes.Default(font=SYSTEM_FONTS, font_mono=MONO_FONTS)
    blocks = {"title": title, "theme": theme, "analytics_enabled": False}
    # Gradio's copies of uploads and answers: removed after a day, and when the page restarts.
    with gr.Blocks(**blocks, delete_cache=(86400, 86400)) as app:
        gr.Markdown(
            f"# {title}\nDrop a **query** image (an example of the object) and one or more "
            "**target** images; the detector finds the query's kind of object in each target "
            "(arXiv 2509.26015, §6.2). Boxes are in the targets' original pixels; the JSON is "
            "the COCO results rows `ia detr detect` writes."
        )
        with gr.Row():
            with gr.Column():
                query = gr.Image(
                    label="query",
                    type="filepath",
                    image_mode=None,  # the file as uploaded: no re-encoding
                    sources=["upload", "clipboard"],
                    elem_id="query",
                )
                targets = gr.File(
                    label="targets",
                    file_count="multiple",
                    file_types=["image"],
                    type="filepath",
                    elem_id="targets",
                )
                score = gr.Slider(
                    0.0, 1.0, value=threshold, step=0.01, label="score threshold", elem_id="score"
                )
                iou = gr.Slider(
                    0.0,
                    1.0,
                    value=1.0 if nms_iou is None else nms_iou,
                    step=0.05,
                    label="NMS IoU (1: off)",
                    elem_id="nms",
                )
                button = gr.Button("Detect", variant="primary", elem_id="detect")
            with gr.Column():
                gallery = gr.Gallery(
                    label="detections", columns=2, object_fit="contain", elem_id="drawn"
                )
                summary = gr.Markdown(elem_id="summary")
                rows = gr.JSON(label="COCO results rows", elem_id="rows")
                results = gr.File(label=RESULTS_NAME, elem_id="results")
        inputs, outputs = [query, targets, score, iou], [gallery, summary, rows, results]
        button.click(run, inputs, outputs, api_name="detect")
        for slider in (score, iou):
            slider.release(rerun, inputs, outputs)
    return app


def launch(app, *, host: str = "127.0.0.1", port: int = 7860, work_dir: str | Path) -> str:
    """Serve ``app`` at ``http://host:port/`` on this machine, in a background thread, and return
    the URL once the page answers (``app.close()`` stops it).

    No share link, no browser opened, no server-side rendering (which needs Node), no API page;
    the page may fetch from this server only (:class:`SameOriginOnly`).

    Args:
        app: The :func:`build_app` page.
        host: Interface to listen on (``127.0.0.1``: this machine only; ``0.0.0.0``: all).
        port: TCP port.
        work_dir: The folder the page's answers are written to (it is served).

    Raises:
        OSError: the port cannot be listened on.
    """
    from starlette.middleware import Middleware

    offline_environment()
    app.queue(default_concurrency_limit=1)  # one detection at a time: the CPU is shared
    app.launch(
        server_name=host,
        server_port=port,
        share=False,
        inbrowser=False,
        ssr_mode=False,
        show_api=False,
        quiet=True,
        allowed_paths=[str(work_dir)],
        app_kwargs={"middleware": [Middleware(SameOriginOnly)]},
        prevent_thread_lock=True,
    )
    return app.local_url
