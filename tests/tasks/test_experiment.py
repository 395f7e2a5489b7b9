"""The ``ia synthetic`` command on tiny settings writes every record and figure."""

import json

import pytest

from indirect_attention.cli import main
from indirect_attention.training import read_jsonl


@pytest.mark.parametrize("task", ["retrieval", "sort"])
def test_cli_writes_every_file(tmp_path, task):
    out = tmp_path / task
    code = main(
        [
            "synthetic",
            "--task",
            task,
            "--kinds",
            "indirect,naive,cross",
            "--seeds",
            "2",
            "--epochs",
            "2",
            "--out",
            str(out),
            "--no-progress",
            "--num-train",
            "64",
            "--num-test",
            "32",
            "--dim",
            "32",
            "--layers",
            "2",
            "--heads",
            "2",
        ]
    )
    assert code == 0
    expected = {"config.json", "metrics.jsonl", "results.json", "figure2.png"}
    if task == "retrieval":
        expected |= {"bias_maps.json", "figure4.png"}
    assert expected <= {path.name for path in out.iterdir()}
    rows = read_jsonl(out / "metrics.jsonl")
    assert len(rows) == 3 * 2 * 2
    assert {"model", "seed", "epoch", "train_loss", "train_acc", "test_acc", "seconds"} <= set(
        rows[0]
    )
    results = json.loads((out / "results.json").read_text())
    assert results["task"] == task
    for name in ("indirect", "naive", "cross"):
        summary = results["models"][name]
        for key in (
            "final_test_acc_mean",
            "final_test_acc_std",
            "best_test_acc_mean",
            "seconds_per_epoch",
        ):
            assert isinstance(summary[key], float)
        assert [entry["seed"] for entry in summary["per_seed"]] == [0, 1]
        assert 0.0 <= summary["final_test_acc_mean"] <= 1.0
    config = json.loads((out / "config.json").read_text())
    assert config["task"] == task and config["epochs"] == 2


def test_cli_rejects_unknown_model(tmp_path, capsys):
    code = main(["synthetic", "--kinds", "indirect,bogus", "--out", str(tmp_path), "--no-progress"])
    assert code == 2
    assert "bogus" in capsys.readouterr().err


def test_cli_lookup_without_value_positions_records_curves_and_references(tmp_path):
    out = tmp_path / "lookup"
    argv = ["synthetic", "--task", "lookup", "--offset", "2", "--no-value-positions"]
    argv += ["--kinds", "indirect,indirect-pointer,naive", "--seeds", "1", "--epochs", "2"]
    argv += ["--num-train", "64", "--num-test", "32", "--dim", "16", "--layers", "2"]
    argv += ["--heads", "2", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    config = json.loads((out / "config.json").read_text())
    assert results["value_positions"] is False and config["model"]["value_positions"] is False
    metrics = read_jsonl(out / "metrics.jsonl")
    for name, summary in results["models"].items():
        curve = [row["test_acc"] for row in metrics if row["model"] == name]
        assert summary["per_seed"][0]["curve"] == curve  # the curve is the logged test accuracy
    references = json.loads((out / "references.json").read_text())
    assert references["offset"] == 2
    # one row per model with references and per layer (P^0 included); naive keeps none
    assert sorted({(r["model"], r["layer"]) for r in references["rows"]}) == [
        (model, layer) for model in ("indirect", "indirect-pointer") for layer in range(3)
    ]
