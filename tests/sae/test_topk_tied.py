"""The tied-TopK arm: the encoder is the decoder's transpose, and training moves only the shared matrix."""

import torch

from polysemy.sae.methods.topk_tied import TIED_TOPK, TiedTopKSAE
from polysemy.sae import TrainConfig, list_methods, train


def _data(V, seed=0):
    gen = torch.Generator().manual_seed(seed)
    while True:
        h = (torch.rand(128, V.shape[0], generator=gen) < 0.05).float() * torch.rand(128, V.shape[0], generator=gen)
        yield h @ V


def test_tied_topk_encodes_with_the_decoder_transpose():
    assert TIED_TOPK in list_methods()
    gen = torch.Generator().manual_seed(0)
    V = torch.nn.functional.normalize(torch.randn(48, 16, generator=gen), dim=1)
    result = train(TrainConfig(method=TIED_TOPK, width=48, steps=150, batch_size=128, params={"k": 4}),
                   _data(V), d=16, progress=False)
    stack = result.model.stack
    assert isinstance(stack, TiedTopKSAE) and "W_enc_GDM" not in stack.trainable_names
    x = next(_data(V, seed=1))
    pre = (x - stack.b_dec_GD[0]) @ stack.W_dec_GMD[0].T + stack.b_enc_GM[0]
    torch.testing.assert_close(stack.pre_activations(x[None])[0], pre, rtol=1e-5, atol=1e-5)
    acts = result.model.encode(x)
    assert torch.all((acts > 0).sum(1) <= 4)
    torch.testing.assert_close(result.model.W_dec.norm(dim=1), torch.ones(48), rtol=1e-5, atol=1e-5)
    # it learns: far better than the mean
    nmse = float(((result.model(x) - x) ** 2).sum() / ((x - x.mean(0)) ** 2).sum())
    assert nmse < 0.6


def test_tied_topk_checkpoint_and_saelens_export_use_the_tied_encoder(tmp_path):
    """Saved and loaded as its own class; exported with W_enc = W_dec^T (the untrained W_enc is never read)."""
    from polysemy.sae.checkpoint import export_saelens, import_saelens, load_checkpoint, save_checkpoint

    gen = torch.Generator().manual_seed(0)
    V = torch.nn.functional.normalize(torch.randn(24, 8, generator=gen), dim=1)
    result = train(TrainConfig(method=TIED_TOPK, width=24, steps=20, batch_size=64, params={"k": 3}),
                   _data(V), d=8, progress=False)
    x = next(_data(V, seed=2))
    save_checkpoint(result, tmp_path / "ck")
    back = load_checkpoint(tmp_path / "ck").model
    assert isinstance(back.stack, TiedTopKSAE) and torch.equal(back.encode(x), result.model.encode(x))
    export_saelens(result.model, tmp_path / "sl")
    imported = import_saelens(tmp_path / "sl")
    torch.testing.assert_close(imported.encode(x), result.model.encode(x), rtol=1e-6, atol=1e-6)
