"""Tests of the backbone registry (sktransfer._nn.backbones), of building
trunks and heads (sktransfer._nn.model) and of the freezing verbs
(sktransfer._nn.freezing)."""

import copy

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from torch import nn
from torchvision import models as tvm

from sktransfer import MLP, ImageBackbone, PretrainedClassifier, list_backbones
from sktransfer._nn import backbones as bb
from sktransfer._nn.backbones import Preprocessing
from sktransfer._nn.freezing import freeze, frozen_stages
from sktransfer._nn.model import (
    TransferModule,
    _adapter_preprocessing,
    _weights_preprocessing,
    build_trunk,
    check_image_size,
    make_head,
)

from .conftest import LABELS, TEXTS, fast_params, trunk_parts, tiny


class TinyTrunk(nn.Module):
    """A module outside the registry, with a direct parameter and BatchNorm."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)  # no parameters: not a stage
        self.block = nn.Sequential(nn.Conv2d(4, 6, 1), nn.BatchNorm2d(6))

    def forward(self, x):
        return self.block(self.pool(self.features(x * self.scale)))


def batchnorms(module):
    return {name: sub for name, sub in module.named_modules()
            if isinstance(sub, nn.modules.batchnorm._BatchNorm)}


def stage_norm_names(module, stage):
    return {f"{member}.{name}".rstrip(".")
            for member in stage
            if isinstance(bb.resolve_member(module, member), nn.Module)
            for name in batchnorms(bb.resolve_member(module, member))}


# -- registry ----------------------------------------------------------------


def test_list_backbones_is_sorted_and_names_the_families():
    names = list_backbones()
    assert names == sorted(names)
    assert len(names) == len(set(names))
    for name in ("resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_small",
                 "efficientnet_b0", "efficientnet_v2_s", "convnext_tiny", "vit_b_16",
                 "all-MiniLM-L6-v2"):
        assert name in names


@pytest.mark.parametrize("name", sorted(bb.REGISTRY))
def test_stages_cover_every_parameter_once_and_head_is_gone(name):
    adapter = bb.get_adapter(name)
    with torch.device("meta"):  # no memory, no real initialisation
        model = adapter.build(name)
    head = model.get_submodule(adapter.head_path)
    assert isinstance(head, nn.Linear)
    head_params = {id(p) for p in head.parameters()}
    assert bb.adapter_for_module(model) is adapter

    n_features = bb.replace_head(model, adapter.head_path)

    assert n_features == head.in_features
    assert isinstance(model.get_submodule(adapter.head_path), nn.Identity)
    all_params = [id(p) for p in model.parameters()]
    assert not head_params & set(all_params)
    stages = adapter.stages(model)
    assert len(stages) >= 4
    staged = []
    for stage in stages:
        params = bb.stage_parameters(model, stage)
        assert params, f"stage {stage} of {name} has no parameters"
        staged += [id(p) for p in params]
    assert len(staged) == len(set(staged)), f"a parameter of {name} is in two stages"
    assert set(staged) == set(all_params), f"stages of {name} miss parameters"


def test_unknown_backbone_suggests_close_names():
    with pytest.raises(ValueError, match=r"Unknown backbone 'resnet19'\. Did you mean .*'resnet18'"):
        bb.get_adapter("resnet19")


def test_unknown_backbone_without_close_names_lists_known_ones():
    with pytest.raises(ValueError, match="Known backbones: all-MiniLM-L6-v2, convnext_base") as excinfo:
        bb.get_adapter("alexnet_xyz_qq")
    assert "Did you mean" not in str(excinfo.value)


def test_unknown_backbone_through_the_estimator():
    X = np.zeros((4, 8, 8, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="Did you mean .*'mobilenet_v2'"):
        PretrainedClassifier("mobilenet_v22", weights=None, max_epochs=1).fit(X, [0, 1, 0, 1])


def test_backbone_of_wrong_type():
    with pytest.raises(TypeError, match="backbone must be a registry name"):
        build_trunk(42, None)



@pytest.mark.parametrize("backbone", ["mlp", MLP(hidden_layer_sizes=(8,))])
@pytest.mark.parametrize("as_frame", [False, True])
def test_texts_given_to_the_mlp_point_to_a_text_backbone(backbone, as_frame):
    X = pd.DataFrame({"review": TEXTS}) if as_frame else TEXTS
    with pytest.raises(ValueError, match=r"X holds texts.*takes a numeric table.*"
                                         r"backbone='all-MiniLM-L6-v2' or TextEncoder"):
        PretrainedClassifier(backbone, device="cpu").fit(X, LABELS)


def test_numeric_strings_are_still_a_table_for_the_mlp():
    X = np.array([["0.5"], ["1.5"], ["2.5"], ["3.5"]], dtype=object)
    clf = PretrainedClassifier("mlp", max_epochs=1, device="cpu")
    with pytest.warns(ConvergenceWarning):
        assert clf.fit(X, [0, 1, 0, 1]).n_features_in_ == 1

# -- recognising modules ------------------------------------------------------


@pytest.mark.parametrize("constructor, family", [
    (tvm.resnet18, "resnet"), (tvm.resnext50_32x4d, "resnet"),
    (tvm.mobilenet_v2, "mobilenet_v2"), (tvm.mobilenet_v3_small, "mobilenet_v3"),
    (tvm.efficientnet_b0, "efficientnet"), (tvm.convnext_tiny, "convnext"),
    (tvm.vit_b_32, "vit"),
])
def test_adapter_for_module_recognises_torchvision_instances(constructor, family):
    with torch.device("meta"):
        module = constructor()
    assert bb.adapter_for_module(module).family == family


def test_adapter_for_module_returns_none_for_other_modules():
    assert bb.adapter_for_module(nn.Sequential(nn.Conv2d(3, 4, 3))) is None
    assert bb.adapter_for_module(TinyTrunk()) is None


def test_generic_stages_of_a_sequential_cnn():
    cnn = nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )
    stages = bb.generic_stages(cnn)
    assert stages == [["0"], ["1"], ["3"]]
    staged = [id(p) for stage in stages for p in bb.stage_parameters(cnn, stage)]
    assert sorted(staged) == sorted(id(p) for p in cnn.parameters())


def test_generic_stages_put_direct_parameters_first():
    trunk = TinyTrunk()
    assert bb.generic_stages(trunk) == [["scale"], ["features"], ["block"]]
    assert bb.stage_parameters(trunk, ["scale"]) == [trunk.scale]


def test_module_without_parameters_is_refused():
    with pytest.raises(ValueError, match="has no parameters to transfer"):
        build_trunk(nn.Sequential(nn.ReLU(), nn.Flatten()), "DEFAULT")


# -- freezing ----------------------------------------------------------------


@pytest.fixture(scope="module")
def resnet18_trunk():
    torch.manual_seed(0)
    trunk, n_features, stages, _ = trunk_parts("resnet18", None)
    return trunk, n_features, stages


def freeze_stages(module, depth):
    """Freeze as ``freeze_depth=depth`` does."""
    freeze(module, frozen_stages(depth, module.n_stages, "test backbone"))


def transfer_module(resnet18_trunk):
    trunk, n_features, stages = resnet18_trunk
    return TransferModule(copy.deepcopy(trunk), make_head(n_features, (), 3, 0.0), stages, n_features)


@pytest.mark.parametrize("depth", [0, 2, 5])
def test_freeze_first_stages_of_resnet18(resnet18_trunk, depth):
    module = transfer_module(resnet18_trunk)
    assert module.n_stages == 5
    freeze_stages(module, depth)
    module.train()
    for index, stage in enumerate(module.stages):
        frozen = index < depth
        for param in bb.stage_parameters(module.trunk, stage):
            assert param.requires_grad is not frozen
        for name in stage_norm_names(module.trunk, stage):
            assert module.trunk.get_submodule(name).training is not frozen, name
    assert all(p.requires_grad for p in module.head.parameters())
    assert module.head.training


def test_frozen_batchnorm_statistics_do_not_change_in_training(resnet18_trunk):
    module = transfer_module(resnet18_trunk)
    freeze_stages(module, 2)  # conv1/bn1 and layer1
    module.train()
    frozen_bn, trained_bn = module.trunk.bn1, module.trunk.layer2[0].bn1
    frozen_before = frozen_bn.running_mean.clone()
    trained_before = trained_bn.running_mean.clone()
    loss = module(torch.randn(4, 3, 32, 32)).sum()
    loss.backward()
    torch.testing.assert_close(frozen_bn.running_mean, frozen_before, rtol=0, atol=0)
    assert not torch.equal(trained_bn.running_mean, trained_before)
    assert module.trunk.conv1.weight.grad is None
    assert module.trunk.layer1[0].conv1.weight.grad is None
    assert module.trunk.layer2[0].conv1.weight.grad is not None
    assert module.head[0].weight.grad is not None


def test_freeze_all_freezes_the_trunk_but_not_the_head(resnet18_trunk):
    module = transfer_module(resnet18_trunk)
    freeze_stages(module, "all")
    module.train()
    assert not any(p.requires_grad for p in module.trunk.parameters())
    assert all(p.requires_grad for p in module.head.parameters())
    norms = batchnorms(module.trunk)
    assert len(norms) == 20
    assert not any(bn.training for bn in norms.values())
    module.eval()
    module.train()  # going through eval and back keeps the frozen norms in eval
    assert not any(bn.training for bn in norms.values())


def test_freeze_a_stage_made_of_a_parameter():
    trunk = TinyTrunk()
    module = TransferModule(trunk, make_head(6, (), 2, 0.0), bb.generic_stages(trunk), 6)
    freeze_stages(module, 2)
    module.train()
    assert not trunk.scale.requires_grad
    assert not any(p.requires_grad for p in trunk.features.parameters())
    assert all(p.requires_grad for p in trunk.block.parameters())
    assert not trunk.features[1].training
    assert trunk.block[1].training
    assert module.frozen_norms == ["features"]  # the frozen stage's module, held in eval


def test_freeze_depth_beyond_the_stages_through_the_estimator():
    X = np.zeros((4, 8, 8, 3), dtype=np.uint8)
    clf = PretrainedClassifier(ImageBackbone("mobilenet_v2", image_size=32), weights=None,
                               max_epochs=1, freeze_depth=6, random_state=0)
    with pytest.raises(ValueError, match=r"freeze_depth=6 but backbone 'mobilenet_v2' has 5 "
                                         r"stages; use an int from 0 to 5"):
        clf.fit(X, [0, 1, 0, 1])
    assert not hasattr(clf, "n_stages_")


def test_freeze_depth_beyond_the_stages_names_the_backbone(tiny_backbone, digits32):
    X, y = digits32
    with pytest.raises(ValueError, match="freeze_depth=4 but backbone 'tinynet' has 3 stages"):
        PretrainedClassifier(**tiny(tiny_backbone, freeze_depth=4)).fit(X, y)


@pytest.mark.slow
def test_bn_mode_frozen_keeps_running_statistics(digits_small):
    X, y, _, _ = digits_small
    est = PretrainedClassifier(**fast_params(freeze_depth=0, bn_mode="frozen", lr=1e-3)).fit(X, y)
    ref = PretrainedClassifier(**fast_params(freeze_depth="all", max_epochs=1)).fit(X, y)
    state, source = est.net_.module_.trunk.state_dict(), ref.net_.module_.trunk.state_dict()
    running = [k for k in state if "running_" in k]
    assert running and all(torch.equal(state[k], source[k]) for k in running)
    assert not torch.equal(state["features.10.conv.0.0.weight"], source["features.10.conv.0.0.weight"])


# -- input sizes --------------------------------------------------------------


def test_vit_accepts_only_its_own_image_size():
    adapter = bb.get_adapter("vit_b_16")
    for prep in (_adapter_preprocessing(adapter),
                 _weights_preprocessing(tvm.ViT_B_16_Weights.IMAGENET1K_V1, adapter)):
        assert prep.fixed_size
        assert check_image_size(224, prep, "vit_b_16") == 224
        with pytest.raises(ValueError, match=r"'vit_b_16' only accepts 224x224 inputs; "
                                             r"got image_size=32"):
            check_image_size(32, prep, "vit_b_16")


def test_convnext_needs_a_minimum_image_size():
    prep = _adapter_preprocessing(bb.get_adapter("convnext_tiny"))
    assert check_image_size(32, prep, "convnext_tiny") == 32
    with pytest.raises(ValueError, match="at least 32 px; got image_size=16"):
        check_image_size(16, prep, "convnext_tiny")


def test_convolutional_backbones_accept_any_size():
    prep = Preprocessing(224, bb.IMAGENET_MEAN, bb.IMAGENET_STD)
    assert check_image_size(17, prep, "resnet18") == 17


BUILTIN_FAMILIES = ("resnet", "mobilenet_v2", "mobilenet_v3", "efficientnet", "convnext", "vit")


def test_every_builtin_convolutional_family_has_a_minimum_size():
    for adapter in bb._ADAPTERS:
        if adapter.family in BUILTIN_FAMILIES and not adapter.fixed_size:
            assert adapter.min_size == 32, adapter.family


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "mobilenet_v3_small",
                                  "efficientnet_b0", "convnext_tiny"])
def test_the_minimum_size_runs_and_gives_a_real_last_feature_map(name):
    # At the minimum, the last stage sees one real pixel (not only padding).
    adapter = bb.get_adapter(name)
    torch.manual_seed(0)
    model = adapter.build(name).eval()
    stages = adapter.stages(model)
    last_input = {}
    first_of_last = bb.resolve_member(model, stages[-1][0])
    first_of_last.register_forward_hook(lambda m, args, out: last_input.update(shape=out.shape))
    with torch.inference_mode():
        out = model(torch.rand(2, 3, adapter.min_size, adapter.min_size))
    assert out.shape[0] == 2 and torch.isfinite(out).all()
    assert last_input["shape"][-2:] == (1, 1)


def test_convnext_fails_below_its_minimum_size():
    model = bb.get_adapter("convnext_tiny").build("convnext_tiny").eval()
    with pytest.raises(RuntimeError), torch.inference_mode():
        model(torch.rand(1, 3, 31, 31))


@pytest.mark.parametrize("size", [1, 31])
def test_image_size_below_the_minimum_is_refused(size):
    clf = PretrainedClassifier(ImageBackbone("mobilenet_v2", image_size=size), weights=None,
                               max_epochs=1)
    with pytest.raises(ValueError, match=rf"'mobilenet_v2' needs images of at least 32 px; "
                                         rf"got image_size={size}"):
        clf.fit(np.zeros((4, 8, 8, 3), dtype=np.uint8), [0, 1, 0, 1])
    assert not hasattr(clf, "net_")
