"""Hub-style save and load of IA-DETR (paper §6.2) with huggingface_hub's ``PyTorchModelHubMixin``.

:class:`~.model.IADETR` inherits :class:`DetectorHubMixin`, so a detector saves and loads as any
model of the Hugging Face ecosystem does::

    model.save_pretrained("my-detector")    # config.json + model.safetensors + README.md (card)
    model = IADETR.from_pretrained("my-detector")
    model = IADETR.from_pretrained()        # the detector shipped in the package (emoji data)

The three files are the export format of :mod:`.export_format` (``ia detr export`` writes the same);
the mixin contributes the ecosystem's method names, its ``push_to_hub`` and the card's metadata.

**Nothing is downloaded.** :meth:`DetectorHubMixin.from_pretrained` reads a path on this machine
(an export folder, a run folder, ``checkpoint.pt`` or ``model.safetensors``: whatever
:func:`~.release.load_detector` reads). A path that does not exist raises ``FileNotFoundError``
before huggingface_hub is asked anything, so a mistyped folder never turns into a Hub request.
To use a model published on the Hub, fetch it first (``huggingface_hub.snapshot_download``) and
pass the folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard, PyTorchModelHubMixin

from .export_format import export_detector, load_into, model_card

__all__ = ["SHIPPED_DIR", "DetectorHubMixin", "shipped_path"]

#: The folder of the detector shipped in the package (package data; :mod:`.pretrained` has its
#: card and how it was made).
SHIPPED_DIR = Path(__file__).resolve().parent / "shipped" / "emoji-ia"


def shipped_path() -> Path:
    """The shipped detector's folder.

    Raises:
        FileNotFoundError: the package was installed without its data (no ``model.safetensors``).
    """
    if not (SHIPPED_DIR / "model.safetensors").is_file():
        raise FileNotFoundError(
            f"the shipped detector is missing from this installation ({SHIPPED_DIR} holds no "
            "model.safetensors); pass a trained model (--checkpoint) or reinstall the package"
        )
    return SHIPPED_DIR


class DetectorHubMixin(
    PyTorchModelHubMixin,
    library_name="indirect-attention",
    pipeline_tag="object-detection",
    paper_url="https://arxiv.org/abs/2509.26015",
    tags=["indirect-attention", "one-shot-object-detection"],
):
    """``save_pretrained`` / ``from_pretrained`` for :class:`~.model.IADETR` (module docstring).

    The mixin's hooks are routed to :mod:`.export_format`, the one place that writes and reads
    the format; the model class itself reads and writes no file.
    """

    def _save_pretrained(self, save_directory: Path) -> None:
        """Write ``model.safetensors``, ``config.json`` and the card ``README.md``."""
        export_detector(self, save_directory)  # type: ignore[arg-type]

    @classmethod
    def from_pretrained(  # type: ignore[override]
        cls,
        pretrained_model_name_or_path: str | Path | None = None,
        *,
        map_location: str = "cpu",
        **kwargs: Any,
    ) -> Any:
        """Load a detector saved on this machine; never downloads.

        Args:
            pretrained_model_name_or_path: A folder of :meth:`save_pretrained` or
                ``ia detr export`` (older exports without a card included), a run folder, a
                ``checkpoint.pt`` of ``ia detr train`` or a ``model.safetensors`` beside its
                ``config.json``. None: the detector shipped in the package
                (:mod:`.pretrained`; trained on the emoji benchmark, not real photographs).
            map_location: Device of the returned model.
            **kwargs: Passed to the mixin (``local_files_only`` is always True).

        Returns:
            The :class:`~.model.IADETR` in eval mode, ``input_spec`` set.

        Raises:
            FileNotFoundError: nothing at that path (no Hub request is made).
            ValueError: a corrupt or foreign file (see :func:`~.release.load_detector`).
        """
        if pretrained_model_name_or_path is None:
            pretrained_model_name_or_path = shipped_path()
        path = Path(pretrained_model_name_or_path)
        if not path.exists():
            raise FileNotFoundError(
                f"{path} does not exist; from_pretrained reads a folder on this machine written "
                "by save_pretrained or `ia detr export` (it never downloads: fetch a Hub "
                "repository first with huggingface_hub.snapshot_download)"
            )
        if not (path / "model.safetensors").is_file():  # a run folder or a file: not the mixin's
            return load_into(cls, path, map_location=map_location)
        kwargs["local_files_only"] = True
        return super().from_pretrained(path, map_location=map_location, **kwargs)

    @classmethod
    def _from_pretrained(  # type: ignore[override]
        cls, *, model_id: str, map_location: str = "cpu", **_: Any
    ) -> Any:
        """The mixin's loading hook, for a local folder (the mixin's own config is not used)."""
        return load_into(cls, model_id, map_location=map_location)

    def generate_model_card(self, *args: Any, **kwargs: Any) -> ModelCard:
        """The card of :func:`~.export_format.model_card` (used by ``push_to_hub``)."""
        return ModelCard(model_card(self))  # type: ignore[arg-type]
