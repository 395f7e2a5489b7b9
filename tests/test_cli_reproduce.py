"""`ia reproduce`: runs the parts, writes report.md + a self-contained report.html with verdicts
computed from the records, reports failed parts, resumes finished parts, updates the README."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys

import pytest
import torch

from indirect_attention import reproduce
from indirect_attention.cli import main
from indirect_attention.tasks.models import ModelConfig

# Every part at a size that only exercises the pipeline (the whole run takes seconds).
TINY = reproduce.ProfileSettings(
    core_sizes=1,
    theory_quick=True,
    theory={
        "dims": (16, 32),
        "sigmas": (0.5, 1.0, 2.0),
        "temperatures": (1.0,),
        "mean_shifts": (0.0, 1.0),
        "num_tokens": 8,
        "samples": 2**10,
        "min_trials": 16,
        "multi_head_dim": 16,
        "head_counts": (1, 2),
        "multi_head_sigmas": (1.0,),
        "xavier_dims": (16,),
        "xavier_sigmas": (1.0,),
    },
    synthetic_seeds=1,
    synthetic_epochs=1,
    synthetic={
        "num_train": 64,
        "num_test": 32,
        "batch_size": 32,
        "warmup_epochs": 0,
        "model": ModelConfig(dim=32, num_heads=2, num_layers=2, ffn_dim=64),
    },
    detection_seeds=1,
    detection_train={
        "epochs": 1,
        "train_episodes": 8,
        "batch_size": 4,
        "eval_episodes": 4,
        "pretrain_steps": 0,  # the stage itself is tested in tests/detection/test_detr_pretrain.py
    },
    detection_episodes=4,
    detection_draws=1,
    ranking_episodes=2,
    bench_train={"repeats": 1, "batch": 8, "queries": 8, "size": 4},
)
# bench_attention times each variant in a fresh process (seconds each); its verdicts are tested
# below on planted records instead.
RUN_PARTS = "core_check,theory,synthetic_retrieval,detection,bench_train,broken"


def _headline(report: str) -> str:
    """The report's first section (the headline)."""
    sections = re.split(r"^## ", report, flags=re.MULTILINE)
    assert sections[1].startswith("Headline")
    return sections[1]


def test_reproduce_writes_reports_records_failures_and_resumes(tmp_path, capsys, monkeypatch):
    calls = []

    def broken(config, run_dir):
        calls.append(1)
        raise RuntimeError("part exploded")

    monkeypatch.setitem(reproduce.PROFILES, "quick", TINY)
    monkeypatch.setitem(reproduce.PARTS, "broken", reproduce.Part(run=broken))
    out = tmp_path / "repro"
    argv = ["reproduce", "--profile", "quick", "--out", str(out), "--quiet", "--parts", RUN_PARTS]
    assert main(argv) == 1  # a part failed
    results = json.loads((out / "results.json").read_text())
    assert results["parts"]["broken"]["status"] == "failed"
    ran = [name for name in RUN_PARTS.split(",") if name != "broken"]
    assert all(results["parts"][name]["status"] == "ok" for name in ran)
    for name in ran:
        for record in ("config.json", "results.json", "part.json"):
            assert (out / name / record).exists(), (name, record)
    assert "synthetic_sort" not in results["parts"]  # not selected

    report = (out / "report.md").read_text()
    headline = _headline(report)
    assert "| claim | paper | paper's effect | ours | our effect (95% CI) | verdict |" in headline
    assert "| check | expected | ours | verdict |" in headline
    assert headline.index("### Paper claims") < headline.index("### Checks")
    claims = json.loads((out / "headline.json").read_text())["claims"]
    words = {
        "paper": ("confirmed", "contradicted", "inconclusive", "not comparable"),
        "target": ("met", "not met", "not comparable"),
        "check": ("passed", "failed", "not comparable"),
    }
    for name in [*ran, "broken"]:
        rows = [row for row in claims if row["part"] == name]
        assert rows, name
        assert all(row["verdict"] in words[row["kind"]] for row in rows)
    assert any("Figure 7" in row["claim"] for row in claims)
    assert any("Figure 4" in row["claim"] for row in claims)
    assert "## Failed parts" in report and "part exploded" in report
    assert "Traceback" in report
    assert "| synthetic_sort | not run |" in report
    for figure in (
        "theory/figure1.png",
        "detection/figure7.png",
        "synthetic_retrieval/figure4.png",
    ):
        assert (out / figure).exists() and figure in report

    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 4
    assert not re.search(r"https?://", page)
    assert all(
        src.startswith("data:image/png;base64,") for src in re.findall(r'src="([^"]*)"', page)
    )
    assert "part exploded" in page and "<table>" in page

    stamps = {name: (out / name / "part.json").stat().st_mtime_ns for name in ran}
    capsys.readouterr()
    assert main(argv) == 1
    printed = capsys.readouterr().out
    assert printed.count("finished earlier, kept") == len(ran)
    assert stamps == {name: (out / name / "part.json").stat().st_mtime_ns for name in ran}
    assert len(calls) == 2  # only the failed part ran again


