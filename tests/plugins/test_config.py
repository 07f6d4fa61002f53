"""Provider choice by configuration: flags > environment > aim.toml > defaults ('world')."""

from __future__ import annotations

import argparse

import pytest

from aim_agent.config import (
    ConfigError,
    add_provider_arguments,
    apply_plugins,
    config_from_args,
    find_config_file,
    load_config,
)

TOML = """
plugins = ["pkg_from_file"]
image_size = 128

[providers]
text2image = "sd15"
editor = "instruct-pix2pix"

[diffusers]
device = "cpu"
[diffusers.sd15]
model = "/models/sd15"
"""


def test_defaults_are_the_world(tmp_path):
    config = load_config(env={}, cwd=tmp_path)
    assert (config.text2image, config.editor, config.describer) == ("world", "world", "world")
    assert config.plugins == [] and config.image_size == 224 and config.file is None
    assert config.describe_source("text2image") == "default"


def test_precedence_flags_over_env_over_file(tmp_path):
    (tmp_path / "aim.toml").write_text(TOML)
    from_file = load_config(env={}, cwd=tmp_path)
    assert from_file.file == tmp_path / "aim.toml"
    assert (from_file.text2image, from_file.editor, from_file.describer) == ("sd15", "instruct-pix2pix", "world")
    assert from_file.image_size == 128 and from_file.plugins == ["pkg_from_file"]
    assert from_file.describe_source("text2image") == f"file {tmp_path / 'aim.toml'}"
    assert from_file.sections["diffusers"]["sd15"]["model"] == "/models/sd15"

    env = {"AIM_TEXT2IMAGE": "sdxl", "AIM_DESCRIBER": "gemini", "AIM_PLUGINS": "a.plugin, b.plugin"}
    from_env = load_config(env=env, cwd=tmp_path)
    assert (from_env.text2image, from_env.editor, from_env.describer) == ("sdxl", "instruct-pix2pix", "gemini")
    assert from_env.plugins == ["pkg_from_file", "a.plugin", "b.plugin"]  # layers join, they do not replace
    assert from_env.describe_source("text2image") == "environment AIM_TEXT2IMAGE"

    flagged = load_config({"text2image": "world", "editor": None}, env=env, cwd=tmp_path)
    assert flagged.text2image == "world" and flagged.describe_source("text2image") == "command line"
    assert flagged.editor == "instruct-pix2pix"  # a flag left unset does not override


def test_plugin_settings_env_over_file(tmp_path):
    (tmp_path / "aim.toml").write_text(TOML)
    config = load_config(env={"AIM_DIFFUSERS_STEPS": "3"}, cwd=tmp_path)
    assert config.setting("diffusers", "device") == "cpu"
    assert config.setting("diffusers", "steps", 25) == "3"
    assert config.setting("diffusers", "guidance", 7.5) == 7.5


def test_providers_can_be_switched_off(tmp_path):
    config = load_config(env={"AIM_EDITOR": "none"}, cwd=tmp_path)
    assert config.editor is None and config.provider("editor") is None


def test_file_discovery(tmp_path):
    project = tmp_path / "project"
    (project / "sub").mkdir(parents=True)
    (project / ".git").mkdir()
    (project / "aim.toml").write_text('[providers]\ntext2image = "sd15"\n')
    assert find_config_file({}, project / "sub") == project / "aim.toml"  # found in a parent directory
    home = tmp_path / "home"
    (home / ".config" / "aim").mkdir(parents=True)
    (home / ".config" / "aim" / "aim.toml").write_text("")
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / ".git").mkdir(parents=True)
    assert find_config_file({"HOME": str(home)}, elsewhere) == home / ".config" / "aim" / "aim.toml"
    assert find_config_file({"HOME": str(home), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}, elsewhere) is None
    explicit = tmp_path / "mine.toml"
    explicit.write_text("")
    assert find_config_file({"AIM_CONFIG": str(explicit)}, project) == explicit
    with pytest.raises(ConfigError, match="AIM_CONFIG"):
        find_config_file({"AIM_CONFIG": str(tmp_path / "missing.toml")}, project)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("text2image = [", "not valid TOML"),
        ("[providers]\ntext2imag = 'sd15'\n", "unknown key(s) text2imag"),
        ("seed = 'x'\n", "seed must be an integer"),
        ("colour = 'red'\n", "unknown setting 'colour'"),
        ("plugins = [1]\n", "plugins must be a list"),
    ],
)
def test_bad_files_say_what_is_wrong(tmp_path, text, message):
    (tmp_path / "aim.toml").write_text(text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        load_config(env={}, cwd=tmp_path)


def test_command_line_flags(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AIM_EDITOR", "from-env")
    monkeypatch.delenv("AIM_CONFIG", raising=False)
    parser = argparse.ArgumentParser()
    add_provider_arguments(parser)
    config = config_from_args(parser.parse_args(["--text2image", "sd15"]))
    assert (config.text2image, config.editor, config.describer) == ("sd15", "from-env", "world")
    other = tmp_path / "other.toml"
    other.write_text('[providers]\ndescriber = "gemini"\n')
    assert config_from_args(parser.parse_args(["--config", str(other)])).describer == "gemini"


def test_apply_plugins_records_the_source(tmp_path, monkeypatch):
    from aim_agent.plugins import AimPlugins

    manager = AimPlugins(load_entry_points=False)
    config = load_config(env={"AIM_PLUGINS": "aim_world.plugin"}, cwd=tmp_path)
    assert apply_plugins(config, manager) == ["aim_world.plugin"]
    assert manager.module_sources["aim_world.plugin"] == "environment AIM_PLUGINS"
    assert "world" in manager.provider_names("text2image")


def test_one_settings_model_holds_every_shared_default(tmp_path):
    from aim_agent.agent.config import RunConfig
    from aim_agent.config import AimConfig, ConfigError, Settings, load_config
    from aim_agent.tools.base import ToolContext

    shared = Settings().model_dump()
    run = RunConfig(synthetic="0")
    assert {name: getattr(run, name) for name in shared} == shared
    assert issubclass(RunConfig, Settings) and issubclass(AimConfig, Settings)
    assert (ToolContext().image_size, ToolContext().seed) == (shared["image_size"], shared["seed"])
    # a value out of range is refused with where it came from
    try:
        load_config(env={"AIM_IMAGE_SIZE": "5"}, cwd=tmp_path)
    except ConfigError as exc:
        assert "image_size" in str(exc) and "AIM_IMAGE_SIZE" in str(exc)
    else:
        raise AssertionError("an image size of 5 px was accepted")
