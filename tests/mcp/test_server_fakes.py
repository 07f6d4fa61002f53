"""The MCP server over fake providers and a fake probe, through the in-process MCP client."""

from __future__ import annotations

import base64
import io
import json

import anyio
import pytest
from mcp import Client
from PIL import Image

from aim_agent.tools.core import CORE_TOOLS, MAX_PROMPTS

pytestmark = pytest.mark.anyio


def _png(block) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(block.data)))


def _images(result) -> list:
    return [c for c in result.content if c.type == "image"]


def _text(result) -> str:
    return "\n".join(c.text for c in result.content if c.type == "text")


async def test_lists_every_tool_with_schema_and_doc(fake_server):
    async with Client(fake_server) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    for spec in CORE_TOOLS:
        assert spec.name in tools, spec.name
        listed = tools[spec.name]
        assert listed.description == spec.doc
        schema_props = listed.input_schema["properties"]
        assert set(spec.input_model.model_fields) <= set(schema_props)
        assert "session" in schema_props
        assert listed.output_schema is not None
    for name in (
        "list_models",
        "list_layers",
        "load_system",
        "list_log",
        "read_log",
        "start_interpret",
        "read_result",
        "new_session",
    ):
        assert name in tools
    assert "run_code" not in tools  # off by default
    prompts = tools["text2image"].input_schema["properties"]["prompts"]
    assert prompts["maxItems"] == MAX_PROMPTS and prompts["minItems"] == 1


async def test_text2image_then_neuron_gives_images_and_numbers(fake_server):
    async with Client(fake_server) as client:
        made = await client.call_tool("text2image", {"prompts": ["a red square", "a blue square"]})
        assert not made.is_error, _text(made)
        ids = made.structured_content["images"]
        assert len(ids) == 2 and all(i.startswith("img_") for i in ids)
        pictures = [_png(b) for b in _images(made)]
        assert [p.size for p in pictures] == [(64, 64), (64, 64)]
        assert json.loads(made.content[0].text) == made.structured_content

        fired = await client.call_tool("neuron", {"images": ids})
        assert not fired.is_error, _text(fired)
        red, blue = fired.structured_content["activations"]
        assert red > 0.3 and blue == pytest.approx(0.0, abs=1e-6)  # unit 0 is the red unit
        assert len(_images(fired)) == 2

        pairs = await client.call_tool("edit_images", {"prompts": ["a red square"], "edits": ["make it green"]})
        assert not pairs.is_error, _text(pairs)
        assert len(pairs.structured_content["images"]) == 2 and pairs.structured_content["applied"] == [True]
        acts = (await client.call_tool("neuron", {"images": pairs.structured_content["images"]})).structured_content
        assert acts["activations"][0] > acts["activations"][1]

        described = await client.call_tool("describe_images", {"images": fired.structured_content["images"][:1]})
        assert described.structured_content["descriptions"] == ["a reddish square"]


async def test_base64_images_are_accepted(fake_server):
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (230, 20, 20)).save(buf, format="PNG")
    async with Client(fake_server) as client:
        result = await client.call_tool("neuron", {"images": [base64.b64encode(buf.getvalue()).decode()]})
    assert not result.is_error, _text(result)
    assert result.structured_content["activations"][0] > 0.5


async def test_bad_arguments_are_tool_errors_and_the_server_keeps_serving(fake_server):
    async with Client(fake_server) as client:
        empty = await client.call_tool("text2image", {"prompts": []})
        assert empty.is_error and "prompts" in _text(empty) and "at least 1" in _text(empty)

        huge = await client.call_tool("text2image", {"prompts": ["a red dog"] * 10_000})
        assert huge.is_error
        assert f"at most {MAX_PROMPTS}" in _text(huge) and "several calls" in _text(huge)
        assert len(_text(huge)) < 2000  # the 10,000 prompts are not echoed back

        blank = await client.call_tool("text2image", {"prompts": ["a red dog", "  "]})
        # an empty prompt gets its own error; the drawable one is still drawn
        assert not blank.is_error and "empty" in blank.structured_content["errors"][1]
        assert blank.structured_content["errors"][0] is None

        unknown_arg = await client.call_tool("text2image", {"prompts": ["a dog"], "steps": 3})
        assert unknown_arg.is_error and "unknown argument 'steps'" in _text(unknown_arg)

        bad_id = await client.call_tool("neuron", {"images": ["img_doesnotexist"]})
        assert bad_id.is_error and "unknown image id" in _text(bad_id)

        provider = await client.call_tool("text2image", {"prompts": ["a unicorn"]})
        assert provider.is_error and "cannot draw unicorns" in _text(provider)

        no_entry = await client.call_tool("read_log", {"entry": 5})
        assert no_entry.is_error

        ok = await client.call_tool("text2image", {"prompts": ["a green square"]})
        assert not ok.is_error


