"""Worked examples of the env's realism options: liquidation, financing, rebalance and market impact.

python examples/env_options.py      # a few seconds; every figure in the README env table comes from here
"""

import numpy as np
import pandas as pd

from quantgym.envs import TradingEnv


def bars(rows):
    o, h, lo, c = (np.array(x, float) for x in zip(*rows, strict=True))
    idx = pd.date_range("2020-01-01", periods=len(rows), freq="D", name="timestamp")
    f = pd.DataFrame({"open": o, "high": h, "low": lo, "close": c, "volume": 1e6}, index=idx)
    f["x"] = np.arange(len(rows), dtype=float)
    return f


def env(rows, **kw):
    e = TradingEnv(
        bars(rows),
        features=["x"],
        window_size=1,
        episode_length=None,
        commission=0.0,
        slippage=0.0,
        **kw,
    )
    e.reset(options={"start": 0})
    return e


F = (100.0, 100.0, 100.0, 100.0)
print("== liquidation: 3x long, maintenance 10%, liquidation fee 1%")
for name, bar in [
    ("wick", (100, 101, 70, 99)),
    ("gap", (70, 72, 65, 71)),
    ("recovery", (100, 105, 80, 104)),
]:
    e = env([F, F, bar, F], positions=(0.0, 3.0), maintenance_margin=0.1, liquidation_fee=0.01)
    e.step(1)
    _, _, term, _, info = e.step(1)
    print(
        f"{name:9s} bar OHLC={bar}: liquidated={info['liquidated']} price={info['liquidation_price']:.4f} "
        f"equity={info['equity']:.2f} fees={info['fees']:.2f} terminated={term}"
    )
e = env([F, (100, 101, 70, 99), F], positions=(0.0, 3.0))
print(f"same wick, no margin: equity={e.step(1)[4]['equity']:.2f}")

print("== financing: 2x long, financing_rate 0.001/bar")
e = env(
    [F, (100, 103, 99, 102), (102, 106, 101, 105), F], positions=(0.0, 2.0), financing_rate=0.001
)
for _ in range(2):
    info = e.step(1)[4]
    print(
        f"cash={e.cash:.2f} financing_cost={info['financing_cost']:.4f} equity={info['equity']:.2f}"
    )

print("== rebalance: short -1 from 10,000 at 100, price 100 -> 110 -> 121, commission 0.1%")
rows = [F, (100, 110, 100, 110), (110, 121, 110, 121), (121, 121, 121, 121)]
for mode in ("on_change", "every_bar"):
    e = TradingEnv(
        bars(rows),
        features=["x"],
        window_size=1,
        episode_length=None,
        commission=0.001,
        slippage=0.0,
        positions=(-1.0, 0.0),
        rebalance=mode,
    )
    e.reset(options={"start": 0})
    out = []
    for _ in range(3):
        info = e.step(0)[4]
        out.append(f"units={e.units:.2f} fees={info['fees']:.2f} equity={info['equity']:.2f}")
    print(mode, " | ".join(out))

print("== sqrt_impact on sample:googl: buy 1x at the first tradable open, by account size")
for size in (1e4, 1e6, 1e8, 1e10):
    kw = dict(
        data="sample:googl",
        positions=(0.0, 1.0),
        commission=0.0,
        initial_equity=size,
        slippage={"model": "sqrt_impact", "half_spread": 2e-4, "impact": 1.0, "window": 20},
    )
    e = TradingEnv(**kw)
    e.reset(options={"start": e.first_bar})
    t = e.bar
    info = e.step(1)[4]
    lay = e.layout
    q = abs(e.units)
    rate = info["slippage_cost"] / (q * lay.open[t + 1])
    print(
        f"equity {size:8.0e}: units={q:,.0f} V={lay.average_volume[t]:,.0f} participation={info['participation']:.4g} "
        f"cost rate={rate:.5f} (= 2e-4 + coef*sqrt(q): {2e-4 + lay.impact_coef[t] * q**0.5:.5f}) slippage_cost=${info['slippage_cost']:,.2f}"
    )
kw = dict(
    data="sample:googl",
    positions=(0.0, 1.0),
    commission=0.0,
    initial_equity=1e10,
    slippage={"model": "sqrt_impact", "max_participation": 0.1},
)
e = TradingEnv(**kw)
e.reset(options={"start": e.first_bar})
for _ in range(3):
    info = e.step(1)[4]
    print(
        f"max_participation 0.1, $1e10: participation={info['participation']:.4f} unfilled={info['unfilled']:+.4f} exposure-left"
    )
