"""API endpoints for gradio_client: /generate_image, /generate_video and /status.

    from gradio_client import Client
    client = Client("http://127.0.0.1:7860/")
    image_path, info = client.predict("a red fox in the snow", api_name="/generate_image")
"""

from typing import Any

import gradio as gr
from gradio.data_classes import FileData

from .image_tab import GENERATE_CONCURRENCY, _seed_value
from .models import AUTO, model_defaults
from .presets import apply_style
from .serialize import jsonable
from .sessions import CancelSwitches


def register_api(manager: Any, switches: CancelSwitches) -> None:
    """Add the endpoints to the current gr.Blocks."""

    async def generate_image(prompt: str, negative_prompt: str = "", width: int | None = None,
                             height: int | None = None, steps: int | None = None, guidance: float | None = None,
                             seed: int = -1, model: str = AUTO, backend: str = "auto", sampler: str = "euler",
                             style: str = "None", request: gr.Request = None) -> tuple[FileData, dict]:
        """Generate one image. Sizes, steps and guidance left empty use the chosen model's defaults.

        Returns the PNG (with its parameters in text chunks) and a dict: status, seed, model, model_id,
        workflow (comfyui or diffusers), server, width, height, steps, guidance, sampler,
        fallback_reason, warnings, saved_path (on the server), timings. Bad input raises an error whose
        message says what to fix.
        """
        defaults = model_defaults(manager, model)
        styled, negative = apply_style(style, prompt or "", negative_prompt or "")
        with switches.request(getattr(request, "session_hash", None)) as cancel:
            result = await manager.generate_image(
                styled, negative,
                width=defaults["width"] if width is None else width,
                height=defaults["height"] if height is None else height,
                num_inference_steps=defaults["steps"] if steps is None else steps,
                guidance_scale=guidance, seed=_seed_value(seed), model=model or AUTO, backend=backend or "auto",
                sampler=sampler or "euler", cancel=cancel)
        if result.get("status") != "success" or not result.get("path"):
            raise gr.Error(result.get("error") or "The image could not be generated.", print_exception=False)
        info = jsonable(result)
        # A dict with a "path" key reads as a file to Gradio; the server-side location is `saved_path`.
        info["saved_path"] = info.pop("path", None)
        return FileData(path=result["path"]), info

    def status() -> dict:
        """What the System status tab shows: active backend, ComfyUI servers, hardware, models, switches."""
        return jsonable(manager.status())

    gr.api(generate_image, api_name="generate_image", concurrency_limit=4, concurrency_id=GENERATE_CONCURRENCY)
    gr.api(status, api_name="status", queue=False)