def _plant(part_dir, name: str, payload: dict) -> None:
    part_dir.mkdir(parents=True, exist_ok=True)
    (part_dir / name).write_text(json.dumps(payload))


def _verdicts(part: str, part_dir) -> list[str]:
    return [claim.verdict for claim in reproduce.PARTS[part].claims(part_dir)]


def _synthetic(indirect: float) -> dict:
    """Three seeds; every model gains 1 point per seed, so the paired differences are exact."""

    def model(acc: float) -> dict:
        return {
            "final_test_acc_mean": acc + 0.01,
            "final_test_acc_std": 0.01,
            "per_seed": [{"seed": s, "final_test_acc": acc + 0.01 * s} for s in range(3)],
        }

    return {
        "epochs": 20,
        "models": {"indirect": model(indirect), "naive": model(0.8), "cross": model(0.85)},
    }


def _table(ia_margin: float) -> dict:
    def row(margin: float, ap50: float) -> dict:
        split = {
            "ap50": {"mean": ap50, "std": 0.0},
            "wrong_query": {"mean": ap50 - margin, "std": 0.0},
            "margin": {"mean": margin, "std": 0.0, "runs": [margin, margin + 0.01]},
        }
        return {"seen": split, "unseen": split}

    return {
        "models": {
            "ia": row(ia_margin, 0.6),
            "double-cross": row(0.2, 0.5),
            "misaligned": row(0.01, 0.3),
        },
        "oracle_boxes": {"seen": 0.6, "unseen": 0.5},
        "oracle_per_class": 20,
        "seeds": 2,
        "episodes": 10,
        "draws": 1,
    }


def _ranking(wrong_scale: float) -> dict:
    right = [[0.9, 0.8, 0.1, 0.05], [0.7, 0.6, 0.2, 0.1]]
    return {
        "top_k": 2,
        "models": {
            "ia": {
                "scores": {"right": right, "wrong": [[wrong_scale * s for s in r] for r in right]}
            }
        },
    }


@pytest.mark.parametrize(
    ("part", "records", "expected"),
    [
        ("core_check", {"results.json": {"worst_max_abs": 1e-15}}, ["passed"]),
        ("core_check", {"results.json": {"worst_max_abs": 1e-3}}, ["failed"]),
        # vs naive, vs cross: final accuracy, then the curve metrics (no curves recorded here)
        (
            "synthetic_sort",
            {"results.json": _synthetic(0.9)},
            ["confirmed", *["not comparable"] * 2] * 2,
        ),
        (
            "synthetic_sort",
            {"results.json": _synthetic(0.82)},
            ["confirmed", *["not comparable"] * 2, "contradicted", *["not comparable"] * 2],
        ),
        (
            # ia's margin (seen, unseen); per split ia - dc, ia - mis, dc - mis; absolute AP50;
            # Figure 7. Every margin gains 0.01 on seed 1, so the paired differences are exact.
            "detection",
            {"results.json": _table(0.3), "figure7.json": _ranking(0.2)},
            ["confirmed"] * 2 + ["confirmed"] * 6 + ["not comparable", "confirmed"],
        ),
        (
            "detection",
            {"results.json": _table(0.1), "figure7.json": _ranking(0.9)},
            ["confirmed"] * 2
            + ["contradicted", "confirmed", "confirmed"] * 2
            + ["not comparable", "contradicted"],
        ),
        (
            "detection",  # an unexpected record: its ordering cannot be judged
            {"results.json": {**_table(0.3), "models": {"ia": _table(0.3)["models"]["ia"]}}},
            ["confirmed"] * 2 + ["not comparable"] * 8,
        ),
        (
            "theory",
            {
                "results.json": {
                    "verdicts": {"a": {"claim": "c", "verdict": "holds", "evidence": "e"}}
                }
            },
            ["passed"],
        ),
        (
            "theory",
            {
                "results.json": {
                    "verdicts": {"a": {"claim": "c", "verdict": "partly", "evidence": "e"}}
                }
            },
            ["failed"],
        ),
        (
            "theory",  # the one theory verdict that tests the paper's argument
            {
                "results.json": {
                    "verdicts": {
                        "misaligned_snr_falls_with_d": {
                            "claim": "c",
                            "verdict": "does not hold",
                            "evidence": "e",
                        }
                    }
                }
            },
            ["contradicted"],
        ),
    ],
)
def test_verdicts_are_computed_from_the_records(tmp_path, part, records, expected):
    for name, payload in records.items():
        _plant(tmp_path / part, name, payload)
    assert _verdicts(part, tmp_path / part) == expected


