"""Backbone configuration: which network, which weights, how images are fed to it."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

SPECIAL_WEIGHTS = ("imagenet", "none")


@dataclass
class BackboneConfig:
    name: str = "resnet50"
    # "imagenet" (torchvision weights enum: torch hub cache or download), a state-dict path, or "none".
    weights: str = "imagenet"
    image_size: int = 224
    device: str = "auto"  # "auto" picks CUDA when present
    batch_size: int = 32
    num_workers: int = 1
    bf16: bool = True  # used only where the processor has fast bf16 (see backbone.bf16_supported)

    def weights_id(self) -> str:
        """A short identity of the weights: 'imagenet', 'none' or 'sd-<sha256 prefix of the file>'."""
        w = (self.weights or "none").strip()
        if w.lower() in SPECIAL_WEIGHTS:
            return w.lower()
        path = Path(w).expanduser()
        if not path.is_file():
            # The identity of a missing file cannot be known; the loader raises a clear error.
            return f"missing-{path.name}"
        return "sd-" + file_sha256(path)[:16]

    def key(self, state_sha: str | None = None) -> str:
        """Stable identity of the feature space: features cached under one key are valid only for it.

        ``state_sha`` (sha256 of fine-tuned weights handed to the Embedder) replaces the weights id.
        """
        weights = f"sd-{state_sha[:16]}" if state_sha else self.weights_id()
        return f"{self.name}:{weights}:{int(self.image_size)}"

    def resolve_device(self) -> torch.device:
        return resolve_device(self.device)

    def to_dict(self) -> dict:
        return asdict(self)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if isinstance(device, torch.device):
        return device
    device = (device or "auto").strip().lower()
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"ML_DEVICE={device!r} asks for CUDA but no CUDA device is available; use 'auto' or 'cpu'.")
    return dev


_SHA_CACHE: dict[tuple[str, float, int], str] = {}


def file_sha256(path: str | Path) -> str:
    """sha256 of a file, cached by path, mtime and size."""
    path = Path(path)
    st = path.stat()
    cache_key = (str(path.resolve()), st.st_mtime, st.st_size)
    if cache_key not in _SHA_CACHE:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        _SHA_CACHE[cache_key] = h.hexdigest()
    return _SHA_CACHE[cache_key]
