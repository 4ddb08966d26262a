"""DeepLIFT/SHAP: the DeepLIFT-safe copy of the network, contributions, convergence, the rules' failures."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from chromtransfer.encoding import N_CODE, one_hot
from chromtransfer.interpret.deeplift import (
    ConvergenceWarning,
    TargetOutput,
    contributions,
    convergence_summary,
    deeplift_shap,
    dinucleotide_references,
    within_tolerance,
)
from chromtransfer.interpret.plain_network import Add, PlainConvUnit, plain_network
from networks import random_network

pytestmark = pytest.mark.usefixtures("one_torch_thread")
LENGTH = 48


def _model(head: str = "finetune", dtype=torch.float64, seed: int = 3, **kwargs):
    """A narrow network with non-trivial BatchNorm statistics, in eval mode."""
    return random_network(head, width=0.125, dtype=dtype, seed=seed, **kwargs)


def _codes(n: int = 4, seed: int = 0) -> np.ndarray:
    codes = np.random.default_rng(seed).integers(0, 4, size=(n, LENGTH)).astype(np.uint8)
    codes[1, 7] = N_CODE
    return codes


def test_plain_network_equals_the_model_with_one_relu_module_per_use():
    model = _model(dtype=torch.float32)
    x = one_hot(torch.from_numpy(_codes(6)), torch.float32)
    with torch.no_grad():
        reference = model(x)  # the fused channels-last CPU path
    plain = plain_network(model)
    assert not plain.training and next(plain.parameters()).dtype == torch.float32
    calls: dict[str, int] = {}
    hooks = [module.register_forward_hook(lambda m, i, o, name=name: calls.__setitem__(name, calls.get(name, 0) + 1))
             for name, module in plain.named_modules() if isinstance(module, (nn.ReLU, Add))]
    with torch.no_grad():
        out = plain(x)
    for hook in hooks:
        hook.remove()
    np.testing.assert_allclose(out.numpy(), reference.numpy(), rtol=0, atol=1e-5)
    relus = [name for name, m in plain.named_modules() if isinstance(m, nn.ReLU)]
    units = [m for m in plain.modules() if isinstance(m, PlainConvUnit)]
    # one ReLU per conv unit, the last conv's, one per hidden Dense; each called once per pass
    assert len(relus) == len(units) + 1 + len(model.config.head_units) == len({id(m) for m in plain.modules()
                                                                                 if isinstance(m, nn.ReLU)})
    assert all(calls[name] == 1 for name in relus)
    assert sum(1 for name in calls if name.endswith(".add")) == 8  # every residual add is a module
    # float64: the same function to rounding; the model itself is untouched
    model64 = _model()
    x64 = x.double()
    with torch.no_grad():
        np.testing.assert_allclose(plain_network(model64)(x64).numpy(), model64(x64).numpy(), rtol=1e-12, atol=1e-12)
    assert model64.state_dict().keys() == plain.state_dict().keys()
    with pytest.raises(TypeError, match="ChromTransferNet"):
        plain_network(nn.Linear(4, 1))


@pytest.mark.parametrize("target", ["logit", "probability"])
def test_contributions_add_up_and_agree_with_tangermeme(target):
    from tangermeme.deep_lift_shap import deep_lift_shap as tangermeme_deep_lift_shap

    model = _model()
    codes = _codes()
    result = deeplift_shap(model, codes, target=target, references=5, seed=11, batch_size=10, device="cpu")
    assert result.scores.shape == codes.shape and result.hypothetical.shape == (*codes.shape, 4)
    # the projected contribution is the hypothetical one of the present base; N scores 0
    present = np.take_along_axis(result.hypothetical, np.minimum(codes, 3)[..., None].astype(np.int64), -1)[..., 0]
    np.testing.assert_allclose(result.scores[codes < 4], present[codes < 4], rtol=1e-6, atol=1e-7)
    assert result.scores[1, 7] == 0
    # the contributions add up to f(x) - mean f(references)
    x = one_hot(torch.from_numpy(codes), torch.float64)
    refs = dinucleotide_references(x, 5, 11)
    wrapper = TargetOutput(model, target, False, 0)
    with torch.no_grad():
        expected = wrapper(x)[:, 0] - wrapper(refs.reshape(-1, 4, LENGTH)).reshape(len(codes), 5).mean(dim=1)
    np.testing.assert_allclose(result.output_difference, expected.numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(result.scores.sum(axis=1), expected.numpy(), rtol=1e-5, atol=1e-6)
    assert np.abs(result.delta).max() < 1e-6 and within_tolerance(result.delta, result.output_difference).all()
    # tangermeme's own call on the original model with the same references: the same contributions
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = tangermeme_deep_lift_shap(wrapper, x, references=refs, hypothetical=True, device="cpu",
                                           only_warn=True, batch_size=7)
    np.testing.assert_allclose(result.hypothetical, theirs.permute(0, 2, 1).numpy(), rtol=1e-5, atol=1e-7)
    # seeded and independent of batching
    again = deeplift_shap(model, codes[::-1].copy(), target=target, references=5, seed=11, batch_size=3,
                          device="cpu")
    np.testing.assert_array_equal(again.scores[::-1], result.scores)
    other = deeplift_shap(model, codes, target=target, references=5, seed=12, batch_size=10, device="cpu")
    assert not np.allclose(other.scores, result.scores)


def _with_relus(network: nn.Module, make) -> nn.Module:
    for module in network.modules():
        if isinstance(module, PlainConvUnit):
            module.relu = make()
    return network


class FunctionalReLU(nn.Module):
    """A ReLU DeepLIFT has no rule for (as ``torch.relu`` called inside a forward)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x)


