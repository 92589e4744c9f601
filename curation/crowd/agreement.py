"""Agreement statistics for crowd votes. Plain Python: no Django, no database, easy to test.

- ``wilson_interval``: confidence interval of a worker's gold accuracy. Unlike the normal
  approximation it stays inside [0, 1] and behaves with few answers, which is exactly when the
  suspension rule has to be careful.
- ``krippendorff_alpha_nominal``: inter-rater reliability for any number of raters per unit and
  missing votes (crowd pairs are rated by different subsets of workers), nominal categories.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence

# One z for both the suspension rule and the page: a two-sided 90% interval, so "the upper end is
# below the threshold" means "below it with 95% confidence" (one-sided).
GOLD_CI_Z = 1.645
GOLD_CI_LEVEL = "90%"


def wilson_interval(successes: int, n: int, *, z: float = GOLD_CI_Z) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; (0, 1) when there is no answer yet."""
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def krippendorff_alpha_nominal(units: Iterable[Sequence[Hashable]]) -> float | None:
    """Krippendorff's alpha for nominal data.

    ``units``: for each rated item, the values given by its raters (missing raters simply absent).
    Units with fewer than two values carry no pairable information and are ignored. Returns None
    when alpha is undefined: fewer than two pairable values, or a single category used throughout
    (no expected disagreement).
    """
    coincidences: Counter = Counter()
    for values in units:
        m = len(values)
        if m < 2:
            continue
        counts = Counter(values)
        for c, n_c in counts.items():
            for k, n_k in counts.items():
                pairs = n_c * (n_k - 1) if c == k else n_c * n_k
                if pairs:
                    coincidences[(c, k)] += pairs / (m - 1)
    marginals: Counter = Counter()
    for (c, _k), weight in coincidences.items():
        marginals[c] += weight
    n = sum(marginals.values())
    if n <= 1:
        return None
    observed = sum(w for (c, k), w in coincidences.items() if c != k)
    expected = sum(marginals[c] * marginals[k] for c in marginals for k in marginals if c != k)
    if expected == 0:
        return None
    return 1.0 - (n - 1) * observed / expected


def median(values: Sequence[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return float(ordered[mid]) if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2.0
