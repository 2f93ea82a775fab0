"""A key/value cache layer that writes into preallocated buffers instead of concatenating.

transformers' ``DynamicLayer`` grows by ``torch.cat``, copying the whole cache of every layer at
every decoding step. This layer allocates ``capacity`` positions once and writes each step's
keys and values in place; attention sees a view of the filled part. Dropping finished rows
copies only the filled part of the surviving rows.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import Cache, DynamicLayer


class PreallocatedLayer(DynamicLayer):
    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity
        self.length = 0
        self._key_buffer: torch.Tensor | None = None
        self._value_buffer: torch.Tensor | None = None

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.dtype, self.device = key_states.dtype, key_states.device
        batch, heads, _, head_dim = key_states.shape
        shape = (batch, heads, self.capacity, head_dim)
        self._key_buffer = key_states.new_empty(shape)
        self._value_buffer = value_states.new_empty(
            (batch, value_states.shape[1], self.capacity, value_states.shape[3])
        )
        self.is_initialized = True

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: object, **kwargs: object
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        assert self._key_buffer is not None and self._value_buffer is not None
        start, end = self.length, self.length + key_states.shape[-2]
        if end > self.capacity:
            raise RuntimeError(f"KV cache capacity {self.capacity} exceeded ({end} positions)")
        self._key_buffer[:, :, start:end] = key_states
        self._value_buffer[:, :, start:end] = value_states
        self.length = end
        self.keys = self._key_buffer[:, :, :end]
        self.values = self._value_buffer[:, :, :end]
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep the rows ``indices`` (repeats allowed: a prompt's rows are copied for its samples)."""
        if self._key_buffer is None or self._value_buffer is None:
            return
        self._key_buffer = _select_rows(self._key_buffer, indices, self.length)
        self._value_buffer = _select_rows(self._value_buffer, indices, self.length)
        self.keys = self._key_buffer[:, :, : self.length]
        self.values = self._value_buffer[:, :, : self.length]

    def batch_repeat_interleave(self, repeats: int) -> None:
        index = torch.arange(self._key_buffer.shape[0] if self._key_buffer is not None else 0).repeat_interleave(
            repeats
        )
        self.batch_select_indices(index)

    def crop(self, tokens_to_remove: int) -> None:
        raise NotImplementedError("PreallocatedLayer does not support cropping")


def _select_rows(buffer: torch.Tensor, indices: torch.Tensor, filled: int) -> torch.Tensor:
    out = buffer.new_empty((indices.shape[0], *buffer.shape[1:]))
    torch.index_select(buffer[:, :, :filled], 0, indices.to(buffer.device), out=out[:, :, :filled])
    return out


def preallocated_cache(num_layers: int, capacity: int) -> Cache:
    return Cache(layers=[PreallocatedLayer(capacity) for _ in range(num_layers)])
