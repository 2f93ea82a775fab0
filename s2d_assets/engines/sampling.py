"""Vectorised per-sequence sampling: temperature, nucleus (top-p), and counter-based seeds.

Each sequence's uniform draw at step ``t`` is a hash of (its seed, ``t``), so a sample's text
depends on its seed and never on which other sequences share its batch, and drawing costs one
tensor expression for the whole batch instead of one generator call per row.
"""

from __future__ import annotations

import torch

MASK32 = 0xFFFFFFFF
# A candidate set this large almost always holds the nucleus; rows where it does not fall back to a full sort.
NUCLEUS_CANDIDATES = 256


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (lowbias32) on int64 tensors holding values in [0, 2**32)."""
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & MASK32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & MASK32
    return x ^ (x >> 16)


def seed_words(seeds: list[int]) -> torch.Tensor:
    """Split 63-bit seeds into two 32-bit words: shape (rows, 2), int64."""
    return torch.tensor([[seed & MASK32, (seed >> 32) & MASK32] for seed in seeds], dtype=torch.int64).reshape(-1, 2)


def uniforms(words: torch.Tensor, step: int) -> torch.Tensor:
    """One uniform in [0, 1) per row, a pure function of (seed, step)."""
    counter = torch.full_like(words[:, 0], (step * 0x9E3779B9 + 0x632BE5AB) & MASK32)
    mixed = _mix32(words[:, 0] ^ _mix32(words[:, 1] ^ _mix32(counter)))
    return (mixed >> 8).to(torch.float64).div_(float(1 << 24)).to(torch.float32)


def sample(
    logits: torch.Tensor,
    temperature: torch.Tensor,
    top_p: torch.Tensor,
    words: torch.Tensor,
    step: int,
) -> torch.Tensor:
    """Next token per row: argmax where temperature is 0, else an inverse-CDF draw from the nucleus.

    The nucleus is the smallest prefix of tokens by descending probability whose mass reaches
    ``top_p`` (the most likely token always stays); the draw is renormalised over it.
    """
    logits = logits.float()
    chosen = logits.argmax(dim=-1)
    sampling = temperature > 0
    if not bool(sampling.any()):
        return chosen
    rows = sampling.nonzero().squeeze(-1)
    scaled = logits[rows] / temperature[rows, None]
    log_total = torch.logsumexp(scaled, dim=-1, keepdim=True)
    k = min(NUCLEUS_CANDIDATES, scaled.shape[-1])
    top_logits, top_ids = scaled.topk(k, dim=-1, sorted=True)
    probs = (top_logits - log_total).exp()
    p = top_p[rows]
    whole = p >= 1.0  # no nucleus: draw from the whole distribution, in vocabulary order, without sorting
    wide = ~whole & (probs.sum(dim=-1) < p) & (k < scaled.shape[-1])
    narrow = ~whole & ~wide
    if bool(whole.any()):
        index = whole.nonzero().squeeze(-1)
        full_probs = (scaled[index] - log_total[index]).exp()
        unbounded = torch.full_like(p[index], float("inf"))
        chosen[rows[index]] = _inverse_cdf(full_probs, unbounded, uniforms(words[rows[index]], step))
    if bool(wide.any()):  # the nucleus is wider than the candidates: sort the whole vocabulary for these rows
        index = wide.nonzero().squeeze(-1)
        full_probs, full_ids = (scaled[index] - log_total[index]).exp().sort(dim=-1, descending=True)
        picks = _inverse_cdf(full_probs, p[index], uniforms(words[rows[index]], step))
        chosen[rows[index]] = full_ids.gather(-1, picks[:, None]).squeeze(-1)
    if bool(narrow.any()):
        index = narrow.nonzero().squeeze(-1)
        picks = _inverse_cdf(probs[index], p[index], uniforms(words[rows[index]], step))
        chosen[rows[index]] = top_ids[index].gather(-1, picks[:, None]).squeeze(-1)
    return chosen


def _inverse_cdf(sorted_probs: torch.Tensor, top_p: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The token whose cumulative-probability interval holds ``u`` (scaled to the kept mass)."""
    cumulative = sorted_probs.cumsum(dim=-1)
    kept = sorted_probs.masked_fill(cumulative - sorted_probs >= top_p[:, None], 0.0)
    cumulative = kept.cumsum(dim=-1)
    target = (u.to(cumulative.dtype) * cumulative[:, -1])[:, None]
    return torch.searchsorted(cumulative, target, right=True).squeeze(-1).clamp(max=sorted_probs.shape[-1] - 1)
