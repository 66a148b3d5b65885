"""Collapse monitors for self-distillation: what the Trainer logs besides the loss (ssl-recipe notes, DINO §5.3).

A falling distillation loss is no evidence of learning: both kinds of collapse drive it to 0. One prototype
dominates every window (teacher entropy -> 0, one distinct argmax), or the teacher is uniform (entropy -> log K);
in both the batch-mean distribution tells nothing about the window (its entropy equals the per-window entropy).
RankMe's effective rank of a batch of embeddings falls when the encoder squeezes windows onto a few directions,
and the mean pairwise cosine rises to 1 when they all point the same way. Pure functions of one batch.
"""

from __future__ import annotations

import math

import torch

MONITORS = (
    "teacher_entropy",
    "teacher_batch_entropy",
    "distinct_prototypes",
    "student_rank",
    "teacher_rank",
    "student_cosine",
    "teacher_cosine",
)

# Warn when the logged means cross these. The first two are the two DINO collapse modes; a rank below 2 means the
# pooled embeddings of a whole batch lie along one direction.
MIN_DISTINCT_PROTOTYPES = 1.5
UNIFORM_FRACTION = 0.98  # teacher entropy above this fraction of log K
MIN_ENTROPY_GAP = 0.05  # nats between H(mean P_t) and mean H(P_t)
MIN_EFFECTIVE_RANK = 2.0


def entropy(probabilities: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Shannon entropy in nats along `dim` (0·log 0 = 0)."""
    p = probabilities.float()
    return -(p * torch.log(p.clamp(min=1e-30))).sum(dim)


def effective_rank(embeddings: torch.Tensor) -> float:
    """RankMe: exp of the entropy of the normalised singular values of a `(batch, dim)` matrix (1 to min(batch, dim))."""
    singular = torch.linalg.svdvals(embeddings.float())
    p = singular / singular.sum().clamp(min=1e-12)
    return float(torch.exp(entropy(p)))


def mean_pairwise_cosine(embeddings: torch.Tensor) -> float:
    """Mean cosine similarity over the distinct pairs of rows of `(batch, dim)` (1 when they all point one way)."""
    n = embeddings.shape[0]
    if n < 2:
        return float("nan")
    z = torch.nn.functional.normalize(embeddings.float(), dim=-1)
    similarity = z @ z.T
    return float((similarity.sum() - similarity.diagonal().sum()) / (n * (n - 1)))


@torch.no_grad()
def collapse_monitors(teacher_probabilities: torch.Tensor | None, student_pooled: torch.Tensor,
                      teacher_pooled: torch.Tensor | None) -> dict[str, float]:
    """The `MONITORS` of one batch, in `MONITORS` order; those of an absent input are left out.

    Args:
        teacher_probabilities (`torch.Tensor` of shape `(..., K)`, *optional*): centred, sharpened teacher
            distributions, one row per window (pooled target) or per token (the paper's token target). None when the
            recipe has no distillation term.
        student_pooled (`torch.Tensor` of shape `(batch, hidden)`): pooled student encoder outputs.
        teacher_pooled (`torch.Tensor` of shape `(batch, hidden)`, *optional*): the teacher's.
    """
    values = {}
    if teacher_probabilities is not None:
        rows = teacher_probabilities.reshape(-1, teacher_probabilities.shape[-1]).float()
        values.update(teacher_entropy=float(entropy(rows).mean()), teacher_batch_entropy=float(entropy(rows.mean(0))),
                      distinct_prototypes=float(rows.argmax(-1).unique().numel()))
    values.update(student_rank=effective_rank(student_pooled), student_cosine=mean_pairwise_cosine(student_pooled))
    if teacher_pooled is not None:
        values.update(teacher_rank=effective_rank(teacher_pooled), teacher_cosine=mean_pairwise_cosine(teacher_pooled))
    return {name: values[name] for name in MONITORS if name in values}


def collapse_warnings(logs: dict[str, float], num_prototypes: int) -> list[str]:
    """One line per sign of collapse in a dict of logged monitor means (empty when none)."""
    found = []
    if logs.get("distinct_prototypes", 2.0) < MIN_DISTINCT_PROTOTYPES:
        found.append("every window has the same argmax prototype (one dimension dominates the teacher)")
    log_k = math.log(num_prototypes)
    if logs.get("teacher_entropy", 0.0) > UNIFORM_FRACTION * log_k:
        found.append(f"the teacher is near uniform (entropy {logs['teacher_entropy']:.3f} of log K {log_k:.3f})")
    if "teacher_batch_entropy" in logs and "teacher_entropy" in logs:
        gap = logs["teacher_batch_entropy"] - logs["teacher_entropy"]
        if gap < MIN_ENTROPY_GAP:
            found.append(f"the teacher gives every window nearly the same distribution (H(mean P) - mean H(P) = "
                         f"{gap:.3f} nats)")
    for name in ("student_rank", "teacher_rank"):
        if logs.get(name, MIN_EFFECTIVE_RANK) < MIN_EFFECTIVE_RANK:
            found.append(f"{name.replace('_', ' ')} is {logs[name]:.2f}: the pooled embeddings lie along one direction")
    return found


__all__ = ["MONITORS", "collapse_monitors", "collapse_warnings", "effective_rank", "entropy", "mean_pairwise_cosine"]
