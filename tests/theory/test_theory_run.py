"""``ia theory`` end to end on tiny sweeps: the records, the acceptance checks, the figure."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

from indirect_attention.cli import main
from indirect_attention.theory import TheoryConfig, run
from indirect_attention.training import read_jsonl

# ``theory.run`` the attribute is the function; the module is reached through importlib.
run_module = importlib.import_module("indirect_attention.theory.run")

# Two dims, few cells, few tokens; samples (trials x d) kept at the quick preset's 2**17 so the
# 5% acceptance bar is still many standard errors wide.
TINY = {
    "dims": (16, 128),
    "sigmas": (0.5, 1.0, 2.0),
    "temperatures": (0.2, 5.0),
    "mean_shifts": (0.0, 1.5),
    "num_tokens": 4,
    "samples": 2**17,
    "multi_head_dim": 16,
    "head_counts": (1, 4),
    "multi_head_sigmas": (1.0,),
    "xavier_dims": (16,),
}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The CLI with ``--quick`` on a tiny preset; returns (out dir, results)."""
    out = tmp_path_factory.mktemp("theory")
    patch = pytest.MonkeyPatch()
    patch.setitem(run_module.PRESETS, "quick", TINY)
    try:
        assert main(["theory", "--out", str(out), "--quick", "--seed", "5"]) == 0
    finally:
        patch.undo()
    return out, json.loads((out / "results.json").read_text())


def test_every_record_is_written(tiny_run):
    out, results = tiny_run
    config = json.loads((out / "config.json").read_text())
    assert config["quick"] is True and config["seed"] == 5 and config["dims"] == [16, 128]
    metrics = read_jsonl(out / "metrics.jsonl")
    assert len(metrics) == sum(
        len(results[k]) for k in ("additive", "misaligned", "multi_head")
    ) + sum(len(results["xavier"][k]) for k in ("additive", "misaligned"))
    png = (out / "figure1.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert len(results["additive"]) == 2 * 3 * 2 and len(results["misaligned"]) == 2 * 2 * 2


def test_results_meet_the_acceptance_checks(tiny_run):
    """The issue's independent checks, from the row fields alone."""
    _, results = tiny_run
    for row in results["additive"]:
        assert set(row) >= {
            "dim",
            "sigma",
            "sum_a2",
            "mse_mc",
            "mse_closed",
            "snr_mc",
            "snr_closed",
        }
        assert row["snr_mc"] == pytest.approx(1 / row["sigma"] ** 2, rel=0.05)
        assert row["mse_mc"] == pytest.approx(
            row["sigma"] ** 2 * row["dim"] * row["sum_a2"], rel=0.05
        )
    for row in results["misaligned"]:
        assert set(row) >= {"dim", "mean_shift", "gamma_mc", "gamma_closed", "snr_mc"}
        d, delta = row["dim"], row["mean_shift"]
        assert row["gamma_mc"] == pytest.approx(2 * d + d * delta**2, rel=0.05)
    assert results["lemma1"]["violations"] == 0 and results["lemma1"]["samples"] > 0


def test_verdicts_follow_the_numbers(tiny_run):
    _, results = tiny_run
    verdicts = results["verdicts"]
    for verdict in verdicts.values():
        assert set(verdict) == {"claim", "verdict", "evidence"} and verdict["evidence"]
    assert verdicts["additive_snr_independent_of_d"]["verdict"] == "holds"
    assert verdicts["misalignment_noise_grows_with_d"]["verdict"] == "holds"
    # The SNR as an energy ratio does not fall with d; 1/gamma does (slope -1).
    assert verdicts["misaligned_snr_falls_with_d"]["verdict"] == "does not hold"
    by_dim = {r["dim"]: r for r in results["misaligned"] if r["mean_shift"] == 1.5}
    assert by_dim[128]["snr_total_energy"] < by_dim[16]["snr_total_energy"] / 4
    assert by_dim[128]["snr_mc"] == pytest.approx(by_dim[16]["snr_mc"], rel=0.1)


def test_same_seed_reproduces_bit_for_bit(tmp_path):
    tiny = TheoryConfig(quick=True, seed=3, dims=(8, 32), samples=2**10, num_tokens=4, figure=False)
    first = run(TheoryConfig(**{**tiny.__dict__, "out": str(tmp_path / "a")}))
    second = run(TheoryConfig(**{**tiny.__dict__, "out": str(tmp_path / "b")}))
    other = run(TheoryConfig(**{**tiny.__dict__, "out": str(tmp_path / "c"), "seed": 4}))
    for key in ("additive", "misaligned", "multi_head", "xavier", "verdicts"):
        assert first[key] == second[key]
    assert first["additive"] != other["additive"]
    assert (tmp_path / "a" / "results.json").read_text().replace(str(first["seconds"]), "") == (
        tmp_path / "b" / "results.json"
    ).read_text().replace(str(second["seconds"]), "")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sigmas": (0.5, -1.0)}, "sigmas must be noise stds > 0, got -1.0"),
        ({"dims": (16, 0)}, "dims must be an integer >= 1, got 0"),
        ({"dims": ()}, "dims must not be empty"),
        ({"seed": -1}, "seed must be an integer >= 0, got -1"),
        ({"temperatures": (0.0,)}, "temperature must be finite and > 0, got 0.0"),
        ({"multi_head_dim": 30, "head_counts": (4,)}, "must divide multi_head_dim=30"),
    ],
)
def test_bad_config_is_rejected_before_any_work(tmp_path, kwargs, message):
    with pytest.raises(ValueError) as error:
        run(TheoryConfig(out=str(tmp_path / "x"), quick=True, **kwargs))
    assert message in str(error.value)
    assert not (tmp_path / "x").exists()


def test_cli_reports_a_bad_seed():
    process = subprocess.run(
        [sys.executable, "-m", "indirect_attention", "theory", "--seed", "-2", "--out", "unused"],
        capture_output=True,
        text=True,
    )
    assert process.returncode == 2
    assert "--seed: expected a non-negative integer (>= 0), got '-2'" in process.stderr


def test_figure1_is_readable(tiny_run):
    """Three panels, labelled axes, log scales as in the paper, legends, sigma* marked."""
    from indirect_attention.plots.figure1 import figure1

    out, _ = tiny_run
    left, middle, right = figure1(out / "results.json").axes
    for ax in (left, middle, right):
        assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()
        assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
        assert ax.get_legend() is not None
    assert "σ* = 1" in [t.get_text() for t in left.get_legend().get_texts()]
    assert any("σ*" in t.get_text() for t in right.get_legend().get_texts())
    assert left.get_xlabel().startswith("value noise std") and middle.get_xlabel() == "model dim d"