async def test_json_encoded_lists_are_accepted(fake_server):
    async with Client(fake_server) as client:
        result = await client.call_tool("text2image", {"prompts": json.dumps(["a red square"])})
    assert not result.is_error, _text(result)


async def test_log_tools_and_resource(fake_server):
    async with Client(fake_server, mode="legacy") as client:
        made = await client.call_tool("text2image", {"prompts": ["a red square"]})
        acts = await client.call_tool("neuron", {"images": made.structured_content["images"]})
        logged = await client.call_tool(
            "log_experiment",
            {
                "note": "red test",
                "activations": acts.structured_content["activations"],
                "images": made.structured_content["images"],
                "prompts": ["a red square"],
            },
        )
        assert logged.structured_content == {"entry": 0}
        listing = await client.call_tool("list_log", {})
        assert [e["text"] for e in listing.structured_content["entries"]] == ["red test"]
        entry = await client.call_tool("read_log", {"entry": 0})
        assert entry.structured_content["entry"]["prompts"] == ["a red square"]
        assert len(_images(entry)) == 1

        resource = await client.read_resource("aim://session/log")
        data = json.loads(resource.contents[0].text)
        assert data["entries"][0]["text"] == "red test"
        image = await client.read_resource(f"aim://image/{made.structured_content['images'][0]}")
        assert Image.open(io.BytesIO(base64.b64decode(image.contents[0].blob))).size == (64, 64)


async def test_two_connections_do_not_share_logs(fake_server):
    async with Client(fake_server, mode="legacy") as a, Client(fake_server, mode="legacy") as b:
        await a.call_tool("log_experiment", {"note": "from a"})
        await b.call_tool("log_experiment", {"note": "from b"})
        await b.call_tool("log_experiment", {"note": "from b again"})
        log_a = (await a.call_tool("list_log", {})).structured_content["entries"]
        log_b = (await b.call_tool("list_log", {})).structured_content["entries"]
    assert [e["text"] for e in log_a] == ["from a"]
    assert [e["text"] for e in log_b] == ["from b", "from b again"]


async def test_explicit_session_handles_isolate_stateless_clients(fake_server):
    async with Client(fake_server) as client:  # the modern in-process path: no transport identity
        one = (await client.call_tool("new_session", {})).structured_content["session"]
        two = (await client.call_tool("new_session", {})).structured_content["session"]
        assert one != two
        await client.call_tool("log_experiment", {"note": "one", "session": one})
        log_one = (await client.call_tool("list_log", {"session": one})).structured_content["entries"]
        log_two = (await client.call_tool("list_log", {"session": two})).structured_content["entries"]
        assert [e["text"] for e in log_one] == ["one"] and log_two == []
        stale = await client.call_tool("list_log", {"session": "s_nope"})
        assert stale.is_error and "new_session" in _text(stale)
        via_meta = await client.call_tool("list_log", {}, meta={"aim/session": one})  # the handle in _meta
        assert [e["text"] for e in via_meta.structured_content["entries"]] == ["one"]
        log = await client.read_resource(f"aim://session/log?session={one}")
        assert json.loads(log.contents[0].text)["entries"][0]["text"] == "one"


