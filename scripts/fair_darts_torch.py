#!/usr/bin/env python3
"""PyTorch reference of a FairDARTS search step (Chu et al., `fairdarts/` of xiaomi-automl/FairDARTS),
built on the DARTS reference `darts_torch.py` (../shared/bench, see its README): its checkpoint
format, batches and `step` machinery, with FairDARTS' changes swapped in:

  * candidates: darts_torch's OP_NAMES without `none` (7), so candidate k of an edge is named
    `cells.<i>._ops.<e>._ops.<k>` with k one less than in DARTS;
  * alphas [14, 7], initialised to 0 (`--alpha-scale S` draws S * N(0, 1) instead, after the
    weights, so that a test step sees sigmoids away from 1/2);
  * edge weights sigmoid(alpha) per op, no softmax;
  * the architecture loss (first order only, as FairDARTS' `Architect.step`):
        CE(val) + w01 * L01,   L01 = -mean((sigmoid(alpha) - 1/2)^2)
    over the concatenation [28, 7] of both cell types' sigmoids, w01 = 10 (`--aux_loss_weight`);
    `loss.val` is the CE alone.

Usage: the darts_torch.py commands `export-init`, `batches`, `step` (`--order first`), e.g.
  /usr/bin/python3 scripts/fair_darts_torch.py export-init --out init.safetensors --channels 2 \
      --layers 5 --seed 2 --dtype float64 --alpha-scale 1
  /usr/bin/python3 scripts/fair_darts_torch.py step --checkpoint init.safetensors \
      --batches batches.safetensors --order first --steps 1 --out first-1.safetensors --dtype float64

Environment: DARTS_TORCH, the path of darts_torch.py (default ../shared/bench/darts_torch.py
from the repository root).
"""

import importlib.util
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_path = os.environ.get("DARTS_TORCH", os.path.join(ROOT, "..", "shared", "bench", "darts_torch.py"))
_spec = importlib.util.spec_from_file_location("darts_torch", _path)
dt = importlib.util.module_from_spec(_spec)
sys.modules["darts_torch"] = dt
_spec.loader.exec_module(dt)

FAIR_OP_NAMES = tuple(n for n in dt.OP_NAMES if n != "none")
ZERO_ONE_WEIGHT = 10.0  # --aux_loss_weight of fairdarts/train_search.py
ALPHA_SCALE = 0.0       # set by export-init --alpha-scale


class FairNetwork(dt.Network):
    """darts_torch's Network with 7 candidates per edge (dt.OP_NAMES is FAIR_OP_NAMES while this
    module runs), alphas [14, 7] = 0 (or ALPHA_SCALE * N(0, 1)) and sigmoid edge weights."""

    def __init__(self, C=16, num_classes=10, layers=8):
        super().__init__(C, num_classes, layers)
        k = len(FAIR_OP_NAMES)
        if ALPHA_SCALE:
            normal, reduce = ALPHA_SCALE * torch.randn(dt.EDGES, k), ALPHA_SCALE * torch.randn(dt.EDGES, k)
        else:
            normal, reduce = torch.zeros(dt.EDGES, k), torch.zeros(dt.EDGES, k)
        self.alphas_normal = nn.Parameter(normal)
        self.alphas_reduce = nn.Parameter(reduce)

    def forward(self, x):
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            alphas = self.alphas_reduce if cell.reduction else self.alphas_normal
            s0, s1 = s1, cell(s0, s1, torch.sigmoid(alphas))
        out = self.global_pooling(s1)
        return self.classifier(out.view(out.size(0), -1))


def zero_one_loss(model):
    """L01 = -mean((sigmoid(alpha) - 1/2)^2) over both cell types' sigmoids concatenated
    (ConvSeparateLoss of fairdarts/separate_loss.py)."""
    aux = torch.cat([torch.sigmoid(model.alphas_normal), torch.sigmoid(model.alphas_reduce)], dim=0)
    return -F.mse_loss(aux, torch.full_like(aux, 0.5))


class FairSearchStep(dt.SearchStep):
    """darts_torch's SearchStep with FairDARTS' first-order architecture loss."""

    def __init__(self, model, order, lr=dt.LR):
        if order != "first":
            raise ValueError("FairDARTS' architect is first order only, got %r" % order)
        super().__init__(model, order, lr)

    def arch_grad(self, x_train, y_train, x_val, y_val):
        self.a_opt.zero_grad()
        loss = F.cross_entropy(self.model(x_val), y_val)
        (loss + ZERO_ONE_WEIGHT * zero_one_loss(self.model)).backward()
        return loss.detach()


def main(argv):
    global ALPHA_SCALE
    if "--alpha-scale" in argv:
        i = argv.index("--alpha-scale")
        ALPHA_SCALE = float(argv[i + 1])
        argv = argv[:i] + argv[i + 2:]
    dt.OP_NAMES = FAIR_OP_NAMES
    dt.Network = FairNetwork
    dt.SearchStep = FairSearchStep
    return dt.main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
