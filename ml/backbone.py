"""ResNet backbone embeddings: the penultimate activation (2048-d for ResNet-50) of every image.

Streaming: images are decoded by DataLoader workers (PIL draft mode for JPEG, so a large photo is
decoded at reduced resolution), batched as uint8 and normalised on the device, so memory stays
bounded by the batch size whatever the number of paths. Channels-last; bf16 autocast where the
processor has fast bf16 (CUDA with bf16, CPUs with AVX512-BF16 or AMX), fp32 otherwise.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ml.augment import augment_image_tensor
from ml.config import BackboneConfig

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Random initialisation is seeded so that "none" names one reproducible feature space.
RANDOM_INIT_SEED = 0


class WeightsUnavailable(RuntimeError):
    """The requested backbone weights cannot be had (offline, missing or incompatible file)."""


class ImageUnreadable(ValueError):
    """An image file cannot be decoded; the message names the file."""


# --- images ---------------------------------------------------------------------------------------


def pil_to_tensor(image: Image.Image, size: int) -> torch.Tensor:
    """RGB uint8 tensor (3, size, size): padded to a square with white (keeps the whole product), resized."""
    image = image.convert("RGB")
    w, h = image.size
    if w != h:
        side = max(w, h)
        canvas = Image.new("RGB", (side, side), (255, 255, 255))
        canvas.paste(image, ((side - w) // 2, (side - h) // 2))
        image = canvas
    if image.size != (size, size):
        image = image.resize((size, size), Image.BILINEAR, reducing_gap=2.0)
    arr = np.asarray(image, dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def load_image_tensor(path: str | Path, size: int) -> torch.Tensor:
    try:
        with Image.open(path) as image:
            if image.format == "JPEG":
                # Decode at the smallest power-of-two reduction still >= size: much less work for big photos.
                image.draft("RGB", (size, size))
            return pil_to_tensor(image, size)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageUnreadable(f"cannot read image {path}: {exc}") from exc


class _PathDataset(Dataset):
    def __init__(self, paths: Sequence[str | Path], size: int, n_views: int = 0, seed: int = 0):
        self.paths = list(paths)
        self.size = size
        self.n_views = n_views
        self.seed = seed

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        img = load_image_tensor(self.paths[i], self.size)
        if self.n_views:
            views = [
                augment_image_tensor(img, np.random.default_rng([self.seed, i, v])) for v in range(self.n_views)
            ]
            img = torch.stack(views)
        return i, img


# --- model ----------------------------------------------------------------------------------------


def bf16_supported(device: torch.device) -> bool:
    """True where bf16 matmuls are fast: CUDA with bf16, or a CPU with AVX512-BF16 / AMX."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type != "cpu" or not torch.backends.mkldnn.is_available():
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def build_backbone(name: str) -> tuple[nn.Module, int]:
    """An untrained torchvision ResNet with the classifier removed, and its embedding size."""
    if not name.startswith("resnet") or not hasattr(torchvision.models, name):
        raise ValueError(f"ML_BACKBONE={name!r} is not a torchvision ResNet (resnet18, resnet34, resnet50, resnet101...)")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_INIT_SEED)
        model = getattr(torchvision.models, name)(weights=None)
    dim = model.fc.in_features
    model.fc = nn.Identity()
    return model, dim


def imagenet_state_dict(name: str) -> dict:
    try:
        weights = torchvision.models.get_model_weights(name).DEFAULT
        return weights.get_state_dict(progress=False)
    except Exception as exc:  # offline, proxy, corrupt cache: all mean the same thing to the operator
        raise WeightsUnavailable(
            f"ImageNet weights for {name} are not in the local torch cache and cannot be downloaded ({exc}). "
            "Set ML_WEIGHTS to the path of a local state-dict file (.pt/.pth) or to 'none' "
            "(random initialisation), or put the torchvision checkpoint in $TORCH_HOME/hub/checkpoints."
        ) from exc