def _bench_rows(ours_vs_floor: float, speedup: float) -> dict:
    base = {"size": 64, "queries": 300, "mode": "train", "median_ms": 1.0, "peak_mib": 1.0}
    return {
        "equality": {"S=64,Q=300": {"float32": {"max_relative_error": 1e-6}, "passed": True}},
        "rows": [
            {
                **base,
                "variant": "ours",
                "time_vs_floor": ours_vs_floor,
                "speedup_vs_reference": speedup,
                "memory_vs_reference": 0.1,
            },
            {
                **base,
                "size": 32,
                "variant": "ours",
                "time_vs_floor": 99.0,
                "speedup_vs_reference": 0.1,
                "memory_vs_reference": 9.0,
            },
        ],
    }


def test_bench_verdicts_follow_the_ratios(tmp_path):
    _plant(tmp_path / "a", "results.json", _bench_rows(2.0, 5.0))
    assert _verdicts("bench_attention", tmp_path / "a") == ["met"] * 3
    _plant(tmp_path / "b", "results.json", _bench_rows(6.5, 1.2))
    assert _verdicts("bench_attention", tmp_path / "b") == ["not met"] * 2 + ["met"]
    for ratio, verdict in ((0.8, "met"), (2.4, "not met")):
        rows = [
            {"part": "detector", "model": "double-cross", "vs_double_cross": 1.0},
            {
                "part": "detector",
                "model": "ia",
                "vs_double_cross": ratio,
                "queries": 300,
                "size": 32,
            },
            {"part": "synthetic", "task": "sort", "model": "indirect", "vs_cross": ratio},
        ]
        _plant(tmp_path / "c", "results.json", {"rows": rows})
        assert _verdicts("bench_train", tmp_path / "c") == [verdict] * 2


def test_the_smaller_bias_is_shown_but_never_judged_instead_of_ours(tmp_path):
    records = _bench_rows(6.5, 1.2)
    light = {**records["rows"][0], "variant": "ours-h64"}
    light.update(time_vs_floor=1.0, speedup_vs_reference=10.0, memory_vs_reference=0.01)
    records["rows"].append(light)
    _plant(tmp_path / "a", "results.json", records)
    claims = reproduce.PARTS["bench_attention"].claims(tmp_path / "a")
    assert [c.verdict for c in claims] == ["not met"] * 2 + ["met"]
    assert "with BoxRPB width 64: 1.00×" in claims[0].ours
    assert "with BoxRPB width 64: 10.00× faster" in claims[1].ours


def test_figure4_verdict_needs_a_positional_first_layer(tmp_path):
    def maps(first_layer_moves: bool) -> dict:
        toeplitz = [[float(j - i) for j in range(4)] for i in range(4)]
        examples = []
        for e in range(2):
            first = [[v + (e if first_layer_moves else 0) for v in row] for row in toeplitz]
            second = [[v * (e + 1) for v in row] for row in toeplitz]
            examples.append({"bias": [[first], [second]]})  # (Ly=2, H=1, 4, 4)
        return {"examples": examples}

    _plant(tmp_path / "a", "results.json", _synthetic(0.9))
    _plant(tmp_path / "a", "bias_maps.json", maps(first_layer_moves=False))
    assert _verdicts("synthetic_retrieval", tmp_path / "a")[-1] == "passed"
    _plant(tmp_path / "a", "bias_maps.json", maps(first_layer_moves=True))
    assert _verdicts("synthetic_retrieval", tmp_path / "a")[-1] == "failed"


def _planted_reproduction(out, *, indirect: float) -> None:
    from PIL import Image

    for name, payload in (
        ("core_check", {"worst_max_abs": 1e-15}),
        ("synthetic_sort", _synthetic(indirect)),
    ):
        _plant(out / name, "results.json", payload)
        _plant(out / name, "part.json", {"status": "ok", "seconds": 1.0, "profile": "default"})
    Image.new("RGB", (8, 8), "red").save(out / "synthetic_sort" / "figure2.png")
    reproduce.write_report(out, profile="default")


