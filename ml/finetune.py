"""Fine-tuning the backbone's tail on cached activations: the cheap way to get "new embeddings" on a CPU.

The tail is the sequence of bottleneck blocks of layer3 then layer4 (ResNet-50: 6 + 3); ``blocks``
counts trained blocks from its end (3 = all of layer4, 9 = layer3 and layer4). The frozen part
(stem, layers 1-2 and the untrained leading tail blocks) runs once per image (``layer3_cache``,
fp16, at a small image size); then the trained blocks and a classification head (category plus
optional attribute heads) train for several epochs on the cache alone, with horizontal flips of
the activation maps as augmentation. The result is a full backbone state dict (frozen layers
unchanged, batch-norm statistics included): ``Embedder(cfg, state_dict=...)`` embeds with it, and
``layer4_embed`` re-embeds the cached catalog without decoding a single image again.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ml.backbone import Embedder, _PathDataset, bf16_supported

Progress = Callable[[int, int], None]


@dataclass
class FinetuneConfig:
    epochs: int = 6
    blocks: int = 3  # trailing bottleneck blocks of layer3+layer4 to train (ResNet-50: 3 = all of layer4, 9 = both)
    lr: float = 1e-3
    weight_decay: float = 5e-4
    batch_size: int = 64
    label_smoothing: float = 0.1
    attribute_weight: float = 0.5
    hflip: bool = True
    # Random translation (up to ``shift`` of the map's width, each way) and zoom (scale in
    # [1 - zoom, 1 + zoom]) of the cached activation maps: the crop/scale augmentation of image
    # training, applied where the cache is. Off by default: on the real-photo evaluation, 0.1 / 0.15
    # underfit within the epochs the time budget allows.
    shift: float = 0.0
    zoom: float = 0.0
    # bf16 autocast for the training passes where the processor has fast bf16 (weights, optimiser
    # state and batch-norm statistics stay fp32); ignored elsewhere.
    bf16: bool = False
    seed: int = 0
    time_budget_s: float | None = None  # fewer epochs when a timed batch says cfg.epochs would not fit

    def to_dict(self) -> dict:
        return asdict(self)


def backbone_tail(model: nn.Module) -> nn.Sequential:
    """layer3's and layer4's blocks as one sequence (the same modules, not copies)."""
    return nn.Sequential(*model.layer3, *model.layer4)


def _tail_key(model: nn.Module, position: int) -> str:
    """State-dict prefix of tail block ``position`` ("layer3.4" / "layer4.0")."""
    n3 = len(model.layer3)
    return f"layer3.{position}" if position < n3 else f"layer4.{position - n3}"


def frozen_part(model: nn.Module, x: torch.Tensor, blocks: int | None = None, taps: dict | None = None) -> torch.Tensor:
    """Activations entering the last ``blocks`` blocks of layer3+layer4 (default: all of layer4, i.e. layer3's output).
    ``taps``, when given, gets layer2's output ("layer2"), and layer3's ("layer3") if it is passed on the way."""
    blocks = len(model.layer4) if blocks is None else blocks
    h = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    h = model.layer2(model.layer1(h))
    if taps is not None:
        taps["layer2"] = h
    tail = list(backbone_tail(model))
    for position, block in enumerate(tail[: max(len(tail) - blocks, 0)]):
        h = block(h)
        if taps is not None and position == len(model.layer3) - 1:
            taps["layer3"] = h
    return h


def pooled_levels(layer2: torch.Tensor, layer3: torch.Tensor, layer4: torch.Tensor, *, mirrored: bool = False) -> torch.Tensor:
    """(N, C2 + 4 * C3 + C4) frozen multi-level features: layer2's and layer4's activations averaged
    over the map, layer3's over each quarter of it (2 x 2; ``mirrored``: the maps are a mirror
    image's, and the quarters are put back in the original's order). On the real photos, a category
    head on these random-init features (96 px, ResNet-50: 6,656 dimensions, averaged with the mirror
    image's) classified articleTypes about as well as the fine-tuned networks of a slow 2-core
    processor's budget, and differently enough that the two blended beat both (see ml.evaluate's
    --frozen-head)."""
    quarters = F.adaptive_avg_pool2d(layer3, 2)
    if mirrored:
        quarters = quarters.flip(-1)
    return torch.cat([torch.flatten(F.adaptive_avg_pool2d(layer2, 1), 1), torch.flatten(quarters, 1),
                      torch.flatten(F.adaptive_avg_pool2d(layer4, 1), 1)], dim=1)


def layer3_cache(embedder: Embedder, paths: Sequence[str | Path], *, blocks: int | None = None, progress: Progress | None = None,
                 with_features: bool = False, with_levels: bool = False) -> torch.Tensor | tuple:
    """(N, C, h, w) float16 activations entering the trained part (the last ``blocks`` of layer3+layer4;
    default all of layer4), streamed from disk.

    ``with_features``: also the (N, dim) float32 embeddings of the untouched backbone, finished from
    the same activations before they are rounded to fp16 (what ``embedder.embed_paths`` returns, for
    the price of the remaining blocks), as ``(cache, features)``. ``with_levels``: also the untouched
    backbone's ``pooled_levels`` (float32), the mean of the image's and its mirror image's (a second
    pass of the whole backbone: on the real photos at 96 px, a head on them classified 0.781 of
    articleTypes against 0.762 with one view), last in the tuple: ``(cache, [features,] levels)``."""
    paths = list(paths)
    model = embedder.model
    out = None
    features = np.empty((len(paths), embedder.dim), np.float32) if with_features else None
    levels = None
    n_frozen = len(backbone_tail(model)) - (len(model.layer4) if blocks is None else blocks)
    rest = list(backbone_tail(model))[max(n_frozen, 0) :]
    total, done = len(paths), 0
    if progress:
        progress(0, total)
    for idx, batch in embedder._loader(_PathDataset(paths, embedder.cfg.image_size), embedder.cfg.batch_size):
        with torch.inference_mode(), torch.autocast(embedder.device.type, dtype=torch.bfloat16, enabled=embedder.use_bf16):
            x = embedder.preprocess(batch)
            taps = {} if with_levels else None
            h = frozen_part(model, x, blocks, taps=taps)
            if with_features or with_levels:
                f = h
                for position, block in enumerate(rest, start=max(n_frozen, 0)):
                    f = block(f)
                    if taps is not None and position == len(model.layer3) - 1:
                        taps["layer3"] = f
                if features is not None:
                    features[idx] = torch.flatten(model.avgpool(f), 1).float().cpu().numpy()
                if taps is not None:
                    pooled = pooled_levels(taps["layer2"], taps["layer3"], f).float()
                    mirror_taps: dict = {}
                    g = frozen_part(model, x.flip(-1), 0, taps=mirror_taps)  # 0 trained blocks: the whole backbone
                    pooled = ((pooled + pooled_levels(mirror_taps["layer2"], mirror_taps["layer3"], g, mirrored=True).float()) / 2).cpu().numpy()
                    if levels is None:
                        levels = np.empty((total, pooled.shape[1]), np.float32)
                    levels[idx] = pooled
        h = h.to(torch.float16).cpu()
        if out is None:
            out = torch.empty((total, *h.shape[1:]), dtype=torch.float16)
        out[idx] = h
        done += len(idx)
        if progress:
            progress(done, total)
    if out is None:
        raise ValueError("no images to cache")
    extra = [a for a in (features, levels) if a is not None]
    return (out, *extra) if extra else out


def jitter_maps(x: torch.Tensor, generator: np.random.Generator, *, shift: float, zoom: float) -> torch.Tensor:
    """Each map of the batch translated by up to ``shift`` of its size and zoomed by a factor in
    [1 - zoom, 1 + zoom] (bilinear, borders padded with the map's edge values)."""
    if shift <= 0 and zoom <= 0:
        return x
    n = len(x)
    scale = 1.0 + generator.uniform(-zoom, zoom, n) if zoom > 0 else np.ones(n)
    move = generator.uniform(-shift, shift, (n, 2)) * 2.0 if shift > 0 else np.zeros((n, 2))  # grid units: [-1, 1] spans the map
    theta = np.zeros((n, 2, 3), np.float32)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0 / scale  # sampling a smaller window zooms in
    theta[:, :, 2] = move
    grid = F.affine_grid(torch.from_numpy(theta).to(x.device), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _layer4_pool(layer4: nn.Module, x: torch.Tensor, blocks: int = 3) -> torch.Tensor:
    for block in list(layer4)[max(len(layer4) - blocks, 0) :]:
        x = block(x)
    return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


@torch.inference_mode()
def layer4_embed(layer4: nn.Module, cache: torch.Tensor, *, blocks: int = 3, batch_size: int = 128, progress: Progress | None = None,
                 hflip: bool = False) -> np.ndarray:
    """(N, 2048) float32 embeddings from cached layer3 activations (layer4 in eval mode); with
    ``hflip``, the mean of the maps' and their mirror images' (twice the work)."""
    layer4 = layer4.eval()
    device = next(layer4.parameters()).device
    out = None
    for start in range(0, len(cache), batch_size):
        x = cache[start : start + batch_size].to(device).float()
        views = [x, x.flip(-1)] if hflip else [x]
        f = torch.stack([_layer4_pool(layer4, v.contiguous(memory_format=torch.channels_last), blocks) for v in views]).mean(0).float().cpu().numpy()
        if out is None:
            out = np.empty((len(cache), f.shape[1]), np.float32)
        out[start : start + len(f)] = f
        if progress:
            progress(min(start + batch_size, len(cache)), len(cache))
    return out


class FinetuneResult(NamedTuple):
    tail: nn.Module  # layer3+layer4 blocks, the trained ones updated; pass to layer4_embed
    state: dict  # a complete backbone state dict
    history: list[dict]
    heads: nn.ModuleDict  # "__norm__", "__category__" and one head per attribute


@torch.inference_mode()
def finetune_predict_logits(result: FinetuneResult, cache: torch.Tensor, *, blocks: int, rows: np.ndarray | None = None,
                            names: Sequence[str] = ("__category__",), batch_size: int = 128, hflip: bool = True) -> dict[str, np.ndarray]:
    """The fine-tuned network's own head logits for ``cache[rows]`` (default all), averaged over a horizontal flip."""
    tail, heads = result.tail.eval(), result.heads.eval()
    device = next(tail.parameters()).device
    rows = np.arange(len(cache)) if rows is None else np.asarray(rows, dtype=np.int64)
    out: dict[str, list[np.ndarray]] = {k: [] for k in names}
    for start in range(0, len(rows), batch_size):
        x = cache[torch.from_numpy(rows[start : start + batch_size])].to(device).float()
        views = [x, x.flip(-1)] if hflip else [x]
        feats = [heads["__norm__"](_layer4_pool(tail, v.contiguous(memory_format=torch.channels_last), blocks)) for v in views]
        for k in names:
            out[k].append(torch.stack([heads[k](f) for f in feats]).mean(0).float().cpu().numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def _autocast(cfg: FinetuneConfig, device: torch.device):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bool(cfg.bf16) and bf16_supported(device))


def _time_one_batch(tail, heads, cache, rows, cfg, device) -> float:
    """Seconds of one whole training step, as an epoch runs them (batch gather, flips, forward,
    backward, optimiser step), on copies of ``tail`` and ``heads`` so nothing real moves: the faster
    of the second and third of three (the first pays for allocations and kernel selection). Timing
    the forward and backward alone read 25-35% under the epochs that followed on a 2-core machine,
    and one timing alone was off by a third either way."""
    tail, heads = copy.deepcopy(tail), copy.deepcopy(heads)
    params = [p for block in list(tail)[len(tail) - cfg.blocks :] for p in block.parameters()] + list(heads.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    idx = torch.from_numpy(rows[: cfg.batch_size])
    flip = (torch.arange(len(idx)) % 2 == 0).to(device)
    timings = []
    for _ in range(3):
        t0 = time.monotonic()
        x = cache[idx].to(device).float()
        if cfg.hflip:
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        x = x.contiguous(memory_format=torch.channels_last)
        with _autocast(cfg, device):
            loss = heads["__category__"](heads["__norm__"](_layer4_pool(tail, x, cfg.blocks))).float().logsumexp(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        timings.append(time.monotonic() - t0)
    return min(timings[1:]) * max(1.0, cfg.batch_size / max(len(idx), 1))


def cache_advance(model: nn.Module, cache: torch.Tensor, *, cache_blocks: int, blocks: int, batch_size: int = 256) -> torch.Tensor:
    """Activations entering the last ``blocks`` blocks of layer3+layer4, from a cache of those entering
    the last ``cache_blocks`` (the blocks between run frozen, in eval mode): to train fewer blocks
    than the cache was made for without decoding an image again."""
    if blocks > cache_blocks:
        raise ValueError(f"a cache made for {cache_blocks} trained block(s) cannot feed {blocks}")
    tail = list(backbone_tail(model))
    frozen = [block.eval() for block in tail[len(tail) - cache_blocks : len(tail) - blocks]]
    if not frozen:
        return cache
    device = next(model.parameters()).device
    out = []
    with torch.inference_mode():
        for start in range(0, len(cache), batch_size):
            h = cache[start : start + batch_size].to(device).float()
            for block in frozen:
                h = block(h)
            out.append(h.to(torch.float16).cpu())
    return torch.cat(out)


def training_seconds_per_row(embedder: Embedder, cache: torch.Tensor, n_classes: int, cfg: FinetuneConfig,
                             rows: np.ndarray | None = None, *, cache_blocks: int | None = None) -> float:
    """Measured seconds of fine-tuning ``cfg.blocks`` blocks per row and epoch (a throwaway copy of the
    tail; nothing is trained): what a caller plans epochs, blocks and ensemble sizes with before
    committing to them. ``cache_blocks``: the depth ``cache`` was made for (default ``cfg.blocks``);
    a timing sample is advanced to ``cfg.blocks`` first."""
    rows = np.arange(len(cache)) if rows is None else np.asarray(rows, dtype=np.int64)
    sample = cache[torch.from_numpy(rows[: 2 * cfg.batch_size])]
    if cache_blocks is not None:
        sample = cache_advance(embedder.model, sample, cache_blocks=cache_blocks, blocks=cfg.blocks)
    device = embedder.device
    with torch.random.fork_rng(devices=[]):
        tail = copy.deepcopy(backbone_tail(embedder.model)).to(device).eval()  # the caller's model stays in eval mode
        for block in list(tail)[len(tail) - cfg.blocks :]:
            block.train()
        heads = nn.ModuleDict({"__norm__": nn.BatchNorm1d(embedder.dim), "__category__": nn.Linear(embedder.dim, n_classes)}).to(device)
        return _time_one_batch(tail, heads, sample, np.arange(len(sample)), cfg, device) / cfg.batch_size


def _finetune_layer4_unseeded(
    embedder: Embedder,
    cache: torch.Tensor,
    labels: np.ndarray,
    n_classes: int,
    *,
    rows: np.ndarray | None = None,
    sample_weight: np.ndarray | None = None,
    attributes: dict[str, tuple[np.ndarray, int]] | None = None,
    cfg: FinetuneConfig | None = None,
    progress: Callable[[dict], None] | None = None,
) -> FinetuneResult:
    """Train a copy of the tail's last ``cfg.blocks`` blocks + heads on ``cache[rows]``.

    ``labels``/``attributes`` are aligned with ``cache`` (attribute labels -1 = unknown); only
    ``rows`` (default all) are trained on, so held-out rows stay unseen.
    """
    cfg = cfg or FinetuneConfig()
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) != len(cache):
        raise ValueError(f"labels has {len(labels)} rows, the cache has {len(cache)}")
    rows = np.arange(len(cache)) if rows is None else np.asarray(rows, dtype=np.int64)
    device = embedder.device
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    tail = copy.deepcopy(backbone_tail(embedder.model)).to(device)
    if not 1 <= cfg.blocks <= len(tail):
        raise ValueError(f"blocks={cfg.blocks}: layer3 and layer4 have {len(tail)} bottleneck blocks together")
    trained = nn.ModuleList(list(tail)[len(tail) - cfg.blocks :])
    tail.eval()
    trained.train()
    dim = embedder.dim
    # Heads see batch-normalised features: a random-init backbone's activations can be large, and
    # an unnormalised head then starts with huge logits and diverges.
    heads = nn.ModuleDict({"__norm__": nn.BatchNorm1d(dim), "__category__": nn.Linear(dim, n_classes)})
    attr = {str(k): (torch.from_numpy(np.asarray(v, dtype=np.int64)), int(n)) for k, (v, n) in (attributes or {}).items()}
    for k, (_, n) in attr.items():
        if k.startswith("__"):
            raise ValueError(f"attribute name {k!r} is reserved")
        heads[k] = nn.Linear(dim, n)
    heads.to(device)
    y = torch.from_numpy(labels)
    w = torch.from_numpy(np.asarray(sample_weight, dtype=np.float32)) if sample_weight is not None else torch.ones(len(labels))
    params = list(trained.parameters()) + list(heads.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    per_epoch = max(1, math.ceil(len(rows) / cfg.batch_size))
    epochs = cfg.epochs
    if cfg.time_budget_s is not None:
        epochs = max(1, min(epochs, int(cfg.time_budget_s // (_time_one_batch(tail, heads, cache, rows, cfg, device) * per_epoch))))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=epochs * per_epoch, pct_start=0.15)
    history = []
    for epoch in range(1, epochs + 1):
        t0 = time.monotonic()
        order = rows[rng.permutation(len(rows))]
        total, correct, seen = 0.0, 0, 0
        trained.train()
        for start in range(0, len(order), cfg.batch_size):
            idx = torch.from_numpy(order[start : start + cfg.batch_size])
            x = cache[idx].to(device).float()
            if cfg.hflip:
                flip = torch.from_numpy(rng.random(len(idx)) < 0.5).to(device)
                x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            x = jitter_maps(x, rng, shift=cfg.shift, zoom=cfg.zoom)
            x = x.contiguous(memory_format=torch.channels_last)
            yb, wb = y[idx].to(device), w[idx].to(device)
            with _autocast(cfg, device):
                feats = heads["__norm__"](_layer4_pool(tail, x, cfg.blocks))
                logits = heads["__category__"](feats)
                attr_logits = {k: heads[k](feats) for k in attr}
            logits = logits.float()
            loss = (F.cross_entropy(logits, yb, reduction="none", label_smoothing=cfg.label_smoothing) * wb).sum() / wb.sum().clamp_min(1e-8)
            for k, (values, _) in attr.items():
                ab = values[idx].to(device)
                known = ab >= 0
                if known.any():
                    per = F.cross_entropy(attr_logits[k].float()[known], ab[known], reduction="none", label_smoothing=cfg.label_smoothing)
                    loss = loss + cfg.attribute_weight * (per * wb[known]).sum() / wb[known].sum().clamp_min(1e-8)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == yb).sum())
            seen += len(idx)
        row = {"epoch": epoch, "epochs": epochs, "loss": total / max(seen, 1), "train_accuracy": correct / max(seen, 1), "seconds": time.monotonic() - t0}
        history.append(row)
        if progress:
            progress(dict(row))
    tail.eval()
    heads.eval()
    state = {k: v.detach().cpu().clone() for k, v in embedder.model.state_dict().items()}
    for k, v in tail.state_dict().items():
        position, rest = k.split(".", 1)
        state[f"{_tail_key(embedder.model, int(position))}.{rest}"] = v.detach().cpu().clone()
    return FinetuneResult(tail, state, history, heads)


def finetune_layer4(*args, **kwargs):
    """Seeded wrapper of _finetune_layer4_unseeded: dropout masks and initialisation come from cfg.seed, and
    the caller's global torch RNG state is left untouched (repeatable runs)."""
    cfg = kwargs.get("cfg")
    seed = getattr(cfg, "seed", 0) if cfg is not None else 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _finetune_layer4_unseeded(*args, **kwargs)


finetune_layer4.__doc__ = (_finetune_layer4_unseeded.__doc__ or "") + "\n\n(Runs seeded by cfg.seed; the global torch RNG state is restored afterwards.)"
