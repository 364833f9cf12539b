"""How much of the Kelly filter's edge the allocating agents' observation carries, read two
ways: by the exact filter on the observation's closes alone, and by a *privileged* regime
classifier fitted to the observation; either posterior is fed to the Kelly allocator.

    nice -n 10 .venv/bin/python benchmarks/portfolio_ceiling.py \
        --out benchmarks/results/portfolio_ceiling.json

The Kelly filter (the 100 of ``PortfolioEnv-v0``'s synthetic market) reads the hidden regime
from every close so far with the exact likelihoods. A policy reads only its observation: a
``window_size``-bar window of each asset's normalised features and the cross-section. The same
allocator (:class:`~quantgym.policies.portfolio.kelly.KellyFilterAgent`'s, same no-trade band),
on each posterior below in place of the filter's, trades ``benchmarks/portfolio_learning.py``'s
held-out windows (its protocol and seeds: market seed 0, 40,000 bars, train on the first 10,000,
250-bar windows after a 250-bar embargo).

- The exact filter on the newest ``K`` closes (``--filter-windows``) says what the window's
  information is worth to a perfect reader who knows the market's model.
- A classifier fitted on the training bars with the *true* regime labels (information no learner
  has) says what a model *learnt* from 10,000 bars of these inputs makes of it: the gap between
  the two is the learning problem, not missing information.

Inputs per decision bar ``t`` (``--inputs``):

- ``observation``: the flat window of every asset's features (``W x N x F``) and the
  cross-section at ``t``, as the env shows it;
- ``summary``: per bar of the window, the mean over assets of each feature and the difference
  between sector 0's and sector 1's means (the default market has two sectors), ``W x 2F``:
  fewer inputs, less over-fitting, and the sector split is told (the equivariant policies
  must find it).

``--filter-windows K ...`` adds, with no classifier and no labels, the exact filter run on the
newest ``K`` closes only (:func:`~quantgym.envs.portfolio.factor_market.windowed_regime_filter`):
what a perfect reader of a ``K``-bar close history knows. The observation's 16-bar window holds
each asset's newest 16 log returns (z-scored over 250 bars), and its momentum features reach 60
bars further back (the bars' range, gap and volume also scale with the regime's volatility,
which no filter here reads).

Classifiers (``--models``): ``logistic`` (standardised inputs, L2 penalty ``C``) and ``hgb``
(scikit-learn's histogram gradient boosting). Output: per configuration the regime accuracy on
the test bars (the filter's beside it), the score (Kelly filter = 100) with its paired bootstrap
95% CI over windows, and UCRP's score.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import portfolio_learning as pl  # noqa: E402  (the protocol: market, split, windows)

from quantgym.benchmark.statistics import bootstrap_ci, normalized_score  # noqa: E402
from quantgym.envs.portfolio.factor_market import windowed_regime_filter  # noqa: E402
from quantgym.files import atomic_write_json  # noqa: E402
from quantgym.policies.portfolio.kelly import KellyFilterAgent  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WARMUP = 300  # bars before the first input row (feature warm-up and the longest window)


def inputs_at(panel: Any, bars: np.ndarray, window: int, kind: str) -> np.ndarray:
    """``(len(bars), D)`` classifier inputs (module docstring)."""
    feats = np.nan_to_num(panel.features)  # (T, N, F)
    if kind == "observation":
        cross = np.nan_to_num(panel.cross_section)
        return np.stack(
            [
                np.concatenate([feats[t - window + 1 : t + 1].ravel(), cross[t].ravel()])
                for t in bars
            ]
        )
    sectors = np.asarray(panel.market_params["sectors"])
    market = feats.mean(axis=1)  # (T, F)
    spread = feats[:, sectors == 0].mean(axis=1) - feats[:, sectors == 1].mean(axis=1)
    per_bar = np.concatenate([market, spread], axis=1)  # (T, 2F)
    return np.stack([per_bar[t - window + 1 : t + 1].ravel() for t in bars])


def classifier(model: str, c: float) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if model == "logistic":
        return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))
    return HistGradientBoostingClassifier(
        max_iter=200, learning_rate=0.05, max_leaf_nodes=15, l2_regularization=1.0, random_state=0
    )


def kelly_on(posterior: np.ndarray) -> type[KellyFilterAgent]:
    """The Kelly allocator class whose beliefs are ``posterior`` ``(T, K)``, not the filter's."""

    class KellyOnPosterior(KellyFilterAgent):
        name: ClassVar[str] = "kelly_on_posterior"

        def beliefs(self) -> np.ndarray:
            return posterior

    return KellyOnPosterior


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--inputs", nargs="+", default=["observation", "summary"],
                   choices=["observation", "summary"])  # fmt: skip
    p.add_argument("--windows", nargs="+", type=int, default=[16, 64])
    p.add_argument("--models", nargs="+", default=["logistic", "hgb"], choices=["logistic", "hgb"])
    p.add_argument("--filter-windows", nargs="+", type=int, default=[16, 76],
                   help="closes the exact filter reads (rows with no classifier)")  # fmt: skip
    p.add_argument("--C", type=float, default=0.001, help="logistic L2 penalty (inverse)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/portfolio_ceiling.json")
    args = p.parse_args(argv)
    if not all(1 <= w <= WARMUP for w in args.windows):
        raise SystemExit(f"--windows must be between 1 and {WARMUP} bars, got {args.windows}")
    if not all(k >= 1 for k in args.filter_windows):
        raise SystemExit(f"--filter-windows must be >= 1 bar, got {args.filter_windows}")
    proto = argparse.Namespace(**pl.PROTOCOL, env_set=None, reference="kelly_filter_expert")
    _, starts = pl.split_timestamps(proto)
    panel = pl.test_panel(proto)
    env = gym.make(pl.ENV_ID, data=panel, episode_length=proto.window)
    regime = np.asarray(panel.regime)
    n_bars = len(regime)
    train = np.arange(WARMUP, proto.train_bars)
    test = np.arange(proto.train_bars + proto.embargo, n_bars)
    filter_beliefs = KellyFilterAgent(env=env).beliefs()
    filter_accuracy = float(np.mean(filter_beliefs[test].argmax(1) == regime[test]))
    refs = pl.reference_growth(proto, starts)  # the Kelly filter's and UCRP's, as there
    reference, ucrp = refs[proto.reference], refs["ucrp"]

    close = np.asarray(panel.close, dtype=np.float64)
    returns = np.diff(np.log(close), axis=0, prepend=np.nan)

    def fitted(kind: str, window: int, model: str) -> np.ndarray:
        """The posterior ``(T, K)`` of one configuration."""
        if model == "exact_filter":
            return windowed_regime_filter(returns, panel.market_params, window)
        clf = classifier(model, args.C)
        clf.fit(inputs_at(panel, train, window, kind), regime[train])
        posterior = np.full((n_bars, 4), 0.25)
        rows_at = np.arange(WARMUP, n_bars)
        posterior[rows_at] = clf.predict_proba(inputs_at(panel, rows_at, window, kind))
        return posterior

    configurations = [("closes", k, "exact_filter") for k in args.filter_windows]
    configurations += itertools.product(args.inputs, args.windows, args.models)
    rows = []
    print(
        f"filter accuracy {filter_accuracy:.3f}; UCRP {float(normalized_score(ucrp, reference)):.1f}"
    )
    for kind, window, model in configurations:
        t0 = time.perf_counter()
        posterior = fitted(kind, window, model)
        growth = pl.trade_windows(kelly_on(posterior)(env=env), env, starts)
        low, high = bootstrap_ci(normalized_score, growth, reference)
        row = {
            "inputs": kind, "window": window, "model": model,
            "C": args.C if model == "logistic" else None,
            "train_accuracy": float(np.mean(posterior[train].argmax(1) == regime[train])),
            "test_accuracy": float(np.mean(posterior[test].argmax(1) == regime[test])),
            "score": float(normalized_score(growth, reference)), "ci": [float(low), float(high)],
            "seconds": round(time.perf_counter() - t0, 1),
        }  # fmt: skip
        rows.append(row)
        print(f"{kind:12s} W={window:3d} {model:8s} accuracy {row['test_accuracy']:.3f} "
              f"(train {row['train_accuracy']:.3f})  score {row['score']:5.1f} "
              f"[{low:5.1f}, {high:5.1f}]", flush=True)  # fmt: skip
    atomic_write_json(args.out, {
        "protocol": {**vars(proto), "n_windows": len(starts)},
        "filter_test_accuracy": filter_accuracy,
        "ucrp_score": float(normalized_score(ucrp, reference)),
        "ucrp_ci": [float(x) for x in bootstrap_ci(normalized_score, ucrp, reference)],
        "rows": rows,
    })  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
