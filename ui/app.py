"""The whole app: header with the live backend badge, the Image, Video storyboard and System status tabs."""
from __future__ import annotations

from typing import Any

import gradio as gr
from starlette.middleware import Middleware

from engine.manager import AIModelManager
from engine.upscale import UPSCALERS

from .a1111_api import A1111Api
from .api import register_api
from .api_guard import ApiArguments
from .badge import SHOW_MODELS_JS, badge_html
from .cache_sweep import CACHE_SWEEP, cache_lifespan
from .file_guard import OwnFilesOnly
from .image_tab import build_image_tab
from .merger_panel import build_merger_panel
from .models import (choices_key, controlnet_choices, hires_checkpoint_choices, lora_choices, model_choices,
                     vae_choices)
from .sessions import Jobs
from .shortcuts import SHORTCUTS_JS
from .status_tab import build_status_tab
from .theme import CSS, LOGO_SVG, theme
from .video_tab import build_video_tab
from .workflow_box import workflow_choices

BADGE_REFRESH_S = 1.0
# Room for many clients: each client's extra jobs are refused as soon as they are dequeued (ui/sessions.py).
QUEUE_OPTIONS = {"default_concurrency_limit": 4, "max_size": 512}


def build_demo(manager: AIModelManager, *, browse_outputs: bool = True, title: str = "Gator Studio",
               cache_sweep: tuple[int, int] = CACHE_SWEEP) -> gr.Blocks:
    """The Gradio app around an engine `AIModelManager` (initialized or not; it initializes on first load);
    `cache_sweep` is how often Gradio's copies of pictures shown are swept, and their age when they go
    (ui/cache_sweep.py)."""
    jobs = Jobs()

    def read_status() -> dict[str, Any]:
        return manager.status()

    with gr.Blocks(title=title, analytics_enabled=False) as demo:
        seen = gr.State({})
        with gr.Row(elem_id="gator-header"):
            gr.HTML(f"<h1>{LOGO_SVG}<span>{title}</span></h1>", elem_id="gator-title", padding=False)
            badge = gr.HTML(badge_html(read_status().get("active")), elem_id="badge-slot", padding=False,
                            js_on_load=SHOW_MODELS_JS)  # the demo model's label links to the Models section
        with gr.Tabs(elem_id="gator-tabs"):
            with gr.Tab("Image", id="image", elem_id="tab-image"):
                image_tab = build_image_tab(manager, jobs, browse_outputs=browse_outputs)
            with gr.Tab("Video storyboard", id="video", elem_id="tab-video"):
                video_model = build_video_tab(manager, jobs)
            with gr.Tab("System status", id="status", elem_id="tab-status"):
                status_view, render_status = build_status_tab(read_status, manager.rescan_models, downloads=manager,
                                                              managed=manager if manager.settings.comfyui_dir else None)
                build_merger_panel(manager)

        def tick(last: dict[str, Any] | None):
            """Badge and model list from the monitor's snapshot; unchanged parts are skipped."""
            last = dict(last or {})
            try:
                status = read_status()
            except Exception as err:  # a transient engine error must not break the page
                return (*(gr.skip(),) * 11, last if last else {"error": str(err)})
            active = status.get("active") or {}
            badge_key = f"{active.get('backend')}|{active.get('label')}|{active.get('reason')}"
            choices = model_choices(status.get("models") or [])
            models_key = choices_key(choices)
            hires_checkpoints = hires_checkpoint_choices(status.get("models") or [])
            loras = lora_choices(status.get("loras") or [])
            loras_key = choices_key(loras)
            vaes = vae_choices(status.get("vaes") or [])
            vaes_key = choices_key(vaes)
            upscalers = [(name, name) for name in status.get("upscalers") or UPSCALERS]
            upscalers_key = choices_key(upscalers)
            controlnets = controlnet_choices(status.get("controlnets") or [])
            controlnets_key = choices_key(controlnets)
            styles = [(name, name) for name in status.get("styles") or []]  # a style file added while it runs
            styles_key = choices_key(styles)
            workflows = [(name, name) for name in workflow_choices(status.get("workflows") or [])]  # put in by hand
            workflows_key = choices_key(workflows)
            badge_out = badge_html(active) if badge_key != last.get("badge") else gr.skip()
            model_out = gr.update(choices=choices) if models_key != last.get("models") else gr.skip()
            hires_out = gr.update(choices=hires_checkpoints) if models_key != last.get("models") else gr.skip()
            lora_out = gr.update(choices=loras) if loras_key != last.get("loras") else gr.skip()
            vae_out = gr.update(choices=vaes) if vaes_key != last.get("vaes") else gr.skip()
            upscalers_out = gr.update(choices=upscalers) if upscalers_key != last.get("upscalers") else gr.skip()
            controlnet_out = gr.update(choices=controlnets) if controlnets_key != last.get("controlnets") else gr.skip()
            style_out = gr.update(choices=styles) if styles_key != last.get("styles") else gr.skip()
            workflow_out = gr.update(choices=workflows) if workflows_key != last.get("workflows") else gr.skip()
            return (badge_out, model_out, model_out, hires_out, lora_out, vae_out, upscalers_out, upscalers_out, controlnet_out,
                    style_out, workflow_out,
                    {"badge": badge_key, "models": models_key, "loras": loras_key, "vaes": vaes_key,
                     "upscalers": upscalers_key, "controlnets": controlnets_key, "styles": styles_key,
                     "workflows": workflows_key})

        async def on_load(last: dict[str, Any] | None):
            await manager.initialize_models()
            return (*tick(last), render_status())

        timer = gr.Timer(BADGE_REFRESH_S)
        model_lists = [image_tab.model, video_model, image_tab.hires_checkpoint, image_tab.lora, image_tab.vae, *image_tab.upscalers,
                       image_tab.controlnet, image_tab.style, image_tab.user_workflow]
        timer.tick(tick, inputs=seen, outputs=[badge, *model_lists, seen], queue=False,
                   api_visibility="private", show_progress="hidden")
        demo.load(on_load, inputs=seen, outputs=[badge, *model_lists, seen, status_view],
                  api_visibility="private", show_progress="hidden")
        demo.unload(image_tab.forget_session)
        api_specs = register_api(manager, jobs)
    demo.queue(**QUEUE_OPTIONS)
    jobs.attach(demo)
    demo.gator_api_specs = api_specs  # read by launch_options
    demo.gator_a1111 = A1111Api(manager, jobs)  # its routes are added by launch_options
    demo.gator_cache_lifespan = cache_lifespan(demo, *cache_sweep)  # likewise
    return demo


def launch_options(manager: AIModelManager, demo: gr.Blocks) -> dict[str, Any]:
    """Keyword arguments for `demo.launch` that belong to the app: theme, CSS, keyboard shortcuts, the outputs
    folder, the check that gives malformed API calls a sentence, (with logins) each login's files kept to that
    login, A1111's web API (/sdapi/v1), and the sweep of Gradio's copies of the pictures shown."""
    def fn_names() -> dict[int, str]:
        return {index: fn.api_name for index, fn in demo.fns.items() if getattr(fn, "api_name", None)}

    guard = Middleware(ApiArguments, specs=getattr(demo, "gator_api_specs", {}), fn_names=fn_names)
    own_files = Middleware(OwnFilesOnly, output_dir=manager.output_dir, admins=lambda: manager.admins)
    return {"theme": theme(), "css": CSS, "js": SHORTCUTS_JS, "allowed_paths": [str(manager.output_dir)],
            "app_kwargs": {"middleware": [guard, own_files], "routes": demo.gator_a1111.routes(),
                           "lifespan": demo.gator_cache_lifespan}}
