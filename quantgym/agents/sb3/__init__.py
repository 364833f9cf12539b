"""PPO agents on Stable-Baselines3, one module per algorithm: ``ppo_mlp`` (SB3 PPO),
``ppo_lstm`` (sb3-contrib RecurrentPPO) and ``ppo_transformer`` (PPO with a temporal
self-attention features extractor), on the shared machinery of :class:`SB3Agent`; on
``PortfolioEnv-v0`` ``ppo_eiie`` and ``ppo_cross_attention`` (permutation-equivariant
allocation policies, :mod:`~quantgym.agents.sb3.allocation`, :mod:`~quantgym.agents.sb3.portfolio`).

``agent`` (build, fit, predict, save/load), ``envs`` (env -> SB3 ``VecEnv``), ``files``
(pickle-free agent files, checkpoints, exact resume), ``extractors`` and ``attention``
(features extractors). Importing this package imports torch and Stable-Baselines3.
"""

from quantgym.agents.sb3.agent import SB3Agent
from quantgym.agents.sb3.attention import TemporalAttentionExtractor
from quantgym.agents.sb3.envs import env_attr, make_sb3_vec_env
from quantgym.agents.sb3.extractors import RecentBarsExtractor
from quantgym.agents.sb3.files import CheckpointCallback, latest_checkpoint
from quantgym.agents.sb3.ppo_cross_attention import PPOCrossAttentionAgent
from quantgym.agents.sb3.ppo_eiie import PPOEIIEAgent
from quantgym.agents.sb3.ppo_lstm import PPOLstmAgent
from quantgym.agents.sb3.ppo_mlp import PPOMlpAgent
from quantgym.agents.sb3.ppo_transformer import PPOTransformerAgent

__all__ = [
    "SB3Agent",
    "PPOMlpAgent",
    "PPOLstmAgent",
    "PPOTransformerAgent",
    "PPOEIIEAgent",
    "PPOCrossAttentionAgent",
    "RecentBarsExtractor",
    "TemporalAttentionExtractor",
    "CheckpointCallback",
    "latest_checkpoint",
    "env_attr",
    "make_sb3_vec_env",
]
