"""Checksummed, atomic model artifacts.

An artifact is a folder holding ``state.pt`` (a dict of tensors, nested dicts allowed) and
``meta.json`` (config, training-data summary, metrics, extra, and the sha256 of state.pt). It is
written into a temporary sibling folder and renamed into place, so a crash leaves either nothing
or a complete artifact; an existing artifact is never overwritten (versions are immutable).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

STATE_FILE = "state.pt"
META_FILE = "meta.json"
FORMAT_VERSION = 1


class ArtifactError(RuntimeError):
    """An artifact folder is missing, incomplete or does not match its checksum."""


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _to_tensors(state):
    """numpy arrays become tensors so that the file loads with torch.load(weights_only=True)."""
    if isinstance(state, dict):
        return {str(k): _to_tensors(v) for k, v in state.items()}
    if isinstance(state, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(state))
    if torch.is_tensor(state):
        return state.detach().cpu().contiguous()
    if isinstance(state, (int, float, str, bool, list, tuple)) or state is None:
        return state
    raise TypeError(f"artifact state holds a {type(state).__name__}; use tensors, arrays, numbers or nested dicts")


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, tuple)):
        return list(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def save_artifact(directory: str | Path, *, state: dict, config: dict, data_summary: dict, metrics: dict, extra: dict | None = None) -> str:
    """Write the artifact folder atomically and return the sha256 of its state file."""
    directory = Path(directory)
    if directory.exists():
        raise ArtifactError(f"{directory} already exists: artifacts are immutable, write a new version folder")
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.parent / f".{directory.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        torch.save(_to_tensors(state), tmp / STATE_FILE)
        digest = sha256_file(tmp / STATE_FILE)
        meta = {
            "format": FORMAT_VERSION,
            "sha256": digest,
            "created": datetime.now(timezone.utc).isoformat(),
            "config": config,
            "data_summary": data_summary,
            "metrics": metrics,
            "extra": extra or {},
        }
        with open(tmp / META_FILE, "w") as fh:
            json.dump(meta, fh, default=_json_default, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return digest


def load_meta(directory: str | Path) -> dict:
    path = Path(directory) / META_FILE
    if not path.is_file():
        raise ArtifactError(f"{path} is missing: {directory} is not a complete artifact")
    return json.loads(path.read_text())


def load_artifact(directory: str | Path, *, verify: bool = True) -> tuple[dict, dict]:
    """(state, meta); raises ArtifactError when the state file does not match the recorded sha256."""
    directory = Path(directory)
    meta = load_meta(directory)
    state_path = directory / STATE_FILE
    if not state_path.is_file():
        raise ArtifactError(f"{state_path} is missing")
    if verify:
        digest = sha256_file(state_path)
        if digest != meta.get("sha256"):
            raise ArtifactError(f"{state_path}: sha256 {digest[:12]}… does not match meta.json ({str(meta.get('sha256'))[:12]}…)")
    state = torch.load(state_path, map_location="cpu", weights_only=True)
    return state, meta