def test_convergence_check_catches_a_relu_outside_the_rules():
    model = _model()
    codes = _codes(3, seed=5)
    real = contributions(plain_network(model), codes, target="logit", references=4, device="cpu")
    assert within_tolerance(real.delta, real.output_difference).all()
    broken = contributions(_with_relus(plain_network(model), FunctionalReLU), codes, target="logit", references=4,
                           device="cpu")
    assert not within_tolerance(broken.delta, broken.output_difference).any()
    summary = convergence_summary(broken.delta, broken.output_difference)
    assert summary["within_tolerance"] == 0 and summary["max_abs"] > 1e-2
    # one ReLU module shared by every conv unit: each call keeps its own rule, so it still adds up
    shared = nn.ReLU()
    reused = contributions(_with_relus(plain_network(model), lambda: shared), codes, target="logit", references=4,
                           device="cpu")
    np.testing.assert_allclose(reused.scores, real.scores, rtol=1e-6, atol=1e-9)
    # the pipeline warns and records the deltas
    from chromtransfer.interpret import pipeline

    inputs = pipeline.AttributionInputs(codes, np.array(["a", "b", "c"]), np.full(3, ""), np.full(3, -1),
                                        np.full(3, -1), np.full(3, "+"))
    import chromtransfer.interpret.deeplift as deeplift

    original = deeplift.plain_network
    deeplift.plain_network = lambda m: _with_relus(original(m), FunctionalReLU)
    try:
        with pytest.warns(ConvergenceWarning, match="3 of 3 sequences"):
            result = pipeline.attribute(model, inputs, method="deeplift_shap", target="logit", select="all",
                                        references=4, device="cpu")
    finally:
        deeplift.plain_network = original
    assert result.convergence_delta.shape == (3,)
    assert result.manifest["deeplift_shap"]["convergence"]["within_tolerance"] == 0


def test_api_deeplift_shap_round_trip_and_ensemble(tmp_path):
    import chromtransfer as ct
    from chromtransfer.ensemble import ModelEnsemble
    from chromtransfer.errors import ChromTransferError

    model = _model(dtype=torch.float32)
    codes = _codes(3, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        result = ct.attribute(model, codes, method="deeplift_shap", target="probability", references=3, seed=4)
    assert result.method == "deeplift_shap" and result.hypothetical.shape == (3, LENGTH, 4)
    direct = deeplift_shap(model, codes, target="probability", references=3, seed=4)
    np.testing.assert_allclose(result.scores, direct.scores, rtol=1e-6, atol=1e-8)
    result.save(tmp_path / "a")
    again = ct.load_attributions(tmp_path / "a")
    np.testing.assert_array_equal(again.hypothetical, result.hypothetical)
    np.testing.assert_array_equal(again.convergence_delta, result.convergence_delta)
    assert again.manifest["deeplift_shap"]["references"] == 3
    assert again.manifest["deeplift_shap"]["convergence"]["share_within_tolerance"] == 1.0
    with pytest.raises(ChromTransferError, match="DeepLIFT/SHAP runs on one model"):
        ct.attribute(ModelEnsemble([model, model], ["a", "b"]), codes, method="deeplift_shap")
    with pytest.raises(ChromTransferError, match="references applies"):
        ct.attribute(model, codes, method="grad_x_input", references=3)
