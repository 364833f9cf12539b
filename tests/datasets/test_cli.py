"""`quantgym dataset make|info`: argument wiring, preset call, saved file, readable summary."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from quantgym import ENV_ID
from quantgym.datasets import TrajectoryDataset, presets
from quantgym.datasets.cli import add_dataset_parser, cmd_info, cmd_make, main
from quantgym.datasets.shard_format import read_manifest


def tiny_dataset(seed: int = 0) -> TrajectoryDataset:
    rng = np.random.default_rng(seed)
    lengths = np.array([3, 4])
    n = 7
    truncations = np.zeros(n, bool)
    truncations[[2, 6]] = True
    return TrajectoryDataset.from_arrays(
        observations=rng.normal(size=(n + 2, 3)).astype(np.float32),
        actions=np.array([0, 0, 2, 2, 2, 1, 2]),
        rewards=np.array([0.1, 0.2, 0.3, -0.1, 0.0, 0.05, 0.05]),
        terminations=np.zeros(n, bool),
        truncations=truncations,
        episode_lengths=lengths,
        infos={
            "timestamp": np.datetime64("2021-03-01", "ns") + np.arange(n) * np.timedelta64(1, "D")
        },
        metadata={
            "env_id": ENV_ID,
            "behavior_policy": "regime_expert",
            "seed": seed,
            "action_space": {"type": "discrete", "n": 3},
        },
    )


def test_parser_registers_make_and_info() -> None:
    parser = argparse.ArgumentParser(prog="quantgym")
    add_dataset_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["dataset", "make", "--steps", "1_000", "--out", "x"])
    assert (args.market, args.quality, args.steps, args.seed, args.split, args.out) == (
        "regime",
        "expert",
        1000,
        0,
        "train",
        "x",
    )
    assert args.func is cmd_make
    assert parser.parse_args(["dataset", "info", "p.npz"]).func is cmd_info
    with pytest.raises(SystemExit):
        parser.parse_args(["dataset", "make", "--steps", "0", "--out", "x"])
    with pytest.raises(SystemExit):
        parser.parse_args(["dataset", "make"])  # --out is required


def test_make_calls_preset_and_saves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[dict] = []

    def make_dataset(**kwargs: object) -> TrajectoryDataset:
        calls.append(kwargs)
        return tiny_dataset(seed=int(kwargs["seed"]))  # type: ignore[arg-type]

    monkeypatch.setattr(presets, "make_dataset", make_dataset)
    out = tmp_path / "data" / "regime_expert"
    code = main(
        [
            "dataset",
            "make",
            "--market",
            "gbm",
            "--quality",
            "mixed",
            "--steps",
            "200",
            "--seed",
            "3",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    assert calls == [
        {"market": "gbm", "quality": "mixed", "n_steps": 200, "seed": 3, "split": "train"}
    ]
    saved = TrajectoryDataset.load(out)
    assert saved.n_steps == 7 and saved.metadata["seed"] == 3
    assert "saved 2 episodes, 7 steps" in capsys.readouterr().out


def test_info_prints_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tiny_dataset().save(tmp_path / "ds")
    assert main(["dataset", "info", str(tmp_path / "ds")]) == 0
    out = capsys.readouterr().out
    for text in (
        "episodes",
        "steps",
        "regime_expert",
        "2021-03-01",
        "2021-03-07",
        "return",
        "actions",
    ):
        assert text in out, text
    assert "0.6" in out  # mean return: (0.6 + 0.0) / 2 = 0.3, max 0.6
    assert "57.1%" in out  # action 2: 4 of 7


def test_info_on_bad_file_exits_with_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"nope")
    assert main(["dataset", "info", str(bad)]) == 2
    assert "not a quantgym dataset" in capsys.readouterr().err


def first_shard_file(path: Path) -> Path:
    return path / read_manifest(path)["shards"][0]["files"]["actions"]["file"]


def test_cli_make_sharded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    args = ["dataset", "make", "--quality", "random", "--steps", "300", "--shard-steps", "100"]
    assert main([*args, "--num-envs", "4", "--out", str(out)]) == 0
    assert "saved" in capsys.readouterr().out
    assert len(read_manifest(out)["shards"]) == 3
    assert main(["dataset", "info", str(out)]) == 0
    assert "300" in capsys.readouterr().out
    stamp = first_shard_file(out).stat().st_mtime_ns
    assert main([*args, "--num-envs", "4", "--out", str(out)]) == 0  # complete: nothing redone
    assert first_shard_file(out).stat().st_mtime_ns == stamp
    assert main([*args, "--num-envs", "4", "--out", str(out), "--no-resume"]) == 0
    assert first_shard_file(out).stat().st_mtime_ns != stamp
    assert main([*args, "--num-envs", "2", "--out", str(out)]) == 2  # another plan: refused
    assert "was collected with" in capsys.readouterr().err
