"""Figures of `qualityfm quickstart`'s report.

Each plot function takes plain arrays and a path, writes one PNG (matplotlib, Agg backend) and returns the path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..quality import QUALITY_CLASSES

# Bad -> Excellent, red to green: the order of QUALITY_CLASSES.
CLASS_COLOURS = ("#c0392b", "#e67e22", "#f1c40f", "#7fb800", "#1e8449")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_quality_timeline(windows: dict[str, list[tuple[float, int]]], path: str | Path,
                          window_seconds: float = 30.0, labels: dict[str, int] | None = None) -> Path:
    """Quality class of every kept 30-s window over time, one row per record.

    Args:
        windows: record name -> list of (start seconds, class index into `QUALITY_CLASSES`).
        labels: record name -> 1 (true alarm) / 0 (false alarm), shown beside the record's name when given.
    """
    from matplotlib.patches import Patch

    plt = _pyplot()
    records = sorted(windows)
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(records) + 1.6))
    for row, record in enumerate(records):
        for start, cls in windows[record]:
            ax.broken_barh([(start, window_seconds)], (row - 0.4, 0.8), facecolors=CLASS_COLOURS[cls],
                           edgecolor="white", linewidth=0.5)
    names = {1: "true alarm", 0: "false alarm"}
    ax.set_yticks(range(len(records)), [f"{r} ({names[labels[r]]})" if labels and r in labels else r for r in records])
    ax.invert_yaxis()
    ax.set_xlabel("time in record (s); rejected windows are blank")
    ax.set_title("Signal quality class of each 30-s window")
    ax.legend(handles=[Patch(color=c, label=n) for c, n in zip(CLASS_COLOURS, QUALITY_CLASSES)],
              loc="upper center", bbox_to_anchor=(0.5, -0.12 - 0.6 / max(len(records), 1)), ncol=5, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def plot_spectra(target_amplitude: np.ndarray, target_phase: np.ndarray, predicted_amplitude: np.ndarray,
                 predicted_phase: np.ndarray, path: str | Path, sampling_rate: float = 300.0,
                 num_samples: int = 9000, channel_names=("PPG", "ECG_II"), title: str = "",
                 show_phase: bool = True) -> Path:
    """Teacher-window spectral targets vs the student's predictions, (channels, bins) each, z-scored. With
    `show_phase=False` (a recipe whose phase loss weight is 0: the decoder's phase output is never trained) only the
    amplitude panels are drawn."""
    plt = _pyplot()
    bins = target_amplitude.shape[-1]
    freqs = np.arange(bins) * sampling_rate / num_samples  # bin spacing 1/30 Hz for 30 s
    panels = [("amplitude", target_amplitude, predicted_amplitude)]
    if show_phase:
        panels.append(("phase", target_phase, predicted_phase))
    fig, axes = plt.subplots(len(channel_names), len(panels), figsize=(5.5 * len(panels) + 1, 3.0 * len(channel_names)),
                             squeeze=False)
    for row, name in enumerate(channel_names):
        for col, (label, target, pred) in enumerate(panels):
            ax = axes[row, col]
            ax.plot(freqs, target[row], color="black", linewidth=0.9, label="teacher window (target)")
            ax.plot(freqs, pred[row], color="tab:blue", linewidth=0.9, alpha=0.8, label="student prediction")
            ax.set(title=f"{name} {label} (z-scored)", xlabel="frequency (Hz)")
            ax.legend(loc="upper right", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def plot_roc_curves(curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]], path: str | Path,
                    titles: dict[str, str] | None = None) -> Path:
    """One ROC panel per task, one curve per method: `{task: {method: (labels in {0, 1}, scores)}}`. The legend gives
    each curve's AUROC; a method whose records hold one class is listed without a curve."""
    from sklearn.metrics import roc_auc_score, roc_curve

    plt = _pyplot()
    fig, axes = plt.subplots(1, len(curves), figsize=(5.6 * len(curves), 5.8), squeeze=False)
    for ax, (task, methods) in zip(axes[0], curves.items()):
        for name, (labels, scores) in methods.items():
            labels, scores = np.asarray(labels), np.asarray(scores)
            baseline = name.startswith("baseline:")
            if labels.min() == labels.max():
                ax.plot([], [], " ", label=f"{name}: one class only, no ROC")
                continue
            fpr, tpr, _ = roc_curve(labels, scores)
            ax.step(fpr, tpr, where="post", linewidth=1.0 if baseline else 1.6, linestyle=":" if baseline else "-",
                    label=f"{name} ({roc_auc_score(labels, scores):.2f})")
        ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=0.8)
        ax.set(xlabel="1 − specificity", ylabel="sensitivity", xlim=(-0.02, 1.02), ylim=(-0.02, 1.02))
        ax.set_title((titles or {}).get(task, task), fontsize=10)
        ax.legend(loc="lower right", fontsize=7, title="out-of-fold AUROC", title_fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def markdown_table(header: list[str], rows: list[list]) -> str:
    def fmt(value):
        if isinstance(value, float):
            return "nan" if np.isnan(value) else f"{value:.3f}"
        return str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


__all__ = ["markdown_table", "plot_quality_timeline", "plot_roc_curves", "plot_spectra"]
