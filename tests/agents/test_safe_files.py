"""Safe agent files (issue 11): loading never unpickles, the SHA-256 manifest catches edited or
truncated files, saves are atomic, and ``trusted=True`` is the explicit escape hatch."""

from __future__ import annotations

import base64
import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from quantgym import ENV_ID
from quantgym.agents import load_agent, make_agent
from quantgym.agents.sb3 import PPOLstmAgent, PPOMlpAgent
from quantgym.policies.base import BaseAgent
from quantgym.policies.checkpoint import file_sha256
from quantgym.policies.mix import EpsilonMix

ENV_KWARGS = {"market_kwargs": {"n_bars": 400}, "window_size": 4, "episode_length": 40}
TINY = {"n_envs": 2, "n_steps": 16, "batch_size": 32, "n_epochs": 1}
DATA_ENV = {"episode_length": 60, "window_size": 4}


class Payload:
    """A pickle that creates ``marker`` when it is unpickled (stands in for ``os.system``)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def payload_b64(marker: Path) -> str:
    return base64.b64encode(pickle.dumps(Payload(marker))).decode()


def rewrite_zip(zip_path: Path, replace: dict[str, bytes]) -> None:
    """Rewrite ``zip_path`` with some members replaced (an attacker's edit)."""
    with zipfile.ZipFile(zip_path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members.update(replace)
    with zipfile.ZipFile(zip_path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)


def reseal(folder: Path) -> None:
    """Update every manifest hash in ``folder`` (an attacker can do that too: the manifest is
    for integrity, the no-unpickling loader is what makes a hostile file harmless)."""
    meta_file = folder / "agent.json"
    meta = json.loads(meta_file.read_text())
    for rel in meta["files"]:
        file = folder / rel
        meta["files"][rel] = {"sha256": file_sha256(file), "bytes": file.stat().st_size}
    meta_file.write_text(json.dumps(meta))


def edit_sb3_data(folder: Path, edit) -> None:
    zip_path = folder / "model.zip"
    with zipfile.ZipFile(zip_path) as archive:
        data = json.loads(archive.read("data"))
    edit(data)
    rewrite_zip(zip_path, {"data": json.dumps(data).encode()})


# -- fixtures: one saved folder per agent kind ---------------------------------------------------
@pytest.fixture(scope="module")
def sb3_folders(tmp_path_factory) -> dict[str, Path]:
    out = {}
    root = tmp_path_factory.mktemp("sb3")
    for cls in (PPOMlpAgent, PPOLstmAgent):
        agent = cls(**TINY)
        agent.fit(gym.make(ENV_ID, **ENV_KWARGS), train_steps=32, progress_bar=False)
        agent.save(root / cls.name)
        out[cls.name] = root / cls.name
    return out


@pytest.fixture(scope="module")
def offline_folders(tmp_path_factory) -> dict[str, Path]:
    from quantgym.datasets.presets import make_dataset

    dataset = make_dataset("regime", "mixed", n_steps=300, seed=0, num_envs=3, env_kwargs=DATA_ENV)
    root = tmp_path_factory.mktemp("offline")
    kinds = {
        "bc": {"hidden_units": [8], "batch_size": 16, "train_steps": 4},
        "supervised": {"hidden_units": [8], "train_steps": 4, "eval_every": 2, "batch_size": 16},
        "dt": {
            "context_length": 4,
            "n_layers": 1,
            "d_model": 8,
            "batch_size": 8,
            "train_steps": 2,
            "eval_every": 2,
        },
    }
    out = {}
    for name, fields in kinds.items():
        extra = {"verbose": False} if name == "supervised" else {}
        agent = make_agent(name, **fields, **extra)
        agent.fit(dataset, progress_bar=False)
        agent.save(root / name)
        out[name] = root / name
    return out


def copy_folder(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


# -- 1. loading never unpickles ------------------------------------------------------------------
@pytest.mark.parametrize("name", ["ppo_mlp", "ppo_lstm"])
def test_pickled_sb3_entries_are_rebuilt_never_decoded(sb3_folders, name, tmp_path):
    folder = copy_folder(sb3_folders[name], tmp_path / "a")
    marker = tmp_path / "PWNED"
    payload = {":type:": "<class 'function'>", ":serialized:": payload_b64(marker)}

    def poison(data: dict) -> None:
        for key in ("lr_schedule", "policy_class", "observation_space", "clip_range"):
            data[key] = payload

    edit_sb3_data(folder, poison)
    reseal(folder)
    loaded = load_agent(folder)  # the poisoned entries are rebuilt from agent.json/env.json
    assert not marker.exists()
    reference = load_agent(sb3_folders[name])
    obs = np.random.default_rng(0).normal(size=(6, loaded.model.observation_space.shape[0]))
    np.testing.assert_array_equal(loaded.predict(obs)[0], reference.predict(obs)[0])


def test_unknown_pickled_sb3_entry_is_refused_naming_file_and_entry(sb3_folders, tmp_path):
    folder = copy_folder(sb3_folders["ppo_mlp"], tmp_path / "a")
    marker = tmp_path / "PWNED"
    entry = {":type:": "<class 'object'>", ":serialized:": payload_b64(marker)}
    edit_sb3_data(folder, lambda data: data.update(evil_entry=entry))
    reseal(folder)
    with pytest.raises(ValueError, match=r"model\.zip needs unpickling.*evil_entry"):
        load_agent(folder)
    assert not marker.exists()


def test_pickled_sb3_weights_are_refused(sb3_folders, tmp_path):
    folder = copy_folder(sb3_folders["ppo_mlp"], tmp_path / "a")
    marker = tmp_path / "PWNED"
    rewrite_zip(folder / "model.zip", {"policy.pth": pickle.dumps(Payload(marker))})
    reseal(folder)
    with pytest.raises(ValueError, match=r"model\.zip"):
        load_agent(folder)
    assert not marker.exists()


def test_legacy_vecnormalize_pickle_is_refused_unless_trusted(sb3_folders, tmp_path):
    folder = copy_folder(sb3_folders["ppo_mlp"], tmp_path / "a")
    marker = tmp_path / "PWNED"
    (folder / "vecnormalize.npz").unlink()
    (folder / "vecnormalize.pkl").write_bytes(pickle.dumps(Payload(marker)))
    meta = json.loads((folder / "agent.json").read_text())
    meta["files"]["vecnormalize.pkl"] = meta["files"].pop("vecnormalize.npz")
    (folder / "agent.json").write_text(json.dumps(meta))
    reseal(folder)
    with pytest.raises(ValueError, match=r"vecnormalize\.pkl needs unpickling"):
        load_agent(folder)
    assert not marker.exists()


@pytest.mark.parametrize("name", ["bc", "supervised", "dt"])
def test_pickled_torch_weights_are_refused(offline_folders, name, tmp_path):
    folder = copy_folder(offline_folders[name], tmp_path / "a")
    marker = tmp_path / "PWNED"
    weights = next(rel for rel in json.loads((folder / "agent.json").read_text())["files"])
    torch.save({"state": Payload(marker)}, folder / weights)  # a torch file holding a pickle
    reseal(folder)
    with pytest.raises(ValueError, match=weights.replace(".", r"\.")):
        load_agent(folder)
    assert not marker.exists()


def test_epsilon_mix_inner_policy_is_verified_and_never_unpickled(sb3_folders, tmp_path):
    env = gym.make(ENV_ID, **ENV_KWARGS)
    inner = load_agent(sb3_folders["ppo_mlp"])
    EpsilonMix(inner, env=env, epsilon=0.1).save(tmp_path / "mix")
    loaded = load_agent(tmp_path / "mix", env=env)
    assert isinstance(loaded, EpsilonMix) and loaded.config.epsilon == 0.1
    marker = tmp_path / "PWNED"
    entry = {":type:": "<class 'object'>", ":serialized:": payload_b64(marker)}
    edit_sb3_data(tmp_path / "mix" / "policy", lambda data: data.update(evil=entry))
    with pytest.raises(ValueError, match=r"mix/policy/model\.zip (has \d+ bytes|does not match)"):
        load_agent(tmp_path / "mix", env=env)  # the outer manifest covers the inner files
    reseal(tmp_path / "mix" / "policy")
    reseal(tmp_path / "mix")
    with pytest.raises(ValueError, match="evil"):
        load_agent(tmp_path / "mix", env=env)
    assert not marker.exists()


# -- 2. the escape hatch ---------------------------------------------------------------------------
def test_plain_sb3_zip_is_refused_by_default_and_loads_when_trusted(sb3_folders, tmp_path):
    agent = load_agent(sb3_folders["ppo_mlp"])
    plain = tmp_path / "plain.zip"
    agent.model.save(plain)  # SB3's own format, every pickled entry included
    with pytest.raises(
        ValueError, match=r"plain\.zip needs unpickling.*policy_class.*trusted=True"
    ):
        PPOMlpAgent.load(plain)
    loaded = PPOMlpAgent.load(plain, trusted=True)
    obs = np.random.default_rng(1).normal(size=(5, agent.model.observation_space.shape[0]))
    obs = agent.normalize_observation(obs)  # the plain zip has no VecNormalize statistics
    np.testing.assert_array_equal(
        loaded.predict(obs)[0], agent.model.predict(obs, deterministic=True)[0]
    )


def test_older_quantgym_folder_without_manifest_needs_trust(sb3_folders, tmp_path):
    folder = copy_folder(sb3_folders["ppo_mlp"], tmp_path / "a")
    meta = json.loads((folder / "agent.json").read_text())
    del meta["files"]
    (folder / "agent.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"agent\.json has no 'files' manifest.*trusted=True"):
        load_agent(folder)
    assert isinstance(load_agent(folder, trusted=True), PPOMlpAgent)


# -- 3. verified, atomic checkpoints --------------------------------------------------------------
def all_kinds(sb3_folders, offline_folders) -> dict[str, Path]:
    return {**sb3_folders, **offline_folders}


@pytest.mark.parametrize("damage", ["truncate", "edit"])
def test_corrupted_file_of_each_kind_is_named(sb3_folders, offline_folders, damage, tmp_path):
    for kind, src in all_kinds(sb3_folders, offline_folders).items():
        files = json.loads((src / "agent.json").read_text())["files"]
        assert files, kind
        for rel in files:
            folder = copy_folder(src, tmp_path / f"{kind}-{rel}")
            file = folder / rel
            content = file.read_bytes()
            if damage == "truncate":
                file.write_bytes(content[: len(content) // 2])
            else:
                file.write_bytes(content[:-1] + bytes([content[-1] ^ 1]))
            with pytest.raises(ValueError, match=str(file).replace(".", r"\.")):
                load_agent(folder)


def test_manifest_records_every_file_and_versions(sb3_folders):
    folder = sb3_folders["ppo_lstm"]
    meta = json.loads((folder / "agent.json").read_text())
    on_disk = {p.name for p in folder.iterdir()} - {"agent.json"}
    assert (
        set(meta["files"])
        == on_disk
        == {
            "model.zip",
            "vecnormalize.npz",
            "env.json",
            "train_state.json",
            "rollout_state.npz",
        }
    )
    assert meta["files"]["model.zip"]["sha256"] == file_sha256(folder / "model.zip")
    assert {"quantgym", "torch", "stable-baselines3", "numpy"} <= set(meta["versions"])
    with zipfile.ZipFile(folder / "model.zip") as archive:
        data = json.loads(archive.read("data"))
    assert not {"_last_obs", "_last_episode_starts", "ep_info_buffer"} & set(data)


def test_round_trip_keeps_actions_vecnormalize_and_recurrent_state(sb3_folders):
    agent = load_agent(sb3_folders["ppo_lstm"])
    again_dir = sb3_folders["ppo_lstm"].parent / "again"
    agent.save(again_dir)
    loaded = load_agent(again_dir)
    for attr in ("mean", "var", "count"):
        np.testing.assert_array_equal(
            getattr(loaded.vec_normalize.obs_rms, attr), getattr(agent.vec_normalize.obs_rms, attr)
        )
    assert loaded.vec_normalize.clip_obs == agent.vec_normalize.clip_obs
    env = gym.make(ENV_ID, **ENV_KWARGS)
    obs, _ = env.reset(seed=0)
    s1 = s2 = None
    for t in range(12):
        start = np.array([t == 0])
        a1, s1 = agent.predict(obs, state=s1, episode_start=start)
        a2, s2 = loaded.predict(obs, state=s2, episode_start=start)
        assert a1 == a2
        np.testing.assert_array_equal(s1[0], s2[0])
        obs, *_ = env.step(a1)


class _Crashing(BaseAgent):
    name = "crashing"

    def _save_state(self, path: Path) -> None:
        (path / "weights.bin").write_bytes(b"new")
        raise RuntimeError("crash mid-save")


def test_exception_mid_save_leaves_previous_save_intact(tmp_path):
    folder = tmp_path / "agent"
    BaseAgent().save(folder)
    (folder / "checkpoints").mkdir()  # a run's own entries survive re-saves
    before = (folder / "agent.json").read_bytes()
    with pytest.raises(RuntimeError, match="crash mid-save"):
        _Crashing().save(folder)
    assert (folder / "agent.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["agent"]  # no temp leftovers
    BaseAgent().save(folder)
    assert (folder / "checkpoints").is_dir()


KILLED_SAVE = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from quantgym.policies.base import BaseAgent

    class Slow(BaseAgent):
        name = "slow"
        def _save_state(self, path):
            (path / "weights.bin").write_bytes(b"half")
            print("writing", flush=True)
            time.sleep(60)

    Slow().save(Path(sys.argv[1]))
    """
)


def test_killed_save_leaves_previous_checkpoint_loadable(sb3_folders, tmp_path):
    folder = copy_folder(sb3_folders["ppo_mlp"], tmp_path / "agent")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_SAVE, str(folder)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "writing"  # killed half-way through the save
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert isinstance(load_agent(folder), PPOMlpAgent)  # verified against its manifest


# -- quantgym evaluate: safe by default, --trust to opt in ----------------------------------------
def test_evaluate_refuses_a_poisoned_folder_and_trust_opts_in(sb3_folders, tmp_path, capsys):
    from quantgym.agents.cli import main as cli_main

    folder = copy_folder(sb3_folders["ppo_mlp"], tmp_path / "downloaded")
    marker = tmp_path / "PWNED"
    entry = {":type:": "<class 'object'>", ":serialized:": payload_b64(marker)}
    edit_sb3_data(folder, lambda data: data.update(evil=entry))
    reseal(folder)
    assert cli_main(["evaluate", str(folder), "--no-reference", "--episodes", "1"]) == 2
    assert "model.zip needs unpickling to load (evil)" in capsys.readouterr().err
    assert not marker.exists()
    older = copy_folder(sb3_folders["ppo_mlp"], tmp_path / "older")
    meta = json.loads((older / "agent.json").read_text())
    del meta["files"]
    (older / "agent.json").write_text(json.dumps(meta))
    assert cli_main(["evaluate", str(older), "--no-reference", "--episodes", "1"]) == 2
    assert "--trust" in capsys.readouterr().err
    assert cli_main(["evaluate", str(older), "--no-reference", "--episodes", "1", "--trust"]) == 0


def test_agent_json_cannot_make_the_loader_import_a_shipped_module(tmp_path, monkeypatch):
    folder = tmp_path / "downloaded"
    BaseAgent().save(folder)
    marker = tmp_path / "PWNED"
    (tmp_path / "shipped_evil_module.py").write_text(f"open({str(marker)!r}, 'w')\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # e.g. run from the download directory
    meta = json.loads((folder / "agent.json").read_text())
    meta["class"] = "shipped_evil_module:Agent"
    (folder / "agent.json").write_text(json.dumps(meta))
    for load in (load_agent, BaseAgent.load):
        with pytest.raises(
            ValueError, match=r"agent\.json names class 'shipped_evil_module:Agent'"
        ):
            load(folder)
    assert not marker.exists()
