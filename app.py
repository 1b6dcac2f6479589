"""Gator Studio: the web app at http://127.0.0.1:7860 (module-level `demo` for Hugging Face Spaces).

    python app.py [--host 127.0.0.1] [--port 7860] [--share] [--auth user:pass] [--admin user]
"""
import asyncio
import logging
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from engine import AIModelManager  # noqa: E402
from engine.config import Settings  # noqa: E402
from ui.app import build_demo, launch_options  # noqa: E402
from ui.launcher import NotServed, parse_args, serve, settings_overrides, stop_on_sigterm  # noqa: E402

LOG_LEVEL = (os.environ.get("GATOR_LOG_LEVEL") or "INFO").strip().upper()  # "debug" as well as "DEBUG"
logging.basicConfig(level=LOG_LEVEL if isinstance(logging.getLevelName(LOG_LEVEL), int) else "INFO",
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")
logger = logging.getLogger("gator.app")
if not isinstance(logging.getLevelName(LOG_LEVEL), int):
    logger.warning("GATOR_LOG_LEVEL %r is no log level (DEBUG, INFO, WARNING, ERROR): INFO it is.", LOG_LEVEL)


def _use_zerogpu(manager: AIModelManager) -> bool:
    """On a ZeroGPU Space (the `spaces` package is present) run local pipelines under `spaces.GPU`."""
    try:
        import spaces  # type: ignore[import-not-found]
    except ImportError:
        return False
    manager.use_gpu_decorator(spaces.GPU(duration=120))
    logger.info("ZeroGPU: local generation runs under spaces.GPU")
    return True


args = parse_args()
stop_on_sigterm()  # from here on SIGTERM ends the app as Ctrl+C does (a started ComfyUI is stopped)
try:
    settings = Settings.from_env(**settings_overrides(args))
except ValueError as err:  # a setting the app cannot take: its sentence, not a traceback
    raise SystemExit(f"Gator Studio cannot start: {err}") from None
manager = AIModelManager(settings, admins=args.admins)
asyncio.run(manager.initialize_models())
_use_zerogpu(manager)
demo = build_demo(manager, browse_outputs=not args.share)

if __name__ == "__main__":
    logger.info("Backend now: %s", manager.status()["active"]["label"])
    try:
        serve(demo, args, launch_options(manager, demo))
    except KeyboardInterrupt:  # Ctrl+C or SIGTERM before the server was fully up: a clean stop all the same
        pass
    except NotServed as err:
        raise SystemExit(f"Gator Studio cannot start: {err}") from None
    finally:
        manager.shutdown()
