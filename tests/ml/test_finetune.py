import numpy as np
import pytest
import torch

from ml.backbone import Embedder, _PathDataset
from ml.finetune import (
    FinetuneConfig,
    backbone_tail,
    cache_advance,
    finetune_layer4,
    finetune_predict_logits,
    layer3_cache,
    layer4_embed,
    pooled_levels,
)


def test_cache_then_layer4_matches_direct_embedding(tiny_cfg, image_paths):
    emb = Embedder(tiny_cfg)
    seen = []
    cache = layer3_cache(emb, image_paths, progress=lambda d, t: seen.append(d))
    assert cache.dtype == torch.float16 and cache.shape[0] == 8 and seen[-1] == 8
    from_cache = layer4_embed(emb.model.layer4, cache)
    direct = emb.embed_paths(image_paths)
    cos = (from_cache * direct).sum(1) / np.linalg.norm(from_cache, axis=1) / np.linalg.norm(direct, axis=1)
    assert cos.min() > 0.999  # fp16 cache: close, not bit-equal


@pytest.mark.parametrize("blocks", [None, 3, 5])
def test_cache_can_bring_the_backbones_own_embeddings_along(tiny_cfg, image_paths, blocks):
    emb = Embedder(tiny_cfg)
    cache, features = layer3_cache(emb, image_paths, blocks=blocks, with_features=True)
    assert torch.equal(cache, layer3_cache(emb, image_paths, blocks=blocks))
    np.testing.assert_allclose(features, emb.embed_paths(image_paths), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("blocks", [None, 1, 3, 4])
def test_cache_can_bring_the_untouched_backbones_multi_level_features_along(tiny_cfg, image_paths, blocks):
    emb = Embedder(tiny_cfg)
    cache, features, levels = layer3_cache(emb, image_paths, blocks=blocks, with_features=True, with_levels=True)
    cache_only, levels_only = layer3_cache(emb, image_paths, blocks=blocks, with_levels=True)
    assert torch.equal(cache, layer3_cache(emb, image_paths, blocks=blocks)) and torch.equal(cache, cache_only)
    np.testing.assert_array_equal(levels, levels_only)
    # Whether layer3 ends inside the frozen part (blocks=1: the cache is inside layer4) or among the
    # remaining blocks, the features are layer2 and layer4 averaged over the map and layer3 over
    # each quarter, from one pass of the untouched backbone.
    m = emb.model
    with torch.inference_mode():
        x = torch.cat([emb.preprocess(batch) for _, batch in emb._loader(_PathDataset(image_paths, tiny_cfg.image_size), 4)])
        views = []
        for image in (x, x.flip(-1)):
            l2 = m.layer2(m.layer1(m.maxpool(m.relu(m.bn1(m.conv1(image))))))
            l3 = m.layer3(l2)
            l4 = m.layer4(l3)
            views.append((l2, l3, l4))
        one_view = pooled_levels(*views[0]).numpy()
        # The mirror image's quarters go back to the original's order before the two are averaged.
        direct = (one_view + pooled_levels(*views[1], mirrored=True).numpy()) / 2
        c2, c3, c4 = l2.shape[1], l3.shape[1], l4.shape[1]
        unaligned = (one_view + pooled_levels(*views[1]).numpy()) / 2
    assert levels.shape == (8, c2 + 4 * c3 + c4) == direct.shape and levels.dtype == np.float32
    np.testing.assert_allclose(levels, direct, rtol=1e-4, atol=1e-5)
    assert not np.allclose(levels, unaligned, rtol=1e-3, atol=1e-4)
    # layer4's part, without the mirror image, is the backbone's own embedding.
    np.testing.assert_allclose(one_view[:, -c4:], features, rtol=1e-4, atol=1e-5)
    assert not np.allclose(levels[:, c2 : c2 + c3], levels[:, c2 + c3 : c2 + 2 * c3])  # the quarters differ


@pytest.mark.parametrize("blocks", [1, 2])
def test_finetune_changes_only_trained_blocks_and_gives_new_embeddings(tiny_cfg, image_paths, blocks):
    emb = Embedder(tiny_cfg)
    cache = cache_advance(emb.model, layer3_cache(emb, image_paths), cache_blocks=len(emb.model.layer4), blocks=blocks)
    labels = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    events = []
    layer4, state, history, _heads = finetune_layer4(
        emb, cache, labels, 4, rows=np.arange(6), attributes={"shape": (np.array([0, 0, 0, 0, 1, 1, -1, -1]), 2)},
        cfg=FinetuneConfig(epochs=2, blocks=blocks, batch_size=4, lr=1e-2), progress=events.append,
    )
    assert [h["epoch"] for h in history] == [1, 2] and events[-1]["epochs"] == 2
    before = emb.backbone_state_dict()
    changed = {k for k in before if not torch.equal(before[k], state[k])}
    assert changed and all(k.startswith("layer4.") for k in changed)
    first_trained = len(emb.model.layer4) - blocks
    assert all(int(k.split(".")[1]) >= first_trained for k in changed)
    # The returned state dict is a complete backbone: a new Embedder with it has a new key and
    # embeds images like the fine-tuned layer4 does from the cache.
    tuned = Embedder(tiny_cfg, state_dict=state)
    assert tuned.key != emb.key and tuned.key.startswith("resnet18:sd-")
    new = tuned.embed_paths(image_paths)
    from_cache = layer4_embed(layer4, cache, blocks=blocks)
    cos = (from_cache * new).sum(1) / np.linalg.norm(from_cache, axis=1) / np.linalg.norm(new, axis=1)
    assert cos.min() > 0.999
    assert not np.allclose(new, emb.embed_paths(image_paths))
    with pytest.raises(ValueError, match="blocks"):
        finetune_layer4(emb, cache, labels, 4, cfg=FinetuneConfig(epochs=1, blocks=5))


def test_blocks_reach_into_layer3_and_the_state_dict_names_them(tiny_cfg, image_paths):
    # resnet18: layer3 and layer4 have two blocks each; blocks=3 trains layer3.1 and all of layer4.
    emb = Embedder(tiny_cfg)
    assert len(backbone_tail(emb.model)) == 4
    cache = layer3_cache(emb, image_paths, blocks=3)
    assert cache.shape[1] == emb.model.layer3[1].conv1.in_channels  # activations entering layer3.1
    labels = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    result = finetune_layer4(emb, cache, labels, 4, cfg=FinetuneConfig(epochs=2, blocks=3, batch_size=4, lr=1e-2))
    before = emb.backbone_state_dict()
    changed = {k for k in before if not torch.equal(before[k], result.state[k])}
    assert {k.split(".")[0] + "." + k.split(".")[1] for k in changed} == {"layer3.1", "layer4.0", "layer4.1"}
    new = Embedder(tiny_cfg, state_dict=result.state).embed_paths(image_paths)
    from_cache = layer4_embed(result.tail, cache, blocks=3)
    cos = (from_cache * new).sum(1) / np.linalg.norm(from_cache, axis=1) / np.linalg.norm(new, axis=1)
    assert cos.min() > 0.999


def test_predict_logits_are_the_networks_own_heads_on_the_chosen_rows(tiny_cfg, image_paths):
    emb = Embedder(tiny_cfg)
    cache = layer3_cache(emb, image_paths, blocks=1)
    labels = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    result = finetune_layer4(emb, cache, labels, 4, attributes={"shape": (np.array([0, 0, 1, 1, 0, 0, 1, 1]), 2)},
                             cfg=FinetuneConfig(epochs=1, blocks=1, batch_size=4))
    rows = np.array([5, 2, 7])
    got = finetune_predict_logits(result, cache, blocks=1, rows=rows, names=("__category__", "shape"), hflip=False)
    feats = torch.from_numpy(layer4_embed(result.tail, cache, blocks=1)[rows])
    with torch.no_grad():
        normed = result.heads["__norm__"](feats)
        assert np.allclose(got["__category__"], result.heads["__category__"](normed).numpy(), atol=1e-4)
        assert np.allclose(got["shape"], result.heads["shape"](normed).numpy(), atol=1e-4)
    # Default: the average of the logits of the activations and of their mirror image.
    mirrored = finetune_predict_logits(result, cache.flip(-1), blocks=1, rows=rows, hflip=False)["__category__"]
    averaged = finetune_predict_logits(result, cache, blocks=1, rows=rows)["__category__"]
    assert np.allclose(averaged, (got["__category__"] + mirrored) / 2, atol=1e-4)


def test_flip_averaged_embedding_is_the_mean_of_both_views_and_mirror_invariant(tiny_cfg, image_paths):
    emb = Embedder(tiny_cfg)
    cache = layer3_cache(emb, image_paths)
    layer4 = emb.model.layer4
    plain, mirrored = layer4_embed(layer4, cache), layer4_embed(layer4, cache.flip(-1))
    averaged = layer4_embed(layer4, cache, hflip=True, batch_size=3)
    assert not np.allclose(plain, mirrored, atol=1e-3)  # a random network is not mirror-symmetric
    assert np.allclose(averaged, (plain + mirrored) / 2, atol=1e-4)
    assert np.allclose(layer4_embed(layer4, cache.flip(-1), hflip=True), averaged, atol=1e-4)


class _FixedDraws:
    """A generator stand-in whose uniform draws are fixed, to check the geometry of jitter_maps."""

    def __init__(self, value):
        self.value = value

    def uniform(self, low, high, size):
        return np.full(size, self.value)


def test_jitter_maps_translates_by_whole_cells_and_keeps_edges():
    from ml.finetune import jitter_maps

    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    assert jitter_maps(x, np.random.default_rng(0), shift=0.0, zoom=0.0) is x  # off by default
    # A draw of 0.25 with shift 1: a quarter of the map, one cell of four: each output cell reads
    # its right (and lower) neighbour; the last column/row repeats the edge.
    moved = jitter_maps(x, _FixedDraws(0.25), shift=1.0, zoom=0.0)
    torch.testing.assert_close(moved[..., :3, :3], x[..., 1:, 1:])
    torch.testing.assert_close(moved[..., 3, :3], x[..., 3, 1:])
    random = jitter_maps(x, np.random.default_rng(0), shift=0.25, zoom=0.2)
    assert random.shape == x.shape and not torch.equal(random, x)


def test_finetune_with_jitter_trains_and_is_repeatable(tiny_cfg, image_paths):
    emb = Embedder(tiny_cfg)
    cache = layer3_cache(emb, image_paths, blocks=1)
    labels = np.arange(8) % 4
    cfg = FinetuneConfig(epochs=2, blocks=1, batch_size=4, lr=1e-2, shift=0.2, zoom=0.1)
    one, two = finetune_layer4(emb, cache, labels, 4, cfg=cfg), finetune_layer4(emb, cache, labels, 4, cfg=cfg)
    plain = finetune_layer4(emb, cache, labels, 4, cfg=FinetuneConfig(epochs=2, blocks=1, batch_size=4, lr=1e-2))
    for k in one.state:
        torch.testing.assert_close(one.state[k], two.state[k])
    assert any(not torch.equal(one.state[k], plain.state[k]) for k in one.state if k.startswith("layer4"))


def test_training_seconds_per_row_is_measured_without_training_anything(tiny_cfg, image_paths):
    from ml.finetune import training_seconds_per_row

    emb = Embedder(tiny_cfg)
    cache = layer3_cache(emb, image_paths, blocks=2)
    before = {k: v.clone() for k, v in emb.backbone_state_dict().items()}
    rng_before = torch.random.get_rng_state()
    seconds = training_seconds_per_row(emb, cache, 4, FinetuneConfig(blocks=2, batch_size=4))
    assert 0 < training_seconds_per_row(emb, cache, 4, FinetuneConfig(blocks=1, batch_size=4), cache_blocks=2) < 5
    assert 0 < seconds < 5
    after = emb.backbone_state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # a throwaway copy was timed
    assert torch.equal(rng_before, torch.random.get_rng_state())  # and the caller's seeded runs are unaffected


def test_cache_advance_runs_the_frozen_blocks_between(tiny_cfg, image_paths):
    emb = Embedder(tiny_cfg)  # resnet18: layer3 + layer4 have 4 blocks
    deep = layer3_cache(emb, image_paths, blocks=4)
    shallow = layer3_cache(emb, image_paths, blocks=1)
    advanced = cache_advance(emb.model, deep, cache_blocks=4, blocks=1)
    assert advanced.shape == shallow.shape and advanced.dtype == torch.float16
    assert torch.allclose(advanced.float(), shallow.float(), atol=2e-2, rtol=2e-2)
    assert cache_advance(emb.model, deep, cache_blocks=4, blocks=4) is deep
    with pytest.raises(ValueError, match="cannot feed"):
        cache_advance(emb.model, shallow, cache_blocks=1, blocks=2)
