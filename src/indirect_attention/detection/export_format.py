"""The files of a trained IA-DETR detector (paper §6.2): reading and writing them.

:func:`~.release.load_detector` and ``IADETR.from_pretrained`` (:mod:`.hub`) both read through
:func:`load_into`; ``ia detr export`` and ``model.save_pretrained`` both write through
:func:`export_detector`. This module does not import the model: the class to build is an
argument, so that the model class can carry the Hub mixin without an import circle.

Two formats load into an :class:`~.model.IADETR` ready for :func:`~.detect.detect`:

* a **training checkpoint** (``checkpoint.pt`` of ``ia detr train``), read with
  ``torch.load(weights_only=True)``: the model state, its :class:`~.model.DetrModelConfig` and the
  input sizes (``extra["input_spec"]``; older checkpoints: derived from the recipe's fields);
* an **exported folder** (``ia detr export``, ``model.save_pretrained(dir)`` of :mod:`.hub`):
  ``model.safetensors`` (weights only, no pickle), ``config.json``::

      {"format": "ia-detr", "format_version": 1, "model": {DetrModelConfig fields},
       "input": {"target_size": 128, "query_size": 48, "stride": 8}, "source": "..."}

  and a model card ``README.md`` (:func:`model_card`: architecture, input sizes, the weights'
  SHA-256, how to load). Folders written before the card existed load the same way.

The ResNet-50 ``backbone_weights`` path of the recipe is dropped on loading: the saved state
already holds every backbone weight, and the file may not exist on the machine that loads.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any, get_type_hints

import torch
from torch import nn

from ..training.checkpoint import read_weights_only
from ..training.records import atomic_write_bytes, atomic_write_text
from .preprocess import InputSpec

__all__ = ["EXPORT_FORMAT", "export_detector", "load_into", "model_card"]

EXPORT_FORMAT = "ia-detr"
_FORMAT_VERSION = 1
_MISSING = (
    "{path} does not exist; expected a checkpoint.pt written by `ia detr train`, a folder "
    "written by `ia detr export`, or its model.safetensors"
)


#: Fields of the model config renamed since older checkpoints and exports were written.
_RENAMED = {"heads": "num_heads", "layers": "num_layers", "variant": "kind"}


def _model_config(model_class: type[nn.Module], values: dict[str, Any], source: Path) -> Any:
    """The model's config dataclass (the type of ``model_class.__init__``'s ``config``)."""
    config_class = get_type_hints(model_class.__init__)["config"]
    values = {_RENAMED.get(key, key): value for key, value in values.items()}
    known = {f.name for f in fields(config_class)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(
            f"{source}: unknown model config fields {unknown}; written by a newer version?"
        )
    return replace(config_class(**values), backbone_weights=None)


def _build(
    model_class: type[nn.Module],
    values: dict[str, Any],
    state: dict[str, torch.Tensor],
    spec: InputSpec,
    source: Path,
    map_location: str | torch.device,
) -> Any:
    model = model_class(_model_config(model_class, values, source), input_spec=spec)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise ValueError(f"{source}: weights do not match the model config: {error}") from None
    return model.to(map_location).eval()


def _input_spec(extra: dict[str, Any]) -> InputSpec:
    """The input sizes of a training checkpoint: ``extra["input_spec"]``, or for checkpoints
    written before it was recorded, the emoji episodes resized by ``scale`` or the real-data
    ``max_size`` / ``query_size``."""
    if "input_spec" in extra:
        return InputSpec(**extra["input_spec"])
    if extra.get("data", "emoji") == "emoji":
        from .data.emoji_episodes import EpisodeConfig

        episode, scale = EpisodeConfig(), float(extra.get("scale", 0.5))
        return InputSpec(round(episode.canvas_size * scale), round(episode.query_size * scale))
    return InputSpec(int(extra.get("max_size", 512)), int(extra.get("query_size", 192)))


def _load_training_checkpoint(
    model_class: type[nn.Module], path: Path, map_location: str | torch.device
) -> Any:
    state = read_weights_only(path, expected="a checkpoint.pt written by `ia detr train`")
    if (
        not isinstance(state, dict)
        or "model" not in state
        or "model_config" not in state.get("extra", {})
    ):
        raise ValueError(f"{path} is not an `ia detr train` checkpoint (no model / model_config)")
    extra = state["extra"]
    return _build(
        model_class, extra["model_config"], state["model"], _input_spec(extra), path, map_location
    )


def _load_export(
    model_class: type[nn.Module], weights: Path, map_location: str | torch.device
) -> Any:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    config_path = weights.parent / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path} is missing (it belongs beside {weights.name})")
    try:
        document = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read {config_path}: {error}") from None
    if document.get("format") != EXPORT_FORMAT:
        raise ValueError(
            f"{config_path}: format {document.get('format')!r}, expected {EXPORT_FORMAT!r}"
        )
    if int(document.get("format_version", 1)) > _FORMAT_VERSION:
        raise ValueError(
            f"{config_path}: format_version {document['format_version']}, this version reads "
            f"up to {_FORMAT_VERSION} (written by a newer indirect-attention?)"
        )
    try:
        state = load_file(weights, device="cpu")
    except (SafetensorError, OSError) as error:
        raise ValueError(f"cannot read weights {weights}: {error}") from None
    spec = InputSpec(
        target_size=int(document["input"]["target_size"]),
        query_size=int(document["input"]["query_size"]),
    )
    model = _build(model_class, document["model"], state, spec, config_path, map_location)
    if document.get("score_threshold") is not None:
        model.score_threshold = float(document["score_threshold"])
    return model


def load_into(
    model_class: type[nn.Module], path: str | Path, *, map_location: str | torch.device = "cpu"
) -> Any:
    """Build a ``model_class`` detector from a training checkpoint or an export (module
    docstring); :func:`~.release.load_detector` is this with :class:`~.model.IADETR`.

    Args:
        model_class: :class:`~.model.IADETR` or a subclass; built as
            ``model_class(config, input_spec=...)``.
        path: ``checkpoint.pt``, an export folder, its ``model.safetensors``, or a run folder
            holding ``checkpoint.pt``.
        map_location: Device of the returned model.

    Returns:
        The model in eval mode, with ``model.input_spec`` set.

    Raises:
        FileNotFoundError: nothing loadable at ``path``.
        ValueError: a corrupt or foreign file, or weights that do not match their config.
    """
    path = Path(path)
    if path.is_dir():
        if (path / "model.safetensors").is_file():
            return _load_export(model_class, path / "model.safetensors", map_location)
        if (path / "checkpoint.pt").is_file():
            return _load_training_checkpoint(model_class, path / "checkpoint.pt", map_location)
        raise FileNotFoundError(_MISSING.format(path=path / "model.safetensors"))
    if not path.is_file():
        raise FileNotFoundError(_MISSING.format(path=path))
    if path.suffix == ".safetensors":
        return _load_export(model_class, path, map_location)
    return _load_training_checkpoint(model_class, path, map_location)


def export_detector(model: nn.Module, out_dir: str | Path, *, source: str = "") -> Path:
    """Write ``model.safetensors``, ``config.json`` and the card ``README.md`` into ``out_dir``.

    Each file is written atomically; the card is rewritten with the weights it describes.
    ``model.save_pretrained(out_dir)`` (:mod:`.hub`) calls this.

    Args:
        model: The detector (:class:`~.model.IADETR`); its ``input_spec`` is recorded with the
            architecture.
        out_dir: Destination folder (created).
        source: Where the weights came from, recorded in ``config.json`` and the card.

    Returns:
        The folder.

    Raises:
        ValueError: the model records no input sizes.
    """
    out = Path(out_dir)
    weights = _weights_bytes(model)
    card = model_card(model, source=source, weights=weights)  # checks model.input_spec
    atomic_write_bytes(out / "model.safetensors", weights)
    document = {
        "format": EXPORT_FORMAT,
        "format_version": _FORMAT_VERSION,
        "model": asdict(replace(model.config, backbone_weights=None)),
        "input": {**asdict(model.input_spec), "stride": int(model.backbone.stride)},
        "source": source,
    }
    if getattr(model, "score_threshold", None) is not None:
        document["score_threshold"] = float(model.score_threshold)
    atomic_write_text(out / "config.json", json.dumps(document, indent=2) + "\n")
    atomic_write_text(out / "README.md", card)
    return out


def _weights_bytes(model: nn.Module) -> bytes:
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    return save(tensors, metadata={"format": "pt"})


_CARD = """---
library_name: indirect-attention
pipeline_tag: object-detection
tags:
- indirect-attention
- one-shot-object-detection
- model_hub_mixin
- pytorch_model_hub_mixin
---

