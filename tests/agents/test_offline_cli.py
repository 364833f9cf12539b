"""``quantgym train <offline agent> --dataset`` and ``quantgym evaluate`` on the result."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quantgym.cli import main
from quantgym.datasets.presets import make_dataset

pytest.importorskip("d3rlpy")


@pytest.fixture(scope="module")
def dataset_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ds = make_dataset(
        "regime", "mixed", n_steps=900, seed=0, num_envs=3,
        env_kwargs={"episode_length": 100, "window_size": 4},
    )  # fmt: skip
    return ds.save(tmp_path_factory.mktemp("data") / "mixed")


@pytest.mark.parametrize(
    ("agent", "sets"),
    [
        ("bc", ["hidden_units=[8]"]),
        ("cql", ["hidden_units=[8]"]),
        ("bcq", ["hidden_units=[8]"]),
        ("dt_d3rlpy", ["context_length=3", "n_layers=1", "d_model=8"]),
        ("qdt", ["context_length=3", "n_layers=1", "d_model=8", 'critic={"train_steps": 5}']),
        ("supervised", ["hidden_units=[8]", "eval_every=5"]),
    ],
)
def test_train_then_evaluate_an_offline_agent(
    agent: str, sets: list[str], dataset_path: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / agent
    overrides = [arg for s in sets for arg in ("--set", s)]
    code = main(
        ["train", agent, "--dataset", str(dataset_path), "--steps", "5", "--out", str(out),
         "--no-progress", *overrides]
    )  # fmt: skip
    assert code == 0
    assert json.loads((out / "agent.json").read_text())["name"] == agent
    env = json.loads((out / "env.json").read_text())["env_kwargs"]
    assert env["market"] == "regime" and env["window_size"] == 4
    capsys.readouterr()
    code = main(
        ["evaluate", str(out), "--start", "2020-01-01", "--end", "2021-01-01", "--no-reference",
         "--json", str(tmp_path / "eval.json")]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert agent in printed and "total_return" in printed
    results = json.loads((tmp_path / "eval.json").read_text())["results"]
    assert results[agent]["n_episodes"] == 1


def test_offline_agent_without_dataset_is_an_error(tmp_path: Path, capsys) -> None:
    assert main(["train", "bc", "--out", str(tmp_path / "x")]) == 2
    assert "--dataset" in capsys.readouterr().err


def test_online_agent_with_dataset_is_an_error(dataset_path: Path, tmp_path: Path, capsys) -> None:
    code = main(["train", "ppo_mlp", "--dataset", str(dataset_path), "--out", str(tmp_path / "x")])
    assert code == 2
    assert "online" in capsys.readouterr().err
