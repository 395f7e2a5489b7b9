"""The synthetic parts of `ia reproduce`: paired seeds, both value settings, tuning on a seed of
its own, references against the read position, the width/depth sweep."""

from __future__ import annotations

import dataclasses
import json

from indirect_attention import reproduce
from indirect_attention.reproduce import synthetic_parts
from indirect_attention.tasks.models import ModelConfig
from indirect_attention.training import RunDir

# The synthetic parts' fields at a size that only exercises the pipeline.
TINY = reproduce.ProfileSettings(
    synthetic_seeds=1,
    synthetic_epochs=1,
    synthetic={
        "num_train": 64,
        "num_test": 32,
        "batch_size": 32,
        "warmup_epochs": 0,
        "model": ModelConfig(dim=16, num_heads=2, num_layers=2, ffn_dim=32),
    },
    lr_grid=(1e-3, 3e-3),
    lookup_offsets=(0, 2),
    lookup_seeds=2,
    lookup_epochs=1,
    lookup_batch_size=32,
    lookup_train=64,
    lookup_test=32,
    lookup_model={"dim": 16, "num_heads": 2, "num_layers": 2, "ffn_dim": 32},
    lookup_models_with_positions=("indirect", "cross"),
    lookup_offsets_with_positions=(2,),
    scaling_dims=(8, 16),
    scaling_depths=(1, 2),
    scaling_seeds=2,
    scaling_epochs=1,
    scaling_train=64,
)


LOOKUP = synthetic_parts.LOOKUP_MODELS


def _config(tmp_path) -> reproduce.ReproduceConfig:
    return reproduce.ReproduceConfig(
        profile="quick", out=str(tmp_path), progress=False, settings=TINY
    )


def _read(path):
    return json.loads(path.read_text())


def test_lookup_part_tunes_on_its_own_seed_and_pairs_every_model(tmp_path):
    config = _config(tmp_path)
    summary = synthetic_parts.lookup(config, RunDir(tmp_path / "lookup"))
    root = tmp_path / "lookup"
    tuning = _read(root / "tuning.json")
    assert tuning["seed"] == TINY.tuning_seed != config.seed
    assert tuning["grid"] == list(TINY.lr_grid)
    for model in synthetic_parts.LOOKUP_MODELS:
        rows = [r for r in tuning["rows"] if r["model"] == model]
        assert sorted(r["lr"] for r in rows) == sorted(TINY.lr_grid)
        best = max(rows, key=lambda r: r["val_acc"])
        assert tuning["chosen"][model] == best["lr"]
    assert not (root / "offset-0" / "value-positions").exists()  # that setting: offset 2 only
    for offset in TINY.lookup_offsets:
        folders = [root / f"offset-{offset}"]
        if offset == 2:
            folders.append(root / "offset-2" / "value-positions")
        for folder in folders:
            results = _read(folder / "results.json")
            with_positions = folder.name == "value-positions"
            assert results["value_positions"] == with_positions
            expected_models = ("indirect", "cross") if with_positions else LOOKUP
            assert tuple(results["models"]) == expected_models
            for model, record in results["models"].items():
                assert [r["seed"] for r in record["per_seed"]] == [0, 1]  # the same seeds
                assert all(len(r["curve"]) == TINY.lookup_epochs for r in record["per_seed"])
                assert {r["lr"] for r in record["per_seed"]} == {tuning["chosen"][model]}
    references = _read(root / "references.json")["rows"]
    biased = ("indirect", "indirect-pointer", "indirect-nobias-update")
    layers = TINY.lookup_model["num_layers"] + 1
    # without positions: 2 offsets x 3 biased models; with them: offset 2, indirect only
    expected = (2 * len(biased) + 1) * TINY.lookup_seeds * layers
    assert len(references) == expected
    assert {r["model"] for r in references} == set(biased)
    assert (root / "lookup.png").stat().st_size > 0 and (root / "references.png").exists()
    assert set(summary["lrs"]) == set(synthetic_parts.LOOKUP_MODELS)


def test_scaling_part_sweeps_width_and_depth_on_paired_seeds(tmp_path):
    synthetic_parts.scaling(_config(tmp_path), RunDir(tmp_path / "scaling"))
    results = _read(tmp_path / "scaling" / "results.json")
    assert results["value_positions"] is False
    cells = {(r["model"], r["dim"], r["depth"], r["seed"]) for r in results["rows"]}
    assert cells == {
        (model, dim, depth, seed)
        for model in ("indirect", "naive")
        for dim in TINY.scaling_dims
        for depth in TINY.scaling_depths
        for seed in (0, 1)
    }
    assert (tmp_path / "scaling" / "scaling.png").exists()


def test_sort_part_runs_both_value_settings_and_ablations_on_the_same_seeds(tmp_path):
    settings = dataclasses.replace(
        TINY, synthetic_seeds=2, synthetic_models_with_positions=("indirect", "cross")
    )
    config = dataclasses.replace(_config(tmp_path), settings=settings)
    synthetic_parts.synthetic("sort")(config, RunDir(tmp_path / "sort"))
    headline = tmp_path / "sort"
    main, ablations = (
        _read(headline / "results.json"),
        _read(headline / "ablations" / "results.json"),
    )
    assert main["value_positions"] is False and ablations["value_positions"] is False
    assert tuple(main["models"]) == synthetic_parts.MODELS
    assert tuple(ablations["models"]) == synthetic_parts.ABLATIONS
    for record in [*main["models"].values(), *ablations["models"].values()]:
        assert [r["seed"] for r in record["per_seed"]] == [0, 1]  # paired with the ablations
    # the other setting: only the models the profile names, no ablation among them
    other = _read(headline / "value-positions" / "results.json")
    assert other["value_positions"] is True and tuple(other["models"]) == ("indirect", "cross")
    assert not (headline / "value-positions" / "ablations").exists()
    assert (headline / "figure2.png").exists() and (
        headline / "value-positions" / "figure2.png"
    ).exists()


def test_a_part_killed_midway_keeps_its_finished_runs(tmp_path, monkeypatch):
    config = _config(tmp_path)
    synthetic_parts.scaling(config, RunDir(tmp_path / "scaling"))
    first = _read(tmp_path / "scaling" / "results.json")
    stamp = (tmp_path / "scaling" / "d8-l1" / "results.json").stat().st_mtime_ns
    calls = []
    original = synthetic_parts.run_synthetic

    def counting(run_config):
        calls.append(run_config.out)
        return original(run_config)

    monkeypatch.setattr(synthetic_parts, "run_synthetic", counting)
    # the part dies before its last cell, then runs again: only the missing cell trains
    (tmp_path / "scaling" / "d16-l2" / "results.json").unlink()
    synthetic_parts.scaling(config, RunDir(tmp_path / "scaling"))
    assert calls == [str(tmp_path / "scaling" / "d16-l2")]
    assert (tmp_path / "scaling" / "d8-l1" / "results.json").stat().st_mtime_ns == stamp
    assert _read(tmp_path / "scaling" / "results.json")["rows"] == first["rows"]