def test_report_verdict_flips_with_the_records_and_update_readme(tmp_path, capsys):
    out = tmp_path / "repro"
    _planted_reproduction(out, indirect=0.9)
    sort_row = next(
        line
        for line in _headline((out / "report.md").read_text()).splitlines()
        if "sorting" in line
    )
    assert sort_row.endswith("| **confirmed** |") and "; confirmed |" in sort_row
    _planted_reproduction(out, indirect=0.7)
    sort_row = next(
        line
        for line in _headline((out / "report.md").read_text()).splitlines()
        if "sorting" in line
    )
    assert sort_row.endswith("| **contradicted** |")
    assert "indirect 71.0 vs naive 81.0" in sort_row and "Δ = −10.0 [−10.0, −10.0]" in sort_row

    readme = tmp_path / "README.md"
    readme.write_text(
        "# x\n\n## Latest reproduction\n<!-- reproduce:begin -->\nstale table\n"
        "<!-- reproduce:end -->\n\n## After\nkept\n"
    )
    figures = tmp_path / "docs" / "figures"
    argv = ["reproduce", "--update-readme", str(out), "--readme", str(readme)]
    assert main([*argv, "--figures-dir", str(figures)]) == 0
    text = readme.read_text()
    section = text.split("<!-- reproduce:begin -->")[1].split("<!-- reproduce:end -->")[0]
    assert "stale table" not in section and "| claim | paper | paper's effect | ours |" in section
    assert "**contradicted**" in section and "Profile `default`" in section
    assert "Paper claims: 2 contradicted, 4 not comparable." in section  # the quoted tally
    assert "Checks: 1 passed." in section
    assert "](docs/figures/reproduce-synthetic_sort-figure2.png)" in section
    assert (figures / "reproduce-synthetic_sort-figure2.png").exists()
    assert text.startswith("# x\n") and text.endswith("## After\nkept\n")

    readme.write_text("# no markers\n")
    capsys.readouterr()
    assert main([*argv, "--figures-dir", str(figures)]) == 2
    assert "must contain" in capsys.readouterr().err


def test_unknown_part_is_rejected(tmp_path, capsys):
    out = tmp_path / "repro"
    assert main(["reproduce", "--profile", "quick", "--out", str(out), "--parts", "nope"]) == 2
    assert "unknown parts ['nope']" in capsys.readouterr().err


def test_bad_profile_is_rejected_with_a_clear_message():
    process = subprocess.run(
        [sys.executable, "-m", "indirect_attention", "reproduce", "--profile", "huge"],
        capture_output=True,
        text=True,
    )
    assert process.returncode == 2
    assert "invalid choice: 'huge'" in process.stderr


def _without_times(record):
    """A record with every wall-time field dropped (they differ between any two runs)."""
    if isinstance(record, dict):
        return {k: _without_times(v) for k, v in record.items() if "second" not in k}
    if isinstance(record, list):
        return [_without_times(v) for v in record]
    return record


def _records(out, names):
    return {
        name: _without_times(json.loads((out / name / "results.json").read_text()))
        for name in names
    }


def test_parts_side_by_side_match_the_sequential_run(tmp_path):
    names = ("theory", "synthetic_sort")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the workers' thread count, so both runs are bitwise alike
    try:
        outs = {}
        for jobs in (1, 2):
            settings = dataclasses.replace(TINY, part_jobs=jobs)
            outs[jobs] = tmp_path / f"jobs{jobs}"
            config = reproduce.ReproduceConfig(
                profile="quick", out=str(outs[jobs]), parts=names, progress=False, settings=settings
            )
            summary = reproduce.run(config)
            assert all(summary["parts"][name]["status"] == "ok" for name in names)
    finally:
        torch.set_num_threads(threads)
    sequential, side_by_side = (_records(outs[j], names) for j in (1, 2))
    assert side_by_side == sequential
    for name in names:
        assert json.loads((outs[2] / name / "part.json").read_text())["status"] == "ok"


def _worker_that_dies(name, config, part_dir):
    """Stands in for a worker killed mid-part (out of memory, a signal)."""
    os._exit(3)


def test_a_part_whose_worker_dies_is_recorded(tmp_path, monkeypatch):
    monkeypatch.setattr(reproduce, "_run_part_in_worker", _worker_that_dies)
    config = reproduce.ReproduceConfig(
        profile="quick",
        out=str(tmp_path / "r"),
        parts=("core_check", "theory", "synthetic_sort"),
        progress=False,
        settings=dataclasses.replace(TINY, part_jobs=2),
    )
    summary = reproduce.run(config)
    assert summary["parts"]["core_check"]["status"] == "ok"  # runs in this process
    for name in ("theory", "synthetic_sort"):
        assert summary["parts"][name]["status"] == "failed"
        record = json.loads((tmp_path / "r" / name / "part.json").read_text())
        assert "worker process failed" in record["error"]
    assert "worker process failed" in (tmp_path / "r" / "report.md").read_text()
