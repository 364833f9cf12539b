"""Exactness of quantgym's OLPS algorithms against universal-portfolios, side by side.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/olps_exactness.py            # the full table
    PYTHONPATH=$PWD .venv/bin/python benchmarks/olps_exactness.py --quick    # nyse_o, djia: the five

universal-portfolios pins pandas < 3 (ours needs 3) and its wheel imports ``six`` without
declaring it, so it runs in its *own* virtual environment, in a subprocess: ``--up-python``
names that environment's interpreter, or the script creates one at ``--venv`` on first use
(``python -m venv`` + ``pip install universal-portfolios six``; if that cannot resolve, the
wheel ``--no-deps`` plus what it imports).

Both sides read the same files, the data sets shipped in the library's wheel (prices; the
relatives ``x_t = p_t / p_(t-1)`` with ``x_0 = 1``), run each algorithm with the library's
defaults and zero fees, and report the final wealth. The target is 1e-6 relative for UCRP,
BCRP, EG, OLMAR and PAMR. The other rows are reported as they come: BCRP and CORN solve an
optimisation (ours SLSQP with the exact gradient and ftol 1e-14 on the mean log growth, the
library's SLSQP with numerical gradients and its default tolerance); ONS projects with a QP
(the library's cvxopt at its default tolerance; ``ons (tight QP)`` reruns it at 1e-12).
The library's CORN is quadratic in time with a pandas call per past window, so it runs only
on ``--corn-datasets`` (default ``djia``, ~3 minutes).

``--through-env`` also trades each row's agent (``quantgym.policies.portfolio``) through
``PortfolioEnv`` on the same bundled set (``data="sample:<set>"``, no features, window 1, the
whole set, zero costs): decided at the close of t, filled at the open of t+1, which on this
close-only data is the close of t; its actions are float32, so expect ~1e-8 there.

``--fee F`` runs both at the per-side fee ``F``: ours pays it exactly (the post-trade value
solved, the first purchase paid), the library approximately and not on the first purchase, so
the rows then differ by about ``F`` (no tolerance applies).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd

from quantgym import PORTFOLIO_ENV_ID
from quantgym.files import atomic_write_json
from quantgym.machine import machine_info
from quantgym.policies.portfolio import (
    BCRP,
    CORN,
    EG,
    OLMAR,
    ONS,
    PAMR,
    PORTFOLIO_AGENTS,
    PORTFOLIO_BOUNDS,
    UBAH,
    UCRP,
    Anticor,
    OLPSAlgorithm,
    olps_wealth,
    price_relatives,
)

__all__ = [
    "OURS",
    "REQUIRED",
    "ensure_reference_python",
    "run_reference",
    "run_ours",
    "run_through_env",
    "main",
]

DATASETS = ("nyse_o", "nyse_n", "tse", "sp500", "djia", "msci")

#: Our algorithm for each row, with the library's defaults.
OURS: dict[str, Any] = {
    "ucrp": UCRP,
    "bcrp": BCRP,
    "eg": EG,
    "olmar": OLMAR,
    "pamr": PAMR,
    "pamr1": lambda: PAMR(variant=1),
    "pamr2": lambda: PAMR(variant=2),
    "bah": UBAH,
    "ons": ONS,
    "ons (tight QP)": ONS,
    "anticor": Anticor,
    "corn": CORN,
}
#: Rows that must agree within the tolerance (the issue's "Exactness" done-when).
REQUIRED = ("ucrp", "bcrp", "eg", "olmar", "pamr")

# Runs inside universal-portfolios' own venv: argv[1] = JSON list of [dataset, row].
_REFERENCE = r"""
import json, os, sys, time, warnings
warnings.simplefilter("ignore")
import logging
logging.disable(logging.CRITICAL)
import universal
from universal import algos, tools
from cvxopt import solvers

