"""The code sandbox: values cross the wire, failures are contained, secrets stay out."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from PIL import Image

from aim_agent.agent.experiment import code_handlers
from aim_agent.agent.sandbox import (
    ObjectHandler,
    Record,
    SandboxLimits,
    check_code,
    run_code,
    wire,
)
from aim_agent.agent.sandbox.landlock import abi_version
from aim_agent.images import current_store, image_id
from aim_agent.system import LayerProbe, System
from aim_agent.tools import ToolContext
from aim_agent.tools.core import CORE_TOOLS

FAST = SandboxLimits(wall_time_s=3, cpu_time_s=5, memory_bytes=1024 * 2**20)


class FakeSystem:
    """A stand-in for aim_agent.system.System: a unit that fires on red."""

    layer = "layer4"
    unit = 7

    def __init__(self) -> None:
        self.secret_calls = 0

    def neuron(self, images: list[Image.Image]) -> tuple[list[float], list[Image.Image]]:
        acts = [round(float(np.asarray(im.convert("RGB"))[..., 0].mean()), 4) for im in images]
        return acts, [im.convert("L").convert("RGB") for im in images]

    def activations(self, images: list[Image.Image]) -> np.ndarray:
        if not images:
            raise ValueError("no images given: pass a non-empty list of images")
        return np.stack([np.asarray(im.convert("RGB"), dtype=np.float32)[..., 0] for im in images])

    def model(self) -> str:  # must never be reachable from the sandbox
        self.secret_calls += 1
        return "weights"


def red_square(size: int = 64) -> Image.Image:
    image = Image.new("RGB", (size, size), (0, 0, 255))
    image.paste((255, 0, 0), (size // 4, size // 4, 3 * size // 4, 3 * size // 4))
    return image


@pytest.fixture()
def system() -> FakeSystem:
    return FakeSystem()


@pytest.fixture()
def handlers(system: FakeSystem) -> dict[str, ObjectHandler]:
    made: list[Image.Image] = []

    def text2image(prompts: list[str]) -> list[Image.Image]:
        images = [red_square(64) for _ in prompts]
        for image, prompt in zip(images, prompts, strict=True):
            current_store().register(image, meta={"prompt": prompt})
        made.extend(images)
        return images

    def render(scene: dict) -> dict:
        return {"scene": scene, "ok": True}

    world = ObjectHandler(methods={"render": render}, attributes={"name": "toy"})
    return {
        "system": ObjectHandler.from_object(system, methods=["neuron", "activations"], attributes=["layer", "unit"]),
        "tools": ObjectHandler(methods={"text2image": text2image}, attributes={"world": world}),
    }


def run(code: str, handlers: dict[str, ObjectHandler], limits: SandboxLimits = FAST):
    return run_code(code, handlers=handlers, limits=limits)


def test_values_and_images_round_trip(handlers: dict[str, ObjectHandler]) -> None:
    code = """
import numpy as np

def run_experiment(system, tools):
    image = tools.text2image(["a red square"])[0]
    crop = image.crop((0, 0, 32, 32))
    acts, overlays = system.neuron([image, crop])
    maps = system.activations([image])
    print("layer", system.layer, "unit", system.unit, "world", tools.world.name)
    return {
        "image": image, "crop": crop, "acts": acts, "overlays": overlays,
        "maps": maps, "shape": maps.shape, "scene": tools.world.render({"objects": ["dog"]}),
        "pair": (1, "a"), "ints": {1: 2}, "mean": np.float32(0.5), "bytes": b"\\x00\\xff",
    }
