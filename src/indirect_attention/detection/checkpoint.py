"""Where a training run of IA-DETR starts from: starting weights and the checkpoint it resumes.

The checkpoint itself is written and read by :mod:`...training.checkpoint`; its name in a run
directory is :data:`CHECKPOINT_NAME`.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from ..training.checkpoint import read_weights_only

__all__ = ["CHECKPOINT_NAME", "load_model_weights", "resume_source"]

CHECKPOINT_NAME = "checkpoint.pt"


def load_model_weights(model: nn.Module, path: str | Path) -> None:
    """Load only model weights into ``model`` (optimizer, schedule and progress start fresh).

    Args:
        model: The freshly built detector.
        path: A checkpoint of ``ia detr train`` (its ``model`` entry), a plain state dict saved
            with ``torch.save``, a ``.safetensors`` file, or a folder holding
            ``model.safetensors`` (``ia detr export``) or ``checkpoint.pt`` (a run). Every
            parameter and buffer of ``model`` must be present with its shape.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: Keys or shapes do not match, with the differences.
    """
    path = Path(path)
    if path.is_dir():
        exported = path / "model.safetensors"
        path = exported if exported.is_file() else path / CHECKPOINT_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as error:
            reason = " ".join(str(error).split())
            raise ValueError(f"cannot load {path}: not a .safetensors file ({reason})") from None
    else:
        state = read_weights_only(path, expected="a checkpoint, a state dict or .safetensors")
        if isinstance(state, dict) and isinstance(state.get("model"), dict):
            state = state["model"]
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, expected a state dict")
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [
        f"{k}: {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or shapes:
        raise ValueError(
            f"weights in {path} do not fit the model: missing {missing[:5]} ({len(missing)}), "
            f"unexpected {unexpected[:5]} ({len(unexpected)}), shape mismatches {shapes[:5]}"
        )
    model.load_state_dict(state)


def resume_source(resume: str | None, out: str | Path) -> Path | None:
    """The checkpoint a run resumes from, or None for a fresh start.

    Args:
        resume: A run directory (its ``checkpoint.pt``) or a checkpoint file; None: no resume.
        out: The run's own directory. Resuming from ``out`` when it holds no checkpoint yet is a
            fresh start, so one command can be relaunched until the run is done.

    Raises:
        FileNotFoundError: ``resume`` names another place without a checkpoint.
    """
    if resume is None:
        return None
    source = Path(resume)
    path = source if source.is_file() else source / CHECKPOINT_NAME
    if path.is_file():
        return path
    if path.parent.resolve() == Path(out).resolve():
        return None
    raise FileNotFoundError(f"cannot resume: no checkpoint at {path}")
