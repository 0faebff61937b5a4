"""The expert's activations kept between epochs, and the memory budget that bounds them.

The expert is frozen, so its activations of a fixed image set (the training images, the test
images of evaluations during training) are the same every epoch: computed once they are reused
while they fit the budget; the rest are recomputed per batch.
"""

from __future__ import annotations

from collections.abc import Callable

import psutil
import torch

from bench.methods.mkd.nets import EXPERT_CHANNELS, pool_number

#: activations per critical layer, as the expert and the cloner return them
Taps = dict[str, torch.Tensor]


def tap_bytes(layers: tuple[str, ...], size: tuple[int, int], dtype: torch.dtype,
              expert: str = "vgg16") -> int:
    """Bytes of one image's expert activations at ``layers`` (VGG pools halve with floor; an
    EfficientNet's strided convs round up, which this slightly under-counts at odd sizes)."""
    channels = EXPERT_CHANNELS[expert]
    total = 0
    for layer in layers:
        h, w = size
        for _ in range(pool_number(layer)):
            h, w = h // 2, w // 2
        total += channels[layer] * h * w
    return total * torch.empty((), dtype=dtype).element_size()


def default_budget_mb(device: torch.device) -> int:
    """Half the free GPU memory, or a quarter of the available RAM."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * 0.5 / 2**20)
    return int(psutil.virtual_memory().available * 0.25 / 2**20)


class ExpertCache:
    """The expert's activations of the first ``n`` images of a fixed set, computed once.

    ``lookup`` returns the activations of a batch, computing the uncached ones on the fly.
    """

    def __init__(self, store: dict[str, torch.Tensor], n: int) -> None:
        self.store = store
        self.n = n

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.store.values())

    def lookup(self, idx: torch.Tensor, compute: Callable[[torch.Tensor], Taps]) -> Taps:
        hit = idx < self.n
        if bool(hit.all()):
            dev_idx = idx.to(next(iter(self.store.values())).device)
            return {k: v[dev_idx] for k, v in self.store.items()}
        missing = compute(~hit)
        if not bool(hit.any()):
            return missing
        out = {}
        for k, v in self.store.items():
            full = v.new_empty((len(idx), *v.shape[1:]))
            hit_d = hit.to(v.device)
            full[hit_d] = v[idx[hit].to(v.device)]
            full[~hit_d] = missing[k].to(v.dtype)
            out[k] = full
        return out