# IA-DETR one-shot detector ({kind})

The one-shot detector of *Indirect Attention* (arXiv 2509.26015, §6.2): given a query image (an
example of a kind of object) and a target image, it boxes every instance of the query's class in
the target.

| | |
|---|---|
| kind | `{kind}` (decoder: {num_layers} layers, dim {dim}, {num_heads} heads, {num_queries} object queries) |
| backbone | `{backbone}` |
| inputs | targets resized to {target_size} px (longer side), queries to {query_size} px, stride {stride} |
| parameters | {parameters:,} |
| weights | `model.safetensors`, SHA-256 `{sha256}` |
| made from | {source} |

## Use

```python
from indirect_attention.detection import IADETR
from indirect_attention.detection.detect import detect

model = IADETR.from_pretrained("path/to/this/folder")
found = detect(model, "target.jpg", "query.png", threshold=0.5)  # found.boxes (K, 4) xyxy pixels
```

```
ia detr detect --checkpoint path/to/this/folder --query query.png --target target.jpg --out detections.json
```

## Data and limits

This card is written by `save_pretrained` / `ia detr export`, which know the architecture, not the
data: the run that made the weights records its data and recipe in its own `config.json` ("made
from" above). A detector trained on the embedded emoji benchmark finds emoji-like sprites on photo
backgrounds; it does not find objects in real photographs.
"""


def model_card(model: nn.Module, *, source: str = "", weights: bytes | None = None) -> str:
    """The model card (``README.md``, with Hub metadata) of an export.

    Args:
        model: The detector; ``input_spec`` must be set.
        source: Where the weights came from.
        weights: The ``model.safetensors`` bytes written beside the card (default: serialised
            from ``model``), whose SHA-256 the card records.
    """
    spec = model.input_spec
    if spec is None:
        raise ValueError("the model records no input sizes (model.input_spec is None)")
    return _CARD.format(
        **asdict(model.config),  # kind, num_layers, dim, num_heads, num_queries, backbone
        **asdict(spec),
        stride=int(model.backbone.stride),
        parameters=sum(p.numel() for p in model.parameters()),
        sha256=hashlib.sha256(
            weights if weights is not None else _weights_bytes(model)
        ).hexdigest(),
        source=f"`{source}`" if source else "not recorded",
    )