async def test_concurrent_calls_of_two_sessions(fake_server):
    results: dict[str, list[float]] = {}

    async def work(name: str, prompt: str) -> None:
        async with Client(fake_server, mode="legacy") as client:
            made = await client.call_tool("text2image", {"prompts": [prompt] * 3})
            fired = await client.call_tool("neuron", {"images": made.structured_content["images"]})
            await client.call_tool("log_experiment", {"note": name})
            results[name] = fired.structured_content["activations"]
            entries = (await client.call_tool("list_log", {})).structured_content["entries"]
            assert [e["text"] for e in entries] == [name]

    async with anyio.create_task_group() as tg:
        tg.start_soon(work, "red", "a red square")
        tg.start_soon(work, "blue", "a blue square")
    assert min(results["red"]) > 0.3 and max(results["blue"]) < 1e-6


async def test_progress_notifications(fake_server, fakes, monkeypatch):
    """text2image's provider reports nothing: its progress is the images made so far, of the prompts."""
    import time

    FakeTextToImage = fakes.FakeTextToImage
    original = FakeTextToImage.generate

    def slow(self, prompts, *, size=224, seed=0):
        out = []
        for prompt in prompts:  # one image at a time, as a diffusion model draws batch by batch
            time.sleep(0.15)
            out += original(self, [prompt], size=size, seed=seed)
        return out

    monkeypatch.setattr(FakeTextToImage, "generate", slow)
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress, total, message):
        seen.append((progress, total, message))

    prompts = ["a red square", "a green square", "a blue square", "a red disc"]
    async with Client(fake_server) as client:
        result = await client.call_tool("text2image", {"prompts": prompts}, progress_callback=on_progress)
    assert not result.is_error
    assert {total for _, total, _ in seen} == {4.0} and seen[-1][:2] == (4.0, 4.0), seen
    values = [p for p, _, _ in seen]
    assert values == sorted(values) and len(set(values)) == len(values) and set(values) <= {0.0, 1.0, 2.0, 3.0, 4.0}
    assert len(values) >= 2 and "4 of 4" in seen[-1][2]


async def test_a_tool_that_counts_nothing_reports_seconds(fakes, tmp_path, monkeypatch):
    import time

    from aim_agent.mcp_server import ServerOptions, build_server
    from aim_agent.system import System

    server = build_server(ServerOptions(context_factory=lambda: fakes.fake_context(System(fakes.ColorProbe(), 0)),
                          runs_dir=tmp_path / "runs", progress_interval=0.05))
    original = fakes.FakeDescriber.describe

    def slow(self, images):
        time.sleep(0.3)
        return original(self, images)

    monkeypatch.setattr(fakes.FakeDescriber, "describe", slow)
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress, total, message):
        seen.append((progress, total, message))

    async with Client(server) as client:
        made = await client.call_tool("text2image", {"prompts": ["a red square"]})
        result = await client.call_tool("describe_images", {"images": made.structured_content["images"]},
                                        progress_callback=on_progress)
    assert not result.is_error
    # seconds without a total while it runs, then done = total
    values = [p for p, _, _ in seen]
    assert len(seen) >= 2 and values == sorted(values) and len(set(values)) == len(values)
    assert all(total is None for _, total, _ in seen[:-1]) and seen[-1][0] == seen[-1][1]
    assert "done" in seen[-1][2]


async def test_neuron_progress_counts_images(fakes, tmp_path, monkeypatch):
    """neuron reports images processed of the total, batch by batch: a real fraction of the work."""
    import time

    from aim_agent.mcp_server import ServerOptions, build_server
    from aim_agent.system import System

    server = build_server(ServerOptions(
        context_factory=lambda: fakes.fake_context(System(fakes.ColorProbe(), 0, batch_size=2)),
        runs_dir=tmp_path / "runs",
        progress_interval=0.02,
    ))
    forward = fakes.ColorProbe.forward

    def slow(self, images):
        time.sleep(0.1)
        return forward(self, images)

    monkeypatch.setattr(fakes.ColorProbe, "forward", slow)
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress, total, message):
        seen.append((progress, total, message))

    async with Client(server) as client:
        made = await client.call_tool("text2image", {"prompts": ["a red square", "a blue square"]})
        ids = made.structured_content["images"]
        result = await client.call_tool("neuron", {"images": ids * 3}, progress_callback=on_progress)
    assert not result.is_error
    assert seen[-1][:2] == (6.0, 6.0) and "6 of 6 images" in seen[-1][2]
    counted = [(p, total) for p, total, _ in seen if total is not None]  # before the first batch: seconds only
    assert {total for _, total in counted} == {6.0}
    done = [p for p, _ in counted]
    assert set(done) <= {2.0, 4.0, 6.0} and len(done) >= 2 and done == sorted(done)  # as batches end
    assert [p for p, _, _ in seen] == sorted(p for p, _, _ in seen)


