"""``ia demo``: a local web page around a trained IA-DETR detector (paper §6.2).

One drops a query image and target images, moves the score threshold, and sees each target with
its boxes drawn and the detections as COCO results rows. The page is a Gradio app built around a
detector that is already loaded (:func:`.app.build_app`); it runs the project's one prediction
path (:func:`~indirect_attention.detection.detect.detect`) and its drawing
(:func:`~indirect_attention.detection.draw.draw_detections`). Nothing here downloads anything or
reports usage: :func:`.app.launch` serves on this machine only, without Gradio's analytics or a
share link.

Gradio (the ``demo`` extra) is imported when a page is built, not with this package; the command
line imports the package only when ``ia demo`` runs.
"""

from .app import DemoAnswer, answer, build_app, launch, offline_environment

__all__ = ["DemoAnswer", "answer", "build_app", "launch", "offline_environment"]
