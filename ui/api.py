"""API endpoints for gradio_client: /generate_image, /img2img, /inpaint, /controlnet, /comfyui_workflow, /xyz_plot,
/upscale, /png_info, /generate_video and /status.

    from gradio_client import Client
    client = Client("http://127.0.0.1:7860/")
    image_path, info = client.predict("a red fox in the snow", api_name="/generate_image")
"""

import asyncio
from typing import Any, Awaitable, Callable

import gradio as gr
from gradio.data_classes import FileData

from engine import params as P
from engine.errors import InvalidRequest
from engine.manager import AIModelManager
from engine.png_info import png_info as read_png_info
from engine.prompt_list import END as LIST_END
from engine.request import AUTO
from engine.result import ImageResult
from engine.styles import NO_STYLE

from .api_guard import EndpointValue, endpoint_spec, uploaded_path
from .image_tab import GENERATE_CONCURRENCY
from .serialize import api_safe, jsonable
from .video_tab import video_request
from .sessions import RENDER_CONCURRENCY, RENDERS_AT_ONCE, Jobs, TooManyJobs


def upload(value: object, what: str) -> str:
    """The server path of a file the caller uploaded as `what`, or a gr.Error sentence (a server path in its
    place is never opened)."""
    path = uploaded_path(value)
    if not path:
        raise gr.Error(f"Upload the {what} as a file (gradio_client: handle_file(path)).", print_exception=False)
    return path


