"""One flag, ``--quiet``, silences the progress bars of every long command."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from indirect_attention.cli import build_parser, main

LONG_COMMANDS = [
    ("detr", "train"),
    ("detr", "eval"),
    ("detr", "table1"),
    ("detr", "detect"),
    ("data", "export"),
    ("synthetic",),
    ("reproduce",),
]


def _subparser(parser: argparse.ArgumentParser, words: tuple[str, ...]) -> argparse.ArgumentParser:
    for word in words:
        (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        parser = action.choices[word]
    return parser


@pytest.mark.parametrize("words", LONG_COMMANDS, ids=" ".join)
def test_every_long_command_takes_quiet(words: tuple[str, ...]) -> None:
    parser = _subparser(build_parser(), words)
    (action,) = [a for a in parser._actions if "--quiet" in a.option_strings]
    assert isinstance(action, argparse._StoreTrueAction)


def test_data_export_bar_and_quiet(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["data", "export", "--split", "test", "--limit", "2"]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0
    assert "export test: 100%" in capsys.readouterr().err
    assert main([*argv, "--quiet", "--out", str(tmp_path / "b")]) == 0
    assert capsys.readouterr().err == ""
    assert (tmp_path / "a" / "annotations.json").read_text() == (
        tmp_path / "b" / "annotations.json"
    ).read_text()


@pytest.mark.parametrize("quiet", [False, True])
def test_train_and_table1_pass_quiet_to_the_recipe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, quiet: bool
) -> None:
    seen = {}
    monkeypatch.setattr(
        "indirect_attention.detection.table1.run",
        lambda config: seen.setdefault("table1", config) and {"models": {}},
    )
    monkeypatch.setattr(
        "indirect_attention.detection.train.run",
        lambda config: seen.setdefault("train", config) and {"steps": 0, "minutes": 0.0},
    )
    monkeypatch.setattr(
        "indirect_attention.plots.detection_curves.draw_detection_curves",
        lambda run_dir, path: path,
    )
    flag = ["--quiet"] if quiet else []
    assert main(["detr", "table1", "--out", str(tmp_path / "t"), *flag]) == 0
    assert main(["detr", "train", "--out", str(tmp_path / "r"), *flag]) == 0
    assert seen["table1"].train.progress is (not quiet)  # its training and its evaluation
    assert seen["train"].progress is (not quiet)
