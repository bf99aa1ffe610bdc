"""A small Adam for stacked parameters, with one learning rate per model of the stack.

Every parameter carries the model axis G first; ``lr_G`` is a float tensor [G]. The update is Adam
(Kingma & Ba 2015) with bias correction, elementwise, so model g's update depends only on model g's
gradients: a stack of G models is updated exactly as G separate optimisers would update them.
"""

from __future__ import annotations

import torch


class StackedAdam:
    """Adam over a list of stacked tensors [G, ...] (updated in place) with per-model lr [G]."""

    def __init__(self, params: list[torch.Tensor], lr_G: torch.Tensor,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.params = params
        self.lr_G = lr_G.to(torch.float32)
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.t = 0
        self.exp_avg = [torch.zeros_like(p) for p in params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in params]

    def _lr_view(self, p: torch.Tensor, scale: float) -> torch.Tensor:
        return (self.lr_G * scale).view(-1, *([1] * (p.dim() - 1)))

    @torch.no_grad()
    def step(self, grads: list[torch.Tensor], lr_scale: float = 1.0) -> None:
        """p <- p - lr * m_hat / (sqrt(v_hat) + eps), elementwise, for every parameter."""
        self.t += 1
        correction1 = 1.0 - self.beta1 ** self.t
        correction2 = 1.0 - self.beta2 ** self.t
        for p, g, m, v in zip(self.params, grads, self.exp_avg, self.exp_avg_sq):
            if g is None:
                continue
            m.mul_(self.beta1).add_(g, alpha=1.0 - self.beta1)
            v.mul_(self.beta2).addcmul_(g, g, value=1.0 - self.beta2)
            denom = v.sqrt().div_(correction2 ** 0.5).add_(self.eps)
            denom.div_(self._lr_view(p, lr_scale / correction1))
            p.addcdiv_(m, denom, value=-1.0)

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = {"t": torch.tensor(self.t, dtype=torch.int64)}
        for i, (m, v) in enumerate(zip(self.exp_avg, self.exp_avg_sq)):
            state[f"exp_avg.{i}"] = m
            state[f"exp_avg_sq.{i}"] = v
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.t = int(state["t"])
        for i in range(len(self.params)):
            self.exp_avg[i].copy_(state[f"exp_avg.{i}"])
            self.exp_avg_sq[i].copy_(state[f"exp_avg_sq.{i}"])

    def select(self, g: int) -> dict[str, torch.Tensor]:
        """Model g's state (G = 1), for single-model checkpoints."""
        state = {"t": torch.tensor(self.t, dtype=torch.int64)}
        for i, (m, v) in enumerate(zip(self.exp_avg, self.exp_avg_sq)):
            state[f"exp_avg.{i}"] = m[g:g + 1].clone()
            state[f"exp_avg_sq.{i}"] = v[g:g + 1].clone()
        return state
