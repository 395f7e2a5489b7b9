"""How much of each experiment ``ia reproduce`` runs: the ``quick``, ``default`` and ``full`` profiles.

A profile is a :class:`ProfileSettings`; every part reads only its own fields. The detection part
never copies the detector's recipe: ``detection_train`` holds only the *budget* fields that are
applied with :func:`dataclasses.replace` to ``emoji_recipe()``, so improvements to the
recipe's defaults reach the reproduction unchanged.

Budgets (2 CPU cores, 1 torch thread per run; the README's "Latest reproduction" section keeps the
measured times):

* ``quick`` (under 10 min): every part runs, at sizes that only show the pipeline works.
* ``default`` (under 60 min): theory at full precision, 3 seeds × 20 epochs of the three synthetic
  models (ablations on one seed), theory and the two synthetic tasks side by side (``part_jobs``
  2); one seed of each detector with the full emoji recipe (8 epochs), the three trained at
  once, sharing one cached backbone pre-training; then the benchmarks.
* ``full``: the closest to the paper's scale a CPU allows: 3 seeds everywhere, 60 synthetic
  epochs, the detector's full default recipe for 3 seeds (hours).
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
        synthetic_seeds: Seeds of the three main models (indirect, naive, cross).
        synthetic_epochs: Training epochs of every synthetic model.
        ablation_seeds: Seeds of the two ablations (the first seeds of the main run).
        synthetic: Overrides of ``SyntheticConfig`` fields (tests use tiny data and models).
        detection_seeds: Training seeds per detector in the Table 1 analogue.
        detection_variants: Detectors to train; empty means all three.
        detection_train: Budget overrides of ``DetrTrainConfig`` (never recipe values).
        detection_model: Overrides of ``DetrModelConfig`` (tests only; empty keeps the default).
        detection_episodes: Evaluation episodes per split.
        detection_draws: Query draws per episode of the evaluation protocol.
        detection_jobs: Detector runs trained side by side (one thread each).
        ranking_episodes: Unseen episodes of the Figure 7 object-query ranking statistics.
        bench_sizes: Target map sides S of the attention benchmark.
        bench_queries: Object query counts Q of the attention benchmark.
        bench_repeats: Timed repetitions of every benchmark measurement.
        bench_variants: Variants of the attention benchmark; empty means all.
        bench_train: Overrides of ``TrainBenchConfig`` fields.
        part_jobs: Worker processes for the parts that can share the CPU (theory and the two
            synthetic tasks; one torch thread each); 1 runs every part in this process.
    """

    core_sizes: int = 2
    theory_quick: bool = False
    theory: dict[str, Any] = field(default_factory=dict)
    synthetic_seeds: int = 3
    synthetic_epochs: int = 20
    ablation_seeds: int = 1
    synthetic: dict[str, Any] = field(default_factory=dict)
    detection_seeds: int = 1
    detection_variants: tuple[str, ...] = ()
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
        ablation_seeds=1,
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
    ),
    "full": ProfileSettings(
        synthetic_epochs=60,
        ablation_seeds=3,
        detection_seeds=3,
        detection_episodes=500,
        ranking_episodes=64,
        bench_queries=(300, 1800),
        bench_repeats=5,
        bench_train={"repeats": 5},
    ),
}
