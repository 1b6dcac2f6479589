"""The cloud backend (engine/backends/cloud.py) against a local fake of the HF Inference API, over real HTTP:
off by default with nothing sent, the last fallback or the first choice, and each refusal a sentence or a fallback."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

import pytest
from PIL import Image

from engine.config import Settings
from engine.manager import AIModelManager
from engine.outputs import read_parameters
from tests.conftest import CPU
from tests.support.fake_inference import COLOUR, IMAGE, Answer, FakeInference, loading, rate_limited, unauthorized

TOKEN = "hf_test_token"


@pytest.fixture(autouse=True)
def online(monkeypatch):
    """tests/conftest.py sets HF_HUB_OFFLINE=1 for the whole suite; these tests talk to a local fake endpoint."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def cloud_settings(tmp_path: Path, tiny_model_dir: Path, url: str, *, on: bool = True, **more) -> Settings:
    return Settings(comfyui_urls=[], enable_comfyui=False, output_dir=tmp_path / "outputs",
                    tiny_model_dir=tiny_model_dir, models_dir=tmp_path / "models", enable_cloud_apis=on,
                    cloud_base_url=url, cloud_token=TOKEN, cloud_max_wait_s=1.0, **more)


def no_local_model(tmp_path: Path) -> Path:
    """A tiny-model folder that cannot be made (a file is in its way): no local model can run."""
    blocker = tmp_path / "blocked"
    blocker.write_text("not a folder")
    return blocker / "tiny"


async def started(settings: Settings) -> AIModelManager:
    manager = AIModelManager(settings, hardware=CPU)
    await manager.initialize_models()
    return manager


async def test_off_nothing_leaves_the_machine_even_when_it_would_fall_back(tmp_path):
    with FakeInference() as fake:
        manager = await started(cloud_settings(tmp_path, no_local_model(tmp_path), fake.url, on=False))
        try:
            auto = await manager.generate_image("a heron", width=64, height=64, num_inference_steps=2)
            assert auto.status == "error" and "tiny demo model is unavailable" in auto.error
            forced = await manager.generate_image("a heron", width=64, height=64, backend="cloud")
            assert forced.error == "Cloud APIs are off (ENABLE_CLOUD_APIS=0): nothing is sent off this machine."
            cloud = next(b for b in manager.status()["backends"] if b["name"] == "cloud")
            assert not cloud["enabled"] and "nothing leaves this machine" in cloud["summary"]
            assert "cloud" not in dict(manager.backend_choices()).values()  # not offered in the Image tab
        finally:
            manager.shutdown()
        assert fake.connections == 0 and fake.requests == []


async def test_forced_cloud_image_says_cloud_and_the_provider(tmp_path, tiny_model_dir):
    with FakeInference() as fake:
        manager = await started(cloud_settings(tmp_path, tiny_model_dir, fake.url))
        try:
            result = await manager.generate_image("a heron at dawn", negative_prompt="blur", width=96, height=64,
                                                  num_inference_steps=4, seed=7, backend="cloud")
            assert result.status == "success", result.error
            assert (result.backend, result.server, result.model) == ("cloud", "hf-inference", "FLUX.1-schnell")
            assert result.model_license == "Apache-2.0"
            assert Image.open(result.path).getpixel((5, 5)) == COLOUR and (result.width, result.height) == (96, 64)
            sent = fake.requests[0]
            assert sent["authorization"] == f"Bearer {TOKEN}" and sent["json"]["inputs"] == "a heron at dawn"
            assert {k: sent["json"]["parameters"][k] for k in ("width", "height", "seed", "negative_prompt")} == \
                {"width": 96, "height": 64, "seed": 7, "negative_prompt": "blur"}
            saved = read_parameters(result.path)
            assert saved["backend"] == "cloud" and saved["model_license"] == "Apache-2.0"
            assert "Model license: Apache-2.0" in Image.open(result.path).text["parameters"]
            # local first in auto mode: the cloud is the last fallback, so the tiny model runs and nothing is sent
            local = await manager.generate_image("a heron", width=64, height=64, num_inference_steps=2)
            assert local.backend == "diffusers" and len(fake.requests) == 1
        finally:
            manager.shutdown()