def make(row):
    solvers.options.update(show_progress=False)
    if row == "ons (tight QP)":
        solvers.options.update(abstol=1e-12, reltol=1e-12, feastol=1e-12)
        return algos.ONS()
    for key in ("abstol", "reltol", "feastol"):
        solvers.options.pop(key, None)
    return {
        "ucrp": lambda: algos.CRP(), "bcrp": lambda: algos.BCRP(), "eg": lambda: algos.EG(),
        "olmar": lambda: algos.OLMAR(), "pamr": lambda: algos.PAMR(),
        "pamr1": lambda: algos.PAMR(variant=1), "pamr2": lambda: algos.PAMR(variant=2),
        "bah": lambda: algos.BAH(), "ons": lambda: algos.ONS(),
        "anticor": lambda: algos.Anticor(), "corn": lambda: algos.CORN(),
    }[row]()

print(json.dumps({"data_dir": os.path.join(os.path.dirname(universal.__file__), "data"),
                  "version": __import__("importlib.metadata").metadata.version("universal-portfolios")}),
      flush=True)
fee = float(sys.argv[2])
for dataset, row in json.loads(sys.argv[1]):
    prices = tools.dataset(dataset)
    start = time.perf_counter()
    result = make(row).run(prices, log_progress=False)
    if fee:
        result.fee = fee
    wealth = float(result.total_wealth)
    print(json.dumps({"dataset": dataset, "row": row, "wealth": wealth,
                      "seconds": time.perf_counter() - start}), flush=True)
