"""The values the estimators' parameters accept, as plain tuples.

This module imports nothing: the parameter constraints of the estimators read
it at import time, and ``import sktransfer`` must stay free of torch. The
modules that implement each option check against the same tuples.
"""

TABULAR, IMAGES, TEXT = "tabular", "images", "text"

ACTIVATIONS = ("relu", "tanh", "logistic", "identity", "gelu")
OPTIMIZERS = ("adamw", "adam", "sgd")
LOSSES = ("squared_error", "huber", "absolute_error")
LR_SCHEDULES = ("constant", "cosine", "onecycle")
BN_MODES = ("train", "frozen")
PRECISIONS = ("auto", "32", "bf16", "16")
AUGMENTATIONS = ("light", "standard")
SOURCE_HEAD_MODES = ("auto", "keep", "new")
HEAD_INITS = ("random", "probe")
POOLINGS = ("mean", "cls")
MLP = "mlp"  # the tabular backbone's shorthand

# The shorthands of the method objects (``sktransfer._methods``): each string
# stands for its method with default settings.
IGNORE, PSEUDO_LABEL, FIXMATCH = "ignore", "pseudo_label", "fixmatch"
CORAL, MMD, DANN, CDAN, MCC = "coral", "mmd", "dann", "cdan", "mcc"
AUTO = "auto"  # domain_adaptation="auto": AutoAdaptation's defaults
L2SP = "l2sp"
DP = "dp"  # privacy="dp": DP's defaults
UNLABELED = (IGNORE, PSEUDO_LABEL, FIXMATCH)
DOMAIN_ADAPTATIONS = (CORAL, MMD, DANN, CDAN, MCC, AUTO)
REGULARIZATIONS = (L2SP,)
PRIVACY = (DP,)
ACCOUNTANTS = ("rdp", "prv")  # DP(accountant=...): Opacus's privacy accountants
PRIVATE_HEAD_MAX_BATCH = 4096  # DP(batch_size="auto") when only the head trains
UNLABELED_TARGET = -1  # a classifier's encoded target of an unlabeled sample