"""
    result = run(code, handlers)
    assert result.ok, result.report()
    value = result.return_value
    image, crop = value["image"], value["crop"]
    assert isinstance(image, Image.Image) and isinstance(crop, Image.Image)
    assert crop.size == (32, 32) and image.size == (64, 64)
    # the image the tool made keeps its id and its record (prompt) in the store
    assert current_store().record(image).meta["prompt"] == "a red square"
    assert image_id(image) == image_id(red_square(64))
    assert current_store().record(crop) is not None  # images made inside the sandbox are registered
    assert value["acts"][0] == pytest.approx(FakeSystem().neuron([red_square(64)])[0][0])
    assert all(isinstance(o, Image.Image) for o in value["overlays"])
    assert isinstance(value["maps"], np.ndarray) and value["maps"].dtype == np.float32
    assert value["maps"].shape == (1, 64, 64) and value["shape"] == (1, 64, 64)
    assert value["scene"] == {"scene": {"objects": ["dog"]}, "ok": True}
    assert value["pair"] == (1, "a") and value["ints"] == {1: 2} and value["mean"] == 0.5
    assert value["bytes"] == b"\x00\xff"
    assert "layer layer4 unit 7 world toy" in result.stdout
    assert [(c.object, c.method) for c in result.calls] == [
        ("tools", "text2image"),
        ("system", "neuron"),
        ("system", "activations"),
        ("tools.world", "render"),
    ]
    assert all(c.ok and c.duration_s >= 0 for c in result.calls)


def test_handler_error_is_raised_at_the_models_line(handlers: dict[str, ObjectHandler]) -> None:
    code = """def run_experiment(system, tools):
    try:
        system.activations([])
    except ValueError as exc:
        print("caught:", exc)
    system.activations([])
    return "unreachable"
"""
    result = run(code, handlers)
    assert not result.ok and result.kind == "runtime_error"
    assert "non-empty list of images" in result.error
    assert 'File "<experiment>", line 6, in run_experiment' in result.traceback
    assert "system.activations([])" in result.traceback
    assert "child.py" not in result.traceback and "wire.py" not in result.traceback
    assert "caught: system.activations() raised ValueError" in result.stdout
    assert [c.ok for c in result.calls] == [False, False]


def test_only_allowed_methods_can_be_called(system: FakeSystem, handlers: dict[str, ObjectHandler]) -> None:
    code = """def run_experiment(system, tools):
    try:
        system.model()
    except AttributeError as exc:
        first = str(exc)
    # going around the proxy, straight to the channel: the parent refuses as well
    try:
        system._channel.call("system", "model", (), {})
    except Exception as exc:
        second = f"{type(exc).__name__}: {exc}"
    return first, second
"""
    result = run(code, handlers)
    assert result.ok, result.report()
    first, second = result.return_value
    assert "system has no method or attribute 'model'" in first and "activations, neuron" in first
    assert "system.model is not a method the sandbox may call" in second
    assert system.secret_calls == 0


def test_syntax_error_is_reported_before_any_process(handlers: dict[str, ObjectHandler]) -> None:
    code = "def run_experiment(system, tools):\n    x = [1, 2\n    return x\n"
    result = run(code, handlers)
    assert result.kind == "syntax_error" and not result.ok
    assert "line 2" in result.error or "line 3" in result.error
    assert "<experiment>" in result.traceback
    assert result.exit_code is None and result.calls == []  # no process was started


def test_missing_entry_names_what_is_expected(handlers: dict[str, ObjectHandler]) -> None:
    result = run("def experiment(system, tools):\n    return 1\n", handlers)
    assert result.kind == "missing_entry"
    assert "def run_experiment(...)" in result.error and "experiment" in result.error
    # bound but not a function: found by the child
    result = run("run_experiment = 3\n", handlers)
    assert result.kind == "missing_entry" and "run_experiment" in result.error


def test_runtime_error_has_the_models_traceback(handlers: dict[str, ObjectHandler]) -> None:
    code = "def helper(x):\n    return x[10]\n\ndef run_experiment(system, tools):\n    return helper([1, 2])\n"
    result = run(code, handlers)
    assert result.kind == "runtime_error"
    assert result.error == "IndexError: list index out of range"
    assert 'File "<experiment>", line 5, in run_experiment' in result.traceback
    assert 'File "<experiment>", line 2, in helper' in result.traceback


def test_endless_loop_is_stopped_at_the_time_limit(handlers: dict[str, ObjectHandler]) -> None:
    code = "def run_experiment(system, tools):\n    print('starting')\n    while True:\n        pass\n"
    began = time.monotonic()
    result = run(code, handlers, FAST.model_copy(update={"wall_time_s": 1.5}))
    assert result.kind == "timeout" and "1.5 s" in result.error
    assert 1.4 < time.monotonic() - began < 5
    assert "starting" in result.stdout  # printed before the kill, still reported


@pytest.mark.parametrize(
    "body",
    ["x = bytearray(10**10)", "x = []\n    while True:\n        x.append([0] * 10**6)"],
    ids=["one-allocation", "gradual-growth"],
)
def test_memory_bomb_is_stopped(handlers: dict[str, ObjectHandler], body: str) -> None:
    code = f"def run_experiment(system, tools):\n    {body}\n"
    # a generous wall-clock limit: the memory limit must be what stops it, even on a busy machine
    result = run(code, handlers, FAST.model_copy(update={"memory_bytes": 300 * 2**20, "wall_time_s": 20}))
    assert result.kind == "memory", result.report()
    assert "MemoryError" in result.error and 'File "<experiment>", line' in result.traceback


def test_environment_has_no_secrets_and_cwd_is_a_removed_temp_dir(
    handlers: dict[str, ObjectHandler], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", "g-secret")
    monkeypatch.setenv("OPENAI_API_KEY", "o-secret")
    monkeypatch.setenv("HF_TOKEN", "h-secret")
    monkeypatch.setenv("MY_DB_PASSWORD", "p-secret")
    code = """import os, tempfile
