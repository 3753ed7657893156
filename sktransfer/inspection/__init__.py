"""Inspection of fitted transfer estimators: why they predict what they do.

``attribute`` attributes predictions to pixels, tokens or features;
``sanity_check`` runs the model-randomisation test of an attribution
method; ``top_losses`` and ``most_confused`` find the samples and the class
pairs a classifier gets most wrong; ``AttributionDisplay`` and
``TopLossesDisplay`` draw them (matplotlib is imported when plotting).

Importing this module does not load torch.
"""

from ._attribution import METHODS, attribute, sanity_check
from ._display import AttributionDisplay, TopLossesDisplay
from ._losses import most_confused, top_losses

__all__ = [
    "AttributionDisplay",
    "METHODS",
    "attribute",
    "most_confused",
    "sanity_check",
    "TopLossesDisplay",
    "top_losses",
]
