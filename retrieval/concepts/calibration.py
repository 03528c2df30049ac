"""An honest match score: the fused score mapped to the probability that the photo shows what
the query asks for (Platt scaling: a logistic regression of relevance on the score; Platt 1999),
and the "no good match" verdict when even the best photo's probability is below a threshold.
Both are fitted on held-out Flickr8k train photos (``scripts/eval/fit_fusion.py``)."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from retrieval.concepts.fusion import FUSION_FILE


@dataclass
class Calibration:
    """``p = 1 / (1 + exp(-(slope * score + intercept)))``.

    Attributes:
        slope, intercept: the logistic regression's coefficients.
        no_match: the best photo's probability below which a query gets the "no good match" verdict.
    """

    slope: float = 10.0
    intercept: float = -6.0
    no_match: float = 0.3

    @classmethod
    def load(cls, path: str | Path = FUSION_FILE, which: str = "calibration") -> "Calibration":
        """The shipped calibration (defaults when the file lacks one); ``which``: ``calibration`` (the
        shipped fusion's), or ``linear_calibration`` (the linear fusion's, kept for comparison)."""
        try:
            d = json.loads(Path(path).read_text()).get(which, {})
        except (OSError, ValueError):
            d = {}
        return cls(**{k: float(v) for k, v in d.items() if k in ("slope", "intercept", "no_match")})

    def probability(self, score) -> np.ndarray:
        """Fused score(s) -> probability of a match, float64 in (0, 1), same shape."""
        z = self.slope * np.asarray(score, np.float64) + self.intercept
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))

    def to_dict(self) -> dict:
        return {k: round(v, 5) for k, v in asdict(self).items()}


def fit_logistic_multi(x: np.ndarray, y: np.ndarray, iters: int = 100, l2: float = 1e-4) -> tuple[np.ndarray, float]:
    """Logistic regression by Newton's method (a tiny ridge keeps it finite).

    Args:
        x: (M, F) features; y: (M,) labels in {0, 1}.

    Returns:
        ((F,) float64 coefficients, intercept).
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    X = np.concatenate([x.reshape(len(x), -1), np.ones((len(x), 1))], 1)
    w = np.zeros(X.shape[1])
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(X @ w, -50, 50)))
        g = X.T @ (p - y) + l2 * w
        H = (X * (p * (1 - p))[:, None]).T @ X + l2 * np.eye(len(w))
        step = np.linalg.solve(H, g)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w[:-1], float(w[-1])


def fit_logistic(x: np.ndarray, y: np.ndarray) -> Calibration:
    """Platt scaling of one score: :func:`fit_logistic_multi` on ``x`` (M,), labels ``y`` (M,) in {0, 1}.

    Returns:
        :class:`Calibration` with the fitted slope and intercept.
    """
    coef, b = fit_logistic_multi(np.asarray(x)[:, None], y)
    return Calibration(float(coef[0]), b)
