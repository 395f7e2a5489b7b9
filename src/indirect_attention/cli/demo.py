"""``ia demo``: a local web page around a trained IA-DETR detector (paper §6.2), built by
:mod:`indirect_attention.demo` (Gradio, imported only when the command runs)."""

from __future__ import annotations

import argparse

from .errors import UserError

HELP = "a local web page: drop a query and target images, see the boxes and the JSON"  # = AREAS


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help=HELP,
        description="Serve a web page on this machine where one drops a query image and one or "
        "more target images, moves the score threshold, and sees each target with its boxes "
        "drawn and the detections as COCO results rows (what `ia detr detect` writes). "
        "Nothing is sent anywhere: no analytics, no share link. Ctrl-C stops it.",
    )
    parser.add_argument(
        "--checkpoint",
        default=None,
        help="a trained model: a run folder, its checkpoint.pt, an `ia detr export` folder or "
        "its model.safetensors (default: the shipped pretrained model)",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface to listen on; 0.0.0.0 makes the page reachable from other machines",
    )
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="the score slider's starting value (default: the model's recommended threshold, "
        "else 0.5)",
    )
    parser.add_argument(
        "--nms",
        type=float,
        default=None,
        metavar="IOU",
        help="the NMS slider's starting IoU (default: 1, no suppression)",
    )
    parser.add_argument("--max-detections", type=int, default=100, help="per target")
    parser.add_argument(
        "--device", default="auto", help="auto (a GPU if there is one, else the CPU), cpu, cuda:0"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.set_defaults(func=_demo)


def _check_listen(host: str, port: int) -> None:
    """Refuse a host or port the page could not be served on, before the model is loaded.

    Raises:
        UserError: an unknown host, or a port in use or not allowed (names the flag).
    """
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as error:
        raise UserError(
            f"--host {host!r} is not an address of this machine ({error}); expected e.g. "
            "127.0.0.1 or 0.0.0.0"
        ) from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
        try:
            probe.bind(address)
        except OSError as error:
            raise UserError(
                f"--port {port}: cannot listen on {host}:{port} ({error.strerror}); expected a "
                "free port"
            ) from None


def _stop_on_sigterm() -> None:
    """Let ``kill`` stop the page as Ctrl-C does (its temporary files removed)."""
    import signal
    import threading

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)


def _demo(args: argparse.Namespace) -> int:
    import sys
    import tempfile
    import threading
    import time

    import torch

    from ..demo import build_app, launch
    from ..detection.detect import default_threshold
    from ..detection.model import IADETR
    from ..detection.release import load_detector
    from .detr_release import _device

    _check_listen(args.host, args.port)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = _device(args.device)
    if args.checkpoint is None:
        model = IADETR.from_pretrained().to(device)  # the shipped model
        source = "the shipped pretrained model"
    else:
        model = load_detector(args.checkpoint, map_location=device)
        source = args.checkpoint
    _stop_on_sigterm()
    with tempfile.TemporaryDirectory(prefix="ia-demo-") as work:
        app = build_app(
            model,
            work_dir=work,
            threshold=default_threshold(model) if args.threshold is None else args.threshold,
            nms_iou=args.nms,
            max_detections=args.max_detections,
        )
        try:
            url = launch(app, host=args.host, port=args.port, work_dir=work)
        except OSError as error:  # taken between the check and the start
            raise UserError(f"--port {args.port}: cannot serve the page ({error})") from None
        print(f"ia demo: serving {url} with {source} on {device}; Ctrl-C stops", flush=True)
        try:
            while True:
                time.sleep(0.5)
        except KeyboardInterrupt:
            print("ia demo: stopped", file=sys.stderr)
        finally:  # bounded: an open browser connection must not keep Ctrl-C from stopping it
            closer = threading.Thread(target=app.close, daemon=True)
            closer.start()
            closer.join(timeout=10)
    return 0
