"""Step-preview cost per step, per model family and image size: the latent -> RGB projection, and a TAESD decoder
(random weights of the published shape: the same work as the real one) where the family has one.

Run: .venv/bin/python bench/preview_cost.py [--device cuda]
"""
from __future__ import annotations

import torch

from common import median_time, row

from engine.backends.preview_decoders import load_taesd
from engine.previews import latents_to_preview, unpack_flux_latents

CASES = [
    ("sd15", 512, 4),
    ("sdxl", 1024, 4),
    ("flux", 1024, 16),
]


def main() -> None:
    import argparse
    import sys
    import tempfile
    from pathlib import Path

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu", help="where the latents and the decoder are (cpu, cuda)")
    device = parser.parse_args().device
    dtype = torch.float16 if device.startswith("cuda") else torch.float32

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.support.tiny_taesd import write_taesd_decoder

    torch.manual_seed(0)
    decoder_file = Path(tempfile.mkdtemp()) / "taesd_decoder.safetensors"
    write_taesd_decoder(decoder_file)
    taesd = load_taesd(decoder_file, device, dtype)

    def synced(work):  # a GPU runs ahead: time until its work is done
        return (lambda: (work(), torch.cuda.synchronize())) if device.startswith("cuda") else work
    print(row("family", "image", "latent", "projection (ms/step)", "TAESD (ms/step)", "TAESD / projection"))
    print(row(*["---"] * 6))
    for family, size, channels in CASES:
        side = size // 8
        if family == "flux":  # diffusers hands FLUX latents packed in 2x2 patches
            packed = torch.randn(1, (side // 2) ** 2, channels * 4)
            step = lambda: latents_to_preview(unpack_flux_latents(packed, size, size), family)  # noqa: E731
            decoded = None
        else:
            latents = torch.randn(1, channels, side, side, device=device, dtype=dtype)
            step = lambda: latents_to_preview(latents, family)  # noqa: E731
            decoded = synced(lambda: taesd(latents))
        seconds = median_time(step, repeat=50)
        taesd_s = median_time(decoded, repeat=5) if decoded else None
        print(row(family, f"{size} px", f"{channels}x{side}x{side}", f"{seconds * 1000:.2f}",
                  f"{taesd_s * 1000:.0f}" if taesd_s else "(no TAESD here)",
                  f"{taesd_s / seconds:.0f}x" if taesd_s else ""))


if __name__ == "__main__":
    main()