async def test_prompt_and_templates(fake_server):
    async with Client(fake_server) as client:
        prompts = (await client.list_prompts()).prompts
        assert [p.name for p in prompts] == ["describe_unit"]
        got = await client.get_prompt("describe_unit", {"model": "world-cnn", "layer": "conv4", "unit": "7"})
        text = got.messages[0].content.text
        assert "[DESCRIPTION]" in text and "[LABEL]" in text and "conv4" in text and "text2image" in text
        templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
        assert {  # runs belong to a session, so a stateless client names its session (like images)
            "aim://runs/{run_id}/report.html{?session}",
            "aim://runs/{run_id}/result.json{?session}",
            "aim://image/{image_id}{?session}",
        } <= templates


async def test_run_code_only_when_enabled(fakes, tmp_path):
    from aim_agent.mcp_server import ServerOptions, build_server
    from aim_agent.system import System

    server = build_server(ServerOptions(
        context_factory=lambda: fakes.fake_context(System(fakes.ColorProbe(), 0)),
        runs_dir=tmp_path,
        enable_code=True,
    ))
    code = (
        "def run_experiment(system, tools):\n"
        "    images = tools.text2image(['a red square', 'a blue square'])\n"
        "    acts, overlays = system.neuron(images)\n"
        "    print('measured', len(acts))\n"
        "    return {'activations': acts, 'overlay': overlays[0]}\n"
    )
    async with Client(server) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        assert "run_code" in tools
        result = await client.call_tool("run_code", {"code": code, "timeout_s": 60})
        assert not result.is_error, _text(result)
        out = result.structured_content
        assert out["ok"], out["report"]
        red, blue = out["return_value"]["activations"]
        assert red > 0.3 and blue < 0.01
        assert out["return_value"]["overlay"] == out["images"][0] and len(_images(result)) == 1
        assert "measured 2" in out["report"]
        broken = await client.call_tool("run_code", {"code": "def run_experiment(system, tools):\n    1/0\n"})
        assert not broken.is_error and not broken.structured_content["ok"]
        assert "ZeroDivisionError" in broken.structured_content["report"]


async def test_dataset_exemplars_progress_counts_dataset_images(fakes, tmp_path, monkeypatch):
    """dataset_exemplars reports dataset images processed of the dataset's size, batch by batch."""
    import time

    from aim_agent.mcp_server import ServerOptions, build_server
    from aim_agent.system import System

    folder = tmp_path / "colours"
    folder.mkdir()
    for i in range(70):
        fakes.draw(["red", "green", "blue"][i % 3], 16).save(folder / f"{i:03d}.png")
    monkeypatch.setenv("AIM_CACHE", str(tmp_path / "cache"))

    def context():
        ctx = fakes.fake_context(System(fakes.ColorProbe(), 0))
        ctx.exemplar_dataset = str(folder)
        return ctx

    server = build_server(ServerOptions(context_factory=context, runs_dir=tmp_path / "runs", progress_interval=0.02))
    forward = fakes.ColorProbe.forward

    def slow(self, images):
        time.sleep(0.15)
        return forward(self, images)

    monkeypatch.setattr(fakes.ColorProbe, "forward", slow)
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress, total, message):
        seen.append((progress, total, message))

    async with Client(server) as client:
        result = await client.call_tool("dataset_exemplars", {"k": 3}, progress_callback=on_progress)
    assert not result.is_error, result.content[0].text
    counted = [(p, total) for p, total, _ in seen if total is not None]
    assert {total for _, total in counted} == {70.0} and counted[-1] == (70.0, 70.0)
    done = [p for p, _ in counted]
    assert set(done) <= {32.0, 64.0, 70.0} and len(done) >= 2 and done == sorted(done)
    assert "70 of 70 dataset images" in seen[-1][2]