def register_api(manager: AIModelManager, jobs: Jobs) -> dict[str, list[EndpointValue]]:
    """Add the endpoints to the current gr.Blocks; returns each one's values (for ui/api_guard.py)."""

    async def generate_image(prompt: str, negative_prompt: str = P.NEGATIVE_PROMPT.default, width: int | None = None,
                             height: int | None = None, num_inference_steps: int | None = None,
                             guidance_scale: float | None = P.GUIDANCE.default, seed: int = P.SEED.default,
                             model: str = P.MODEL.default, backend: str = P.BACKEND.default,
                             sampler: str = P.SAMPLER.default, style: str | list[str] = NO_STYLE,
                             batch_count: int = P.BATCH_COUNT.default, loras: list[dict] | None = None,
                             vae: str = P.VAE.default, hires_scale: float = P.HIRES_SCALE.default,
                             hires_strength: float = P.HIRES_STRENGTH.default, hires_steps: int = P.HIRES_STEPS.default,
                             hires_upscaler: str = P.HIRES_UPSCALER.default, clip_skip: int = P.CLIP_SKIP.default,
                             variation_seed: int = P.VARIATION_SEED.default,
                             variation_strength: float = P.VARIATION_STRENGTH.default, freeu: bool = P.FREEU.default,
                             cfg_rescale: float = P.CFG_RESCALE.default,
                             hires_sampler: str = P.HIRES_SAMPLER.default, hires_prompt: str = P.HIRES_PROMPT.default,
                             hires_negative_prompt: str = P.HIRES_NEGATIVE_PROMPT.default,
                             hires_checkpoint: str = P.HIRES_CHECKPOINT.default, tiling: bool = P.TILING.default,
                             hires_resize_width: int = P.HIRES_RESIZE_WIDTH.default,
                             hires_resize_height: int = P.HIRES_RESIZE_HEIGHT.default, steps: int | None = None, guidance: float | None = None,
                             request: gr.Request = None) -> tuple[FileData, dict]:
        """Generate one image, or `batch_count` images (seeds seed, seed + 1, ...). Width, height, steps and
        guidance left empty use the chosen model's defaults; the names and limits are engine/params.py's
        (`steps` and `guidance` are accepted for num_inference_steps and guidance_scale). `loras` lists LoRAs
        as [{"name": "detail", "weight": 0.8}] (names as /status lists them); a `<lora:name:weight>` tag in
        the prompt does the same. `style` names a prompt style, or lists several applied in order (as /status
        lists them: the app's and yours). `vae` names a VAE file (as /status lists them) to decode with, or auto.
        `hires_scale` above 1 is A1111's hires fix (made at width x height, upscaled, redrawn with
        `hires_strength` over `hires_steps`, 0 meaning the same steps; `hires_sampler`, `hires_prompt`,
        `hires_negative_prompt` and `hires_checkpoint` (a model's id as /status lists them) its own, where given);
        `hires_resize_width` / `hires_resize_height` (A1111's "Resize width/height to", 0: unset) make it that size
        instead (a side left 0 follows the other; both crop the first pass at the centre). `clip_skip` is A1111's Clip skip (2: the
        text encoder stops one layer early) for SD 1.x models (others ignore it and say so). `variation_strength`
        above 0 is A1111's variation seed: the starting noise moved toward `variation_seed`'s (-1: random; made on
        this machine, even when ComfyUI is up). `freeu` turns FreeU on (SD 1.x, SD 2.x, SDXL; the family's
        values; others ignore it and say so). `cfg_rescale` (0 to 1; 0.7 for v-prediction models) rescales the
        guided prediction toward the prompt's own spread (where a pipeline cannot, the result says so). `tiling` makes
        a seamless image that tiles as a texture (A1111's Tiling; made on this machine).

        Returns the (first) PNG (with its parameters in text chunks) and a dict with the request's names
        (prompt, negative_prompt, width, height, num_inference_steps, guidance_scale, seed, sampler) and
        status, model, model_id, backend (the one that ran it), server, fallback_reason, warnings,
        saved_path (on the server), timings; for a batch, "batch" lists every image's dict. Bad
        input raises an error whose message says what to fix.
        """
        values = sized(model, width, height, num_inference_steps if num_inference_steps is not None else steps)
        values[P.GUIDANCE.name] = guidance_scale if guidance_scale is not None else guidance
        styled, negative = styles_applied(style, prompt, negative_prompt)
        hires_styled, hires_negative = styles_applied(style, hires_prompt, hires_negative_prompt, hires=True)
        return await image_job(request, lambda cancel: manager.generate_image(
            styled if isinstance(prompt, str) else prompt, negative, seed=P.seed_input(seed), model=model or AUTO,
            backend=backend or AUTO, sampler=sampler or P.SAMPLER.default, batch_count=batch_count, loras=loras,
            vae=vae or AUTO, hires_scale=hires_scale, hires_strength=hires_strength, hires_steps=hires_steps,
            hires_upscaler=hires_upscaler, clip_skip=clip_skip, variation_seed=P.seed_input(variation_seed),
            hires_sampler=hires_sampler or P.HIRES_SAMPLER.default,
            hires_prompt=hires_styled if isinstance(hires_prompt, str) or hires_prompt is None else hires_prompt,
            hires_negative_prompt=hires_negative, hires_checkpoint=hires_checkpoint or P.HIRES_CHECKPOINT.default,
            hires_resize_width=hires_resize_width or 0, hires_resize_height=hires_resize_height or 0,
            tiling=tiling, variation_strength=variation_strength, freeu=freeu, cfg_rescale=cfg_rescale, cancel=cancel,
            previews=False, owner=getattr(request, "username", None), **values))

    def sized(model: str, width: int | None, height: int | None, steps: int | None) -> dict:
        """Width, height and steps as given, those left empty the model's defaults."""
        given = {P.WIDTH.name: width, P.HEIGHT.name: height, P.STEPS.name: steps}
        return {**manager.model_defaults(model), **{k: v for k, v in given.items() if v is not None}}

    def styles_applied(style: Any, prompt: Any, negative_prompt: str | None, hires: bool = False) -> tuple[str, str]:
        """The prompt and negative prompt with the named styles applied (a prompt that is no text is the engine's
        sentence to say; `hires`: a hires pass's own, each styled only when given); a gr.Error sentence for an
        unknown style."""
        styled = manager.styled_hires if hires else manager.styled
        if not isinstance(negative_prompt, (str, type(None))):  # the engine's sentence says what it must be
            return prompt if isinstance(prompt, str) else "", negative_prompt
        try:
            return styled(style, prompt if isinstance(prompt, str) else "", negative_prompt or "")
        except InvalidRequest as err:
            raise gr.Error(str(err), print_exception=False) from None

    async def image_job(request: gr.Request, run: Callable[[asyncio.Event], Awaitable[ImageResult]]) \
            -> tuple[FileData, dict]:
        """`run(cancel)` as one of the caller's jobs: its PNG and its dict, or its sentence as the error."""
        try:
            async with jobs.job(request) as cancel:
                result = await run(cancel)
        except TooManyJobs as err:
            raise gr.Error(str(err), print_exception=False) from None
        if result.status != "success" or not result.path:
            raise gr.Error(result.error or "The image could not be generated.", print_exception=False)
        return FileData(path=result.path), api_safe(result.to_dict())

    async def xyz_plot(prompt: str, x_type: str = P.NO_AXIS, x_values: str = "", y_type: str = P.NO_AXIS,
                       y_values: str = "", z_type: str = P.NO_AXIS, z_values: str = "",
                       negative_prompt: str = P.NEGATIVE_PROMPT.default, width: int | None = None,
                       height: int | None = None, num_inference_steps: int | None = None,
                       guidance_scale: float | None = P.GUIDANCE.default, seed: int = P.SEED.default,
                       model: str = P.MODEL.default, backend: str = P.BACKEND.default,
                       sampler: str = P.SAMPLER.default, style: str | list[str] = NO_STYLE,
                       loras: list[dict] | None = None,
                       vae: str = P.VAE.default, clip_skip: int = P.CLIP_SKIP.default,
                       variation_seed: int = P.VARIATION_SEED.default,
                       variation_strength: float = P.VARIATION_STRENGTH.default, freeu: bool = P.FREEU.default,
                       cfg_rescale: float = P.CFG_RESCALE.default, tiling: bool = P.TILING.default,
                       request: gr.Request = None) -> tuple[FileData, dict]:
        """A1111's X/Y/Z plot: one image per cell, each axis varying one parameter (x_type: seed, steps, guidance,
        sampler, model, lora_weight, strength, clip_skip, variation_seed, variation_strength, cfg_rescale or prompt_sr
        (A1111's Prompt S/R: the first value searched in the prompts, each value put in its place), by these names or
        A1111's; Nothing leaves an axis out) over its
        values (A1111's text: "1, 2, 3", "1-10 (+3)", "10-20 [3]", "\"a name, with a comma\""). The rest as
        /generate_image, shared by every cell (one seed for all when -1). Returns the grid PNG (X labels above,
        Y on the left, Z values side by side; its text A1111's "X Type: ..., X Values: ...") and its dict, whose
        "batch" lists every cell's dict (each image saved with its own parameters) in A1111's order, X fastest."""
        values = {**sized(model, width, height, num_inference_steps), P.GUIDANCE.name: guidance_scale}
        return await image_job(request, lambda cancel: manager.xyz_plot(  # styles: in each cell, after Prompt S/R
            prompt, x_type, x_values, y_type, y_values, z_type, z_values, style=style,
            negative_prompt=negative_prompt or "", seed=P.seed_input(seed), model=model or AUTO,
            backend=backend or AUTO, sampler=sampler or P.SAMPLER.default, loras=loras, vae=vae or AUTO,
            clip_skip=clip_skip, variation_seed=P.seed_input(variation_seed), variation_strength=variation_strength,
            freeu=freeu, cfg_rescale=cfg_rescale, tiling=tiling, cancel=cancel, previews=False,
            owner=getattr(request, "username", None), **values))

    async def prompt_list(prompts: str, prompt: str = "", position: str = LIST_END, iterate_seed: bool = False,
                          same_seed: bool = False, negative_prompt: str = P.NEGATIVE_PROMPT.default,
                          width: int | None = None, height: int | None = None,
                          num_inference_steps: int | None = None, guidance_scale: float | None = P.GUIDANCE.default,
                          seed: int = P.SEED.default, model: str = P.MODEL.default, backend: str = P.BACKEND.default,
                          sampler: str = P.SAMPLER.default, style: str | list[str] = NO_STYLE,
                          batch_count: int = P.BATCH_COUNT.default, loras: list[dict] | None = None,
                          vae: str = P.VAE.default, request: gr.Request = None) -> tuple[FileData, dict]:
        """A1111's "Prompts from file or textbox": an image (or `batch_count` images) per line of `prompts`, a line a
        prompt or A1111's `--prompt "..." --steps 20 --seed 5 ...` form (its options for that line only), each put at
        the `position` ("start" or "end") of `prompt`. `iterate_seed` starts each line past the seeds the lines
        before it used; `same_seed` draws one random seed for every line. The rest as /generate_image, shared by every
        line. Every line is checked before any work (a problem names its line). Returns the first image's PNG and its dict, whose "batch" lists
        every image's dict in order."""
        values = {**sized(model, width, height, num_inference_steps), P.GUIDANCE.name: guidance_scale}
        return await image_job(request, lambda cancel: manager.prompt_list(
            prompts, prompt or "", position=position or LIST_END, iterate_seed=bool(iterate_seed),
            same_seed=bool(same_seed), negative_prompt=negative_prompt or "", seed=P.seed_input(seed),
            model=model or AUTO, backend=backend or AUTO, sampler=sampler or P.SAMPLER.default, style=style,
            batch_count=batch_count, loras=loras, vae=vae or AUTO, cancel=cancel, previews=False,
            owner=getattr(request, "username", None), **values))

    async def img2img(init_image: FileData, prompt: str, negative_prompt: str = P.NEGATIVE_PROMPT.default,
                      strength: float = P.STRENGTH.default, resize_mode: str = P.RESIZE_MODE.default,
                      width: int | None = None, height: int | None = None, num_inference_steps: int | None = None,
                      guidance_scale: float | None = P.GUIDANCE.default, seed: int = P.SEED.default,
                      model: str = P.MODEL.default, backend: str = P.BACKEND.default,
                      sampler: str = P.SAMPLER.default, style: str | list[str] = NO_STYLE,
                      batch_count: int = P.BATCH_COUNT.default, loras: list[dict] | None = None,
                      vae: str = P.VAE.default, clip_skip: int = P.CLIP_SKIP.default,
                      freeu: bool = P.FREEU.default, cfg_rescale: float = P.CFG_RESCALE.default,
                      tiling: bool = P.TILING.default, request: gr.Request = None) -> tuple[FileData, dict]:
        """Image-to-image: `init_image` (an uploaded file: gradio_client's `handle_file(path)`) redrawn after
        `prompt`. `strength` is A1111's denoising strength (0 keeps the image, 1 draws anew); width and height
        left empty keep the init image's size, otherwise `resize_mode` (just resize, crop and resize, resize
        and fill) fits it. The rest as /generate_image. Returns the PNG and the same dict (with "strength")."""
        return await redraw(request, init_image, prompt, negative_prompt, style, num_inference_steps, width=width,
                            height=height, guidance_scale=guidance_scale, seed=P.seed_input(seed), model=model or AUTO,
                            backend=backend or AUTO, sampler=sampler or P.SAMPLER.default, batch_count=batch_count,
                            loras=loras, vae=vae or AUTO, clip_skip=clip_skip, freeu=freeu, cfg_rescale=cfg_rescale,
                            tiling=tiling, strength=strength, resize_mode=resize_mode)

    async def inpaint(init_image: FileData, mask: FileData | None, prompt: str,
                      negative_prompt: str = P.NEGATIVE_PROMPT.default, strength: float = P.STRENGTH.default,
                      mask_blur: int = P.MASK_BLUR.default, inpaint_area: str = P.INPAINT_AREA.default,
                      only_masked_padding: int = P.ONLY_MASKED_PADDING.default, outpaint: dict | None = None,
                      resize_mode: str = P.RESIZE_MODE.default, width: int | None = None, height: int | None = None,
                      num_inference_steps: int | None = None, guidance_scale: float | None = P.GUIDANCE.default,
                      seed: int = P.SEED.default, model: str = P.MODEL.default, backend: str = P.BACKEND.default,
                      sampler: str = P.SAMPLER.default, style: str | list[str] = NO_STYLE,
                      batch_count: int = P.BATCH_COUNT.default, loras: list[dict] | None = None,
                      vae: str = P.VAE.default, clip_skip: int = P.CLIP_SKIP.default,
                      freeu: bool = P.FREEU.default, cfg_rescale: float = P.CFG_RESCALE.default,
                      masked_content: str = P.MASKED_CONTENT.default,
                      request: gr.Request = None) -> tuple[FileData, dict]:
        """Inpaint and outpaint: `init_image` redrawn after `prompt` where `mask` (an uploaded file, white =
        repaint; stretched to the init image's size if it has another) is white. `mask_blur` softens the mask's
        edge; `masked_content` is what the masked part starts from (A1111's original, fill, latent noise, latent
        nothing); `inpaint_area` "only masked" redraws just the mask's box plus `only_masked_padding` pixels at width
        x height. `outpaint` ({"left": 0, "right": 64, "up": 0, "down": 0}, pixels, multiples of 8) extends the
        image and paints the new area (the mask may then be None). Outside the blurred mask the result keeps the
        init image's pixels exactly. The rest as /img2img. Returns the PNG and the same dict (with mask_blur,
        inpaint_area, only_masked_padding, outpaint)."""
        mask_path = upload(mask, "mask") if mask is not None else None
        if mask_path is None and outpaint is None:
            raise gr.Error("Upload a mask (white = repaint), or give outpaint amounts.", print_exception=False)
        return await redraw(request, init_image, prompt, negative_prompt, style, num_inference_steps, width=width,
                            height=height, guidance_scale=guidance_scale, seed=P.seed_input(seed), model=model or AUTO,
                            backend=backend or AUTO, sampler=sampler or P.SAMPLER.default, batch_count=batch_count,
                            loras=loras, vae=vae or AUTO, clip_skip=clip_skip, freeu=freeu, cfg_rescale=cfg_rescale,
                            strength=strength,
                            resize_mode=resize_mode, mask=mask_path,
                            mask_blur=mask_blur, masked_content=masked_content, inpaint_area=inpaint_area,
                            only_masked_padding=only_masked_padding, outpaint=outpaint)

    async def controlnet(control_image: FileData, prompt: str, controlnet: str,
                         controlnet_module: str = P.CONTROLNET_MODULE.default,
                         controlnet_weight: float = P.CONTROLNET_WEIGHT.default,
                         controlnet_start: float = P.CONTROLNET_START.default,
                         controlnet_end: float = P.CONTROLNET_END.default, canny_low: int = P.CANNY_LOW.default,
                         canny_high: int = P.CANNY_HIGH.default, negative_prompt: str = P.NEGATIVE_PROMPT.default,
                         width: int | None = None, height: int | None = None, num_inference_steps: int | None = None,
                         guidance_scale: float | None = P.GUIDANCE.default, seed: int = P.SEED.default,
                         model: str = P.MODEL.default, backend: str = P.BACKEND.default,
                         sampler: str = P.SAMPLER.default, style: str | list[str] = NO_STYLE,
                         batch_count: int = P.BATCH_COUNT.default, loras: list[dict] | None = None,
                         vae: str = P.VAE.default, init_image: FileData | None = None,
                         strength: float = P.STRENGTH.default, resize_mode: str = P.RESIZE_MODE.default,
                         clip_skip: int = P.CLIP_SKIP.default, freeu: bool = P.FREEU.default,
                         cfg_rescale: float = P.CFG_RESCALE.default,
                         request: gr.Request = None) -> tuple[FileData, dict]:
        """ControlNet: `control_image` (an uploaded file) turned into a map by `controlnet_module` (canny with
        `canny_low` / `canny_high`, lineart_standard, none for a ready map) steers the picture through the ControlNet
        `controlnet` (a name /status lists under "controlnets", made for the model's family) at `controlnet_weight`
        (0 to 2), from the fraction `controlnet_start` to `controlnet_end` of the steps. The map is fitted to the
        output as an init image is (`resize_mode`). With `init_image` (an uploaded file) it is image to image with
        `strength`, width and height left empty keeping the init image's size; without one, width, height and steps
        left empty are the model's defaults. The rest as /generate_image. Returns the PNG (its parameters carry
        sd-webui-controlnet's "ControlNet 0" entry) and the same dict, with the ControlNet's values."""
        values: dict[str, object] = dict(
            control_image=upload(control_image, "control image"), controlnet=controlnet,
            controlnet_module=controlnet_module, controlnet_weight=controlnet_weight,
            controlnet_start=controlnet_start, controlnet_end=controlnet_end, canny_low=canny_low,
            canny_high=canny_high, width=width, height=height, guidance_scale=guidance_scale,
            seed=P.seed_input(seed), model=model or AUTO, backend=backend or AUTO,
            sampler=sampler or P.SAMPLER.default, batch_count=batch_count, loras=loras, vae=vae or AUTO,
            clip_skip=clip_skip, freeu=freeu, cfg_rescale=cfg_rescale)
        if init_image is not None:
            values.update(init_image=upload(init_image, "init image"), strength=strength, resize_mode=resize_mode)
        else:
            defaults = manager.model_defaults(model)
            values.update({k: v if v is not None else defaults[k] for k, v in (
                (P.WIDTH.name, width), (P.HEIGHT.name, height))}, resize_mode=resize_mode)
            num_inference_steps = num_inference_steps if num_inference_steps is not None else defaults[P.STEPS.name]
        return await run(request, prompt, negative_prompt, style, num_inference_steps, **values)

    async def comfyui_workflow(prompt: str, user_workflow: str, negative_prompt: str = P.NEGATIVE_PROMPT.default,
                               width: int | None = None, height: int | None = None,
                               num_inference_steps: int = P.STEPS.default,
                               guidance_scale: float | None = P.GUIDANCE.default, seed: int = P.SEED.default,
                               model: str = P.MODEL.default, sampler: str = P.SAMPLER.default,
                               style: str | list[str] = NO_STYLE,
                               batch_count: int = P.BATCH_COUNT.default, loras: list[dict] | None = None,
                               init_image: FileData | None = None, strength: float = P.STRENGTH.default,
                               request: gr.Request = None) -> tuple[FileData, dict]:
        """Run your own ComfyUI workflow `user_workflow` (a name /status lists under "workflows": an API-format
        export in the workflows folder) on a ComfyUI server that has every node it uses. The prompts, seed, steps,
        guidance (cfg, or FluxGuidance's), sampler, size, model (auto: the file's) and `init_image` (for its
        LoadImage, with `strength` as the denoise) go into the inputs found in it; everything else runs as in the
        file. Never runs on this machine. Returns the PNG (with the graph in ComfyUI's `prompt` chunk) and the same
        dict as /generate_image, with user_workflow."""
        values: dict[str, object] = dict(user_workflow=user_workflow, guidance_scale=guidance_scale,
                                         seed=P.seed_input(seed), model=model or AUTO, backend=AUTO,
                                         sampler=sampler or P.SAMPLER.default, batch_count=batch_count, loras=loras)
        if init_image is not None:
            values.update(init_image=upload(init_image, "init image"), strength=strength, width=width, height=height)
        else:
            defaults = manager.model_defaults(model)
            values.update({k: v if v is not None else defaults[k] for k, v in ((P.WIDTH.name, width),
                                                                                (P.HEIGHT.name, height))})
        return await run(request, prompt, negative_prompt, style, num_inference_steps, **values)

    async def redraw(request: gr.Request, init_image: FileData, prompt: str, negative_prompt: str, style: str,
                     num_inference_steps: int | None, **values: object) -> tuple[FileData, dict]:
        """/img2img's and /inpaint's run: the uploaded init image (never a server path) redrawn with `values`."""
        return await run(request, prompt, negative_prompt, style, num_inference_steps,
                         init_image=upload(init_image, "init image"), **values)

    async def run(request: gr.Request, prompt: str, negative_prompt: str, style: str, num_inference_steps: int | None,
                  **values: object) -> tuple[FileData, dict]:
        """One image request of the endpoints that take pictures (uploads only, already checked): styled, run as the
        caller's job, its PNG and dict or the engine's sentence."""
        styled, negative = styles_applied(style, prompt, negative_prompt)
        steps = {P.STEPS.name: num_inference_steps} if num_inference_steps is not None else {}
        return await image_job(request, lambda cancel: manager.generate_image(
            styled if isinstance(prompt, str) else prompt, negative, cancel=cancel, previews=False,
            owner=getattr(request, "username", None), **values, **steps))

    async def generate_video(prompts: str = "", storyboard: str = "", quality: str = "draft",
                             use_ai_generation: bool = True, make_gif: bool = False, duration: float | None = None,
                             transition: str = "crossfade", transition_duration: float | None = None,
                             width: int | None = None, height: int | None = None, fps: float | None = None,
                             steps: int | None = None, seed: int = P.SEED.default, seed_policy: str = "increment",
                             model: str = AUTO, negative_prompt: str = "", title: str = "",
                             request: gr.Request = None) -> tuple[FileData, dict]:
        """Render a storyboard video: `prompts` one scene per line, or `storyboard` as YAML/JSON text (the text
        itself: a file name is never opened on the server).

        Empty sizes, fps and steps come from the quality preset (draft, standard, high). With
        use_ai_generation=False the keyframes are title cards (no model). Returns the mp4 and a dict:
        status, frames, duration_s, fps, width, height, keyframes, scenes, seeds, gif, storyboard_path,
        backends, warnings, timings. Bad input raises an error whose message says what to fix.
        """
        try:
            kwargs = video_request(prompts, negative_prompt, storyboard, quality, duration, transition,
                                   transition_duration, width, height, fps, steps, seed, seed_policy, model, title)
        except (TypeError, ValueError) as err:
            raise gr.Error(f"Check the numbers: {err}", print_exception=False) from None
        try:
            async with jobs.job(request) as cancel:
                result = await manager.generate_video(use_ai_generation=use_ai_generation, make_gif=make_gif,
                                                      cancel=cancel, owner=getattr(request, "username", None),
                                                      **kwargs)
        except TooManyJobs as err:
            raise gr.Error(str(err), print_exception=False) from None
        if result.get("status") != "success" or not result.get("video"):
            raise gr.Error(result.get("error") or "The video could not be made.", print_exception=False)
        return FileData(path=result["video"]), api_safe(result)

    async def upscale(image: FileData, scale: float = P.UPSCALE_BY.default, upscaler: str = P.UPSCALER.default,
                      request: gr.Request = None) -> tuple[FileData, dict]:
        """An uploaded image enlarged `scale` times (1 to 4) with `upscaler` (Lanczos, or a model upscaler's name as
        the status lists them: an ESRGAN-family file here or on a ComfyUI server), saved as a new PNG with the
        parameters it carried plus the upscale. Returns the PNG and a dict (status, width, height, saved_path)."""
        path = upload(image, "image")
        result = await manager.upscale_image(path, scale, upscaler, owner=getattr(request, "username", None))
        if result.status != "success" or not result.path:
            raise gr.Error(result.error or "The image could not be upscaled.", print_exception=False)
        return FileData(path=result.path), api_safe(result.to_dict())

    def png_info(image: FileData) -> dict:
        """The generation parameters an uploaded PNG carries (this app's, A1111's or ComfyUI's), under the
        parameter names /generate_image takes, with "source"; {} when it carries none."""
        path = upload(image, "PNG")
        try:
            return jsonable(read_png_info(path))
        except InvalidRequest as err:
            raise gr.Error(str(err), print_exception=False) from None

    def status() -> dict:
        """What the System status tab shows: active backend, ComfyUI servers, hardware, models, switches."""
        return jsonable(manager.status())

    gr.api(generate_image, api_name="generate_image", concurrency_limit=4, concurrency_id=GENERATE_CONCURRENCY)
    gr.api(img2img, api_name="img2img", concurrency_limit=4, concurrency_id=GENERATE_CONCURRENCY)
    gr.api(inpaint, api_name="inpaint", concurrency_limit=4, concurrency_id=GENERATE_CONCURRENCY)
    gr.api(xyz_plot, api_name="xyz_plot", concurrency_limit=4, concurrency_id=GENERATE_CONCURRENCY)
    gr.api(prompt_list, api_name="prompt_list", concurrency_limit=4, concurrency_id=GENERATE_CONCURRENCY)
    gr.api(controlnet, api_name="controlnet", concurrency_limit=4, concurrency_id=GENERATE_CONCURRENCY)
    gr.api(comfyui_workflow, api_name="comfyui_workflow", concurrency_limit=4, concurrency_id=GENERATE_CONCURRENCY)
    gr.api(generate_video, api_name="generate_video", concurrency_limit=RENDERS_AT_ONCE,
           concurrency_id=RENDER_CONCURRENCY)
    gr.api(status, api_name="status", queue=False)
    gr.api(png_info, api_name="png_info", queue=False)
    gr.api(upscale, api_name="upscale", concurrency_limit=2, concurrency_id="upscale")
    return {"generate_image": endpoint_spec(generate_image), "img2img": endpoint_spec(img2img),
            "inpaint": endpoint_spec(inpaint), "xyz_plot": endpoint_spec(xyz_plot),
            "prompt_list": endpoint_spec(prompt_list),
            "controlnet": endpoint_spec(controlnet),
            "comfyui_workflow": endpoint_spec(comfyui_workflow),
            "png_info": endpoint_spec(png_info), "upscale": endpoint_spec(upscale),
            "generate_video": endpoint_spec(generate_video)}
