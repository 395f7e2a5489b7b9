"""The paper's theory (§3-4, appendix A): closed forms and the Monte Carlo that tests them.

- :mod:`.snr`: Lemma 1's bound, Lemma 2's expected error, the multi-head remark, SNR = 1/sigma²,
  sigma* = 1, and the misalignment energy gamma = 2d + ||mu_y - mu_x||².
- :mod:`.sampling`: orthogonal and Xavier value projections, softmax attention over random q·k.
- :mod:`.monte_carlo`: float64 simulations that report each closed form next to its estimate.
- :mod:`.multi_head`: the multi-head remark, simulated head by head.
- :mod:`.verdicts`: plain verdicts on the paper's claims, read off the numbers.
- :mod:`.run`: ``ia theory``: the sweeps over d = 16..1024, the records and Figure 1.

Imports torch and numpy only (plus the run records of :mod:`indirect_attention.training`).
"""

from .monte_carlo import AdditiveEstimate, MisalignedEstimate, additive_sweep, misaligned_sweep
from .multi_head import MultiHeadEstimate, multi_head_sweep
from .run import TheoryConfig, run
from .sampling import attention_logits, orthogonal_matrix, softmax_weights, xavier_matrix
from .snr import (
    SIGMA_STAR,
    expected_error,
    lemma1_bound,
    misaligned_output_error,
    misaligned_snr,
    misalignment_energy,
    multi_head_expected_error,
    per_component_noise_variance,
    per_head_expected_error,
    snr_additive,
)
from .verdicts import make_verdicts

__all__ = [
    "SIGMA_STAR",
    "AdditiveEstimate",
    "MisalignedEstimate",
    "MultiHeadEstimate",
    "TheoryConfig",
    "additive_sweep",
    "attention_logits",
    "expected_error",
    "lemma1_bound",
    "make_verdicts",
    "misaligned_output_error",
    "misaligned_snr",
    "misaligned_sweep",
    "misalignment_energy",
    "multi_head_expected_error",
    "multi_head_sweep",
    "orthogonal_matrix",
    "per_component_noise_variance",
    "per_head_expected_error",
    "run",
    "snr_additive",
    "softmax_weights",
    "xavier_matrix",
]
