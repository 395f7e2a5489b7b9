"""Loading and exporting trained IA-DETR detectors (paper §6.2) for inference.

:func:`load_detector` reads a training checkpoint (``checkpoint.pt`` of ``ia detr train``, or its
run folder) or an export (``ia detr export`` / ``model.save_pretrained``: ``model.safetensors``,
``config.json`` and a model card ``README.md``, or the weights file alone) into an
:class:`~.model.IADETR` ready for :func:`~.detect.detect`. :func:`export_detector` writes an
export. The formats are described, read and written in :mod:`.export_format`; this module binds
them to :class:`~.model.IADETR`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .export_format import EXPORT_FORMAT, export_detector, load_into, model_card
from .model import IADETR

__all__ = ["EXPORT_FORMAT", "export_detector", "load_detector", "model_card"]


def load_detector(path: str | Path, *, map_location: str | torch.device = "cpu") -> IADETR:
    """Load a detector from a training checkpoint or an export (see the module docstring).

    Args:
        path: ``checkpoint.pt``, an export folder, its ``model.safetensors``, or a run folder
            holding ``checkpoint.pt``.
        map_location: Device of the returned model.

    Returns:
        The model in eval mode, with ``model.input_spec`` set.

    Raises:
        FileNotFoundError: nothing loadable at ``path``.
        ValueError: a corrupt or foreign file, or weights that do not match their config.
    """
    return load_into(IADETR, path, map_location=map_location)