async def test_the_cloud_is_the_last_fallback_when_no_local_model_runs(tmp_path):
    with FakeInference() as fake:
        manager = await started(cloud_settings(tmp_path, no_local_model(tmp_path), fake.url))
        try:
            assert manager.active_backend()["backend"] == "cloud"
            assert manager.active_backend()["label"] == "Cloud (hf-inference) · FLUX.1-schnell"
            result = await manager.generate_image("a heron", width=64, height=64, num_inference_steps=2)
            assert result.backend == "cloud" and "tiny demo model is unavailable" in result.fallback_reason
        finally:
            manager.shutdown()


async def test_prefer_cloud_goes_first_and_a_bad_token_falls_back_with_its_sentence(tmp_path, tiny_model_dir):
    with FakeInference(unauthorized()) as fake:
        manager = await started(cloud_settings(tmp_path, tiny_model_dir, fake.url, prefer="cloud"))
        try:
            assert manager.active_backend()["backend"] == "cloud"
            result = await manager.generate_image("a heron", width=64, height=64, num_inference_steps=2)
            assert result.backend == "diffusers" and "refused the token (401)" in result.fallback_reason
            assert "HF_TOKEN" in result.fallback_reason and len(fake.requests) == 1
            # what the cloud cannot make (an init image) goes to the next backend, saying why
            img2img = await manager.generate_image("a heron", init_image=Image.new("RGB", (64, 64)), strength=0.5,
                                                   num_inference_steps=2)
            assert img2img.backend == "diffusers" and "text to image only" in img2img.fallback_reason
            edited = await manager.generate_image("a [heron:crane:1]", width=64, height=64, num_inference_steps=2)
            assert edited.backend == "diffusers" and "changes during sampling" in edited.fallback_reason
            assert len(fake.requests) == 1
        finally:
            manager.shutdown()


@pytest.mark.parametrize("script, sentence", [
    ((unauthorized(),), "The cloud provider ({url}) refused the token (401): set HF_TOKEN to a Hugging Face token "
                        "allowed to call Inference Providers."),
    ((rate_limited(120),), "The cloud provider ({url}) is limiting requests (429); try again in 2 minutes."),
    ((loading(300),), "The cloud model is loading at {url} (503); it should be ready in 5 minutes."),
    ((Answer("html"),), "The cloud provider ({url}) answered with something that is not an image."),
    ((Answer(delay_s=3.0),), "The cloud provider ({url}) did not answer within 0.5 s (GATOR_CLOUD_TIMEOUT)."),
    ((rate_limited(0.2), rate_limited(0.2)), "The cloud provider ({url}) is limiting requests (429); try again in "
                                             "1 s."),
], ids=["401", "429-long", "503-long", "not-an-image", "timeout", "429-twice"])
async def test_each_refusal_is_a_sentence(tmp_path, tiny_model_dir, script, sentence):
    with FakeInference(*script) as fake:
        manager = await started(cloud_settings(tmp_path, tiny_model_dir, fake.url, cloud_timeout_s=0.5))
        try:
            result = await manager.generate_image("a heron", width=64, height=64, backend="cloud")
            assert result.status == "error" and result.error == sentence.format(url=fake.url)
        finally:
            manager.shutdown()


async def test_what_the_provider_says_is_shown_without_the_token(tmp_path, tiny_model_dir):
    nested = Answer("error", 500, {"error": {"message": f"bad header Bearer {TOKEN}", "code": 5}})
    endless = Answer("error", 429, {"error": "slow down"}, {"Retry-After": "inf"})
    later = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=330), usegmt=True)
    dated = Answer("error", 429, {"error": "slow down"}, {"Retry-After": later})  # an HTTP date, as RFC 9110 allows
    with FakeInference(nested, endless, dated) as fake:
        manager = await started(cloud_settings(tmp_path, tiny_model_dir, fake.url))
        try:
            first = await manager.generate_image("a heron", width=64, height=64, backend="cloud")
            assert first.error == f"The cloud provider ({fake.url}) refused the request (500): bad header Bearer " \
                                  "(HF_TOKEN)."
            second = await manager.generate_image("a heron", width=64, height=64, backend="cloud")
            assert second.error.endswith("is limiting requests (429); try again later.")
            third = await manager.generate_image("a heron", width=64, height=64, backend="cloud")
            assert third.error.endswith("is limiting requests (429); try again in 5 minutes."), third.error
        finally:
            manager.shutdown()


