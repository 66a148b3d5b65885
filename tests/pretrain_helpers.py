"""Real pretraining pairs and a small config for the self-distillation tests (also used by dist_pretrain_script.py).

The pairs come from the bundled Challenge-2015 record v100s (tests/fixtures/README.md): II and PLETH resampled
250 -> 300 Hz with `resample_poly`, cut into ten 30-s windows, each jointly min-max normalised to [-1, 1] over both
channels ([PPG, ECG_II] order), and paired as (window i -> teacher, window i + 1 -> student). The pairs are not
quality-ordered: the tests check training mechanics, not which window is better.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import torch
from scipy.signal import resample_poly

FIXTURES = Path(__file__).resolve().parent / "fixtures"
WINDOW = 9000  # 30 s at 300 Hz


@cache
def v100s_windows() -> np.ndarray:
    """(10, 2, 9000) float32 windows of v100s, [PPG, ECG_II], each spanning exactly [-1, 1]."""
    import wfdb

    record = wfdb.rdrecord(str(FIXTURES / "v100s"))
    names = record.sig_name
    signals = np.stack([record.p_signal[:, names.index("PLETH")], record.p_signal[:, names.index("II")]])
    resampled = resample_poly(signals, 6, 5, axis=-1)  # 250 Hz × 6/5 = 300 Hz
    count = resampled.shape[-1] // WINDOW
    windows = resampled[:, : count * WINDOW].reshape(2, count, WINDOW).transpose(1, 0, 2)
    low = windows.min(axis=(1, 2), keepdims=True)
    high = windows.max(axis=(1, 2), keepdims=True)
    return (2 * (windows - low) / (high - low) - 1).astype(np.float32)


class RealPairs(torch.utils.data.Dataset):
    """Pairs (i, i + 1) of v100s windows in the pretraining input contract."""

    def __init__(self, with_channel_mask: bool = False):
        self.windows = torch.from_numpy(v100s_windows())
        self.with_channel_mask = with_channel_mask

    def __len__(self) -> int:
        return len(self.windows) - 1

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = {"teacher_input_values": self.windows[index], "student_input_values": self.windows[index + 1]}
        if self.with_channel_mask:
            item["teacher_channel_mask"] = torch.ones(2)
            item["student_channel_mask"] = torch.ones(2)
        return item


def small_config(**overrides):
    """The smallest config the spectral decoder allows: it needs hidden_size 512 and 30-s windows (18 tokens read as
    channels), but the tokenizer's kernels and widths below 512 are free. Short odd kernels give the same token counts
    (padding = kernel // 2), so one step on a batch of 2 takes well under a second on 2 cores."""
    from qualityfm_hf import QualityFMConfig

    values = dict(
        num_hidden_layers=1, intermediate_size=32, conv_dim=(4, 8, 512), conv_kernel=(5, 5, 5), window_size=8,
    )
    values.update(overrides)
    return QualityFMConfig(**values)
