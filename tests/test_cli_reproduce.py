"""`ia reproduce`: writes its records, resumes finished parts, reports failed parts."""

from __future__ import annotations

import json
import subprocess
import sys

from indirect_attention import reproduce
from indirect_attention.cli import main


def test_reproduce_quick_writes_report_and_resumes(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(
        reproduce, "PARTS", {"core_check": reproduce.PARTS["core_check"]}
    )  # only the parts this test is about
    out = tmp_path / "repro"
    assert main(["reproduce", "--profile", "quick", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["parts"]["core_check"]["status"] == "ok"
    core = json.loads((out / "core_check" / "results.json").read_text())
    assert json.loads((out / "core_check" / "part.json").read_text())["status"] == "ok"
    assert core["passed"] and core["worst_max_abs"] < 1e-10
    for name in ("config.json", "metrics.jsonl", "results.json"):
        assert (out / "core_check" / name).exists()
    assert "core_check | ok" in (out / "report.md").read_text()
    capsys.readouterr()
    assert main(["reproduce", "--profile", "quick", "--out", str(out)]) == 0
    assert "finished earlier, kept" in capsys.readouterr().out


def test_failed_part_is_recorded_not_dropped(tmp_path, monkeypatch):
    def broken(config, run_dir):
        raise RuntimeError("part exploded")

    monkeypatch.setattr(
        reproduce, "PARTS", {"core_check": reproduce.PARTS["core_check"], "broken": broken}
    )
    out = tmp_path / "repro"
    assert main(["reproduce", "--profile", "quick", "--out", str(out)]) == 1
    results = json.loads((out / "results.json").read_text())
    assert results["parts"]["broken"]["status"] == "failed"
    assert results["parts"]["core_check"]["status"] == "ok"
    assert "part exploded" in (out / "report.md").read_text()


def test_bad_profile_is_rejected_with_a_clear_message():
    process = subprocess.run(
        [sys.executable, "-m", "indirect_attention", "reproduce", "--profile", "huge"],
        capture_output=True,
        text=True,
    )
    assert process.returncode == 2
    assert "invalid choice: 'huge'" in process.stderr
