"""Automatic transfer under a time budget: ``AutoTransferClassifier`` and
``AutoTransferRegressor`` (``estimators``), their candidates (``space``),
the networks and cut points ranked before training (``networks``), the
budgeted search (``search``) and its record (``leaderboard``). Torch-free
until ``fit``."""

from .estimators import AutoTransferClassifier, AutoTransferRegressor, NegativeTransferWarning
from .leaderboard import Leaderboard

__all__ = ["AutoTransferClassifier", "AutoTransferRegressor", "Leaderboard",
           "NegativeTransferWarning"]
