"""The error contract of ``ia`` over a table of bad inputs (issue 18, DESIGN rule 10).

Every row drives the real entry point (:func:`indirect_attention.cli.main`, a few rows also
``python -m indirect_attention`` in a subprocess) with one mistake and checks: exit status 2,
exactly one line on stderr that names the culprit (the flag or the file), no traceback, nothing
printed on stdout, and every file that existed before is unchanged (a content hash of the whole
workspace before and after).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from indirect_attention.cli import main
from indirect_attention.detection.model import IADETR, DetrModelConfig
from indirect_attention.detection.sources import EmojiSource
from indirect_attention.detection.train import DetrTrainConfig, config_record, recipe
from indirect_attention.training.checkpoint import save_checkpoint
from indirect_attention.training.records import to_jsonable

TINY = dict(dim=32, num_heads=2, num_layers=1, ffn_dim=64, num_queries=4, bias_hidden=16)
SRC = Path(__file__).resolve().parents[1] / "src"


class NotWeights:
    """A pickled object: ``weights_only=True`` refuses to build it."""


def _run_folder(folder: Path, *, drop: str | None = None) -> None:
    """A run of ``ia detr train`` that finished its one epoch: config.json, metrics, checkpoint."""
    folder.mkdir()
    config = DetrTrainConfig(
        out=str(folder),
        model=DetrModelConfig(**TINY),
        data=EmojiSource(train_episodes=4, cache_dir=str(folder.parent / "cache")),
        epochs=1,
        batch_size=2,
        pretrain_steps=0,
    )
    record = config_record(config)
    if drop is not None:
        del record[drop]
    (folder / "config.json").write_text(json.dumps(record))
    (folder / "metrics.jsonl").write_text('{"epoch": 1, "step": 2, "loss": 1.0}\n')
    torch.manual_seed(0)
    model = IADETR(config.model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    extra = {
        "model_config": asdict(model.config),
        "input_spec": {"target_size": 64, "query_size": 24},
    }
    save_checkpoint(folder / "checkpoint.pt", model, optimizer, epoch=1, step=2, extra=extra)


def _coco(path: Path, image: Path, *, annotated: bool) -> None:
    """A COCO file over one image; without annotations it has no pairs to train or test on."""
    categories = [{"id": i + 1, "name": n} for i, n in enumerate(("red", "green", "blue"))]
    annotations = []
    if annotated:
        annotations = [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 2, 8, 8], "area": 64}]
    document = {
        "images": [{"id": 1, "file_name": image.name, "width": 32, "height": 24}],
        "annotations": annotations,
        "categories": categories,
    }
    path.write_text(json.dumps(document))


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The workspace every row runs in: good files to misuse and bad files to give."""
    root = tmp_path_factory.mktemp("ws")
    torch.manual_seed(0)
    model = IADETR(DetrModelConfig(**TINY))
    extra = {"model_config": asdict(model.config), "scale": 0.5, "data": "emoji"}
    save_checkpoint(root / "model.pt", model, epoch=1, step=1, extra=extra)
    pixels = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(root / "image.png")
    (root / "text.pt").write_text("these are not weights\n")
    (root / "empty.pt").write_bytes(b"")
    torch.save({"model": {}, "x": NotWeights()}, root / "object.pt")
    torch.save({"conv.weight": torch.zeros(2)}, root / "not_resnet.pt")
    (root / "afolder").mkdir()
    (root / "afolder" / "keep.txt").write_text("mine\n")
    (root / "det.json").write_text("[]\n")
    (root / "picture.png").write_bytes((root / "image.png").read_bytes())
    _coco(root / "empty_coco.json", root / "image.png", annotated=False)
    _coco(root / "coco.json", root / "image.png", annotated=True)
    _run_folder(root / "run")
    _run_folder(root / "run_no_lr", drop="lr")
    (root / "drawn").mkdir()  # an earlier `detect --draw drawn` of image.png
    (root / "drawn" / "image.png").write_bytes((root / "image.png").read_bytes())
    (root / "evaluated" / "eval-unseen").mkdir(parents=True)  # an earlier `ia detr eval`
    (root / "evaluated" / "model.pt").write_bytes((root / "model.pt").read_bytes())
    (root / "evaluated" / "eval-unseen" / "results.json").write_text("{}\n")
    table_run = root / "table" / "ia-s0"  # a table trained with the default recipe
    table_run.mkdir(parents=True)
    record = to_jsonable(config_record(recipe(EmojiSource(), out=str(table_run))))
    (table_run / "config.json").write_text(json.dumps(record))
    synthetic = root / "synthetic_run"
    synthetic.mkdir()
    (synthetic / "config.json").write_text("{}\n")
    (synthetic / "metrics.jsonl").write_text('{"epoch": 1}\n')
    return root