"""

_NO_DEPS_IMPORTS = (
    "numpy",
    "pandas>=2.3,<3",
    "scipy",
    "cvxopt",
    "matplotlib",
    "seaborn",
    "scikit-learn",
    "statsmodels",
    "plotly",
    "six",
)


def ensure_reference_python(venv: Path, base_python: str) -> Path:
    """The interpreter of a venv at ``venv`` holding universal-portfolios (created on first use)."""
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import universal.algos, six"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    print(f"creating universal-portfolios' venv at {venv} ...", flush=True)
    subprocess.run([base_python, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    if subprocess.run([*pip, "universal-portfolios", "six"]).returncode != 0:
        subprocess.run([*pip, "--no-deps", "universal-portfolios"], check=True)
        subprocess.run([*pip, *_NO_DEPS_IMPORTS], check=True)
    subprocess.run(probe, check=True)
    return python


def run_reference(python: Path, jobs: list[tuple[str, str]], fee: float = 0.0) -> tuple[dict, dict]:
    """``(header, {(dataset, row): {"wealth", "seconds"}})`` from the library's subprocess."""
    proc = subprocess.run(
        [str(python), "-c", _REFERENCE, json.dumps(jobs), repr(fee)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(f"universal-portfolios run failed:\n{proc.stderr[-4000:]}")
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    header, results = lines[0], {(r["dataset"], r["row"]): r for r in lines[1:]}
    return header, results


def run_ours(data_dir: Path, jobs: list[tuple[str, str]], fee: float = 0.0) -> dict:
    """``{(dataset, row): {"wealth", "seconds"}}`` of our algorithms on the same files."""
    out = {}
    relatives: dict[str, np.ndarray] = {}
    for dataset, row in jobs:
        if dataset not in relatives:
            prices = pd.read_csv(data_dir / f"{dataset}.csv").to_numpy(dtype=np.float64)
            relatives[dataset] = price_relatives(prices)
        algorithm: OLPSAlgorithm = OURS[row]()
        start = time.perf_counter()
        wealth = olps_wealth(algorithm, relatives[dataset], fee)
        out[(dataset, row)] = {"wealth": wealth, "seconds": time.perf_counter() - start}
    return out


#: The agent of each row for ``--through-env`` (``bah`` is our ``ubah``).
AGENT_NAMES = {"bah": "ubah", "ons (tight QP)": None, "pamr1": None, "pamr2": None}


def run_through_env(jobs: list[tuple[str, str]], fee: float = 0.0) -> dict:
    """``{(dataset, row): {"wealth", "seconds"}}`` of each row's agent traded through the env."""
    out = {}
    agents = PORTFOLIO_AGENTS | PORTFOLIO_BOUNDS
    for dataset, row in jobs:
        name = AGENT_NAMES.get(row, row)
        if name is None:
            continue
        env = gym.make(PORTFOLIO_ENV_ID, data=f"sample:{dataset}", features=(), window_size=1,
                       episode_length=None, commission=fee, slippage=0.0)  # fmt: skip
        agent = agents[name](env=env)
        start = time.perf_counter()
        obs, _ = env.reset(seed=0)
        first, done, info = np.ones(1, dtype=bool), False, {}
        while not done:
            action, _ = agent.predict(obs, episode_start=first)
            first = np.zeros(1, dtype=bool)
            obs, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
        wealth = info["equity"] / env.unwrapped.config.initial_equity
        out[(dataset, row)] = {"wealth": float(wealth), "seconds": time.perf_counter() - start}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--up-python", type=Path, help="python of a venv with universal-portfolios")
    parser.add_argument(
        "--venv", type=Path, default=Path(tempfile.gettempdir()) / "quantgym-universal-portfolios"
    )
    parser.add_argument("--base-python", default=sys.executable, help="python that makes --venv")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--rows", nargs="+", default=list(OURS), choices=list(OURS))
    parser.add_argument("--corn-datasets", nargs="*", default=["djia"], choices=DATASETS)
    parser.add_argument("--tolerance", type=float, default=1e-6)
    parser.add_argument(
        "--fee",
        type=float,
        default=0.0,
        help="per-side fee for both (ours exact, theirs approximate and without the first "
        "purchase: no tolerance applies when > 0)",
    )
    parser.add_argument("--quick", action="store_true", help="nyse_o and djia, the five rows")
    parser.add_argument("--through-env", action="store_true", help="also trade through the env")
    parser.add_argument("--out", type=Path, help="write the table as JSON here")
    args = parser.parse_args(argv)
    if args.quick:
        args.datasets, args.rows = ["nyse_o", "djia"], list(REQUIRED)

    jobs = [
        (d, r) for d in args.datasets for r in args.rows if r != "corn" or d in args.corn_datasets
    ]
    python = args.up_python or ensure_reference_python(args.venv, args.base_python)
    header, theirs = run_reference(python, jobs, args.fee)
    ours = run_ours(Path(header["data_dir"]), jobs, args.fee)
    env_runs = run_through_env(jobs, args.fee) if args.through_env else {}

    rows, failed = [], []
    print(
        f"universal-portfolios {header['version']}; fee {args.fee:g}; tolerance {args.tolerance:g}"
    )
    print(
        f"{'data':8} {'algorithm':15} {'ours':>24} {'theirs':>24} {'rel. error':>10}  s ours/theirs"
    )
    for dataset, row in jobs:
        a, b = ours[(dataset, row)], theirs[(dataset, row)]
        error = abs(a["wealth"] - b["wealth"]) / abs(b["wealth"])
        required = row in REQUIRED and args.fee == 0.0
        ok = error <= args.tolerance
        if required and not ok:
            failed.append(f"{dataset}/{row}")
        flag = ("ok" if ok else "FAIL") if required else ""
        print(
            f"{dataset:8} {row:15} {a['wealth']:24.17g} {b['wealth']:24.17g} {error:10.2e}"
            f"  {a['seconds']:.1f}/{b['seconds']:.1f} {flag}"
        )
        via_env = env_runs.get((dataset, row))
        env_error = None
        if via_env is not None:
            env_error = abs(via_env["wealth"] - b["wealth"]) / abs(b["wealth"])
            print(
                f"{'':8} {'  through env':15} {via_env['wealth']:24.17g} {'':24} {env_error:10.2e}"
            )
        rows.append(
            {
                "dataset": dataset,
                "algorithm": row,
                "ours": a["wealth"],
                "theirs": b["wealth"],
                "relative_error": error,
                "required": required,
                "seconds_ours": a["seconds"],
                "seconds_theirs": b["seconds"],
                "through_env": None if via_env is None else via_env["wealth"],
                "relative_error_through_env": env_error,
            }
        )
    print("all required rows within tolerance" if not failed else f"FAILED: {', '.join(failed)}")
    if args.out:
        atomic_write_json(
            args.out,
            {
                "command": "benchmarks/olps_exactness.py " + " ".join(argv or sys.argv[1:]),
                "universal_portfolios": header["version"],
                "tolerance": args.tolerance,
                "fee": args.fee,
                "rows": rows,
                "machine": machine_info(),
            },
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
