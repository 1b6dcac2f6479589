"""Gator Studio entry point (the UI lands in ui/; until then this starts the engine and reports)."""
import asyncio
import logging

from engine import AIModelManager

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    status = asyncio.run(AIModelManager().initialize_models())
    print(status["active"]["label"])
