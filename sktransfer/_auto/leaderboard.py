"""The record of an automatic search: one row per candidate, best first."""

from __future__ import annotations

import math

from .._table import rows_frame

COLUMNS = ("name", "recipe", "backbone", "cut", "lr", "epochs", "score", "score_std",
           "logme", "seconds", "fate")


class Leaderboard:
    """Every candidate of an automatic search, best validation score first.

    Made by :class:`AutoTransferClassifier` and
    :class:`AutoTransferRegressor` (``leaderboard_``); not meant to be built
    directly.

    Parameters
    ----------
    rows : list of dict
        One dict per candidate with the keys of ``columns``.

    Attributes
    ----------
    rows : list of dict
        One dict per candidate: ``name``, ``recipe`` ("exact probe",
        "fine-tune", "LP-FT", "probe at a cut", "from scratch", "baseline",
        ...), ``backbone``, ``cut`` ("" for the network's output, else
        "stage k"), ``lr``, ``epochs`` (the most it was trained for, None
        for models without epochs), ``score`` and ``score_std`` (mean and
        standard deviation over the validation folds, NaN when not
        scored), ``logme`` (the transferability score that ranked it, NaN
        when not ranked), ``seconds`` (its fits and scoring) and ``fate``:
        "best", "kept", "dropped at rung k", "skipped for budget", "stopped
        for budget", "passed over: no time left for its refit", "ranked
        out" (by LogME), "not ranked for budget" (the ranking's share of the
        budget ran out first) or "failed: <the error>".
        Best score first.

    Examples
    --------
    >>> from sktransfer import Leaderboard
    >>> board = Leaderboard([
    ...     {"name": "a", "recipe": "baseline", "score": 0.7, "fate": "kept"},
    ...     {"name": "b", "recipe": "exact probe", "score": 0.9, "fate": "best"}])
    >>> board.best
    'b'
    >>> [row["name"] for row in board.rows]
    ['b', 'a']
    """

    columns = COLUMNS

    def __init__(self, rows):
        filled = [{column: row.get(column, _blank(column)) for column in COLUMNS}
                  for row in rows]
        self.rows = sorted(filled, key=_order)

    @property
    def best(self) -> str | None:
        """Name of the chosen candidate (None when nothing was chosen)."""
        chosen = [row["name"] for row in self.rows if row["fate"] == "best"]
        return chosen[0] if chosen else None

    def to_frame(self):
        """The rows as a pandas DataFrame (needs pandas).

        Returns
        -------
        frame : pandas.DataFrame
            One row per candidate, best first.
        """
        return rows_frame(self.rows, COLUMNS, "Leaderboard.to_frame")

    def __len__(self):
        return len(self.rows)

    def __str__(self):
        shown = ("name", "epochs", "score", "score_std", "seconds", "fate")
        table = [list(shown)] + [[_cell(row[c], c) for c in shown] for row in self.rows]
        widths = [max(len(line[i]) for line in table) for i in range(len(shown))]
        lines = ["  ".join(cell.ljust(width) if i in (0, len(shown) - 1) else cell.rjust(width)
                           for i, (cell, width) in enumerate(zip(line, widths))).rstrip()
                 for line in table]
        return "\n".join(lines)

    __repr__ = __str__


def _blank(column: str):
    return math.nan if column in ("score", "score_std", "logme", "seconds") else (
        None if column in ("lr", "epochs") else "")


def _order(row):
    score = row["score"]
    missing = score is None or (isinstance(score, float) and math.isnan(score))
    return (row["fate"] != "best", missing, -(0.0 if missing else score))


def _cell(value, column: str) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.1f}" if column == "seconds" \
            else f"{value:.4f}"
    return str(value)
