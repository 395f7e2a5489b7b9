"""Install like a library (issue 18): the wheel, installed into a fresh virtual environment with
only the dependencies it declares, works.

The wheel is built once from this checkout (``pip wheel --no-deps --no-build-isolation``: no
network). Each fresh venv (``python -m venv --without-pip``) gets the wheel through this
interpreter's pip and, instead of downloading torch again, a folder of links to exactly the
installed distributions its ``Requires-Dist`` names (for the extras asked) and their own
requirements, found through their metadata. So an import of a package the wheel does not declare
fails there as it would for a user, and the test is fast enough for ``make test``.

``extras.EXTRAS`` (what ``ia`` tells a user to install) is checked against the wheel's metadata.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

packaging = pytest.importorskip("packaging.requirements")
if importlib.util.find_spec("setuptools") is None:  # the build backend, used without isolation
    pytest.skip("setuptools is needed to build the wheel offline", allow_module_level=True)

from packaging.markers import default_environment  # noqa: E402
from packaging.requirements import Requirement  # noqa: E402
from packaging.utils import canonicalize_name  # noqa: E402

pytestmark = pytest.mark.slow


def _clean_env() -> dict[str, str]:
    """This environment without what would show the checkout's sources to another Python."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    build = tmp_path_factory.mktemp("build")  # keep the checkout clean of build/ and egg-info
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet"]
    subprocess.run(
        [*pip, "--wheel-dir", str(out), str(ROOT)],
        check=True,
        cwd=build,
        env={**_clean_env(), "PIP_NO_INDEX": "1"},
    )
    (path,) = out.glob("indirect_attention-*.whl")
    return path


def _wheel_requirements(wheel: Path) -> list[Requirement]:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = archive.read(name).decode("utf-8")
    lines = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    return [Requirement(line.split(":", 1)[1].strip()) for line in lines]


def _closure(requirements: list[Requirement], extras: set[str]) -> set[str]:
    """Installed distributions needed by ``requirements`` for ``extras``, recursively."""
    seen: set[str] = set()
    todo = [(r, extras | {""}) for r in requirements]
    while todo:
        requirement, wanted = todo.pop()
        environment = default_environment()
        active = requirement.marker is None or any(
            requirement.marker.evaluate({**environment, "extra": extra}) for extra in wanted
        )
        name = canonicalize_name(requirement.name)
        if not active:
            continue
        if name == "indirect-attention":  # an extra naming other extras
            todo += [(r, set(requirement.extras) | {""}) for r in requirements]
            continue
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # optional for this platform and not installed here
        key = (name, tuple(sorted(requirement.extras)))
        if key in seen:
            continue
        seen.add(key)
        own = [Requirement(text) for text in distribution.requires or []]
        todo += [(r, set(requirement.extras) | {""}) for r in own]
    return {name for name, _ in seen}


def _link_distributions(names: set[str], folder: Path) -> None:
    """Links in ``folder`` to the top-level files of each distribution (and its metadata)."""
    folder.mkdir()
    for name in names:
        distribution = importlib.metadata.distribution(name)
        base = Path(distribution.locate_file(""))
        tops = {
            Path(str(f)).parts[0] for f in distribution.files or [] if not str(f).startswith("..")
        }
        for top in tops:
            source, target = base / top, folder / top
            if source.exists() and not target.exists() and not top.endswith(".pth"):
                target.symlink_to(source)