def _snapshot(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


TRAIN = ["detr", "train", "--pretrain-steps", "0"]
COCO_TRAIN = [
    *TRAIN,
    "--data",
    "coco",
    "--train-json",
    "{ws}/coco.json",
    "--unseen-classes",
    "blue",
]
EMPTY_COCO_TRAIN = [*TRAIN, "--data", "coco", "--train-json", "{ws}/empty_coco.json"]
EMPTY_COCO_TRAIN += ["--unseen-classes", "blue"]
EMPTY_COCO_EVAL = ["detr", "eval", "--checkpoint", "{ws}/model.pt", "--data", "coco"]
EMPTY_COCO_EVAL += ["--val-json", "{ws}/empty_coco.json", "--unseen-classes", "blue"]
DETECT = ["detr", "detect", "--checkpoint", "{ws}/model.pt", "--query", "{ws}/image.png"]
DETECT += ["--target", "{ws}/image.png"]
GPU = ["bench", "gpu", "--device", "cpu"]  # on the CPU: the rows below never need a device

# (argv, what the one line must contain: the culprit), "{ws}" is the workspace folder.
CASES = [
    # numbers, at parse time
    ([*TRAIN, "--out", "{ws}/new", "--epochs", "0"], "--epochs"),
    ([*TRAIN, "--out", "{ws}/new", "--epochs", "-1"], "--epochs"),
    ([*TRAIN, "--out", "{ws}/new", "--lr", "-1"], "--lr"),
    ([*TRAIN, "--out", "{ws}/new", "--lr", "nan"], "--lr"),
    ([*TRAIN, "--out", "{ws}/new", "--max-size", "-64"], "--max-size"),
    ([*TRAIN, "--out", "{ws}/new", "--max-size", "0"], "--max-size"),
    ([*TRAIN, "--out", "{ws}/new", "--eval-every", "0"], "--eval-every"),
    ([*TRAIN, "--out", "{ws}/new", "--eval-episodes", "0"], "--eval-episodes"),
    ([*TRAIN, "--out", "{ws}/new", "--batch-size", "two"], "--batch-size"),
    ([*TRAIN, "--out", "{ws}/new", "--crop-queries", "1.5"], "--crop-queries"),
    ([*TRAIN, "--out", "{ws}/new", "--threads", "-3"], "--threads"),
    ([*TRAIN, "--out", "{ws}/new", "--device", "tpu"], "--device"),
    # the detection protocol's options (artists held out, query placement, recipes)
    ([*TRAIN, "--out", "{ws}/new", "--held-out-styles", "emojione"], "held_out_styles"),
    ([*TRAIN, "--out", "{ws}/new", "--held-out-styles", "foo,bar"], "held_out_styles"),
    ([*TRAIN, "--out", "{ws}/new", "--recipe", "authors"], "--recipe"),
    (
        ["detr", "eval", "--checkpoint", "{ws}/model.pt", "--query-placement", "middle"],
        "--query-placement",
    ),
    (
        ["detr", "eval", "--checkpoint", "{ws}/model.pt", "--split", "seen-new-artists"],
        "seen-new-artists",
    ),
    (["detr", "table1", "--out", "{ws}/t1", "--seeds", "0"], "--seeds"),
    (["detr", "table1", "--out", "{ws}/t1", "--jobs", "0"], "--jobs"),
    (["detr", "eval", "--checkpoint", "{ws}/model.pt", "--episodes", "0"], "--episodes"),
    (["detr", "eval", "--checkpoint", "{ws}/model.pt", "--draws", "-2"], "--draws"),
    ([*DETECT, "--out", "{ws}/d.json", "--threshold", "2"], "--threshold"),
    ([*DETECT, "--out", "{ws}/d.json", "--max-detections", "0"], "--max-detections"),
    (["synthetic", "--out", "{ws}/syn", "--epochs", "0"], "--epochs"),
    (["synthetic", "--out", "{ws}/syn", "--dropout", "1.5"], "--dropout"),
    (["synthetic", "--out", "{ws}/syn", "--kinds", "indirect,bogus"], "bogus"),
    (["synthetic", "--out", "{ws}/syn", "--model-lr", "indirect=abc"], "--model-lr"),
    (["synthetic", "--out", "{ws}/syn", "--dim", "10", "--heads", "3"], "--heads"),
    ([*TRAIN, "--out", ""], "--out"),
    ([*TRAIN, "--out", "{ws}/new", "--data-root", ""], "--data-root"),
    ([*TRAIN, "--out", "{ws}/new", "--queries", "10"], "num_queries"),
    (["theory", "--out", "{ws}/th", "--seed", "-2"], "--seed"),
    (["bench", "attention", "--out", "{ws}/b", "--sizes", "0"], "--sizes"),
    (["bench", "train", "--out", "{ws}/b", "--repeats", "0"], "--repeats"),
    ([*GPU, "--out", "{ws}/b", "--target-size", "0"], "--target-size"),
    ([*GPU, "--out", "{ws}/b", "--query-size", "-1"], "--query-size"),
    ([*GPU, "--out", "{ws}/b", "--warmup", "-1"], "--warmup"),
    ([*GPU, "--out", "{ws}/b", "--num-queries", "0"], "--num-queries"),
    ([*GPU, "--out", "{ws}/b", "--batch-size", "0"], "--batch-size"),
    ([*GPU, "--out", "{ws}/b", "--layers", "0"], "--layers"),
    ([*GPU, "--out", "{ws}/b", "--sizes", "64,0"], "--sizes"),
    ([*GPU, "--out", "{ws}/b", "--parts", "attention,bogus"], "--parts"),
    ([*GPU, "--out", "{ws}/b", "--dtypes", "fp16"], "--dtypes"),
    (["bench", "gpu", "--out", "{ws}/b", "--device", "mps"], "--device"),
    ([*GPU, "--out", "{ws}/run"], "--overwrite"),
    (["reproduce", "--out", "{ws}/r", "--profile", "huge"], "--profile"),
    (["data", "show", "--out", "{ws}/grid.png", "--n", "0"], "--n"),
    (["data", "export", "--out", "{ws}/export", "--limit", "0"], "--limit"),
    (["data", "export", "--out", "{ws}/export", "--format", "xml"], "--format"),
    (["demo", "--port", "70000"], "--port"),
    (["demo", "--port", "http"], "--port"),
    (["demo", "--port", "0"], "--port"),
    (["demo", "--threshold", "1.5"], "--threshold"),
    (["demo", "--nms", "-0.1"], "--nms"),
    (["demo", "--max-detections", "0"], "--max-detections"),
    (["demo", "--threads", "-1"], "--threads"),
    (["demo", "--device", "tpu"], "--device"),
    (["bogus"], "bogus"),
    # files that are missing, of the wrong kind, or not checkpoints
    (["detr", "eval", "--checkpoint", "{ws}/missing.pt"], "missing.pt"),
    (["detr", "eval", "--checkpoint", "{ws}/text.pt"], "text.pt"),
    (["detr", "eval", "--checkpoint", "{ws}/object.pt"], "object.pt"),
    (["detr", "show", "--checkpoint", "{ws}/empty.pt", "--out", "{ws}/s.png"], "empty.pt"),
    (["detr", "export", "--checkpoint", "{ws}/text.pt", "--out", "{ws}/rel"], "text.pt"),
    (
        ["detr", "export", "--checkpoint", "{ws}/run/config.json", "--out", "{ws}/rel"],
        "config.json",
    ),
    (
        [*DETECT[:2], "--checkpoint", "{ws}/object.pt", *DETECT[4:], "--out", "{ws}/d.json"],
        "object.pt",
    ),
    ([*DETECT, "--target", "{ws}/missing.png", "--out", "{ws}/d.json"], "missing.png"),
    (["demo", "--checkpoint", "{ws}/missing.pt"], "missing.pt"),
    (["demo", "--checkpoint", ""], "--checkpoint"),
    ([*TRAIN, "--out", "{ws}/new", "--init-weights", "{ws}/text.pt"], "text.pt"),
    ([*TRAIN, "--out", "{ws}/new", "--init-weights", "{ws}/object.pt"], "object.pt"),
    ([*TRAIN, "--out", "{ws}/new", "--backbone-weights", "{ws}/missing.pt"], "--backbone-weights"),
    (
        [*COCO_TRAIN, "--out", "{ws}/new", "--backbone-weights", "{ws}/not_resnet.pt"],
        "not_resnet.pt",
    ),
    ([*TRAIN, "--out", "{ws}/new", "--backbone-weights", "{ws}/not_resnet.pt"], "not_resnet.pt"),
    (
        [
            "detr",
            "eval-json",
            "--gt",
            "{ws}/missing.json",
            "--pred",
            "{ws}/det.json",
            "--out",
            "{ws}/e",
        ],
        "--gt",
    ),
    (["reproduce", "--update-readme", "{ws}/missing"], "--update-readme"),
    # outputs: an existing run, a file of the wrong kind, a file the user made
    ([*TRAIN, "--out", "{ws}/run", "--epochs", "2"], "--resume"),
    ([*TRAIN, "--out", "{ws}/det.json"], "--out"),
    ([*DETECT, "--out", "{ws}/afolder"], "--out"),
    ([*DETECT, "--out", "{ws}/det.json"], "--overwrite"),
    ([*DETECT, "--out", "{ws}/d.json", "--draw", "{ws}/det.json"], "--draw"),
    ([*DETECT, "--out", "{ws}/d.json", "--draw", "{ws}/drawn"], "image.png"),
    (["detr", "eval", "--checkpoint", "{ws}/evaluated/model.pt"], "eval-unseen"),
    ([*DETECT, "--out", "{ws}/det.json/d.json"], "det.json"),
    (["detr", "show", "--checkpoint", "{ws}/model.pt", "--out", "{ws}/afolder"], "--out"),
    (["detr", "show", "--checkpoint", "{ws}/model.pt", "--out", "{ws}/picture.png"], "--out"),
    (["detr", "export", "--checkpoint", "{ws}/model.pt", "--out", "{ws}/det.json"], "--out"),
    (["detr", "table1", "--out", "{ws}/table", "--lr", "0.001"], "lr 0.001"),
    (["detr", "table1", "--out", "{ws}/det.json"], "--out"),
    (["synthetic", "--out", "{ws}/synthetic_run"], "--overwrite"),
    (["synthetic", "--out", "{ws}/det.json"], "--out"),
    (["theory", "--out", "{ws}/run"], "--overwrite"),
    (["bench", "train", "--out", "{ws}/run"], "--overwrite"),
    (["data", "show", "--out", "{ws}/afolder"], "--out"),
    (["data", "export", "--out", "{ws}/afolder"], "--out"),
    # resume: the run's own recipe
    ([*TRAIN, "--resume", "{ws}/run", "--epochs", "3", "--lr", "0.5"], "--lr"),
    (
        [*TRAIN, "--resume", "{ws}/run", "--epochs", "3", "--dim", "64", "--kind", "misaligned"],
        "--dim",
    ),
    ([*TRAIN, "--resume", "{ws}/run"], "--epochs"),
    ([*TRAIN, "--resume", "{ws}/run_no_lr", "--epochs", "3"], "'lr'"),
    ([*TRAIN, "--resume", "{ws}/nowhere", "--epochs", "3"], "nowhere"),
    ([*TRAIN, "--resume", "{ws}/text.pt", "--epochs", "3"], "text.pt"),
    ([*TRAIN, "--resume", "{ws}/run", "--overwrite"], "--overwrite"),
    ([*TRAIN, "--resume", "{ws}/run", "--init-weights", "{ws}/model.pt"], "--init-weights"),
    ([*TRAIN, "--resume", "{ws}/run", "--epochs", "3", "--out", "{ws}/run_no_lr"], "--out"),
    # runs that would do nothing
    ([*EMPTY_COCO_TRAIN, "--out", "{ws}/new"], "trainable"),
    (
        [*EMPTY_COCO_EVAL, "--out", "{ws}/ev"],
        "no evaluation pairs",
    ),
]


def _argv(argv: list[str], ws: Path) -> list[str]:
    return [arg.replace("{ws}", str(ws)) for arg in argv]


def _check(code: int, out: str, err: str, culprit: str) -> None:
    lines = err.splitlines()
    assert code == 2, err
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("ia"), err
    assert culprit in lines[0], lines[0]
    assert "weights_only=False" not in err
    assert out == ""


@pytest.mark.parametrize(("argv", "culprit"), CASES, ids=[" ".join(c[0][:4]) for c in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(
    ws: Path,
    argv: list[str],
    culprit: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    torch.set_num_threads(1)
    monkeypatch.chdir(ws)  # a relative or empty path lands in the workspace
    before = _snapshot(ws)
    code = main(_argv(argv, ws))
    captured = capsys.readouterr()
    _check(code, captured.out, captured.err, culprit.replace("{ws}", str(ws)))
    after = _snapshot(ws)
    assert {k: after.get(k) for k in before} == before  # every earlier file is as it was
    assert not (ws / "new").exists()  # a refused training leaves no run folder behind


def test_the_table_covers_every_command_and_is_large() -> None:
    commands = {" ".join(a for a in argv[:2] if not a.startswith("-")) for argv, _ in CASES}
    assert len(CASES) >= 40
    for command in ("detr train", "detr eval", "detr detect", "detr show", "detr export"):
        assert command in commands
    for command in ("detr table1", "synthetic", "theory", "bench attention", "reproduce"):
        assert any(c.startswith(command) for c in commands)
    assert any(c.startswith("data") for c in commands)
    assert "demo" in commands


@pytest.mark.parametrize(
    ("argv", "culprit"),
    [
        ([*TRAIN, "--out", "{ws}/new", "--epochs", "0"], "--epochs"),
        (["detr", "eval", "--checkpoint", "{ws}/text.pt"], "text.pt"),
        ([*TRAIN, "--out", "{ws}/run"], "--overwrite"),
        ([*TRAIN, "--resume", "{ws}/run", "--epochs", "3", "--lr", "0.5"], "--lr"),
    ],
)
def test_the_real_command_line_keeps_the_contract(ws: Path, argv: list[str], culprit: str) -> None:
    """Through ``python -m indirect_attention`` in its own process (what ``ia`` runs)."""
    before = _snapshot(ws)
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    process = subprocess.run(
        [sys.executable, "-m", "indirect_attention", *_argv(argv, ws)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    _check(process.returncode, process.stdout, process.stderr, culprit)
    assert _snapshot(ws) == before


def test_overwrite_starts_the_run_folder_clean(ws: Path, tmp_path: Path) -> None:
    """``--overwrite`` removes the run's own files only; the user's other files stay."""
    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.json", "metrics.jsonl", "results.json", "checkpoint.pt"):
        (run / name).write_text("old\n")
    (run / "notes.txt").write_text("mine\n")
    argv = ["theory", "--quick", "--out", str(run), "--overwrite"]
    # the check alone: a bad --seed after it stops before anything is removed
    assert main([*argv, "--seed", "-1"]) == 2
    assert (run / "metrics.jsonl").read_text() == "old\n"
    from indirect_attention.cli.outputs import check_outputs

    args = argparse.Namespace(out=str(run), overwrite=True)
    check_outputs(args, ("theory",))
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]


def test_errors_of_a_bug_keep_their_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only a user's mistake is turned into one line; a bug (here a KeyError) propagates."""
    from indirect_attention.cli import theory

    def broken(args):
        raise KeyError("a bug")

    monkeypatch.setattr(theory, "_run", broken)
    with pytest.raises(KeyError):
        main(["theory", "--out", "unused-folder-name-xyz"])


def test_help_and_version_answer(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("ia ")
    assert main(["detr", "train", "--help"]) == 0
    text = capsys.readouterr().out
    assert "--overwrite" in text and "default: 0" in text  # --seed shows its default


def test_coco_data_needs_no_scikit_image() -> None:
    """COCO training data, detection and export never import skimage (emoji backgrounds only)."""
    code = (
        "import sys, indirect_attention.detection.train, indirect_attention.detection.detect, "
        "indirect_attention.detection.release, indirect_attention.detection.sources as s; "
        "s.CocoSource(); assert 'skimage' not in sys.modules, 'skimage imported'"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_only_the_first_torchrun_process_checks_the_run_folder(
    ws: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under torchrun a later rank may start after rank 0 wrote the run's first files."""
    from indirect_attention.cli.outputs import check_outputs

    args = argparse.Namespace(out=str(ws / "run"), overwrite=False, resume=None)
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(FileExistsError, match="--overwrite"):
        check_outputs(args, ("detr", "train"))
    monkeypatch.setenv("RANK", "1")
    check_outputs(args, ("detr", "train"))  # no refusal, nothing removed
    assert (ws / "run" / "checkpoint.pt").is_file()


def test_a_table_resumes_with_its_own_recipe_only(ws: Path, tmp_path: Path) -> None:
    from indirect_attention.cli.table_folder import check_table_folder

    check_table_folder(ws / "table", recipe(EmojiSource(), epochs=12), overwrite=False)  # extends
    with pytest.raises(ValueError, match=r"model\.dim 64 \(the table's runs: 128\)"):
        check_table_folder(ws / "table", recipe(EmojiSource(), model={"dim": 64}), overwrite=False)
    table = tmp_path / "table"
    shutil.copytree(ws / "table", table)
    (table / "table1.md").write_text("old\n")
    (table / "notes.txt").write_text("mine\n")
    check_table_folder(table, recipe(EmojiSource(), model={"dim": 64}), overwrite=True)
    assert sorted(str(p.relative_to(table)) for p in table.rglob("*")) == ["ia-s0", "notes.txt"]


def test_a_table_of_older_runs_resumes_when_a_newer_field_is_at_its_default(
    ws: Path, tmp_path: Path
) -> None:
    """A run recorded before a field existed trained with its default: not a different recipe,
    but the same field at another value is."""
    from indirect_attention.cli.table_folder import check_table_folder

    table = tmp_path / "table"
    shutil.copytree(ws / "table", table)
    record = json.loads((table / "ia-s0" / "config.json").read_text())
    del record["recipe"], record["random_query_placement"], record["model"]["object_queries"]
    del record["data_options"]["held_out_styles"]
    (table / "ia-s0" / "config.json").write_text(json.dumps(record))
    check_table_folder(table, recipe(EmojiSource()), overwrite=False)
    with pytest.raises(ValueError, match=r"model\.object_queries 'learned' \(the table's runs: "):
        paper = recipe(EmojiSource(), model={"object_queries": "learned"})
        check_table_folder(table, paper, overwrite=False)


def test_every_numeric_option_is_checked_at_parse_time() -> None:
    """No option of any subcommand takes a bare int or float: each has its range check."""
    from indirect_attention.cli import build_parser
    from indirect_attention.cli.validate import iter_parsers

    bare = [
        f"ia {' '.join(path)} {action.option_strings[0]}"
        for path, parser in iter_parsers(build_parser())
        for action in parser._actions
        if action.type in (int, float)
    ]
    assert bare == []


def test_help_imports_no_heavy_dependency() -> None:
    """`ia --help` builds the subcommand list without torch (issue 18: it answers at once)."""
    code = (
        "import sys, contextlib, io\n"
        "from indirect_attention.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert main(['--help']) == 0 and main(['detr', 'detect', '--help']) == 0\n"
        "    assert main(['demo', '--help']) == 0\n"
        "heavy = {'torch', 'numpy', 'matplotlib', 'torchvision', 'scipy', 'gradio'}\n"
        "heavy &= set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