def run_experiment(system, tools):
    with open("notes.txt", "w") as f:
        f.write("hi")
    return dict(os.environ), os.getcwd(), os.listdir("."), tempfile.gettempdir()
"""
    result = run(code, handlers)
    assert result.ok, result.report()
    env, cwd, listing, tmp = result.return_value
    assert not [k for k in env if "KEY" in k or "TOKEN" in k or "PASSWORD" in k or k.startswith(("HF_", "GOOGLE"))]
    assert not any("secret" in v for v in env.values())
    assert env["HOME"] == cwd == tmp and listing == ["notes.txt"]
    assert os.path.basename(cwd).startswith("aim-sandbox-")
    assert not os.path.exists(cwd)  # removed afterwards


def test_cleanup_never_follows_symlinks_out_of_the_work_dir(handlers: dict[str, ObjectHandler], tmp_path) -> None:
    outside = tmp_path / "precious.txt"
    outside.write_text("keep")
    outside.chmod(0o400)
    code = f"""import os
def run_experiment(system, tools):
    os.mkdir("locked")
    os.symlink({str(outside)!r}, "locked/link")
    os.chmod("locked", 0o500)
    return os.getcwd()
"""
    result = run(code, handlers)
    assert result.ok, result.report()
    assert not os.path.exists(result.return_value)
    assert outside.read_text() == "keep" and (outside.stat().st_mode & 0o777) == 0o400


def test_the_parent_survives_crashes_and_runs_again(handlers: dict[str, ObjectHandler]) -> None:
    cases = {
        "killed": "import os\ndef run_experiment(system, tools):\n    print('bye')\n    os._exit(3)\n",
        "killed-segv": "import ctypes\ndef run_experiment(system, tools):\n    ctypes.string_at(0)\n",
        # the model's code writes garbage on the protocol channel
        "protocol_error": (
            "import time\ndef run_experiment(system, tools):\n"
            "    import os\n    os.write(system._channel._wfd, b'\\xff' * 16)\n    time.sleep(5)\n"
        ),
        "protocol_error-json": (
            "import time, struct\ndef run_experiment(system, tools):\n"
            "    import os\n    os.write(system._channel._wfd, struct.pack('>I', 4) + b'{[}x')\n    time.sleep(5)\n"
        ),
    }
    for name, code in cases.items():
        result = run(code, handlers)
        assert result.kind == name.split("-")[0], (name, result.report())
    segv = run(cases["killed-segv"], handlers)
    assert "SIGSEGV" in segv.error and 'File "<experiment>", line 3' in (segv.traceback or "")
    again = run("def run_experiment(system, tools):\n    return system.unit + 1\n", handlers)
    assert again.ok and again.return_value == 8


def test_prints_come_back_and_are_truncated(handlers: dict[str, ObjectHandler]) -> None:
    code = "def run_experiment(system, tools):\n    for i in range(5000):\n        print('line', i)\n    return 1\n"
    result = run(code, handlers, FAST.model_copy(update={"max_stdout_chars": 1000}))
    assert result.ok and result.return_value == 1
    assert result.stdout.startswith("line 0\nline 1\n") and result.stdout.rstrip().endswith("line 4999")
    assert "bytes of output cut" in result.stdout and len(result.stdout) < 1200


def test_child_stays_light_and_arrays_arrive_as_numpy(handlers: dict[str, ObjectHandler]) -> None:
    code = """import sys
