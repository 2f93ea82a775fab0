"""Constrained final answers in the transformers engine, with xgrammar (the library vLLM uses).

Each request's answer set is compiled once per tokenizer into an xgrammar grammar (cached by its
pattern); every constrained row of a decode batch gets its own ``GrammarMatcher``. Before each
sampling step the matcher fills that row's token bitmask, ``apply_token_bitmask_inplace`` masks
the logits on CPU (disallowed tokens get -inf), and the chosen token is fed back to the matcher.
Once the answer is complete the grammar allows only the engine's stop tokens, so a constrained
answer ends with EOS (the matcher's stop tokens are the engine's). Unconstrained rows of the same
batch are left as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from s2d_assets.core.answer_set import AnswerSet
from s2d_assets.engines.base import GenerationRequest


class AnswerGrammars:
    """xgrammar's compiler for one tokenizer and its compiled answer sets."""

    def __init__(self, tokenizer: Any, stop_ids: Sequence[int], vocab_size: int) -> None:
        import xgrammar

        self._xgr = xgrammar
        info = xgrammar.TokenizerInfo.from_huggingface(
            tokenizer, vocab_size=vocab_size, stop_token_ids=sorted(stop_ids)
        )
        self.vocab_size = vocab_size
        self._compiler = xgrammar.GrammarCompiler(info, max_threads=1)
        self._compiled: dict[str, Any] = {}

    def compiled(self, answer_set: AnswerSet) -> Any:
        key = answer_set.pattern
        if key not in self._compiled:
            self._compiled[key] = self._compiler.compile_regex(key)
        return self._compiled[key]

    def rows(self, requests: Sequence[GenerationRequest]) -> RowMatchers | None:
        """Matchers for one decode batch (row i <-> requests[i]); None when no row is constrained."""
        if all(request.answer_set is None for request in requests):
            return None
        matchers = {
            row: self._xgr.GrammarMatcher(self.compiled(request.answer_set))
            for row, request in enumerate(requests)
            if request.answer_set is not None
        }
        return RowMatchers(self._xgr, matchers, len(requests), self.vocab_size)


class RowMatchers:
    """The grammar state of each constrained row of a decode batch."""

    def __init__(self, xgr: Any, matchers: dict[int, Any], rows: int, vocab_size: int) -> None:
        self._xgr = xgr
        self._matchers = matchers
        self._vocab_size = vocab_size
        self._bitmask = xgr.allocate_token_bitmask(rows, vocab_size)

    def mask(self, logits: torch.Tensor, alive: torch.Tensor) -> None:
        """Mask ``logits`` in place; its row j is batch row ``alive[j]``."""
        indices = []
        for j, row in enumerate(alive.tolist()):
            matcher = self._matchers.get(row)
            if matcher is not None and not matcher.is_terminated():
                matcher.fill_next_token_bitmask(self._bitmask, j)
                indices.append(j)
        if indices:
            self._xgr.apply_token_bitmask_inplace(
                logits, self._bitmask[: logits.shape[0]], vocab_size=self._vocab_size, indices=indices
            )

    def accept(self, rows: torch.Tensor, tokens: torch.Tensor) -> None:
        """Feed each row's chosen token to its matcher."""
        for row, token in zip(rows.tolist(), tokens.tolist(), strict=True):
            matcher = self._matchers.get(row)
            if matcher is not None and not matcher.is_terminated() and not matcher.accept_token(token):
                raise RuntimeError(f"the constrained decoder chose token {token}, which its grammar refuses")
