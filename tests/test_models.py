"""The network's structure: parameter counts, padding, body transfer, CLI table."""
import subprocess
import sys

import pytest
import torch

from chromtransfer.cli import main
from chromtransfer.models import (
    ModelConfig,
    build_model,
    count_parameters,
    l2_penalty,
    same_padding,
    transfer_body,
)

PUBLISHED_COUNTS = {  # Keras convention: BatchNorm moving statistics count as parameters
    "pretrain": (655_777, 652_513),
    "finetune": (653_537, 651_553),
    "finetune-bn": (657_761, 653_665),
    # the authors' multi-class model (model.config.multi-class.json): the pre-training head, 7 outputs
    "multiclass": (656_551, 653_287),
    "multiclass-1024": (653_735, 651_751),
}


@pytest.mark.parametrize("head", sorted(PUBLISHED_COUNTS))
def test_parameter_counts_match_keras(head):
    counts = count_parameters(build_model(head))
    assert (counts["total"], counts["trainable"]) == PUBLISHED_COUNTS[head]


def test_body_has_published_size():
    body = build_model("pretrain").body
    n = sum(p.numel() for p in body.parameters()) + sum(
        b.numel() for name, b in body.named_buffers() if "running" in name)
    assert n == 554_144


def test_multiclass_has_seven_outputs():
    model = build_model("multiclass").eval()
    assert model(torch.zeros(2, 4, 600)).shape == (2, 7)
    assert model.config.head_units == (512, 128) and model.config.head_batchnorm
    assert build_model("multiclass-1024").config.head_units == (1024, 32)
    assert build_model("multiclass-1024").multiclass and not build_model("multiclass-1024").config.head_batchnorm


def test_multiclass_model_json_from_before_the_authors_head_reads_as_multiclass_1024():
    old = {"head": "multiclass", "n_outputs": 7, "width": 1.0, "head_units": [1024, 32], "dropout": 0.1,
           "classes": list("ABCDEFG")}
    config = ModelConfig.from_dict(old)
    assert config.head == "multiclass-1024" and not config.head_batchnorm and config.multiclass


def test_info_model_multiclass_reports_the_authors_parameter_count(capsys):
    assert main(["info", "model", "--head", "multiclass"]) == 0
    out = capsys.readouterr().out
    assert "total parameters: 656551" in out and "head: multiclass" in out


@pytest.mark.parametrize("k,expected", [(25, (12, 12)), (20, (9, 10)), (15, (7, 7)), (10, (4, 5)), (5, (2, 2))])
def test_same_padding_matches_tensorflow(k, expected):
    assert same_padding(k) == expected


def test_even_kernel_impulse_response_is_tensorflow_aligned():
    """An impulse at position p through a k=10 conv of ones reaches outputs p-5..p+4 (TF 'same')."""
    from chromtransfer.models import SamePadConv1d

    conv = SamePadConv1d(1, 1, 10)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.zero_()
    x = torch.zeros(1, 1, 40)
    x[0, 0, 20] = 1
    hit = torch.nonzero(conv(x)[0, 0]).flatten().tolist()
    assert hit == list(range(15, 25))


@pytest.mark.parametrize("length", [150, 600, 1000])
def test_any_length_and_logits_shape(length):
    model = build_model("finetune", width=0.25).eval()
    assert model(torch.zeros(3, 4, length)).shape == (3, 1)


def test_transfer_body_copies_whole_body_and_refreshes_head():
    torch.manual_seed(0)
    source = build_model("pretrain", width=0.25)
    with torch.no_grad():  # make BN statistics non-trivial so that copying them is tested
        for m in source.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    target = transfer_body(source, "finetune")
    for key, value in source.body.state_dict().items():
        assert torch.equal(value, target.body.state_dict()[key]), key
    assert target.config.head == "finetune" and target.config.head_units == (1024, 32)
    assert target.config.width == 0.25


def test_l2_penalty_is_keras_kernel_regularizer():
    model = build_model("pretrain", width=0.25)
    expected = 1e-4 * sum((m.weight ** 2).sum() for n, m in model.body.named_modules()
                          if isinstance(m, torch.nn.Conv1d) and n != "last_conv")
    assert torch.allclose(l2_penalty(model, 1e-4), expected)
    assert all(k is not model.body.last_conv.weight for k in model.conv_kernels())
    assert len(model.conv_kernels()) == 20  # conv1d .. conv1d_19 in the Keras graph


def test_config_round_trip():
    config = ModelConfig(head="multiclass", n_outputs=7, width=0.5, classes=list("ABCDEFG"))
    assert ModelConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError):
        ModelConfig(head="nonsense")


@pytest.mark.parametrize("head", sorted(PUBLISHED_COUNTS))
def test_info_model_cli_prints_counts(head, capsys):
    assert main(["info", "model", "--head", head]) == 0
    out = capsys.readouterr().out
    total, trainable = PUBLISHED_COUNTS[head]
    assert f"total parameters: {total}\n" in out
    assert f"trainable parameters: {trainable}\n" in out
    assert "body.stem.conv" in out


def test_console_script_runs():
    result = subprocess.run([sys.executable, "-m", "chromtransfer.cli", "info", "model"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "total parameters: 655777" in result.stdout