def run_experiment(system, tools):
    maps = system.activations(tools.text2image(["x"]))
    return "torch" in sys.modules, type(maps).__module__, float(maps.max())
"""
    result = run(code, handlers)
    assert result.ok, result.report()
    assert result.return_value == (False, "numpy", 255.0)


def test_handler_time_can_be_left_out_of_the_limit() -> None:
    slow = {"system": ObjectHandler(methods={"forward": lambda: time.sleep(0.6) or "done"})}
    code = "def run_experiment(system):\n    return [system.forward() for _ in range(3)]\n"
    limits = FAST.model_copy(update={"wall_time_s": 1.5})
    assert run(code, slow, limits).kind == "timeout"
    result = run(code, slow, limits.model_copy(update={"count_handler_time": False}))
    assert result.ok and result.return_value == ["done"] * 3


@pytest.mark.skipif(abi_version() < 1, reason="Landlock is not available on this kernel")
def test_landlock_hides_the_parent_and_the_disk(handlers: dict[str, ObjectHandler]) -> None:
    code = """import os
def attempt(fn):
    try:
        fn()
        return "allowed"
    except OSError as exc:
        return type(exc).__name__
def run_experiment(system, tools):
    return {
        "parent_environ": attempt(lambda: open(f"/proc/{os.getppid()}/environ").read()),
        "repository": attempt(lambda: os.listdir(REPO)),
        "write_outside": attempt(lambda: open("/var/tmp/aim-sandbox-escape", "w")),
        "write_inside": attempt(lambda: open("inside.txt", "w").write("ok")),
    }
