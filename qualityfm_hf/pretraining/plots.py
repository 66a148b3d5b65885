"""The loss curves of a pretraining run (`<output_dir>/loss_curves.png`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from .recipes import LOSS_COMPONENTS


def plot_loss_curves(log_history: list[dict], path: str | Path, weights: Mapping[str, float] | None = None) -> Path:
    """Plot the loss, its components and the collapse monitors against the optimiser step to a PNG (Agg).

    `weights` (component name -> λ, e.g. `loss_weights(config)`) puts each component's weight in its panel title,
    so the plot says how much each curve counts in the total.

    A panel whose positive values span more than a factor of 20 uses a log scale, so a teacher entropy sliding towards
    0 stays visible instead of flattening into the axis.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    entries = [entry for entry in log_history if "loss" in entry and "step" in entry]
    if not entries:
        raise ValueError(
            f"log_history has no training-loss entries ({len(log_history)} entries in all); set logging_steps to "
            "at most max_steps so the Trainer logs the loss."
        )
    panels = [("loss", ("loss",))] + [(name, (name,)) for name in LOSS_COMPONENTS] + [
        ("teacher entropy (nats)", ("teacher_entropy", "teacher_batch_entropy")),
        ("distinct argmax prototypes", ("distinct_prototypes",)),
        ("effective rank of pooled embeddings", ("student_rank", "teacher_rank")),
        ("mean pairwise cosine", ("student_cosine", "teacher_cosine")),
    ]
    # A term that is off (weight 0 in the recipe, e.g. KoLeo in the paper's) logs exactly 0: no panel for it.
    panels = [(title, names) for title, names in panels
              if any(entry.get(name, 0) != 0 for entry in entries for name in names)]
    columns = 3
    rows = -(-len(panels) // columns)
    figure = Figure(figsize=(13, 3.2 * rows), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    evals = [entry for entry in log_history if "eval_loss" in entry]
    for axis, (title, names) in zip(axes, panels):
        values = []
        for name in names:
            points = [(entry["step"], entry[name]) for entry in entries if name in entry]
            if points:
                axis.plot(*zip(*points), marker="o", markersize=2, label=name.replace("_", " "))
                values += [value for _, value in points]
        if title == "loss" and evals:
            axis.plot([e["step"] for e in evals], [e["eval_loss"] for e in evals], marker="s", label="eval loss")
        positive = [value for value in values if value > 0]
        if positive and len(positive) == len(values) and max(positive) > 20 * min(positive):
            axis.set_yscale("log")
        weight = (weights or {}).get(title)
        # A term at weight 0 is still computed and logged, but nothing trains it: say so, or its flat or wandering
        # curve reads as a failure to learn.
        suffix = "" if weight is None else " (λ = 0: logged, not trained)" if weight == 0 else f" (λ = {weight:g})"
        axis.set_title(title.replace("_", " ") + suffix)
        axis.set_xlabel("optimiser step")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    for axis in axes[len(panels):]:
        axis.set_visible(False)
    figure.suptitle("QualityFM self-distillation: losses and collapse monitors")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path


__all__ = ["plot_loss_curves"]