def state_dict_from_file(path: str | Path) -> dict:
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsUnavailable(
            f"ML_WEIGHTS={str(path)!r}: no such file. Set ML_WEIGHTS to 'imagenet', 'none' or an existing state-dict path."
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsUnavailable(f"ML_WEIGHTS={str(path)!r}: cannot load a state dict from this file ({exc}).") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsUnavailable(f"ML_WEIGHTS={str(path)!r}: the file holds a {type(state).__name__}, not a state dict.")
    return state


def state_sha256(state: dict) -> str:
    """sha256 over names, dtypes, shapes and bytes of a state dict: identity of fine-tuned weights."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name]
        if not torch.is_tensor(t):
            continue
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _load_into(model: nn.Module, state: dict, source: str) -> None:
    state = {k.removeprefix("module."): v for k, v in state.items() if not k.removeprefix("module.").startswith("fc.")}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise WeightsUnavailable(f"{source}: the state dict does not fit the backbone ({str(exc)[:300]})") from exc
    if missing or unexpected:
        raise WeightsUnavailable(
            f"{source}: the state dict does not fit the backbone "
            f"(missing {sorted(missing)[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {sorted(unexpected)[:5]}{'...' if len(unexpected) > 5 else ''})."
        )


def _in_daemon_process() -> bool:
    return multiprocessing.current_process().daemon


class Embedder:
    """Feature extractor: images -> (N, dim) float32 embeddings.

    ``state_dict`` (e.g. fine-tuned weights from ``category.finetune_layer4``) overrides cfg.weights;
    then ``key`` names those weights by their sha256.
    """

    def __init__(self, cfg: BackboneConfig | None = None, state_dict: dict | None = None):
        self.cfg = cfg = cfg or BackboneConfig()
        self.device = cfg.resolve_device()
        self.model, self.dim = build_backbone(cfg.name)
        state_sha = None
        if state_dict is not None:
            _load_into(self.model, state_dict, "state_dict argument")
            state_sha = state_sha256(self.model.state_dict())
        else:
            weights = (cfg.weights or "none").strip()
            if weights.lower() == "imagenet":
                _load_into(self.model, imagenet_state_dict(cfg.name), "torchvision ImageNet weights")
            elif weights.lower() == "none":
                log.warning(
                    "Backbone %s uses random initialisation (ML_WEIGHTS=none): embeddings are weak. "
                    "Set ML_WEIGHTS=imagenet (needs the torchvision checkpoint in the torch cache or network) "
                    "or ML_WEIGHTS=/path/to/state_dict.pt for real weights.",
                    cfg.name,
                )
            else:
                _load_into(self.model, state_dict_from_file(weights), f"ML_WEIGHTS={weights!r}")
        self.key = cfg.key(state_sha)
        self.model.eval().to(self.device, memory_format=torch.channels_last)
        self.use_bf16 = bool(cfg.bf16) and bf16_supported(self.device)
        self._mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1) * 255
        self._std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1) * 255

    # -- core -------------------------------------------------------------------------------------

    def preprocess(self, batch_uint8: torch.Tensor) -> torch.Tensor:
        x = batch_uint8.to(self.device, non_blocking=True).float()
        x = ((x - self._mean) / self._std).contiguous(memory_format=torch.channels_last)
        return x

    def forward_tensor(self, batch_uint8: torch.Tensor, *, bf16: bool | None = None) -> torch.Tensor:
        """uint8 (B,3,S,S) -> float32 (B,dim) on the CPU."""
        use_bf16 = self.use_bf16 if bf16 is None else bf16
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=use_bf16):
            feats = self.model(self.preprocess(batch_uint8))
        return feats.float().cpu()

    def _loader(self, dataset: Dataset, batch_size: int) -> DataLoader:
        workers = int(self.cfg.num_workers)
        if workers and _in_daemon_process():
            # Celery prefork children are daemons and may not fork DataLoader workers.
            workers = 0
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=False,
            num_workers=workers,
            pin_memory=self.device.type == "cuda",
            prefetch_factor=4 if workers else None,
            persistent_workers=False,
        )

    def iter_embed_paths(self, paths: Sequence[str | Path], progress: Progress | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (row_indices, feats float32 (b, dim)) batch by batch, in input order."""
        paths = list(paths)
        total, done = len(paths), 0
        if progress:
            progress(0, total)
        for idx, batch in self._loader(_PathDataset(paths, self.cfg.image_size), self.cfg.batch_size):
            feats = self.forward_tensor(batch).numpy()
            done += len(idx)
            yield idx.numpy(), feats
            if progress:
                progress(done, total)

    def embed_paths(self, paths: Sequence[str | Path], progress: Progress | None = None, out: np.ndarray | None = None) -> np.ndarray:
        """(N, dim) float32; ``out`` may be a preallocated array or np.memmap for catalogs beyond RAM."""
        paths = list(paths)
        if out is None:
            out = np.empty((len(paths), self.dim), dtype=np.float32)
        elif out.shape != (len(paths), self.dim):
            raise ValueError(f"out has shape {out.shape}, expected {(len(paths), self.dim)}")
        for idx, feats in self.iter_embed_paths(paths, progress):
            out[idx] = feats
        return out

    def embed_pil(self, images: Sequence[Image.Image]) -> np.ndarray:
        images = list(images)
        out = np.empty((len(images), self.dim), dtype=np.float32)
        bs = self.cfg.batch_size
        for start in range(0, len(images), bs):
            batch = torch.stack([pil_to_tensor(im, self.cfg.image_size) for im in images[start : start + bs]])
            out[start : start + len(batch)] = self.forward_tensor(batch).numpy()
        return out

    def augmented_views(self, paths: Sequence[str | Path], n_views: int, seed: int = 0, progress: Progress | None = None) -> np.ndarray:
        """(N, n_views, dim): features of randomly translated, rotated, noised copies of each image.

        Each view is seeded by (seed, row, view), so a bank is reproducible. The clean features are
        not a view: concatenate them if the bank should include the original.
        """
        paths = list(paths)
        out = np.empty((len(paths), n_views, self.dim), dtype=np.float32)
        if n_views <= 0:
            return out
        total, done = len(paths), 0
        if progress:
            progress(0, total)
        per_batch = max(1, self.cfg.batch_size // n_views)
        loader = self._loader(_PathDataset(paths, self.cfg.image_size, n_views=n_views, seed=seed), per_batch)
        for idx, batch in loader:
            b = batch.shape[0]
            feats = self.forward_tensor(batch.reshape(b * n_views, *batch.shape[2:])).numpy()
            out[idx.numpy()] = feats.reshape(b, n_views, self.dim)
            done += b
            if progress:
                progress(done, total)
        return out

    def recalibrate_batchnorm(self, paths: Sequence[str | Path], *, max_images: int = 512, seed: int = 0, progress: Progress | None = None) -> None:
        """Re-estimate every batch-norm's running mean/variance on (a sample of) these images.

        A randomly initialised ResNet has running statistics 0/1 that match nothing, so its
        activations grow layer after layer; re-estimating them on the catalog's own photos (one
        forward pass over a few hundred images, no labels) gives well-scaled features. Also useful
        after a domain shift. The weights change, so ``key`` changes with them.
        """
        paths = list(paths)
        if len(paths) > max_images:
            pick = np.random.default_rng(seed).choice(len(paths), max_images, replace=False)
            paths = [paths[i] for i in np.sort(pick)]
        norms = [m for m in self.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over all batches
        self.model.train()
        done = 0
        try:
            with torch.no_grad():
                for idx, batch in self._loader(_PathDataset(paths, self.cfg.image_size), max(self.cfg.batch_size, 16)):
                    if len(idx) < 2:
                        continue  # batch statistics need two images
                    self.model(self.preprocess(batch))
                    done += len(idx)
                    if progress:
                        progress(done, len(paths))
        finally:
            for m, momentum in zip(norms, momenta):
                m.momentum = momentum
            self.model.eval()
        self.key = self.cfg.key(state_sha256(self.model.state_dict()))

    def backbone_state_dict(self) -> dict:
        return {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
