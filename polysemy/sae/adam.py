"""Adam for stacked parameters, with one learning rate per model of the stack.

Every parameter carries the model axis G first; ``lr_G`` is a float tensor [G]. The update is Adam
(Kingma & Ba 2015) with bias correction, elementwise, at step t with c1 = 1 - beta1^t, c2 = 1 - beta2^t:
  m <- beta1 m + (1 - beta1) g;  v <- beta2 v + (1 - beta2) g^2;  p <- p - lr/c1 · m / (sqrt(v)/sqrt(c2) + eps)
so model g's update depends only on model g's gradients: a stack of G models is updated exactly as G
separate optimisers would update them.

It runs torch's fused Adam kernel (``torch._fused_adam_``, the kernel of ``torch.optim.Adam(fused=True)``):
one pass over each parameter instead of about nine kernels per parameter (3-5x faster on the CPU at
d = 768, width 4096). The kernel takes one scalar lr, so it is called once per model of a stack, on that
model's slices (G = 1: one call); each model's update is then computed as when it is alone, bit for bit.
A test checks it against ``torch.optim.Adam``.
"""

from __future__ import annotations

import torch


class StackedAdam:
    """Adam over a list of stacked tensors [G, ...] (updated in place) with per-model lr [G]."""

    def __init__(self, params: list[torch.Tensor], lr_G: torch.Tensor,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.params = params
        self.lr_G = lr_G.to(torch.float32)
        self.lrs = [float(v) for v in self.lr_G.tolist()]   # once, so a step never reads the device
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.t = 0
        self.exp_avg = [torch.zeros_like(p) for p in params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in params]
        device = params[0].device if params else torch.device("cpu")
        self._step = torch.zeros((), dtype=torch.float32, device=device)

    @torch.no_grad()
    def step(self, grads: list[torch.Tensor], lr_scale: float = 1.0) -> None:
        """p <- p - lr/c1 · m / (sqrt(v)/sqrt(c2) + eps), elementwise, for every parameter with a gradient."""
        self.t += 1
        self._step.fill_(float(self.t))
        live = [(p, g, m, v) for p, g, m, v in zip(self.params, grads, self.exp_avg, self.exp_avg_sq)
                if g is not None]
        if not live:
            return
        G = live[0][0].shape[0]
        for gi in range(G):
            parts = [[t if G == 1 else t[gi] for t in group] for group in zip(*live)]
            ps, gs, ms, vs = parts
            gs = [g if g.dtype == p.dtype else g.to(p.dtype) for g, p in zip(gs, ps)]
            torch._fused_adam_(ps, gs, ms, vs, [], [self._step] * len(ps), lr=self.lrs[gi] * lr_scale,
                               beta1=self.beta1, beta2=self.beta2, weight_decay=0.0, eps=self.eps,
                               amsgrad=False, maximize=False)

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = {"t": torch.tensor(self.t, dtype=torch.int64)}
        for i, (m, v) in enumerate(zip(self.exp_avg, self.exp_avg_sq)):
            state[f"exp_avg.{i}"] = m
            state[f"exp_avg_sq.{i}"] = v
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.t = int(state["t"])
        self._step.fill_(float(self.t))
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
