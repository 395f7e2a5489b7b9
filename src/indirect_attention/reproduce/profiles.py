"""How much of each experiment ``ia reproduce`` runs: the ``quick``, ``default`` and ``full`` profiles.

A profile is a :class:`ProfileSettings`; every part reads only its own fields. The detection part
never copies the detector's recipe: ``detection_train`` holds only the *budget* fields that are
applied with :func:`dataclasses.replace` to ``DetrTrainConfig()``, so improvements to the
recipe's defaults reach the reproduction unchanged.

Budgets (2 CPU cores, 1 torch thread per run; the README's "Latest reproduction" section keeps the
measured times):

* ``quick`` (under 10 min): every part runs, at sizes that only show the pipeline works.
* ``default`` (under 60 min): theory at full precision; sorting and retrieval with 3 paired seeds
  × 15 epochs of the three models and the two ablations, values with and without position codes;
  the marked lookup (10k training pairs, offsets 0-3, learning rates tuned per model on a tuning
  seed, 3 seeds) and a small width/depth sweep; these parts side by side (``part_jobs`` 2); one
  seed of each detector with the full emoji recipe (8 epochs), the three trained at once,
  sharing one cached backbone pre-training; then the benchmarks.
* ``full``: the closest to the paper's scale a CPU allows: 5 seeds and 60 epochs for sorting and
  retrieval, 5 seeds for the lookup with every model in both settings and a 3-point rate grid,
  the width/depth sweep d = 32..512 × 2, 6, 12 layers, the detector's full default recipe for 3
  seeds (hours).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["PROFILES", "ProfileSettings"]


@dataclass
class ProfileSettings:
    """The sizes of every part of one profile.

    Attributes:
        core_sizes: How many of the core check's input sizes to run (1 or 2).
        theory_quick: Use the theory's ``quick`` preset.
        theory: Overrides of ``TheoryConfig`` fields (tests use tiny sweeps).
        synthetic_seeds: Seeds of the sorting and retrieval models and of their two ablations
            (the same seeds, so that every comparison is paired).
        synthetic_epochs: Training epochs of every sorting and retrieval model.
        synthetic: Overrides of ``SyntheticConfig`` fields (tests use tiny data and models).
        tuning_seed: Seed of the learning-rate tuning runs (never reported; its held-out pairs
            are the validation split).
        lr_grid: Peak learning rates tried for every model of the lookup part.
        lookup_offsets: Offsets s (misalignments) of the marked lookup.
        lookup_tuning_offset: The offset the learning rates are tuned at.
        lookup_seeds: Seeds per lookup model and offset.
        lookup_epochs: Training epochs of a lookup model.
        lookup_batch_size: Minibatch size of the lookup runs.
        lookup_train: Training pairs of the lookup task (enough that no model just memorises).
        lookup_test: Test pairs of the lookup task.
        lookup_model: ``ModelConfig`` fields of the lookup models (the same for every model).
        lookup_models_with_positions: The models also run with value position codes (the
            secondary setting); empty runs every lookup model in both settings.
        lookup_offsets_with_positions: The offsets run in that setting; empty runs them all.
        synthetic_models_with_positions: Sorting and retrieval: the models also run with value
            position codes; empty runs the three models and the two ablations in both.
        scaling_dims: Widths d of the width/depth sweep.
        scaling_depths: Depths of the width/depth sweep.
        scaling_seeds: Seeds per cell of the sweep.
        scaling_epochs: Training epochs per cell.
        scaling_train: Training pairs per cell (lookup test pairs as in the lookup part).
        scaling_offset: Lookup offset of the sweep.
        detection_seeds: Training seeds per detector in the Table 1 analogue.
        detection_kinds: Detectors to train; empty means all three.
        detection_recipes: Named detector recipes (``detection/train.py``), each with its own
            Table 1; the first is the headline's.
        detection_train: Budget overrides of ``DetrTrainConfig`` (never recipe values).
        detection_model: Overrides of ``DetrModelConfig`` (tests only; empty keeps the default).
        detection_episodes: Evaluation episodes per split.
        detection_draws: Query draws per episode of the evaluation protocol.
        detection_jobs: Detector runs trained side by side (one thread each).
        ranking_episodes: Unseen episodes of the Figure 7 object-query ranking statistics.
        bench_sizes: Target map sides S of the attention benchmark.
        bench_queries: Object query counts Q of the attention benchmark.
        bench_repeats: Timed repetitions of every benchmark measurement.
        bench_variants: Kinds of the attention benchmark; empty means all.
        bench_train: Overrides of ``TrainBenchConfig`` fields.
        part_jobs: Worker processes for the parts that can share the CPU (theory and the two
            synthetic tasks; one torch thread each); 1 runs every part in this process.
    """

    core_sizes: int = 2
    theory_quick: bool = False
    theory: dict[str, Any] = field(default_factory=dict)
    synthetic_seeds: int = 3
    synthetic_epochs: int = 20
    synthetic: dict[str, Any] = field(default_factory=dict)
    tuning_seed: int = 100
    lr_grid: tuple[float, ...] = (1e-3, 3e-3)
    lookup_offsets: tuple[int, ...] = (0, 1, 2, 3)
    lookup_tuning_offset: int = 1
    lookup_seeds: int = 3
    lookup_epochs: int = 5
    lookup_batch_size: int = 256
    lookup_train: int = 10000
    lookup_test: int = 1000
    lookup_model: dict[str, Any] = field(
        default_factory=lambda: {"dim": 64, "num_heads": 4, "num_layers": 2, "ffn_dim": 256}
    )
    lookup_models_with_positions: tuple[str, ...] = ("indirect", "naive", "cross")
    lookup_offsets_with_positions: tuple[int, ...] = (0, 2)
    synthetic_models_with_positions: tuple[str, ...] = ("indirect", "naive", "cross")
    scaling_dims: tuple[int, ...] = (32, 128)
    scaling_depths: tuple[int, ...] = (2, 4)
    scaling_seeds: int = 3
    scaling_epochs: int = 5
    scaling_train: int = 5000
    scaling_offset: int = 0
    detection_seeds: int = 1
    detection_kinds: tuple[str, ...] = ()
    detection_recipes: tuple[str, ...] = ("emoji",)
    detection_train: dict[str, Any] = field(default_factory=dict)
    detection_model: dict[str, Any] = field(default_factory=dict)
    detection_episodes: int = 150
    detection_draws: int = 5
    detection_jobs: int = 1
    ranking_episodes: int = 32
    bench_sizes: tuple[int, ...] = (32, 64)
    bench_queries: tuple[int, ...] = (300,)
    bench_repeats: int = 3
    bench_variants: tuple[str, ...] = ()
    bench_train: dict[str, Any] = field(default_factory=dict)
    part_jobs: int = 2


PROFILES: dict[str, ProfileSettings] = {
    "quick": ProfileSettings(
        core_sizes=1,
        theory_quick=True,
        synthetic_seeds=1,
        synthetic_epochs=3,
        lr_grid=(1e-3,),
        lookup_offsets=(0, 2),
        lookup_seeds=2,
        lookup_epochs=2,
        lookup_train=2000,
        lookup_test=500,
        scaling_dims=(32, 64),
        scaling_depths=(2,),
        scaling_seeds=2,
        scaling_epochs=2,
        detection_seeds=1,
        detection_train={
            "epochs": 1,
            "train_episodes": 320,
            "eval_episodes": 40,
            "pretrain_steps": 300,
        },
        detection_episodes=40,
        detection_draws=2,
        ranking_episodes=8,
        bench_sizes=(32,),
        bench_queries=(300,),
        bench_repeats=2,
        bench_train={"repeats": 2},
    ),
    "default": ProfileSettings(
        # The detectors' full recipe (8 epochs), all three at once on the 2 cores (one thread
        # each; two rounds of two would leave a core idle in the second), sharing one cached
        # backbone pre-training.
        detection_jobs=3,
        bench_train={"repeats": 3},
        # Sorting and retrieval: 3 paired seeds × 15 epochs, 5 models, both value settings.
        synthetic_epochs=15,
    ),
    "full": ProfileSettings(
        synthetic_seeds=5,
        synthetic_epochs=60,
        lr_grid=(3e-4, 1e-3, 3e-3),
        lookup_seeds=5,
        lookup_epochs=15,
        lookup_models_with_positions=(),
        lookup_offsets_with_positions=(),
        synthetic_models_with_positions=(),
        scaling_train=10000,
        scaling_dims=(32, 64, 128, 256, 512),
        scaling_depths=(2, 6, 12),
        scaling_seeds=5,
        scaling_epochs=15,
        detection_seeds=3,
        detection_recipes=("emoji", "paper"),
        detection_episodes=500,
        ranking_episodes=64,
        bench_queries=(300, 1800),
        bench_repeats=5,
        bench_train={"repeats": 5},
    ),
}
