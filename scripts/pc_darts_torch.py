#!/usr/bin/env python3
"""PyTorch reference of the PC-DARTS search network, on top of darts_torch.py.

PC-DARTS (Xu et al., ICLR 2020, `model_search.py` of its code) changes the DARTS supernet in
two ways, restated here from the paper and the reference's behaviour:

  * partial channels: an edge's candidates run on the first C/K channels of its input (K = 4);
    the other channels bypass them (a 2x2 stride-2 max pool, `mp`, on stride-2 edges), the two
    parts are concatenated and shuffled with K groups (view B x K x C/K x H x W, swap axes 1
    and 2, flatten);
  * edge normalisation: node i sums its incoming edges weighted by softmax(beta) over those
    edges; `betas_normal` / `betas_reduce` [14] (1e-3 * randn, drawn after the two alphas).

Everything else (candidates, cells, stem, classifier, search step, checkpoint files, batches)
is darts_torch.py's: this script imports it, installs its PC-DARTS network in place of the
DARTS one, and runs its command line. So `export-init`, `batches`, `eval`, `step` and `time`
work exactly as documented in darts_torch.py's README, with two more architecture tensors
(`betas_normal`, `betas_reduce`, also in `grad.*` and the Adam state). `genotype` applies the
PC-DARTS rule: W = softmax(alpha)[edge] * weights2[edge], then DARTS' choice.

  DARTS_TORCH=../shared/bench/darts_torch.py /usr/bin/python3 scripts/pc_darts_torch.py export-init ...
"""

import importlib.util
import json
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


def _load_darts_torch():
    path = os.environ.get("DARTS_TORCH") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "bench", "darts_torch.py")
    spec = importlib.util.spec_from_file_location("darts_torch", path)
    if spec is None or not os.path.isfile(path):
        sys.exit("pc_darts_torch.py: no darts_torch.py at %s (set DARTS_TORCH)" % path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["darts_torch"] = mod
    spec.loader.exec_module(mod)
    return mod


dt = _load_darts_torch()

K = 4  # partial-channel proportion (and shuffle groups)
PC_ARCH_NAMES = ("alphas_normal", "alphas_reduce", "betas_normal", "betas_reduce")


def node_slices():
    """(start, end) of each node's incoming edges in the 14 edges: 0-2, 2-5, 5-9, 9-14."""
    start, out = 0, []
    for node in range(dt.NODES):
        out.append((start, start + 2 + node))
        start += 2 + node
    return out


def node_softmax(betas):
    """softmax of betas over each node's incoming edges, concatenated (the reference's weights2)."""
    return torch.cat([F.softmax(betas[a:b], dim=-1) for a, b in node_slices()], dim=0)


def channel_shuffle(x, groups):
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).contiguous().view(n, c, h, w)


class PcMixedOp(nn.Module):
    """darts_torch's candidates on C/K channels; the rest bypass them (max pool 2x2 on stride-2
    edges), then concat and channel shuffle. Keys `_ops.<k>...` as the reference (`mp` has none)."""

    def __init__(self, channels, stride):
        super().__init__()
        self._ops = nn.ModuleList([dt.candidate_op(n, channels // K, stride) for n in dt.OP_NAMES])
        self.mp = nn.MaxPool2d(2, 2)

    def forward(self, x, w):
        part = x.shape[1] // K
        xtemp, xtemp2 = x[:, :part], x[:, part:]
        temp1 = 0  # summed from 0, as Python's sum() in the reference
        for wk, op in zip(w.unbind(0), self._ops):
            temp1 = temp1 + wk * op(xtemp)
        if temp1.shape[2] == x.shape[2]:
            ans = torch.cat([temp1, xtemp2], dim=1)
        else:
            ans = torch.cat([temp1, self.mp(xtemp2)], dim=1)
        return channel_shuffle(ans, K)


class PcCell(dt.Cell):
    """darts_torch's cell with PC-DARTS edges; node = sum_j weights2[e] * edge_e(h_j)."""

    def forward(self, s0, s1, weights, weights2):
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        edge = 0
        for _ in range(dt.NODES):
            node = 0
            for h in list(states):
                node = node + weights2[edge] * self._ops[edge](h, weights[edge])
                edge += 1
            states.append(node)
        return torch.cat(states[-dt.CONCAT:], dim=1)


class PcNetwork(dt.Network):
    """darts_torch's network with PC-DARTS cells and betas (drawn after the alphas)."""

    def __init__(self, C=16, num_classes=10, layers=8):
        super().__init__(C, num_classes, layers)
        self.betas_normal = nn.Parameter(1e-3 * torch.randn(dt.EDGES))
        self.betas_reduce = nn.Parameter(1e-3 * torch.randn(dt.EDGES))

    def forward(self, x):
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            if cell.reduction:
                alphas, betas = self.alphas_reduce, self.betas_reduce
            else:
                alphas, betas = self.alphas_normal, self.betas_normal
            s0, s1 = s1, cell(s0, s1, F.softmax(alphas, dim=-1), node_softmax(betas))
        out = self.global_pooling(s1)
        return self.classifier(out.view(out.size(0), -1))

    def arch_parameters(self):
        return [self.alphas_normal, self.alphas_reduce, self.betas_normal, self.betas_reduce]


def pc_parse_cell(alphas, betas):
    """The PC-DARTS rule: W = softmax(alpha)[e] * weights2[e], then DARTS' edge and op choice."""
    w = F.softmax(torch.as_tensor(alphas, dtype=torch.float64), dim=-1)
    w2 = node_softmax(torch.as_tensor(betas, dtype=torch.float64))
    w = (w * w2[:, None]).numpy()
    none = dt.OP_NAMES.index("none")
    gene, start = [], 0
    for node in range(dt.NODES):
        n = node + 2
        rows = w[start:start + n]
        best = [max((k for k in range(len(dt.OP_NAMES)) if k != none), key=lambda k, r=r: (r[k], -k))
                for r in rows]
        for j in sorted(range(n), key=lambda j: -rows[j][best[j]])[:2]:
            gene.append((dt.OP_NAMES[best[j]], j))
        start += n
    return gene


def cmd_pc_genotype(argv):
    if len(argv) != 2 or argv[0] != "--checkpoint":
        sys.exit("usage: pc_darts_torch.py genotype --checkpoint FILE")
    t, _ = dt.read_safetensors(argv[1])
    print(json.dumps(dict(normal=pc_parse_cell(t["alphas_normal"], t["betas_normal"]),
                          reduce=pc_parse_cell(t["alphas_reduce"], t["betas_reduce"]))))
    return 0


# Install the PC-DARTS network: darts_torch's commands, search step and loaders build
# `Network` (and cells build `MixedOp`) through these module globals.
dt.MixedOp = PcMixedOp
dt.Cell = PcCell
dt.Network = PcNetwork
dt.ARCH_NAMES = PC_ARCH_NAMES
# `time` over several configurations re-runs its module's file once per configuration: make
# that this script, so the children time PC-DARTS and not DARTS.
dt.__file__ = os.path.abspath(__file__)

if __name__ == "__main__":
    if sys.argv[1:2] == ["genotype"]:
        sys.exit(cmd_pc_genotype(sys.argv[2:]))
    sys.exit(dt.main())
