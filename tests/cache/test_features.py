import numpy as np

from cache.features import FeatureCache


def test_feature_cache_round_trip_and_keys(tmp_path):
    c = FeatureCache(tmp_path)
    k1 = FeatureCache.key("clipA", "bb@1", {"sr": 48000})
    k2 = FeatureCache.key("clipA", "bb@2", {"sr": 48000})
    k3 = FeatureCache.key("clipA", "bb@1", {"sr": 16000})
    assert len({k1, k2, k3}) == 3
    assert c.get(k1) is None
    v = np.random.default_rng(0).standard_normal(32).astype(np.float32)
    c.put(k1, v)
    np.testing.assert_array_equal(c.get(k1), v)
    assert c.get(k2) is None


def test_damaged_entry_is_a_miss(tmp_path):
    c = FeatureCache(tmp_path)
    k = FeatureCache.key("x", "y", {})
    c.put(k, np.ones(4, np.float32))
    path = next(tmp_path.rglob("*.npy"))
    path.write_bytes(b"garbage")
    assert c.get(k) is None
