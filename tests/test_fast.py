"""The optimised inference model (chromtransfer.accel.fast) computes what the plain model computes.

Full-width network, eval mode, BatchNorm statistics calibrated on data and then perturbed (so
every BatchNorm does real work and activations are O(1), as in a trained model), sequences with
runs of N in the middle and at both edges, lengths 600 and 1000. Compared with the plain model:
pooled features and probabilities within 1e-5, logits within 1e-5 relative to their scale.
"""
from __future__ import annotations

import copy

import pytest
import torch

import chromtransfer.accel.kernels as kernels
import chromtransfer.models as models
from chromtransfer.accel.fast import FuseOptions, forward_in_chunks, fuse_for_inference, one_hot_nlc
from chromtransfer.encoding import one_hot
from chromtransfer.models import build_model

TOL = 1e-5


def _codes(n: int, length: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, 4, (n, length), generator=gen, dtype=torch.uint8)
    codes[0, :30] = 4                      # N run at the left edge
    codes[1, -25:] = 4                     # N run at the right edge
    codes[2, length // 2 - 40:length // 2 + 10] = 4  # N run in the middle
    codes[3, :] = 4                        # all N
    codes[4, ::7] = 4                      # scattered N
    return codes


def _conditioned(head: str, seed: int = 0) -> models.ChromTransferNet:
    """A random network whose BatchNorm statistics come from data, then perturbed."""
    torch.manual_seed(seed)
    model = build_model(head)
    gen = torch.Generator().manual_seed(seed + 1)
    calibration = one_hot(torch.randint(0, 4, (48, 600), generator=gen, dtype=torch.uint8))
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    model.train()
    for bn in bns:
        bn.momentum = None
    with torch.no_grad():
        for part in calibration.split(16):
            model(part)
        for bn in bns:
            bn.momentum = models.BN_MOMENTUM
            c = bn.num_features
            bn.running_mean.add_(0.05 * torch.randn(c, generator=gen))
            bn.running_var.mul_(torch.empty(c).uniform_(0.7, 1.4, generator=gen))
            bn.weight.copy_(torch.empty(c).uniform_(0.5, 1.5, generator=gen)
                            * torch.where(torch.rand(c, generator=gen) < 0.1, -1.0, 1.0))
            bn.bias.copy_(torch.empty(c).uniform_(-0.2, 0.2, generator=gen))
    return model.eval()


@pytest.fixture(scope="module")
def pretrain_model():
    return _conditioned("pretrain")


def _plain_outputs(model, x):
    """The plain path: eval mode with autograd recording uses the (N, C, L) kernels."""
    with torch.enable_grad():
        features = model.body(x)
        logits = model.head(features)
    return features.detach(), logits.detach()


def _assert_same(got_logits, want_logits, got_features=None, want_features=None):
    scale = max(1.0, float(want_logits.abs().max()))
    assert float((got_logits - want_logits).abs().max()) <= TOL * scale
    prob = float((torch.sigmoid(got_logits) - torch.sigmoid(want_logits)).abs().max())
    assert prob <= TOL
    if got_features is not None:  # float32 rounding grows with the features' magnitude too
        feature_scale = max(1.0, float(want_features.abs().max()))
        assert float((got_features - want_features).abs().max()) <= TOL * feature_scale


@pytest.mark.parametrize("length", [600, 1000])
def test_fused_equals_plain_model(pretrain_model, length):
    codes = _codes(6, length, seed=length)
    x = one_hot(codes)
    want_features, want_logits = _plain_outputs(pretrain_model, x)
    fused = fuse_for_inference(pretrain_model)
    with torch.inference_mode():
        got_logits = fused(x)
        got_codes = fused.forward_codes(codes)
        got_features = fused.body(one_hot_nlc(codes))
        fast_path = pretrain_model(x)  # the model's own channels-last inference path
    _assert_same(got_logits, want_logits, got_features, want_features)
    _assert_same(got_codes, want_logits)
    _assert_same(fast_path, want_logits)
    assert float(want_logits.std()) > 1e-3  # the sequences are told apart: a real comparison


@pytest.mark.parametrize("options", [FuseOptions(pointwise=False), FuseOptions(merge_siblings=True),
                                     FuseOptions(fold_head_bn=False), FuseOptions(trim_even=False),
                                     FuseOptions(pointwise=False, trim_even=False)])
def test_every_option_is_exact(pretrain_model, options):
    codes = _codes(5, 600, seed=3)
    _, want = _plain_outputs(pretrain_model, one_hot(codes))
    with torch.inference_mode():
        got = fuse_for_inference(pretrain_model, options).forward_codes(codes)
    _assert_same(got, want)


@pytest.mark.parametrize("head", ["finetune", "multiclass"])
def test_other_heads(head):
    model = _conditioned(head, seed=5)
    codes = _codes(5, 600, seed=7)
    _, want = _plain_outputs(model, one_hot(codes))
    fused = fuse_for_inference(model)
    with torch.inference_mode():
        got = fused.forward_codes(codes)
    assert got.shape == want.shape == (5, 7 if head == "multiclass" else 1)
    _assert_same(got, want)
    assert fused.multiclass == model.multiclass


def test_short_sequences_and_narrow_network():
    """Shorter than the longest kernel: the zero-tap padding rewrite still matches."""
    torch.manual_seed(0)
    model = build_model("finetune", width=0.25).eval()
    codes = _codes(5, 30, seed=1)
    _, want = _plain_outputs(model, one_hot(codes))
    with torch.inference_mode():
        got = fuse_for_inference(model).forward_codes(codes)
    _assert_same(got, want)


def test_forward_in_chunks_matches_one_call(pretrain_model):
    fused = fuse_for_inference(pretrain_model)
    codes = _codes(11, 600, seed=2)
    threads = torch.get_num_threads()
    with torch.inference_mode():
        whole = fused.forward_codes(codes)
        chunked = forward_in_chunks(fused.forward_codes, codes, chunk=3, workers=2)
        serial = forward_in_chunks(fused.forward_codes, codes, chunk=4, workers=1)
    assert torch.get_num_threads() == threads  # the caller's thread count is restored
    _assert_same(chunked, whole)
    _assert_same(serial, whole)


def test_forward_in_chunks_reraises_worker_errors():
    def boom(part):
        raise ValueError("bad chunk")

    with pytest.raises(ValueError, match="bad chunk"):
        forward_in_chunks(boom, torch.zeros(8, 3), chunk=2, workers=2)


def test_fusing_leaves_the_model_alone(pretrain_model):
    model = copy.deepcopy(pretrain_model).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fused = fuse_for_inference(model)
    assert model.training  # mode restored
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    with pytest.raises(RuntimeError, match="inference only"):
        fused.train()


def test_one_hot_nlc_matches_one_hot():
    codes = _codes(5, 40, seed=4)
    a = one_hot_nlc(codes)
    assert a.shape == (5, 4, 1, 40) and a.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(a.squeeze(2), one_hot(codes))


def test_training_fast_path_matches_plain_path():
    """The channels-last CPU training path (accel/kernels.py) against the plain path: gradients (relative
    norm per parameter; the two paths round differently, each ~4e-6 from float64 here) and
    BatchNorm running statistics after one step. A BatchNorm whose batch mean is summed row
    after row in float32 misses this by orders of magnitude (~3e-2)."""
    torch.manual_seed(0)
    a = build_model("finetune", width=0.25)
    b = copy.deepcopy(a)
    x = one_hot(_codes(8, 200, seed=9))
    for m in (a, b):
        m.train()
        for d in m.modules():
            if isinstance(d, torch.nn.Dropout):
                d.p = 0.0  # deterministic comparison
    a(x).sum().backward()  # fast path
    saved = kernels.cpu_fast_path
    kernels.cpu_fast_path = lambda t, module: False
    try:
        b(x).sum().backward()  # plain path
    finally:
        kernels.cpu_fast_path = saved
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert float((p.grad - q.grad).norm() / q.grad.norm()) < 1e-4, name
    for (name, buf), other in zip(a.named_buffers(), b.buffers()):
        torch.testing.assert_close(buf, other, rtol=1e-5, atol=1e-6, msg=name)


def test_batch_norm_rows_matches_module_semantics():
    """Momentum None (cumulative average), dropout off, and a batch of one row behave as
    nn.BatchNorm1d does."""
    gen = torch.Generator().manual_seed(0)
    z = (torch.rand(500, 6, generator=gen) * 3 + 2).requires_grad_()
    no_dropout = torch.nn.Dropout(0.0)
    for momentum in (0.01, None):
        bn = torch.nn.BatchNorm1d(6, eps=1e-3, momentum=momentum).train()
        ref = torch.nn.BatchNorm1d(6, eps=1e-3, momentum=momentum).double().train()
        for _ in range(2):
            out = kernels.batch_norm_rows(bn, z, no_dropout)
            want = ref(z.detach().double()).float()
        torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(bn.running_mean, ref.running_mean.float(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(bn.running_var, ref.running_var.float(), rtol=1e-5, atol=1e-6)
        assert int(bn.num_batches_tracked) == 2
    with pytest.raises(ValueError, match="more than 1 value"):
        kernels.batch_norm_rows(torch.nn.BatchNorm1d(6).train(), z[:1], no_dropout)


def test_fast_dropout_keeps_the_rate_and_scale():
    torch.manual_seed(0)
    drop = torch.nn.Dropout(0.1).train()
    x = torch.ones(200_000, 4)
    y = kernels.dropout_cpu(x, drop)
    kept = (y != 0).float().mean()
    assert abs(float(kept) - 0.9) < 0.005
    assert torch.allclose(y[y != 0], torch.full_like(y[y != 0], 1 / 0.9))
    assert kernels.dropout_cpu(x, drop.eval()) is x


def test_predict_codes_fast_path_equals_plain(pretrain_model):
    import numpy as np

    from chromtransfer.inference import predict_codes

    codes = _codes(7, 600, seed=11).numpy()
    fast = predict_codes(pretrain_model, codes, batch_size=4, device="cpu", rc_average=True)
    plain = predict_codes(pretrain_model, codes, batch_size=4, device="cpu", rc_average=True, fast=False)
    assert fast.shape == plain.shape == (7, 1)
    assert np.abs(fast - plain).max() <= TOL


def test_hooks_see_every_module_of_a_unit():
    """With a hook on a unit's ReLU, the unit runs module by module, so the hook sees (N, C, L)."""
    torch.manual_seed(0)
    model = build_model("finetune", width=0.25).train()
    seen = []
    handle = model.body.stem.relu.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape)))
    try:
        model(one_hot(_codes(5, 50, seed=1))).sum().backward()
    finally:
        handle.remove()
    assert seen == [(5, model.body.stem.conv.out_channels, 50)]


