"""Features: gaze masking, GloVe averaging, gaze statistics, the pretrained backbone."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from crossmod.data.arrays import read_table, write_table
from crossmod.data.synthetic.gaze import bubble_map
from crossmod.features.backbones import build_backbone
from crossmod.features.gaze import bubble_centres, gaze_statistics, masked_pool, resize_map
from crossmod.features.glove import default_vectors, read_glove_text, tokenize
from crossmod.features.images import extract, unique_images
from crossmod.features.text import glove_average


def test_resize_map_averages_areas():
    hm = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 1]], dtype=np.float32)
    np.testing.assert_allclose(resize_map(hm, 2, 2), [[1, 0], [0, 0.75]])


def test_a_map_revealing_one_block_gives_that_blocks_pooled_features():
    rng = np.random.default_rng(0)
    conv = rng.normal(size=(6, 7, 7)).astype(np.float32)
    hm = np.zeros((224, 224), dtype=np.float32)
    hm[:96, :96] = 1.0  # exactly the top-left 3 x 3 cells of the 7 x 7 grid (32 px each)
    grid = resize_map(hm, 7, 7)
    expected_grid = np.zeros((7, 7))
    expected_grid[:3, :3] = 1
    np.testing.assert_allclose(grid, expected_grid)
    block_mean = conv[:, :3, :3].mean(axis=(1, 2))
    np.testing.assert_allclose(masked_pool(conv, grid, "masked"), block_mean, rtol=1e-5)
    # The paper's literal pooling divides by all 49 cells instead of the 9 revealed.
    np.testing.assert_allclose(masked_pool(conv, grid, "mean"), block_mean * 9 / 49, rtol=1e-5)
    # The top-left quadrant of an 8 x 8 grid: hand-computed on a tiny map.
    small = np.arange(2 * 8 * 8, dtype=np.float32).reshape(2, 8, 8)
    quadrant = np.zeros((8, 8), dtype=np.float32)
    quadrant[:4, :4] = 1
    # channel 0 holds 8 * row + col: the quadrant's mean is 8 * 1.5 + 1.5; channel 1 adds 64
    np.testing.assert_allclose(masked_pool(small, quadrant, "masked"), [13.5, 77.5])
    np.testing.assert_allclose(masked_pool(small, quadrant, "mean"), [13.5 / 4, 77.5 / 4])
    # Half-revealed cells weigh half.
    half = np.zeros((1, 1, 2), dtype=np.float32)
    half[0, 0] = [2.0, 4.0]
    np.testing.assert_allclose(masked_pool(half, np.array([[1.0, 0.5]]), "masked"), [4 / 1.5])
    np.testing.assert_allclose(masked_pool(half, np.array([[1.0, 0.5]]), "mean"), [4 / 2])
    assert np.all(masked_pool(conv, np.zeros((7, 7))) == 0)


def test_glove_average_by_hand(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text("cat 1 0 2\ndog 0 2 4\nthe 3 3 3\n")
    vectors = read_glove_text(path)
    captions = ["The cat, the DOG!", "zebra cat", "zebra okapi"]
    out, unknown, coverage = glove_average(captions, vectors)
    np.testing.assert_allclose(out[0], [(3 + 1 + 3 + 0) / 4, (3 + 0 + 3 + 2) / 4, 3.0])
    np.testing.assert_allclose(out[1], [1, 0, 2])
    np.testing.assert_allclose(out[2], [0, 0, 0])
    assert unknown.tolist() == [0, 1, 2]
    assert coverage.n_words == 8 and coverage.n_unknown == 3
    assert coverage.unknown["zebra"] == 2 and coverage.n_captions_without_known_words == 1
    assert coverage.unknown_rate == pytest.approx(3 / 8)


def test_glove_text_file_errors_name_the_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("cat 1 0\ndog 0 2 4\n")
    with pytest.raises(ValueError, match="line 2: 3 values, expected 2"):
        read_glove_text(path)


def test_real_glove_vectors():
    vectors = default_vectors()
    assert vectors.dim == 50 and len(vectors.words) == 400_000
    np.testing.assert_allclose(
        vectors.vectors[vectors.index["the"]][:3], [0.418, 0.24968, -0.41242]
    )
    out, _, _ = glove_average(["The cat"], vectors)
    expected = (vectors.vectors[vectors.index["the"]] + vectors.vectors[vectors.index["cat"]]) / 2
    np.testing.assert_allclose(out[0], expected, rtol=1e-6)
    assert tokenize("I should buy it, it's great!") == [
        "i",
        "should",
        "buy",
        "it",
        "it",
        "s",
        "great",
    ]


def test_gaze_statistics_by_hand():
    hm = np.zeros((60, 80), dtype=np.float32)
    hm[:30, :40] = 1.0  # a quarter revealed
    clicks = np.array([[0.0, 0.0, 1], [30.0, 40.0, 2], [60.0, 80.0, 3]])  # x, y, order
    stats = gaze_statistics(hm, clicks)
    diagonal = 100.0
    assert stats["revealed"] == pytest.approx(0.25)
    assert stats["max_distance"] == pytest.approx(100 / diagonal)
    assert stats["min_distance"] == pytest.approx(50 / diagonal)
    assert stats["n_bubbles"] == 3
    one = gaze_statistics(hm, clicks[:1])
    assert one["max_distance"] == 0 and one["min_distance"] == 0


def test_bubble_centres_recovered_from_the_map():
    clicks = np.array([[30.0, 25.0, 1], [100.0, 40.0, 2], [60.0, 90.0, 3], [140.0, 100.0, 4]])
    hm = bubble_map(clicks, 128, 180, radius=10.0, blur=1.5)
    centres = bubble_centres(hm)
    assert len(centres) == len(clicks)
    for x, y, _ in clicks:
        assert np.min(np.hypot(centres[:, 0] - x, centres[:, 1] - y)) <= 2.0
    from_map = gaze_statistics(hm, None)
    from_clicks = gaze_statistics(hm, clicks)
    assert from_map["max_distance"] == pytest.approx(from_clicks["max_distance"], abs=0.02)
    assert from_map["min_distance"] == pytest.approx(from_clicks["min_distance"], abs=0.02)


@pytest.fixture(scope="module")
def backbone():
    torch.set_num_threads(2)
    return build_backbone("efficientnet-lite0")


def test_backbone_is_really_pretrained(backbone):
    import skimage.data

    cat = backbone.preprocess(Image.fromarray(skimage.data.chelsea()))
    with torch.inference_mode():
        logits = backbone.classifier(torch.from_numpy(cat)[None])
    top = int(logits.argmax())
    assert 281 <= top <= 285, top  # ImageNet's domestic cat classes
    assert torch.softmax(logits, -1)[0, 281:286].sum() > 0.5


def test_unknown_backbone_is_refused():
    with pytest.raises(ValueError, match="unknown backbone 'inception-v9'"):
        build_backbone("inception-v9")


def test_each_image_goes_through_the_cnn_once(backbone, tmp_path):
    paths = []
    for i in range(5):
        path = tmp_path / f"{i}.jpg"
        Image.fromarray(np.full((40, 50, 3), 40 * i, dtype=np.uint8)).save(path)
        paths.append(str(path))
    # 12 annotations on 5 images, as annotators share images.
    annotations = pd.DataFrame(
        {
            "image": [f"{i % 5}.jpg" for i in range(12)],
            "image_path": [paths[i % 5] for i in range(12)],
        }
    )
    images = unique_images(annotations)
    assert images["image"].tolist() == [f"{i}.jpg" for i in range(5)]
    seen = []
    handle = backbone.features.register_forward_hook(
        lambda module, inputs, output: seen.append(inputs[0].shape[0])
    )
    try:
        maps, stats = extract(backbone, images["image_path"].tolist(), batch_size=2)
    finally:
        handle.remove()
    assert sum(seen) == 5 and seen == [2, 2, 1]
    assert maps.shape == (5, 1280, 7, 7) and stats.n_images == 5
    # The same pixels give the same map; another batch size changes only rounding.
    again, _ = extract(backbone, paths[:2], batch_size=2)
    np.testing.assert_array_equal(again, maps[:2])
    single, _ = extract(backbone, paths[:1], batch_size=1)
    np.testing.assert_allclose(single[0], maps[0], rtol=1e-3, atol=1e-4)


def test_array_table_round_trip(tmp_path):
    meta = pd.DataFrame({"annotation_id": [0, 1, 2], "user": ["a", "b", "c"]})
    gaze = np.arange(12, dtype=np.float32).reshape(3, 4)
    write_table(meta, {"gaze": gaze, "personality": np.ones((3, 10))}, tmp_path / "t.parquet")
    got_meta, arrays = read_table(tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(got_meta, meta)
    np.testing.assert_array_equal(arrays["gaze"], gaze)
    assert arrays["personality"].shape == (3, 10)
    with pytest.raises(ValueError, match="expected"):
        write_table(meta, {"gaze": gaze[:2]}, tmp_path / "u.parquet")


@pytest.mark.slow
def test_minilm_encoder_is_offline_and_meaningful():
    from crossmod.features.text import minilm_encode

    out = minilm_encode(
        ["a cat sleeps on the sofa", "a kitten is napping on a couch", "rockets launch into space"]
    )
    assert out.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1, rtol=1e-5)
    assert out[0] @ out[1] > out[0] @ out[2] + 0.2
