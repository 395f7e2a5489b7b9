"""The paper's synthetic tasks (§6.1) and a misalignment variant; one file per task.

``sorting`` (sorting by an arbitrary ordering), ``retrieval`` (sequence retrieval) and ``lookup``
(marked lookup with a key-value offset) each give a config, a seeded generator and a model builder;
``models`` builds the indirect, naive and cross models from the core; ``experiment`` trains them.
"""

from .experiment import TASKS, SyntheticConfig, run
from .models import KINDS, ModelConfig, TaskLayout, TwoSequenceModel
from .pairs import SequencePairs

__all__ = [
    "KINDS",
    "TASKS",
    "ModelConfig",
    "SequencePairs",
    "SyntheticConfig",
    "TaskLayout",
    "TwoSequenceModel",
    "run",
]