def test_batchnorm_subclasses_keep_their_own_forward():
    """A BatchNorm1d subclass (e.g. the synchronised one of multi-process training) is called as a
    module, with the documented (N, C, L) shape, not replaced by the plain-BatchNorm arithmetic."""
    calls = []

    class Watched(torch.nn.BatchNorm1d):
        def forward(self, x):
            calls.append(tuple(x.shape))
            return super().forward(x)

    torch.manual_seed(0)
    model = build_model("finetune", width=0.25).train()
    old = model.body.stem.bn
    model.body.stem.bn = Watched(old.num_features, eps=old.eps, momentum=old.momentum)
    model(one_hot(_codes(5, 40, seed=2))).sum().backward()
    assert calls == [(5, old.num_features, 40)]


def test_codes_runner_only_where_it_applies(pretrain_model):
    from chromtransfer.accel.fast import codes_runner

    assert codes_runner(copy.deepcopy(pretrain_model).double()) is None  # float64: the model itself
    assert codes_runner(pretrain_model, "cuda") is None  # elsewhere than the CPU: the model itself
    assert codes_runner(torch.nn.Linear(4, 1)) is None
    runner = codes_runner(pretrain_model, chunk=2, workers=2)
    codes = _codes(5, 600, seed=12)
    _, want = _plain_outputs(pretrain_model, one_hot(codes))
    with torch.inference_mode():
        _assert_same(runner(codes), want)


@pytest.mark.parametrize("length", [1, 7, 600])
def test_trimmed_even_kernels_equal_zero_tap_kernels(pretrain_model, length):
    """Both ways of running TensorFlow's asymmetric 'same' padding give the same logits, down to
    lengths shorter than every kernel; the trimmed result keeps channels-last memory."""
    codes = _codes(5, length, seed=11)
    trimmed = fuse_for_inference(pretrain_model, FuseOptions(trim_even=True))
    zero_tap = fuse_for_inference(pretrain_model, FuseOptions(trim_even=False))
    assert trimmed.body.block3.unit1.conv.weight.shape[-1] == 10  # no zero tap
    assert zero_tap.body.block3.unit1.conv.weight.shape[-1] == 11
    with torch.inference_mode():
        x4 = one_hot_nlc(codes)
        y = trimmed.body.stem(x4)
        out = trimmed.body.block1.unit1(y)
        assert out.shape == (5, 32, 1, length)
        assert out.is_contiguous(memory_format=torch.channels_last)
        _assert_same(trimmed.forward_codes(codes), zero_tap.forward_codes(codes))
