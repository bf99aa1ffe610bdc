"""SAE models. Every model is *stacked*: parameters carry a leading model axis G (one model is G = 1)
and all products are batched (``torch.bmm``/``baddbmm``), so training G models at once is the same
code as training one (our choice, for sweeps). Decoder rows are stored as [width, d] (DESIGN.md).

- :class:`TiedSAE`: the paper's SAE (docs/paper.md section 3), f(x) = sum_m a_m w_m phi(w_m^T(x - b_pre) + b_m)
  + b_pre, with unit-norm rows w_m, output scales a_m, a pre-bias b_pre and biases b_m that the
  method moves (bias adaptation, methods/gba.py, keeps its state in its own subclass). An optional fixed
  input scale c (buffer ``input_scale_G``, 1 = none) lets it work on x / c (see the class docstring).
- :class:`UntiedSAE`: the usual baseline, acts = relu(x W_enc + b_enc') and x_hat = acts W_dec + b_dec.
  Methods with another encoder subclass it in their own file (topk, batchtopk, jumprelu), with their
  own state (k, a threshold).
- :class:`SAE`: the single-model view (G = 1) that ``TrainResult.model`` holds and that metrics,
  checkpoints and the LLM benchmark use: ``W_dec`` [M, d], ``encode``, ``decode``, ``__call__``,
  ``width``, ``d``.

Checkpoints written before issue 10 kept every method's state in these two classes; the buffers a
class no longer has are dropped when such a checkpoint is loaded into it (``legacy_buffers``), and
the method that owned them loads them into its own subclass.
"""

from __future__ import annotations

import torch
from torch import nn

from .activations import tied_activation

DECODERS = ("tied", "untied")     # of the TiedSAE: the paper's tied decoder, or its own rows


