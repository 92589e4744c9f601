"""Embedding pipeline throughput vs the bare model forward on the same tensors, and bf16 vs fp32.

    python bench/embed.py [--n 128] [--image-size 224] [--batch-size 32] [--workers 1] [--images DIR]

Images: JPEGs from --images (e.g. ../shared/data/fashion-products/images), or generated ones.
Prints one JSON line: pipeline_images_per_s (decode, resize, model, write into the output array),
forward_images_per_s (model only, tensors already decoded), ratio, and the bf16 comparison
(throughput and cosine agreement with fp32; bf16 is used by the Embedder only where the
processor has fast bf16, reported as bf16_fast).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from ml.backbone import Embedder, bf16_supported, load_image_tensor  # noqa: E402
from ml.config import BackboneConfig  # noqa: E402


def synthetic_jpegs(folder: Path, n: int, size: int = 400) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        # Smooth colour gradients plus a shape: realistic JPEG sizes, unlike pure noise.
        yy, xx = np.mgrid[0:size, 0:size] / size
        base = np.stack([np.sin(xx * rng.uniform(1, 6)), np.cos(yy * rng.uniform(1, 6)), xx * yy], -1)
        img = ((base * 0.5 + 0.5) * 255).astype(np.uint8)
        img[size // 4 : 3 * size // 4, size // 3 : 2 * size // 3] = rng.integers(0, 255, 3)
        path = folder / f"{i}.jpg"
        Image.fromarray(img).save(path, quality=90)
        paths.append(path)
    return paths


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=128)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--weights", default="none")
    p.add_argument("--device", default="auto")
    p.add_argument("--images", type=Path, default=None)
    p.add_argument("--bf16-n", type=int, default=32, help="images for the bf16 vs fp32 comparison")
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        if args.images:
            paths = sorted(args.images.glob("*.jpg"))[: args.n]
        else:
            paths = synthetic_jpegs(Path(tmp), args.n)
        cfg = BackboneConfig(weights=args.weights, image_size=args.image_size, device=args.device, batch_size=args.batch_size, num_workers=args.workers)
        emb = Embedder(cfg)
        tensors = torch.stack([load_image_tensor(pth, args.image_size) for pth in paths])
        emb.forward_tensor(tensors[: args.batch_size])  # warm-up: oneDNN picks its kernels

        t = time.perf_counter()
        for start in range(0, len(tensors), args.batch_size):
            emb.forward_tensor(tensors[start : start + args.batch_size])
        forward_s = time.perf_counter() - t

        t = time.perf_counter()
        sys.stderr.write(f"pipeline over {len(paths)} images...\n")
        feats = emb.embed_paths(paths)
        pipeline_s = time.perf_counter() - t

        sub = tensors[: args.bf16_n]
        t = time.perf_counter()
        fp32 = emb.forward_tensor(sub, bf16=False)
        fp32_s = time.perf_counter() - t
        emb.forward_tensor(sub[:2], bf16=True)
        t = time.perf_counter()
        bf16 = emb.forward_tensor(sub, bf16=True)
        bf16_s = time.perf_counter() - t
        cos = torch.nn.functional.cosine_similarity(fp32, bf16, dim=1).numpy()

    out = {
        "n": len(paths),
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "workers": args.workers,
        "device": str(emb.device),
        "threads": torch.get_num_threads(),
        "pipeline_images_per_s": round(len(paths) / pipeline_s, 2),
        "forward_images_per_s": round(len(paths) / forward_s, 2),
        "ratio": round(forward_s / pipeline_s, 3),
        "bf16_fast": bf16_supported(emb.device),
        "bf16_used_by_embedder": emb.use_bf16,
        "fp32_images_per_s": round(len(sub) / fp32_s, 2),
        "bf16_images_per_s": round(len(sub) / bf16_s, 2),
        "bf16_cosine_mean": round(float(cos.mean()), 5),
        "bf16_cosine_min": round(float(cos.min()), 5),
        "features_finite": bool(np.isfinite(feats).all()),
    }
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
