import numpy as np
import pytest

from ml.attributes import attribute_vocabulary, encode_attributes


def test_vocabulary_keeps_values_seen_twice_most_frequent_first_and_drops_useless_attributes():
    names = ["gender", "season", "sku", "usage"]
    values = [
        ("Men", "Summer", "a1", ""),
        ("men ", "Winter", "a2", ""),
        ("Women", "Summer", "a3", "Casual"),
        ("Women", "Fall", "a4", ""),
        ("WOMEN", "Summer", "a5", "Casual"),
        ("Unisex", "Winter", "a6", ""),
    ]
    vocab = attribute_vocabulary(values, names)
    # "Unisex" and "Fall" are seen once; "sku" is unique per item; "usage" has a single value.
    assert vocab == {"gender": ["women", "men"], "season": ["summer", "winter"]}


def test_encoding_follows_the_vocabulary_and_marks_unknown_values():
    vocab = {"season": ["summer", "winter"], "gender": ["women", "men"]}
    codes = encode_attributes([("Men", "Winter"), ("Unisex", ""), ("WOMEN ", "summer")], ["gender", "season"], vocab)
    np.testing.assert_array_equal(codes, [[1, 1], [-1, -1], [0, 0]])
    with pytest.raises(ValueError, match="usage"):
        encode_attributes([("Men",)], ["gender"], {"gender": ["men"], "usage": ["casual"]})


def test_one_hot_sets_one_column_per_known_value_and_none_for_unknown():
    from ml.attributes import one_hot

    out = one_hot(np.array([[0, 2], [1, -1], [5, 0]]), [2, 3])
    np.testing.assert_array_equal(out, [[1, 0, 0, 0, 1], [0, 1, 0, 0, 0], [0, 0, 1, 0, 0]])
    assert out.dtype == np.float32
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        one_hot(np.zeros((3, 1)), [2, 3])


def test_features_with_indicators_append_the_one_hot_columns():
    from ml.attributes import with_indicators

    feats = np.array([[0.5, 1.5], [2.0, 3.0]], dtype=np.float32)
    np.testing.assert_array_equal(with_indicators(feats, np.array([[1], [-1]]), [2]), [[0.5, 1.5, 0, 1], [2.0, 3.0, 0, 0]])
    assert with_indicators(feats, None, []) is feats
