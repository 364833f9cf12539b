"""The ``quantgym`` console script.

```
quantgym dataset make --market regime --quality expert --steps 200000 --out data/regime_expert
quantgym dataset info data/regime_expert.npz
quantgym train ppo_lstm --market regime --steps 200000 --out runs/x
quantgym evaluate runs/x --data sample:googl
quantgym agents                     # list registered agents
quantgym check-features my_features:make --data prices.csv   # look-ahead check (exit 1 on a leak)
```
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from quantgym import __version__

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (subcommands register themselves)."""
    from quantgym.agents.cli import add_agent_parsers
    from quantgym.datasets.cli import add_dataset_parser

    parser = argparse.ArgumentParser(
        prog="quantgym", description="quantgym: trading env + RL toolkit"
    )
    parser.add_argument("--version", action="version", version=f"quantgym {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    add_dataset_parser(sub)
    add_agent_parsers(sub)
    agents = sub.add_parser("agents", help="list registered agents")
    agents.set_defaults(func=_list_agents)
    check = sub.add_parser(
        "check-features",
        help="check a features callable (module:function, or 'default') for look-ahead",
    )
    check.add_argument("features", help="'module:function' returning a DataFrame, or 'default'")
    check.add_argument(
        "--data", required=True, help="CSV path, 'sample:googl' or 'synthetic:<kind>'"
    )
    check.add_argument("--cutoffs", type=int, default=16, help="cut-off bars to perturb after")
    check.add_argument("--seed", type=int, default=0)
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.add_argument(
        "--strict", action="store_true", help="also exit 1 when a column depends on the first bar"
    )
    check.set_defaults(func=_check_features)
    return parser


def _check_features(args: argparse.Namespace) -> int:
    import json

    from quantgym.envs.lookahead import check_lookahead, load_feature_function

    fn = load_feature_function(args.features)
    report = check_lookahead(args.data, features=fn, n_cutoffs=args.cutoffs, seed=args.seed)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.summary())
    return 0 if (report.strict_passed if args.strict else report.passed) else 1


def _list_agents(args: argparse.Namespace) -> int:
    from quantgym.agents import list_agents

    for name in list_agents():
        print(name)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; bad input prints ``error: ...`` and exits 2 instead of a traceback."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
