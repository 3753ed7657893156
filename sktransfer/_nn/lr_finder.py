"""``lr="auto"``: a learning-rate range test (Smith 2017; fastai's lr_find).

The rate grows geometrically from ``start`` to ``end`` over at most
``num_steps`` training steps on a copy of the network; the loss is smoothed
exponentially and the test stops once it exceeds 4x its minimum. The rule:
the chosen rate is the one at the minimum smoothed loss divided by 10 (well
inside the region where the loss still falls), clipped to [start, end].
"""

from __future__ import annotations

import copy
import math

import numpy as np
from torch.utils.data import DataLoader

from .strategies import optimizer_groups
from .training import WeightedLoss, make_optimizer


def _batches(loader):
    while True:
        yield from loader


def lr_range_test(module, dataset, *, loss_kind: str, plan, start: float = 1e-7,
                  end: float = 1.0, num_steps: int = 100):
    """Run the range test; return ``(chosen_lr, lrs, smoothed_losses)``."""
    model = copy.deepcopy(module).to(plan.device)  # the real network is untouched
    model.train()
    groups = optimizer_groups(model, lr=1.0, weight_decay=plan.weight_decay,
                              layer_decay=plan.layer_decay,
                              backbone_lr_mult=plan.backbone_lr_mult, l2sp=False)
    optimizer = make_optimizer(groups, name=plan.optimizer, lr=1.0)
    criterion = WeightedLoss(loss_kind)
    loader = DataLoader(dataset, batch_size=plan.batch_size, shuffle=True)
    steps = max(2, min(num_steps, 10 * plan.steps_per_epoch))
    ratio = (end / start) ** (1.0 / (steps - 1))
    lrs, smoothed, average, best = [], [], 0.0, math.inf
    batches = _batches(loader)
    for step in range(steps):
        lr = start * ratio ** step
        for group in optimizer.param_groups:
            group["lr"] = group["base_lr"] * lr
        X, (y, w) = next(batches)
        X = X.to(plan.device)
        optimizer.zero_grad(set_to_none=True)
        loss = criterion(model(X).float(), (y.to(plan.device), w.to(plan.device)))
        value = float(loss.detach())
        if not math.isfinite(value):
            break
        loss.backward()
        optimizer.step()
        average = 0.98 * average + 0.02 * value
        current = average / (1 - 0.98 ** (step + 1))
        lrs.append(lr)
        smoothed.append(current)
        if current > 4 * best:
            break
        best = min(best, current)
    if not smoothed:
        raise ValueError("the learning-rate range test diverged at once; pass a numeric lr.")
    chosen = lrs[int(np.argmin(smoothed))] / 10
    return float(min(max(chosen, start), end)), lrs, smoothed
