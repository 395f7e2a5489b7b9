"""Figure 4: the indirect model's position bias per layer (rows) and head (columns), retrieval task.

Drawn from ``bias_maps.json`` written by the synthetic run: for one test pair, the bias B = φ_l(P^l)
of every layer and head as a (query slot × value position) image. Layer 1 is purely positional;
later layers move with the content through the reference update. Matplotlib only (Agg backend).
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

__all__ = ["draw_figure4"]


def draw_figure4(bias_json: Path, out: Path, *, example: int = 0) -> Path:
    """Draw every layer's and head's bias map of test pair ``example``; save to ``out``."""
    record = json.loads(Path(bias_json).read_text(encoding="utf-8"))
    item = record["examples"][example]
    bias = item["bias"]  # [Ly][H][Lq][Lk]
    layers, heads = len(bias), len(bias[0])
    fig, axes = plt.subplots(
        layers, heads, figsize=(1.9 * heads + 0.6, 1.8 * layers + 0.8), squeeze=False
    )
    for layer in range(layers):
        for head in range(heads):
            ax = axes[layer][head]
            ax.imshow(bias[layer][head], cmap="viridis", aspect="equal")
            ax.set_xticks([])
            ax.set_yticks([])
            if layer == 0:
                ax.set_title(f"head {head + 1}", fontsize=9)
            if head == 0:
                ax.set_ylabel(f"layer {layer + 1}", fontsize=9)
    fig.suptitle(
        f"{record['model']} bias (rows: query slot, cols: value position, own colour scale per panel); query "
        f"{item['conditioning']}, reference {item['content']}, start {item['label']}",
        fontsize=8,
    )
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
