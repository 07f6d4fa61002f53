"""Model loading runs no code from a file or module unless the person running AIM trusts it."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest
import torch
from attacks import write_factory_module, write_pickle_bomb

from aim_agent.config import ConfigError, load_config
from aim_agent.models import ModelPolicy, UntrustedModel, load_model, trusting
from aim_agent.models.probe import open_probe
from aim_agent.plugins import plugin_manager


def test_pickle_in_a_pt_file_does_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    bomb = write_pickle_bomb(tmp_path / "model.pt", marker)
    for load in (lambda: load_model(str(bomb)), lambda: open_probe(str(bomb), "0")):
        with pytest.raises(UntrustedModel) as err:
            load()
        assert "--trust-model" in str(err.value) and "aim.toml" in str(err.value)
    assert not marker.exists()
    with trusting(str(bomb)), pytest.raises(ValueError):  # the control: trusted, the payload does run
        load_model(str(bomb))
    assert marker.exists()


def test_torchscript_needs_trust(tmp_path: Path) -> None:
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.ReLU()).eval()
    with pytest.warns(DeprecationWarning):
        torch.jit.script(net).save(str(tmp_path / "net.ts"))
    with pytest.raises(UntrustedModel, match="TorchScript"):
        load_model(str(tmp_path / "net.ts"))
    with trusting(str(tmp_path / "net.ts")):
        assert load_model(str(tmp_path / "net.ts")).module is not None


def test_module_factory_is_not_imported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "imported"
    write_factory_module(tmp_path, "hostile_models", marker)
    monkeypatch.syspath_prepend(str(tmp_path))
    for spec in ("hostile_models:build", "os:abort"):
        with pytest.raises(UntrustedModel, match="module:factory"):
            load_model(spec)
    assert not marker.exists() and "hostile_models" not in sys.modules
    with trusting("hostile_models:build"):  # the operator's choice: it loads
        assert load_model("hostile_models:build").name == "hostile_models:build"
    assert marker.exists()
    sys.modules.pop("hostile_models", None)


def test_transformers_weights_are_read_without_pickle_code(tmp_path: Path) -> None:
    """A transformers folder whose pytorch_model.bin is a pickle bomb: weights_only refuses it."""
    from transformers import ResNetConfig, ResNetModel

    folder = tmp_path / "hf"
    config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 8], depths=[1, 1], layer_type="basic")
    ResNetModel(config).save_pretrained(folder)
    for weights in folder.glob("*.safetensors"):
        weights.unlink()
    marker = tmp_path / "pwned"
    write_pickle_bomb(folder / "pytorch_model.bin", marker)
    with pytest.raises(Exception):  # noqa: B017 (transformers' own error type and text)
        load_model(str(folder))
    assert not marker.exists()


def test_trust_does_not_leak_to_other_threads(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    bomb = write_pickle_bomb(tmp_path / "model.pt", marker)
    errors: list[BaseException] = []

    def other_thread() -> None:
        try:
            load_model(str(bomb))
        except BaseException as exc:
            errors.append(exc)

    with trusting("something-else.pt"):
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join(30)
    assert len(errors) == 1 and isinstance(errors[0], UntrustedModel) and not marker.exists()


def test_aim_toml_models_section(tmp_path: Path) -> None:
    (tmp_path / "net.pt").write_bytes(b"")
    (tmp_path / "aim.toml").write_text(
        '[models]\nallowed = ["net.pt", "pkg.mod:build"]\n[models.named]\nmine = "net.pt"\n'
    )
    config = load_config(env={}, cwd=tmp_path)
    absolute = str((tmp_path / "net.pt").resolve())
    assert config.allowed_models == [absolute, "pkg.mod:build"] and config.named_models == {"mine": absolute}
    policy = ModelPolicy.from_config(config)
    loaders = plugin_manager().model_loaders()
    assert policy.resolve("mine", loaders) == absolute
    assert policy.resolve(absolute, loaders) == absolute and policy.resolve("pkg.mod:build", loaders)
    assert policy.resolve("world-cnn", loaders) == "world-cnn"  # a name the world plugin registers
    for bad in ('[models]\nallowed = "net.pt"\n', '[models]\nnamed = ["x"]\n', '[models]\ntrusted = []\n'):
        (tmp_path / "aim.toml").write_text(bad)
        with pytest.raises(ConfigError, match=r"\[models"):
            load_config(env={}, cwd=tmp_path)


def test_policy_refuses_paths_and_modules_it_was_not_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aim_agent.models import ModelNotAllowed

    monkeypatch.chdir(tmp_path)
    (tmp_path / "evil.pt").write_bytes(b"x")
    (tmp_path / "world-like").mkdir()
    policy = ModelPolicy(named={"good": "/models/good"}, allowed=("/models/other",))
    loaders = plugin_manager().model_loaders()
    for spec in ("evil.pt", str(tmp_path / "evil.pt"), "os:abort", "world-like", "../evil.pt",
                 "world-cnn:/x.safetensors", "acme/tiny-resnet", "~/model.pt"):
        with pytest.raises(ModelNotAllowed) as err:
            policy.resolve(spec, loaders)
        assert "'good'" in str(err.value) and "--trust-model" in str(err.value)
    with pytest.raises(ModelNotAllowed, match="SAE"):
        policy.resolve("world-cnn", loaders, what="sae")  # SAE folders: only configured ones
