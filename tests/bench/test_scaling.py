"""``ia bench scaling``: the sweep's points, its records and the figure drawn from them."""

from __future__ import annotations

import json

import pytest

from indirect_attention.bench import scaling
from indirect_attention.bench.scaling import ScalingBenchConfig
from indirect_attention.cli import main


def _in_process(module: str, arguments: list[str]) -> dict:
    """The worker's measurement without a process of its own (its start costs seconds)."""
    assert module == "indirect_attention.bench.scaling"
    variant, size, queries, repeats, seed, _threads = arguments
    return scaling._measure(variant, int(size), int(queries), int(repeats), int(seed))


def test_the_sweeps_share_one_point_measured_once(tmp_path, monkeypatch):
    calls = []

    def counted(module, arguments):
        calls.append(tuple(arguments[:3]))
        return _in_process(module, arguments)

    monkeypatch.setattr(scaling, "run_in_subprocess", counted)
    config = ScalingBenchConfig(
        out=str(tmp_path / "run"), sizes=[2, 3], queries=[4, 5], fixed_queries=5, fixed_size=2
    )
    config.repeats = 1
    results = scaling.run(config)
    rows = results["rows"]
    assert len(rows) == 4 * 3  # (2 sizes + 2 query counts) × 3 variants
    assert len(calls) == len(set(calls)) == 3 * 3  # (S=2, Q=5) is in both sweeps
    for row in rows:
        assert row["tokens"] == row["size"] ** 2
        assert row["median_ms"] > 0 and row["median_cpu_ms"] > 0 and row["peak_mib"] >= 0
    assert {r["sweep"] for r in rows} == {"size", "queries"}
    written = json.loads((tmp_path / "run" / "results.json").read_text())
    assert written["rows"] == rows and written["machine"]["threads"] == 1


def test_unknown_variant_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown 'ours-h64'"):
        scaling.run(ScalingBenchConfig(out=str(tmp_path), variants=["ours-h64"]))


def test_the_cli_writes_records_and_the_figure(tmp_path, monkeypatch):
    monkeypatch.setattr(scaling, "run_in_subprocess", _in_process)
    out, figure = tmp_path / "run", tmp_path / "figures" / "scaling.png"
    arguments = ["bench", "scaling", "--sizes", "2,3", "--queries", "4", "--fixed-queries", "4"]
    arguments += ["--fixed-size", "2", "--repeats", "1", "--out", str(out)]
    assert main([*arguments, "--figure", str(figure)]) == 0
    assert (out / "results.json").exists()
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
