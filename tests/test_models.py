"""Tests of ccalens.models.nets: the features / classifier interface, shapes, ResNet parameter counts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ccalens.models import SHLCNN, CifarResNet, ViewMLP, named_feature_layers


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _check_interface(model: nn.Module, x: torch.Tensor, d: int, n_classes: int) -> None:
    model.eval()
    with torch.no_grad():
        feats = model.features(x)
        logits = model(x)
    assert feats.shape == (x.shape[0], d)
    assert isinstance(model.classifier, nn.Linear)
    assert model.classifier.in_features == d and model.classifier.out_features == n_classes
    assert logits.shape == (x.shape[0], n_classes)
    torch.testing.assert_close(logits, model.classifier(feats), rtol=0, atol=0)
    assert (feats >= 0).all()  # after the last ReLU

    # the last hooked layer produces exactly the features
    names = named_feature_layers(model)
    modules = dict(model.named_modules())
    assert all(n in modules for n in names)
    captured = {}
    handle = modules[names[-1]].register_forward_hook(lambda m, i, o: captured.setdefault("out", o))
    with torch.no_grad():
        model(x)
    handle.remove()
    torch.testing.assert_close(captured["out"].reshape(x.shape[0], -1), feats)


def test_view_mlp_interface_and_normalisation():
    torch.manual_seed(0)
    model = ViewMLP(6, 10, hidden=(32, 16), dropout=0.3)
    _check_interface(model, torch.randn(5, 6), 16, 10)
    assert named_feature_layers(model) == ["body.relu0", "body.relu1"]
    x = torch.randn(4, 6) * 100 + 50
    mean, std = x.mean(0), x.std(0)
    ref = model.features((x - mean) / std)
    model.set_input_normalization(mean, std)
    torch.testing.assert_close(model.features(x), ref)
    # buffers travel with the state dict
    clone = ViewMLP(6, 10, hidden=(32, 16))
    clone.load_state_dict(model.state_dict())
    torch.testing.assert_close(clone.input_std, std)
    with pytest.raises(ValueError, match="in_features"):
        ViewMLP(0, 10)
    with pytest.raises(ValueError, match="mean"):
        model.set_input_normalization(torch.zeros(5), torch.ones(6))
    with pytest.raises(ValueError, match="x must have shape"):
        model.features(torch.zeros(2, 7))


def test_view_mlp_dropout_only_in_train_mode():
    torch.manual_seed(0)
    model = ViewMLP(10, 3, dropout=0.5)
    x = torch.randn(8, 10)
    model.train()
    a, b = model(x), model(x)
    assert not torch.equal(a, b)
    model.eval()
    assert torch.equal(model(x), model(x))


def test_shl_cnn_interface_and_shapes():
    torch.manual_seed(0)
    model = SHLCNN(n_classes=8, in_channels=1)
    _check_interface(model, torch.randn(3, 1, 48, 48), 128, 8)
    assert named_feature_layers(model) == ["block1", "block2", "block3", "fc_relu"]
    multi = SHLCNN(n_classes=8, in_channels=3)
    _check_interface(multi, torch.randn(2, 3, 48, 48), 128, 8)
    with pytest.raises(ValueError, match="x must have shape"):
        model(torch.randn(2, 1, 32, 32))


def test_shl_cnn_is_the_papers_network():
    # Moreau et al.'s code: conv 3x3 16/32/64 with padding 1, 1, 0; 48 -> 24 -> 12 -> 10 -> 5; FC 1,600 -> 128 -> 8
    model = SHLCNN(n_classes=8, in_channels=1)
    assert [b[0].padding for b in (model.block1, model.block2, model.block3)] == [(1, 1), (1, 1), (0, 0)]
    assert model.fc.in_features == 1600
    assert _n_params(model) == 229_256
    # 160 + 4,640 + 18,496 conv, 204,928 + 1,032 fully connected
    assert _n_params(model) == (16 * 9 + 16) + (32 * 16 * 9 + 32) + (64 * 32 * 9 + 64) + (1600 * 128 + 128) + (
        128 * 8 + 8
    )
    shapes = []
    hooks = [getattr(model, b).register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[1:])))
             for b in ("block1", "block2", "block3")]
    model.eval()(torch.randn(2, 1, 48, 48))
    for h in hooks:
        h.remove()
    assert shapes == [(16, 24, 24), (32, 12, 12), (64, 5, 5)]
    assert SHLCNN(input_size=16).fc.in_features == 64  # 16 -> 8 -> 4 -> 2 -> 1
    with pytest.raises(ValueError, match="input_size must be >= 16"):
        SHLCNN(input_size=12)


@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_resnet20_interface(shortcut):
    torch.manual_seed(0)
    model = CifarResNet(depth=20, shortcut=shortcut)
    assert model.n == 3
    _check_interface(model, torch.randn(2, 3, 32, 32), 64, 10)
    names = named_feature_layers(model)
    assert names[0] == "relu" and names[-1] == "pool" and len(names) == 2 + 3 * 3


def test_resnet_parameter_counts_match_he_et_al():
    # He et al. (2016), Table 6: ResNet-20 0.27M, ResNet-32 0.46M, ResNet-56 0.85M parameters (option A).
    assert round(_n_params(CifarResNet(depth=20, shortcut="A")) / 1e6, 2) == 0.27
    assert round(_n_params(CifarResNet(n=5, shortcut="A")) / 1e6, 2) == 0.46
    assert round(_n_params(CifarResNet(depth=56, shortcut="A")) / 1e6, 2) == 0.85
    # option B adds two 1x1 projections with batch norm: 16*32 + 64 + 32*64 + 128 parameters
    extra = _n_params(CifarResNet(depth=20, shortcut="B")) - _n_params(CifarResNet(depth=20, shortcut="A"))
    assert extra == 16 * 32 + 2 * 32 + 32 * 64 + 2 * 64


def test_moreau_resnet38_with_3x3_projection_shortcuts():
    # Moreau et al.'s CIFAR network: ResNet-38 (n = 6), 3x3 conv + BN projection shortcuts where the shape changes
    model = CifarResNet(depth=38, shortcut="conv3x3")
    assert model.n == 6
    projections = [m.projection for m in model.modules() if getattr(m, "projection", None) is not None]
    assert [tuple(p[0].weight.shape) for p in projections] == [(32, 16, 3, 3), (64, 32, 3, 3)]
    assert all(p[0].stride == (2, 2) and p[0].padding == (1, 1) and p[0].bias is None for p in projections)
    option_a = _n_params(CifarResNet(depth=38, shortcut="A"))
    assert option_a == 561_370
    assert _n_params(model) - option_a == (16 * 32 * 9 + 2 * 32) + (32 * 64 * 9 + 2 * 64)  # 23,232
    assert _n_params(model) == 584_602  # "about 0.585M"
    _check_interface(model, torch.randn(2, 3, 32, 32), 64, 10)


def test_resnet_option_a_shortcut_is_identity_with_zero_padding():
    model = CifarResNet(depth=20, shortcut="A").eval()
    block = model.stage2[0]
    x = torch.randn(2, 16, 8, 8)
    sc = block._shortcut(x)
    assert sc.shape == (2, 32, 4, 4)
    torch.testing.assert_close(sc[:, :16], x[:, :, ::2, ::2])
    assert torch.count_nonzero(sc[:, 16:]) == 0


def test_resnet_argument_errors():
    with pytest.raises(ValueError, match="depth"):
        CifarResNet(depth=21)
    with pytest.raises(ValueError, match="shortcut"):
        CifarResNet(depth=20, shortcut="C")
    with pytest.raises(ValueError, match="disagree"):
        CifarResNet(depth=20, n=9)
    assert CifarResNet(depth=None, n=1).depth == 8


def test_named_feature_layers_rejects_foreign_models():
    with pytest.raises(TypeError, match="feature_layer_names"):
        named_feature_layers(nn.Linear(2, 2))
