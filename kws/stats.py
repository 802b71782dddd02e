"""Small statistics of measured figures: how far an accuracy can be trusted.

Pure Python (no numpy, no scipy), so every layer may use it.
"""

from __future__ import annotations

import math
from statistics import NormalDist


def wilson_interval(successes: int, total: int,
                    confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``successes / total``.

    An accuracy measured on 71 clips and one measured on 2,000 can read the same; the
    interval says how much each may move on other clips of the same kind. Wilson's interval
    (unlike the normal approximation ``p ± z·sqrt(p(1-p)/n)``) stays inside [0, 1] and is
    not empty at 0 or ``total`` successes.

    Parameters
    ----------
    successes : int
        Clips classified correctly, ``0 <= successes <= total``.
    total : int
        Clips measured, ``>= 0``.
    confidence : float
        Two-sided confidence level, ``0 < confidence < 1``; ``z`` is the standard normal
        quantile of ``(1 + confidence) / 2`` (1.96 at 0.95).

    Returns
    -------
    tuple of float
        ``(low, high)``, fractions in [0, 1]. With ``total == 0`` nothing was measured and
        any value is possible: ``(0.0, 1.0)`` (not an error, so a summary of a run without
        a test split still renders).

    Raises
    ------
    ValueError
        When the counts are negative, ``successes > total``, or ``confidence`` is not
        strictly between 0 and 1.
    """
    if total < 0 or successes < 0 or successes > total:
        raise ValueError(f"need 0 <= successes <= total, got {successes} of {total}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1 (exclusive), got {confidence}")
    if total == 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf((1.0 + confidence) / 2.0)
    share = successes / total
    scale = 1.0 + z * z / total
    centre = (share + z * z / (2 * total)) / scale
    half = z / scale * math.sqrt(share * (1.0 - share) / total + z * z / (4 * total * total))
    return max(0.0, centre - half), min(1.0, centre + half)
