"""Rows of plain dicts as a pandas DataFrame, for the result objects that
keep their rows as dicts (rankings, leaderboards). Torch-free."""


def rows_frame(rows, columns, owner: str):
    """``rows`` as a DataFrame with ``columns``; ``owner`` names the method
    in the error raised without pandas."""
    try:
        import pandas as pd
    except ImportError:
        raise ImportError(f"{owner} needs pandas; install it with `pip install pandas`, or "
                          "read the plain dicts in `.rows`.") from None
    return pd.DataFrame(rows, columns=list(columns))
