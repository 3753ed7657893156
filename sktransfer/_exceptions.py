"""Errors sktransfer raises on purpose, importable without torch."""


class TrainingDivergedError(ValueError):
    """The training loss became NaN or infinite."""


class WeightsNotFoundError(FileNotFoundError, ValueError):
    """Pretrained weights were asked for but no file could be found or fetched."""
