"""``ia bench gpu`` on the CPU: records, ratios, the equality check, the detector step, the device
contract (no timing is asserted; the CUDA numbers come from ``make gpu-check``)."""

from __future__ import annotations

import json

import pytest
import torch
from torchvision.models.resnet import Bottleneck

from indirect_attention.bench import gpu as gpu_bench
from indirect_attention.bench.gpu import FLOAT32_LIMIT, GpuBenchConfig, check_attention
from indirect_attention.bench.gpu_detector import build_detector_step
from indirect_attention.cli import main
from indirect_attention.detection.decoder import BoxRelativeBias
from indirect_attention.detection.preprocess import InputSpec

TINY_DETECTOR = ["--target-size", "64", "--query-size", "32", "--batch-size", "1"]
TINY_DETECTOR += ["--layers", "1", "--num-queries", "4"]
TINY_ATTENTION = ["--sizes", "4", "--queries", "5"]
CPU = torch.device("cpu")


def _flipped(original):
    """Ours with the boxes read in the wrong order: a wrong box bias, everything else right."""

    def ours(inputs):
        inputs.boxes = inputs.boxes.flip(-1)
        return original(inputs)

    return ours


def test_a_cpu_run_writes_rows_whose_ratios_are_the_measured_quotients(tmp_path, capsys):
    out = tmp_path / "gpu"
    arguments = ["bench", "gpu", "--device", "cpu", *TINY_ATTENTION, *TINY_DETECTOR]
    assert main([*arguments, "--repeats", "2", "--warmup", "1", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    rows = results["rows"]
    assert len((out / "metrics.jsonl").read_text().splitlines()) == len(rows)
    assert json.loads((out / "config.json").read_text())["device"] == "cpu"
    assert results["passed"] and results["equality"]["S=4,Q=5"]["passed"]
    attention = [r for r in rows if r["part"] == "attention"]
    assert [(r["size"], r["queries"], r["dtype"]) for r in attention] == [
        (4, 5, "bf16"),
        (4, 5, "fp32"),
    ]
    for row in attention:
        assert row["ours_vs_floor"] == pytest.approx(row["ours_median_ms"] / row["floor_median_ms"])
        assert row["ours_repeats"] == row["floor_repeats"] == 2
        assert row["path"] == "chunked"  # FlexAttention serves CUDA only
        assert row["max_relative_error"] <= FLOAT32_LIMIT
    detector = [r for r in rows if r["part"] == "detector"]
    assert [r["kind"] for r in detector] == ["double-cross", "ia"]
    baseline = detector[0]
    for row in detector:
        assert (row["backbone"], row["num_layers"], row["num_queries"]) == ("resnet50", 1, 4)
        assert row["steps_taken"] == 3  # one warm-up and two timed steps, all finite
        assert row["time_vs_double_cross"] == pytest.approx(
            row["median_ms"] / baseline["median_ms"]
        )
        assert row["memory_vs_double_cross"] == pytest.approx(
            row["peak_mib"] / max(baseline["peak_mib"], 1e-9)
        )
    printed = capsys.readouterr().out
    assert "ours/floor" in printed and "time vs dc" in printed and "[gpu]" in printed


def test_the_check_passes_for_ours_and_catches_a_wrong_bias(monkeypatch):
    config = GpuBenchConfig(device="cpu", batch=1, num_heads=2, head_dim=4, hidden_dim=8)
    report = check_attention(config, 4, 5, CPU)
    assert report["passed"] and report["max_relative_error"] < 1e-5
    # the output and the gradients of q, k, v and every weight of the two axis MLPs
    weights = [f"mlp.{n}" for n, _ in BoxRelativeBias(2, hidden_dim=8).named_parameters()]
    assert list(report["per_tensor"]) == ["out", "q", "k", "v", *weights] and len(weights) >= 4
    monkeypatch.setattr(gpu_bench, "_ours", _flipped(gpu_bench._ours))
    report = check_attention(config, 4, 5, CPU)
    assert not report["passed"] and report["max_relative_error"] > FLOAT32_LIMIT


def test_a_wrong_bias_makes_the_command_fail(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_bench, "_ours", _flipped(gpu_bench._ours))
    out = tmp_path / "gpu"
    arguments = ["bench", "gpu", "--device", "cpu", "--parts", "attention", *TINY_ATTENTION]
    assert main([*arguments, "--dtypes", "fp32", "--repeats", "1", "--out", str(out)]) == 1
    results = json.loads((out / "results.json").read_text())
    assert not results["passed"] and not results["equality"]["S=4,Q=5"]["passed"]


def test_a_failing_measurement_is_recorded_and_the_others_still_run(tmp_path, monkeypatch, capsys):
    """On a lent device one failure must not cost the other numbers; the exit status says it."""
    original = gpu_bench.build_detector_step

    def broken_baseline(**options):
        if options["kind"] == "double-cross":
            raise RuntimeError("out of memory (simulated)")
        return original(**options)

    monkeypatch.setattr(gpu_bench, "build_detector_step", broken_baseline)
    out = tmp_path / "gpu"
    arguments = ["bench", "gpu", "--device", "cpu", "--parts", "detector", *TINY_DETECTOR]
    assert main([*arguments, "--repeats", "1", "--warmup", "0", "--out", str(out)]) == 1
    results = json.loads((out / "results.json").read_text())
    failed, measured = results["rows"]
    assert not results["passed"] and "simulated" in failed["error"] and "median_ms" not in failed
    assert measured["kind"] == "ia" and measured["median_ms"] > 0 and "error" not in measured
    assert "time_vs_double_cross" not in measured  # no baseline, no ratio
    assert "FAILED" in capsys.readouterr().out


@pytest.mark.parametrize("kind", ["ia", "double-cross"])
def test_the_detector_step_builds_the_model_asked_for_and_trains_it(kind):
    trainer = build_detector_step(
        kind=kind,
        target_size=64,
        query_size=32,
        batch_size=2,
        num_layers=2,
        num_queries=6,
        device=CPU,
    )
    model = trainer.model
    config = model.config
    assert (config.kind, config.backbone, config.num_layers, config.num_queries) == (
        kind,
        "resnet50",
        2,
        6,
    )
    assert (config.dim, config.num_heads, config.bias_hidden) == (256, 8, 512)
    # the paper recipe: two-stage queries, pixel offsets, a 6-layer fusion block with BoxRPB
    assert (config.object_queries, config.bias_unit, config.fusion_layers) == (
        "two-stage",
        "pixel",
        6,
    )
    assert trainer.config.precision == "bf16" and trainer.config.batch_size == 2
    assert model.input_spec == InputSpec(64, 32)
    layer3 = model.backbone.body[-1]  # ResNet-50: 3, 4, 6 bottleneck blocks up to layer3
    assert len(layer3) == 6 and all(isinstance(block, Bottleneck) for block in layer3)
    assert len(model.decoder.decoder.layers) == 2
    assert (model.decoder.fusion is not None) == (kind == "double-cross")
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    result = trainer.step()
    assert result.stepped and torch.isfinite(torch.tensor(result.losses["loss"]))
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert "backbone.body.0.weight" in changed and "class_head.weight" in changed
    assert any(".biases." in n or "bias.x_bias" in n for n in changed)  # the box bias trains


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without")
def test_device_cuda_without_cuda_is_one_line_exit_2(tmp_path, capsys):
    out = tmp_path / "gpu"
    out.mkdir()
    (out / "results.json").write_text("earlier\n")
    for arguments in ([], ["--device", "cuda"], ["--device", "cuda:1", "--overwrite"]):
        assert main(["bench", "gpu", *arguments, "--out", str(out)]) == 2
        captured = capsys.readouterr()
        lines = captured.err.splitlines()
        assert len(lines) == 1 and "--device" in lines[0] and "CUDA" in lines[0], captured.err
        assert captured.out == "" and "Traceback" not in captured.err
    assert [p.name for p in out.iterdir()] == ["results.json"]
    assert (out / "results.json").read_text() == "earlier\n"  # --overwrite removed nothing
