"""Gator Studio's engine: everything that generates. Imports no gradio."""
from .events import Done, Failed, Fallback, Progress, Queued, Started
from .manager import AIModelManager

__all__ = ["AIModelManager", "Queued", "Started", "Progress", "Fallback", "Done", "Failed"]
