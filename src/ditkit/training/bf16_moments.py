"""AdamW that keeps its two moments in bf16: half the optimizer's memory (for DiT-XL/2 2.5 of 5 GiB).

The arithmetic is AdamW's (Loshchilov & Hutter, decoupled weight decay), done in fp32 from the stored
moments; only the storage is bf16. The second moment moves by (1 - β2) = 0.1% of itself per step, less than
bf16's resolution (0.4%), so rounding it to nearest would freeze it; it is stored with stochastic rounding
(rounded up with the probability of the dropped fraction, so unbiased). The rounding draws come from a
generator seeded by (step, tensor index): the same run gives the same weights and resumes exactly, with
no extra state. The first moment moves by 10% a step and is rounded to nearest.
"""

from __future__ import annotations

import math

import torch

_LOW_BITS = 1 << 16  # fp32 bits that bf16 drops


def stochastic_round_to_bf16(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """bf16 of the fp32 ``x``, rounded up with probability equal to the dropped fraction (x finite)."""
    noise = torch.randint(0, _LOW_BITS, x.shape, generator=generator, dtype=torch.int32, device=x.device)
    bits = (x.view(torch.int32) + noise) & -_LOW_BITS
    return bits.view(torch.float32).to(torch.bfloat16)  # exact: the low 16 bits are zero


class AdamWBf16Moments(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 1e-4, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))
        self.index = {p: i for i, p in enumerate(p for g in self.param_groups for p in g["params"])}

    @torch.no_grad()
    def step(self, closure=None):
        loss = None if closure is None else closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad.float()
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p, dtype=torch.bfloat16)
                    state["exp_avg_sq"] = torch.zeros_like(p, dtype=torch.bfloat16)
                # 1. the moments, in fp32: m ← β1 m + (1-β1) g;  v ← β2 v + (1-β2) g²
                m = state["exp_avg"].float().lerp_(grad, 1 - beta1)
                v = state["exp_avg_sq"].float().mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                state["step"] += 1
                step = state["step"].item()
                # 2. decoupled weight decay, then θ ← θ - lr · m̂ / (√v̂ + ε) with bias-corrected m̂, v̂
                p.mul_(1 - group["lr"] * group["weight_decay"])
                denom = (v.sqrt() / math.sqrt(1 - beta2 ** step)).add_(group["eps"])
                p.addcdiv_(m.to(p.dtype), denom.to(p.dtype), value=-group["lr"] / (1 - beta1 ** step))
                # 3. store: m to nearest, v stochastically (seeded by step and tensor: reproducible)
                generator = torch.Generator(device=p.device).manual_seed(int(step) * 1_000_003 + self.index[p])
                state["exp_avg"] = m.to(torch.bfloat16)
                state["exp_avg_sq"] = stochastic_round_to_bf16(v, generator)
        return loss

    def load_state_dict(self, state_dict):
        """Loads bf16 or fp32 moments (an fp32 AdamW checkpoint continues with its moments rounded once)."""
        super().load_state_dict(state_dict)
        for state in self.state.values():
            for key in ("exp_avg", "exp_avg_sq"):
                if key in state:
                    state[key] = state[key].to(torch.bfloat16)
            if "step" in state:
                state["step"] = state["step"].float().cpu()