def _venv(root: Path, wheel: Path, extras: set[str]) -> Path:
    """A fresh venv with the wheel and only what it declares for ``extras``; its bin folder."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet"]
    subprocess.run([*pip, "--no-deps", "--no-index", str(wheel)], check=True, env=_clean_env())
    names = _closure(_wheel_requirements(wheel), extras)
    _link_distributions(names, root / "deps")
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(purelib) / "declared_deps.pth").write_text(str(root / "deps") + "\n")
    return root / "bin"


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        command, capture_output=True, text=True, cwd=cwd, env=_clean_env(), check=False
    )


def test_core_install_gives_the_modules_and_the_help(wheel: Path, tmp_path: Path) -> None:
    bin_dir = _venv(tmp_path / "venv", wheel, set())
    code = (
        "import torch\n"
        "from indirect_attention import IndirectAttention\n"
        "attention = IndirectAttention(dim=16, num_heads=2)\n"
        "out = attention(torch.randn(2, 3, 16), torch.randn(2, 5, 16), torch.randn(2, 5, 16))\n"
        "assert out.shape == (2, 3, 16)\n"
        "import indirect_attention; assert indirect_attention.__file__.startswith(r'"
        + str(tmp_path)
        + "')\n"
    )
    assert _run([str(bin_dir / "python"), "-c", code], tmp_path).returncode == 0
    for module in ("torchvision", "matplotlib", "scipy"):  # not declared by the core
        probe = _run([str(bin_dir / "python"), "-c", f"import {module}"], tmp_path)
        assert probe.returncode != 0, module
    assert _run([str(bin_dir / "ia"), "--help"], tmp_path).returncode == 0
    version = _run([str(bin_dir / "ia"), "--version"], tmp_path)
    assert version.stdout.strip() == f"ia {importlib.metadata.version('indirect-attention')}"
    theory = _run([str(bin_dir / "ia"), "theory", "--quick", "--out", "th"], tmp_path)
    assert theory.returncode == 2 and "indirect-attention[plots]" in theory.stderr
    assert len(theory.stderr.splitlines()) == 1 and not (tmp_path / "th").exists()


def test_detection_install_detects(wheel: Path, tmp_path: Path) -> None:
    from PIL import Image

    from indirect_attention.detection.model import IADETR, DetrModelConfig
    from indirect_attention.training.checkpoint import save_checkpoint

    bin_dir = _venv(tmp_path / "venv", wheel, {"detection"})
    torch.manual_seed(0)
    model = IADETR(DetrModelConfig(dim=32, num_heads=2, num_layers=1, ffn_dim=64, num_queries=4))
    extra = {"model_config": asdict(model.config), "scale": 0.5, "data": "emoji"}
    save_checkpoint(tmp_path / "checkpoint.pt", model, extra=extra)
    rng = np.random.default_rng(0)
    for name, size in (("target.png", (60, 80, 3)), ("query.png", (20, 16, 3))):
        Image.fromarray(rng.integers(0, 256, size, dtype=np.uint8)).save(tmp_path / name)
    argv = [str(bin_dir / "ia"), "detr", "detect", "--checkpoint", "checkpoint.pt"]
    argv += ["--query", "query.png", "--target", "target.png", "--out", "det.json"]
    result = _run([*argv, "--threshold", "0", "--draw", "drawn"], tmp_path)
    assert result.returncode == 0, result.stderr
    rows = json.loads((tmp_path / "det.json").read_text())
    assert len(rows) == 4 and all(row["image_id"] == 1 for row in rows)
    assert (tmp_path / "drawn" / "target.png").is_file()
    shipped = _run([str(bin_dir / "ia"), "detr", "detect", *argv[5:9], "--draw", "own"], tmp_path)
    assert shipped.returncode == 0, shipped.stderr  # no --checkpoint: the detector in the wheel
    from indirect_attention.detection.detect import detect

    found = detect(IADETR.from_pretrained(), tmp_path / "target.png", tmp_path / "query.png")
    rows = json.loads((tmp_path / "own" / "detections.json").read_text())
    assert [row["score"] for row in rows] == pytest.approx(found.scores.tolist(), abs=1e-5)
    assert (tmp_path / "own" / "target.png").is_file()
    skimage = _run([str(bin_dir / "python"), "-c", "import skimage"], tmp_path)
    assert skimage.returncode != 0  # detection needs no scikit-image


def test_extras_named_by_the_cli_are_the_declared_ones(wheel: Path) -> None:
    from indirect_attention.cli.extras import EXTRAS

    declared: dict[str, set[str]] = {}
    for requirement in _wheel_requirements(wheel):
        marker = str(requirement.marker or "")
        for extra in EXTRAS:
            if f'extra == "{extra}"' in marker:
                declared.setdefault(extra, set()).add(canonicalize_name(requirement.name))
    import_names = {"pillow": "PIL", "scikit-image": "skimage"}
    for extra, modules in EXTRAS.items():
        names = {import_names.get(n, n.replace("-", "_")) for n in declared.get(extra, set())}
        assert set(modules) <= names, (extra, modules, names)
    core = {canonicalize_name(r.name) for r in _wheel_requirements(wheel) if r.marker is None}
    assert {"torch", "numpy", "tqdm"} <= core