class StackedSAE(nn.Module):
    """Common part: shapes, the last-fired buffer and the single-model view helpers."""

    def __init__(self, G: int, d: int, width: int):
        super().__init__()
        self.G, self.d, self.width = G, d, width
        # Step at which each latent last fired (used for dead-latent detection and AuxK).
        self.register_buffer("last_fired_GM", torch.zeros(G, width, dtype=torch.int64))

    # subclasses: encode_GBD, decode_GBM, decoder_rows_GMD, trainable_names, structure()
    def forward(self, x_GBD: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x_GBD))

    def trainable(self) -> list[torch.Tensor]:
        return [getattr(self, name) for name in self.trainable_names]

    def structure(self) -> dict:
        """Constructor keywords beyond (G, d, width) that rebuild an empty model of this shape."""
        return {}

    def select(self, g: int) -> "StackedSAE":
        """A G = 1 copy of model g of the stack."""
        one = type(self)(1, self.d, self.width, **self.structure())
        state = {k: v[g:g + 1].clone() for k, v in self.state_dict().items()}
        one.load_state_dict(state)
        return one.to(next(iter(state.values())).device)

    legacy_buffers: tuple = ()   # buffers older checkpoints carry for every model of this class

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # a checkpoint from before the state moved to its method's own class: drop what this class lacks
        for name in self.legacy_buffers:
            if name not in self._buffers and name not in self._parameters:
                state_dict.pop(prefix + name, None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class TiedSAE(StackedSAE):
    """The paper's tied SAE, stacked. Parameters: w_GMD (unit rows), a_GM, b_pre_GD.
    With ``decoder="untied"`` the decoder has its own unit rows v_GMD: x_hat = sum_m z_m a_m v_m + b_pre
    (the encoder keeps w; our choice, see methods/gba.py). Buffers: bias_GM (set by the method: bias
    adaptation keeps its own state in methods/gba.py's subclass), the smooth-ReLU width, and the input
    scale c = input_scale_G (1 unless the method's ``input_scale`` is set; our choice).

    With c != 1 the SAE itself lives on the scale x / c: w, a, b_pre and b are those of the paper's SAE
    applied to x' = x / c (so the bias clamp [-1, 0] sees O(1) inputs). Callers stay on the scale of x:
      u = w^T (x - c b_pre)          = c u'   (projections in units of x)
      encode(x) = c phi(u' + b)       = acts in units of x (jumprelu: u 1[u + c b > 0])
      decode(acts) = acts (a w) + c b_pre = c x_hat'
    so x_hat = encode(x) @ W_dec + b_dec with W_dec = a w (unchanged) and b_dec = c b_pre, and the
    equivalent c = 1 SAE (for export) has b_pre -> c b_pre and biases b -> c b (smooth-relu: h -> c h).
    """

    trainable_names = ("w_GMD", "a_GM", "b_pre_GD")

    def __init__(self, G: int, d: int, width: int, activation: str = "jumprelu", decoder: str = "tied"):
        super().__init__(G, d, width)
        if decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")
        self.activation = activation
        self.decoder = decoder
        self.w_GMD = nn.Parameter(torch.zeros(G, width, d), requires_grad=False)
        self.a_GM = nn.Parameter(torch.zeros(G, width), requires_grad=False)
        self.b_pre_GD = nn.Parameter(torch.zeros(G, d), requires_grad=False)
        if decoder == "untied":
            # decoder directions v_m (unit rows), separate from the encoder's w_m (our choice, for precision)
            self.v_GMD = nn.Parameter(torch.zeros(G, width, d), requires_grad=False)
            self.trainable_names = self.trainable_names + ("v_GMD",)
        self.register_buffer("bias_GM", torch.zeros(G, width))
        self.register_buffer("smooth_width_G", torch.full((G,), 0.1))
        self.register_buffer("input_scale_G", torch.ones(G))

    # the bias-adaptation state every TiedSAE carried before issue 10 (now methods/gba.py's)
    legacy_buffers = ("group_GM", "target_GM", "act_count_GM", "peak_GM", "stat_samples_G", "freq_GM")

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # checkpoints written before the input scale existed: c = 1 (what they were trained with)
        w = state_dict.get(prefix + "w_GMD")
        if w is not None:
            state_dict.setdefault(prefix + "input_scale_G", torch.ones(w.shape[0]))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def structure(self) -> dict:
        return {"activation": self.activation, "decoder": self.decoder}

    def decoder_directions(self) -> torch.Tensor:
        """The unit rows the decoder uses: w (tied, the paper's SAE) or v (untied), [G, M, D]."""
        return self.v_GMD if self.decoder == "untied" else self.w_GMD

    def scaled(self) -> bool:
        """Whether any model of the stack uses an input scale c != 1."""
        return bool((self.input_scale_G != 1.0).any())

    def project(self, x_GBD: torch.Tensor) -> torch.Tensor:
        """u' = w^T (x / c - b_pre), [G, B, M] (the SAE's internal projections; u' = u when c = 1)."""
        if self.scaled():
            x_GBD = x_GBD / self.input_scale_G[:, None, None]
        return torch.bmm(x_GBD - self.b_pre_GD[:, None, :], self.w_GMD.transpose(1, 2))

    def activate(self, u_GBM: torch.Tensor):
        """(z, dz/du, y) for the projections u."""
        y = u_GBM + self.bias_GM[:, None, :]
        z, dz = tied_activation(self.activation, u_GBM, y, self.smooth_width_G[:, None, None])
        return z, dz, y

    @torch.no_grad()
    def encode(self, x_GBD: torch.Tensor) -> torch.Tensor:
        """acts = c phi(u' + b), in units of x (= phi(u + b) when c = 1)."""
        z = self.activate(self.project(x_GBD))[0]
        return z * self.input_scale_G[:, None, None] if self.scaled() else z

    @torch.no_grad()
    def decode(self, acts_GBM: torch.Tensor) -> torch.Tensor:
        """x_hat = acts (a w) + c b_pre (untied: a v)."""
        return torch.baddbmm(self.offset_GD()[:, None, :], acts_GBM * self.a_GM[:, None, :], self.decoder_directions())

    def offset_GD(self) -> torch.Tensor:
        """The decoder's offset in units of x: c b_pre, [G, D]."""
        return self.b_pre_GD.detach() * self.input_scale_G[:, None]

    def decoder_rows(self) -> torch.Tensor:
        """Effective decoder rows a_m w_m (untied: a_m v_m), [G, M, D] (x_hat = acts @ rows + c b_pre)."""
        return self.decoder_directions().detach() * self.a_GM.detach()[:, :, None]

    def unscaled_copy(self) -> "TiedSAE":
        """The equivalent model with c = 1 (same encode/decode on x): b_pre -> c b_pre, b -> c b,
        smooth-relu width h -> c h. For export only: training it would clamp the biases at [-1, 0] in
        units of x, not of x / c. The adaptation statistics are copied unchanged."""
        copy = type(self)(self.G, self.d, self.width, **self.structure())
        copy.load_state_dict(self.state_dict())
        c = self.input_scale_G
        with torch.no_grad():
            copy.b_pre_GD.mul_(c[:, None])
            copy.bias_GM.mul_(c[:, None])
            copy.smooth_width_G.mul_(c)
            copy.input_scale_G.fill_(1.0)
        return copy.to(self.input_scale_G.device)


class UntiedSAE(StackedSAE):
    """Untied baseline, stacked: acts = relu(pre). Parameters: W_enc_GDM, b_enc_GM, W_dec_GMD (unit
    rows), b_dec_GD. Subclasses (topk, batchtopk, jumprelu, in their methods' files) override
    ``activate`` (the inference encoder) and add their own state; ``encoder`` names the rule.

    Pre-activations: pre = (x - b_dec) W_enc + b_enc, computed as x W_enc + (b_enc - b_dec W_enc) so the
    gradient to b_dec does not need a [B, D] x [D, M] product (same value, our choice for speed).
    """

    encoder = "relu"
    legacy_buffers = ("k_G", "threshold_G")   # every UntiedSAE carried topk's k and batchtopk's threshold

    def __init__(self, G: int, d: int, width: int, encoder: str | None = None):
        super().__init__(G, d, width)
        if encoder not in (None, self.encoder):   # checkpoints name it in their structure
            raise ValueError(f"{type(self).__name__} encodes with {self.encoder!r}, got encoder={encoder!r}")
        self.W_enc_GDM = nn.Parameter(torch.zeros(G, d, width))
        self.b_enc_GM = nn.Parameter(torch.zeros(G, width))
        self.W_dec_GMD = nn.Parameter(torch.zeros(G, width, d))
        self.b_dec_GD = nn.Parameter(torch.zeros(G, d))
        self.trainable_names = ("W_enc_GDM", "b_enc_GM", "W_dec_GMD", "b_dec_GD")

    def structure(self) -> dict:
        return {"encoder": self.encoder}

    def pre_activations(self, x_GBD: torch.Tensor) -> torch.Tensor:
        shift_GM = self.b_enc_GM - torch.bmm(self.b_dec_GD[:, None, :], self.W_enc_GDM)[:, 0, :]
        return torch.baddbmm(shift_GM[:, None, :], x_GBD, self.W_enc_GDM)

    def activate(self, pre_GBM: torch.Tensor) -> torch.Tensor:
        """The inference encoder on the pre-activations: relu here."""
        return torch.relu(pre_GBM)

    @torch.no_grad()
    def encode(self, x_GBD: torch.Tensor) -> torch.Tensor:
        return self.activate(self.pre_activations(x_GBD))

    @torch.no_grad()
    def decode(self, acts_GBM: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.b_dec_GD[:, None, :], acts_GBM, self.W_dec_GMD)

    def decoder_rows(self) -> torch.Tensor:
        return self.W_dec_GMD.detach()


def above_threshold(pre: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """pre where pre > theta, else 0 (a JumpReLU; theta broadcasts against pre)."""
    return pre * torch.gt(pre, theta, out=torch.empty_like(pre))


def topk_acts(pre_GBM: torch.Tensor, k_G: torch.Tensor, ks: list[int] | None = None) -> torch.Tensor:
    """relu of the k_g largest pre-activations per sample, zero elsewhere (Gao et al. 2024).
    Models of a stack may have different k: take the top max(k) and mask ranks >= k_g.
    ``ks``: the same k_g as Python ints, which spares a host sync (training passes them)."""
    k_max, k_min = (max(ks), min(ks)) if ks is not None else (int(k_G.max()), int(k_G.min()))
    values, index = pre_GBM.topk(k_max, dim=2)
    if k_min != k_max:
        rank_ok = torch.arange(k_max, device=pre_GBM.device)[None, None, :] < k_G[:, None, None]
        values = values * rank_ok
    return torch.zeros_like(pre_GBM).scatter(2, index, torch.relu(values))


class SAE(nn.Module):
    """Single-model view of a stacked SAE with G = 1: what metrics, checkpoints and users see.

    ``W_dec`` [M, d] are the effective decoder rows (x_hat = encode(x) @ W_dec + bias), ``encode``
    accepts [B, d] (or [d]) and returns acts [B, M], ``decode`` maps acts back, ``model(x)`` is x_hat.
    """

    def __init__(self, stack: StackedSAE, method: str, config=None):
        super().__init__()
        if stack.G != 1:
            raise ValueError(f"SAE wraps a single model (G = 1), got G = {stack.G}")
        self.stack = stack
        self.method = method
        self.config = config

    @property
    def width(self) -> int:
        return self.stack.width

    @property
    def d(self) -> int:
        return self.stack.d

    @property
    def W_dec(self) -> torch.Tensor:
        return self.stack.decoder_rows()[0]

    @property
    def b_dec(self) -> torch.Tensor:
        s = self.stack
        return (s.offset_GD() if isinstance(s, TiedSAE) else s.b_dec_GD.detach())[0]

    def _lift(self, x: torch.Tensor) -> tuple[torch.Tensor, bool]:
        x = torch.as_tensor(x, dtype=torch.float32)
        single = x.dim() == 1
        return (x[None, None] if single else x[None]), single

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        x3, single = self._lift(x)
        acts = self.stack.encode(x3)[0]
        return acts[0] if single else acts

    @torch.no_grad()
    def decode(self, acts: torch.Tensor) -> torch.Tensor:
        a3, single = self._lift(acts)
        out = self.stack.decode(a3)[0]
        return out[0] if single else out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def __repr__(self) -> str:
        return f"SAE(method={self.method!r}, d={self.d}, width={self.width})"
