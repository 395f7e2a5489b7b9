"""The scaling figure: slopes of exact power laws and a figure drawn from planted records."""

from __future__ import annotations

import json

import pytest

from indirect_attention.plots.bench_scaling import draw_bench_scaling, loglog_slope


@pytest.mark.parametrize("power", [0.5, 1.0, 2.0])
def test_loglog_slope_of_a_power_law_is_its_exponent(power):
    xs = [1.0, 2.0, 5.0, 30.0]
    assert loglog_slope(xs, [3.0 * x**power for x in xs]) == pytest.approx(power)


def test_the_figure_is_drawn_from_the_records(tmp_path):
    rows = []
    for sweep, size, queries in (("size", 32, 300), ("size", 64, 300), ("queries", 64, 100)):
        for variant, scale in (("ours", 1.0), ("reference", 5.0), ("floor", 0.5)):
            work = size * size * queries
            rows.append(
                {"sweep": sweep, "variant": variant, "size": size, "queries": queries,
                 "tokens": size * size, "median_cpu_ms": scale * work / 1e4,
                 "peak_mib": scale * (size * size + queries) / 100}
            )  # fmt: skip
    records = tmp_path / "results.json"
    records.write_text(json.dumps({"machine": {"threads": 1, "torch": "x"}, "rows": rows}))
    out = draw_bench_scaling(records, tmp_path / "fig" / "scaling.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
