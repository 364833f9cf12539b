"""Agents: one API for baselines, SB3, d3rlpy and Decision Transformer agents."""