""".replace("REPO", repr(os.path.dirname(os.path.abspath(__file__))))
    # Landlock alone: with namespaces, the parent is not even in the child's /proc and writes
    # outside fail earlier, on the read-only mount (tests/security covers that layer)
    result = run(code, handlers, FAST.model_copy(update={"namespaces": False, "allow_unsafe": True}))
    assert result.ok, result.report()
    assert "Landlock" in result.isolation
    assert result.return_value == {
        "parent_environ": "PermissionError",
        "repository": "PermissionError",
        "write_outside": "PermissionError",
        "write_inside": "allowed",
    }


def test_check_code_compiles_without_running(tmp_path) -> None:
    marker = tmp_path / "ran"
    code = f"open({str(marker)!r}, 'w').write('x')\ndef run_experiment(system, tools):\n    pass\n"
    assert check_code(code) is None
    assert not marker.exists()


def test_wire_rejects_what_it_must_not_decode() -> None:
    np_value = np.arange(6, dtype=np.int16).reshape(2, 3)
    encoded = wire.encode({"a": np_value, "t": (1, 2.5, None), "r": Record("Out", {"x": [1]})})
    decoded = wire.decode(encoded)
    assert np.array_equal(decoded["a"], np_value) and decoded["a"].dtype == np.int16
    assert decoded["t"] == (1, 2.5, None) and decoded["r"].x == [1] and decoded["r"]["x"] == [1]
    bad_dtype = {wire.TAG: "ndarray", "dtype": "|O8", "shape": [1], "data": "AAAAAAAAAAA="}
    bad_size = {wire.TAG: "ndarray", "dtype": "<f4", "shape": [3], "data": "AAAAAA=="}
    bad_image = {wire.TAG: "image", "png": "bm90IGEgcG5n"}
    for bad in (bad_dtype, bad_size, bad_image, {wire.TAG: "pickle", "data": ""}):
        with pytest.raises(wire.WireError):
            wire.decode(bad)
    with pytest.raises(TypeError, match="cannot send an object of type object"):
        wire.encode(object())
    with pytest.raises(wire.MessageTooLarge):
        wire.encode(np.zeros(2**20, dtype=np.uint8), limit=2**19)
    with pytest.raises(wire.WireError):
        wire.frame_length(wire.HEADER.pack(2**31), limit=2**20)
    # the pixel budget covers all images of a message together (small PNGs can decode to huge images)
    two = wire.encode([Image.new("RGB", (10, 10)), Image.new("RGB", (10, 10))])
    assert len(wire.decode(two, max_image_pixels=200)) == 2
    with pytest.raises(wire.WireError, match="pixels"):
        wire.decode(two, max_image_pixels=150)


def test_extra_env_refuses_secrets() -> None:
    with pytest.raises(ValueError, match="look like secrets"):
        SandboxLimits(extra_env={"OPENAI_API_KEY": "x"})


def test_child_modules_import_nothing_heavy() -> None:
    # the child loads only these files: none imports numpy, PIL, torch or aim_agent up front
    import ast
    from pathlib import Path

    from aim_agent.agent import sandbox

    folder = Path(sandbox.__file__).parent
    for name in ("child.py", "wire.py", "landlock.py", "isolation.py", "seccomp.py"):
        tree = ast.parse((folder / name).read_text())
        top = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
        modules = {a.name.split(".")[0] for n in top for a in getattr(n, "names", [])} | {
            (n.module or "").split(".")[0] for n in top if isinstance(n, ast.ImportFrom)
        }
        assert not modules & {"numpy", "PIL", "torch", "aim_agent", "pydantic"}, name


class RednessProbe(LayerProbe):
    """Unit 0 of a one-layer 'model': redness per pixel, 8x8 grid."""

    model_name = "redness"
    layer = "pixels"
    num_units = 1

    def forward(self, images):
        import torch

        arr = torch.stack([torch.as_tensor(np.asarray(im.convert("RGB"), dtype=np.float32) / 255) for im in images])
        red = (arr[..., 0] - arr[..., 1:].mean(-1))[:, None]
        return torch.nn.functional.avg_pool2d(red, red.shape[-1] // 8)

    def unit_label(self, unit: int) -> str:
        return "red"


def test_real_system_and_tools_through_the_sandbox() -> None:
    system = System(RednessProbe(), 0)
    ctx = ToolContext(system=system)
    handlers = code_handlers(ctx, CORE_TOOLS)
    code = """from PIL import Image
def run_experiment(system, tools):
    red = Image.new("RGB", (64, 64), (255, 0, 0))
    blue = Image.new("RGB", (64, 64), (0, 0, 255))
    acts, overlays = system.neuron([red, blue])
    response = system.activations([red])
    tool_acts, _ = tools.neuron([blue])
    for probe in (lambda: system.ground_truth, lambda: system.probe):
        try:
            probe()
        except AttributeError:
            print("hidden")
    try:
        system.neuron()
    except TypeError as exc:
        print("bad call:", exc)
    return acts, overlays, response.maps.shape, tool_acts, system.describe()
"""
    result = run_code(code, handlers=handlers, limits=FAST)
    assert result.ok, result.report()
    acts, overlays, shape, tool_acts, described = result.return_value
    assert acts[0] > 0.9 and acts[1] < 0.1 and tool_acts == [acts[1]]
    assert shape == (1, 8, 8) and described == "unit 0 of layer pixels of redness"
    record = ctx.images.record(overlays[0])  # the overlay keeps its mask and parent across the wire
    assert record is not None and record.mask is not None and record.meta["unit"] == 0
    assert result.stdout.count("hidden") == 2
    assert "bad call: system.neuron(image_list" in result.stdout and "missing a required argument" in result.stdout
