"""mlsafety.flows: week 8's seeded synthetic network-flow records."""

import numpy as np
import pytest

from mlsafety.flows import ATTACKS, FEATURES, SERVICES, Flows, generate
from mlsafety.specs import same_global_draw

# Computed once and written down: numpy's PCG64 gives the same records on every machine.
GOLDEN_FEATURES = [
    [22.013, 1560676.0, 12119.0, 9631.0, 1.0, 1.0],
    [1.205, 3818.0, 165588.0, 305.0, 1.0, 2.0],
    [0.147, 4371.0, 282839.0, 401.0, 1.0, 3.0],
    [4.128, 2191.0, 1643.0, 37.0, 25.0, 1.0],
    [18.783, 4402469.0, 28342.0, 3786.0, 1.0, 1.0],
    [0.026, 58.0, 197.0, 3.0, 1.0, 1.0],
    [1.563, 1753.0, 68805.0, 79.0, 1.0, 2.0],
    [0.027, 64.0, 120.0, 3.0, 1.0, 1.0],
]
GOLDEN_KINDS = ["dos", "web", "web", "port_scan", "exfiltration", "dns", "web", "dns"]


def test_shapes_dtypes_and_labels():
    f = generate(300, 61, seed=1)
    assert isinstance(f, Flows) and len(f) == 361
    assert f.features.shape == (361, len(FEATURES)) and f.features.dtype == np.float64
    assert f.labels.shape == (361,) and f.labels.dtype == np.int64
    assert f.feature_names == FEATURES
    assert (f.features >= 0).all() and np.isfinite(f.features).all()
    assert np.array_equal(f.features[:, 1:], np.round(f.features[:, 1:])), "counts are integers"
    assert f.labels.sum() == 61
    assert set(f.kinds[f.labels == 0]) <= set(SERVICES)
    counts = {kind: int((f.kinds == kind).sum()) for kind in ATTACKS}
    assert counts == {"port_scan": 21, "exfiltration": 20, "dos": 20}, counts
    assert (f.labels == 1).tolist() == [k in ATTACKS for k in f.kinds]
    assert not (np.diff(f.labels) == 0).all(), "rows are shuffled, not attacks last"


def test_same_seed_same_records_and_the_recorded_values():
    a, b, c = generate(40, 10, seed=3), generate(40, 10, seed=3), generate(40, 10, seed=4)
    assert np.array_equal(a.features, b.features) and np.array_equal(a.kinds, b.kinds)
    assert not np.array_equal(a.features, c.features)
    golden = generate(5, 3, seed=0)
    assert np.allclose(golden.features, GOLDEN_FEATURES, rtol=1e-12)
    assert golden.kinds.tolist() == GOLDEN_KINDS
    assert golden.labels.tolist() == [1, 0, 0, 1, 1, 0, 0, 0]


def test_generate_leaves_the_global_generator_alone():
    assert same_global_draw(lambda: generate(20, 5, seed=0))


def test_attack_kinds_have_their_signatures():
    f = generate(3000, 300, seed=2)
    normal = f.features[f.labels == 0]
    column = {name: i for i, name in enumerate(FEATURES)}
    scan = f.features[f.kinds == "port_scan"]
    assert (
        np.median(scan[:, column["distinct_ports"]])
        > 10
        >= normal[:, column["distinct_ports"]].max()
    )
    exfil = f.features[f.kinds == "exfiltration"]

    def ratio(x):  # bytes sent per byte received
        return x[:, column["bytes_sent"]] / (x[:, column["bytes_received"]] + 1)

    def size(x):  # mean bytes per packet, both directions
        return (x[:, column["bytes_sent"]] + x[:, column["bytes_received"]]) / x[
            :, column["packets"]
        ]

    assert np.median(ratio(exfil)) > 100 * np.median(ratio(normal))
    dos = f.features[f.kinds == "dos"]
    assert np.median(size(dos)) < 150 < np.median(size(normal))
    # heavy tails: the largest normal transfer is thousands of times the median one
    sent = normal[:, column["bytes_sent"]]
    assert sent.max() > 1000 * np.median(sent)


def test_subset_and_choice_of_attacks():
    f = generate(50, 9, seed=5, attacks=("dos",))
    assert set(f.kinds[f.labels == 1]) == {"dos"}
    picked = f.subset(f.labels == 1)
    assert len(picked) == 9 and picked.features.shape == (9, len(FEATURES))
    assert len(generate(0, 0, seed=0)) == 0


def test_bad_arguments_raise():
    with pytest.raises(ValueError):
        generate(-1, seed=0)
    with pytest.raises(ValueError):
        generate(10, 5, seed=0, attacks=("phishing",))
    with pytest.raises(ValueError):
        generate(10, 5, seed=0, attacks=())
