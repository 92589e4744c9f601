import json

import numpy as np
import pytest
import torch

from ml.artifacts import ArtifactError, load_artifact, save_artifact, sha256_file
from ml.siamese import SiameseConfig, SiameseNet


def test_round_trip_is_bit_identical(tmp_path):
    torch.manual_seed(0)
    model = SiameseNet(8, SiameseConfig(hidden=16, embed_dim=4))
    state = {"model": model.state_dict(), "extra_array": np.arange(5, dtype=np.float64), "half": torch.randn(3).half()}
    digest = save_artifact(
        tmp_path / "v1", state=state, config=model.config_dict(), data_summary={"pairs": 10}, metrics={"val_auc": 0.75}, extra={"note": "x"}
    )
    assert digest == sha256_file(tmp_path / "v1" / "state.pt")
    loaded, meta = load_artifact(tmp_path / "v1")
    for k, v in state["model"].items():
        assert torch.equal(loaded["model"][k], v) and loaded["model"][k].dtype == v.dtype
    assert torch.equal(loaded["half"], state["half"])
    np.testing.assert_array_equal(loaded["extra_array"].numpy(), state["extra_array"])
    assert meta["sha256"] == digest and meta["metrics"] == {"val_auc": 0.75} and meta["data_summary"] == {"pairs": 10}
    rebuilt = SiameseNet.from_state(loaded["model"], meta["config"])
    x = torch.randn(3, 8)
    assert torch.equal(rebuilt(x, x.flip(0)), model.eval()(x, x.flip(0)))


def test_tampered_state_is_refused(tmp_path):
    save_artifact(tmp_path / "v1", state={"w": torch.ones(4)}, config={}, data_summary={}, metrics={})
    path = tmp_path / "v1" / "state.pt"
    data = bytearray(path.read_bytes())
    data[-20] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="sha256"):
        load_artifact(tmp_path / "v1")


def test_existing_version_is_never_overwritten_and_no_temp_left(tmp_path):
    store = tmp_path / "store"
    save_artifact(store / "v1", state={"w": torch.ones(1)}, config={}, data_summary={}, metrics={})
    with pytest.raises(ArtifactError, match="immutable"):
        save_artifact(store / "v1", state={"w": torch.zeros(1)}, config={}, data_summary={}, metrics={})
    with pytest.raises(TypeError):
        save_artifact(store / "v2", state={"w": object()}, config={}, data_summary={}, metrics={})
    assert sorted(p.name for p in store.iterdir()) == ["v1"]
    assert json.loads((store / "v1" / "meta.json").read_text())["format"] == 1