async def test_an_image_cut_short_falls_back_to_this_machine(tmp_path, tiny_model_dir):
    with FakeInference(Answer("truncated")) as fake:
        manager = await started(cloud_settings(tmp_path, tiny_model_dir, fake.url, prefer="cloud"))
        try:
            result = await manager.generate_image("a heron", width=64, height=64, num_inference_steps=2)
            assert result.backend == "diffusers" and "an image that cannot be read" in result.fallback_reason
        finally:
            manager.shutdown()


async def test_a_forced_cloud_refuses_the_hires_fix_before_anything_is_sent(tmp_path, tiny_model_dir):
    with FakeInference() as fake:
        manager = await started(cloud_settings(tmp_path, tiny_model_dir, fake.url))
        try:
            result = await manager.generate_image("a heron", width=64, height=64, backend="cloud", hires_scale=2.0)
            assert result.status == "error" and "text to image only" in result.error and "hires fix" in result.error
            assert fake.requests == []  # the first pass was never paid for
        finally:
            manager.shutdown()


async def test_an_endpoint_of_your_own_never_gets_the_saved_hugging_face_token(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_saved_login")  # what huggingface_hub would send by itself
    with FakeInference() as fake:
        manager = await started(replace(cloud_settings(tmp_path, tiny_model_dir, fake.url), cloud_token=None))
        try:
            result = await manager.generate_image("a heron", width=64, height=64, backend="cloud")
            assert result.status == "success", result.error
            assert [sent["authorization"] for sent in fake.requests] == [""]
        finally:
            manager.shutdown()


@pytest.mark.parametrize("first", [rate_limited(0.2), loading(0.2)], ids=["429", "503"])
async def test_a_short_wait_is_retried_once(tmp_path, tiny_model_dir, first):
    with FakeInference(first, IMAGE) as fake:
        manager = await started(cloud_settings(tmp_path, tiny_model_dir, fake.url))
        try:
            result = await manager.generate_image("a heron", width=64, height=64, backend="cloud")
            assert result.backend == "cloud" and len(fake.requests) == 2
        finally:
            manager.shutdown()


async def test_an_unreachable_provider_falls_back_to_this_machine(tmp_path, tiny_model_dir):
    with FakeInference() as fake:
        url = fake.url
    manager = await started(cloud_settings(tmp_path, tiny_model_dir, url, prefer="cloud"))
    try:
        result = await manager.generate_image("a heron", width=64, height=64, num_inference_steps=2)
        assert result.backend == "diffusers" and f"Could not reach the cloud provider ({url})" in result.fallback_reason
    finally:
        manager.shutdown()


async def test_no_token_is_a_sentence_before_anything_is_sent(tmp_path, tiny_model_dir):
    settings = replace(cloud_settings(tmp_path, tiny_model_dir, None), cloud_token=None)
    manager = await started(settings)
    try:
        result = await manager.generate_image("a heron", backend="cloud")
        assert result.error.startswith("Cloud APIs need a Hugging Face token: set HF_TOKEN")
    finally:
        manager.shutdown()


async def test_offline_mode_is_a_sentence(tmp_path, tiny_model_dir, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with FakeInference() as fake:
        manager = await started(cloud_settings(tmp_path, tiny_model_dir, fake.url))
        try:
            result = await manager.generate_image("a heron", backend="cloud")
            assert result.error == "Cloud APIs are off while HF_HUB_OFFLINE=1 is set."
        finally:
            manager.shutdown()
        assert fake.connections == 0
