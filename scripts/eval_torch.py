#!/usr/bin/env python3
"""PyTorch reference of the DARTS evaluation network, and the fixtures the Rust tests compare with.

A self-contained re-statement of the reference implementation's `model.py` (`NetworkCIFAR`,
`NetworkImageNet`, their `Cell` and auxiliary heads), `operations.py` with `affine=True`,
`utils.drop_path` and the published genotypes of `genotypes.py`, with the reference's module
structure, so the state-dict names are the reference's.

  time   [--channels 36 --layers 20 --batch 96 --steps 3 --warmup 1 --drop-path 0.2 --threads N
          --device cpu|cuda]
                           seconds per float32 training step of NetworkCIFAR(DARTS_V2) with the aux
                           head on random batches, one JSON line (the baseline of
                           `darts bench train-step`; scripts/bench-vs-pytorch.sh --network eval)
  names  --out F.json      state-dict names and shapes of small CIFAR and ImageNet networks, and
                           the parameter counts of the paper's networks (aux head excluded)
  step   --out F.safetensors [--config darts_v2|all_ops|darts_v2_l3_aux]
                           float64: a small NetworkCIFAR (darts_v2: DARTS_V2, C=8, 5 layers, aux
                           head, 2 images 32x32; all_ops: ALL_OPS, C=4, 3 layers, no head, 2 images
                           16x16) from a shared deterministic initialisation (below), its eval-mode
                           logits, then one training step (drop path off, loss = CE + 0.4 CE_aux,
                           grad clip 5, SGD lr 0.025 momentum 0.9 wd 3e-4): train-mode logits, aux
                           logits, loss, gradient norm and every state-dict tensor after the step;
                           darts_v2_l3_aux (C=4, 3 layers, aux head after the last cell): the
                           outputs of the step's forward only

Shared initialisation: the Rust test draws the same numbers. A xoshiro256++ generator seeded by
SplitMix64 (src/rng.rs), uniform = (next >> 11) * 2^-53; for each parameter in sorted name order,
row-major: tensors of 2 or more dims U(-b, b) with b = 1/sqrt(fan_in) (fan_in = numel / dim 0),
1-D `*.weight` (BN gamma) U(0.5, 1.5), other 1-D (BN beta, linear bias) U(-0.1, 0.1). BN
buffers keep PyTorch's initial values. The images come from the same generator (seed INPUT_SEED),
U(-1, 1), row-major.

Dependencies: torch (1.13 from Debian, or 2.x) and numpy. Run with OMP_NUM_THREADS=1.
"""

import argparse
import collections
import json
import math
import os
import struct
import sys

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as exc:  # pragma: no cover - depends on the interpreter
    sys.exit("eval_torch.py: %s (interpreter %s). On Debian: apt-get install -y python3-torch, "
             "then run it with /usr/bin/python3." % (exc, sys.executable))

# ----------------------------------------------------------------------------------------------
# Genotypes (genotypes.py)
# ----------------------------------------------------------------------------------------------

Genotype = collections.namedtuple("Genotype", "normal normal_concat reduce reduce_concat")

DARTS_V1 = Genotype(
    normal=[("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 0), ("sep_conv_3x3", 1),
            ("skip_connect", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 2)],
    normal_concat=[2, 3, 4, 5],
    reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 0),
            ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("avg_pool_3x3", 0)],
    reduce_concat=[2, 3, 4, 5])
DARTS_V2 = Genotype(
    normal=[("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)],
    normal_concat=[2, 3, 4, 5],
    reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
            ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)],
    reduce_concat=[2, 3, 4, 5])
# Not published: every op of the search space (a `none`, a stride-2 skip_connect, both pools,
# both conv kinds and sizes) and a reduction cell concatenating three nodes (tests/eval/mod.rs).
ALL_OPS = Genotype(
    normal=[("sep_conv_3x3", 0), ("dil_conv_5x5", 1), ("avg_pool_3x3", 0), ("skip_connect", 2),
            ("sep_conv_5x5", 3), ("max_pool_3x3", 1), ("dil_conv_3x3", 4), ("none", 2)],
    normal_concat=[2, 3, 4, 5],
    reduce=[("skip_connect", 0), ("sep_conv_5x5", 1), ("avg_pool_3x3", 1), ("dil_conv_3x3", 2),
            ("max_pool_3x3", 0), ("sep_conv_3x3", 3), ("dil_conv_5x5", 1), ("skip_connect", 4)],
    reduce_concat=[3, 4, 5])
# Not published: a sparse FairDARTS genotype of (op, node, input) triples, built as FairDARTS'
# DCOCell (tests/eval_reference.rs): normal node 2 with two inputs, node 3 with one, node 4
# isolated, node 5 reading node 3 and the isolated node 4 (that op exists but never runs); the
# reduction cell keeps nodes 2 and 4 only (a stride-2 skip_connect), so its output has two nodes.
FAIR_SPARSE = Genotype(
    normal=[("sep_conv_3x3", 2, 0), ("skip_connect", 2, 1), ("dil_conv_3x3", 3, 2),
            ("max_pool_3x3", 5, 3), ("sep_conv_5x5", 5, 4)],
    normal_concat=range(2, 6),
    reduce=[("skip_connect", 2, 0), ("avg_pool_3x3", 2, 1), ("dil_conv_5x5", 4, 2), ("max_pool_3x3", 4, 1)],
    reduce_concat=range(2, 6))
GENOTYPES = {"DARTS_V1": DARTS_V1, "DARTS_V2": DARTS_V2, "DARTS": DARTS_V2, "ALL_OPS": ALL_OPS,
             "FAIR_SPARSE": FAIR_SPARSE}

# ----------------------------------------------------------------------------------------------
# Operations (operations.py, affine=True)
# ----------------------------------------------------------------------------------------------


class ReLUConvBN(nn.Module):
    def __init__(self, c_in, c_out, kernel, stride, padding):
        super().__init__()
        self.op = nn.Sequential(nn.ReLU(inplace=False),
                                nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
                                nn.BatchNorm2d(c_out))

    def forward(self, x):
        return self.op(x)


class DilConv(nn.Module):
    def __init__(self, c, kernel, stride, padding, dilation):
        super().__init__()
        self.op = nn.Sequential(nn.ReLU(inplace=False),
                                nn.Conv2d(c, c, kernel, stride=stride, padding=padding, dilation=dilation,
                                          groups=c, bias=False),
                                nn.Conv2d(c, c, 1, bias=False),
                                nn.BatchNorm2d(c))

    def forward(self, x):
        return self.op(x)


class SepConv(nn.Module):
    def __init__(self, c, kernel, stride, padding):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c, c, kernel, stride=stride, padding=padding, groups=c, bias=False),
            nn.Conv2d(c, c, 1, bias=False),
            nn.BatchNorm2d(c),
            nn.ReLU(inplace=False),
            nn.Conv2d(c, c, kernel, stride=1, padding=padding, groups=c, bias=False),
            nn.Conv2d(c, c, 1, bias=False),
            nn.BatchNorm2d(c))

    def forward(self, x):
        return self.op(x)


class Identity(nn.Module):
    def forward(self, x):
        return x


class Zero(nn.Module):
    def __init__(self, stride):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        if self.stride == 1:
            return x.mul(0.)
        return x[:, :, ::self.stride, ::self.stride].mul(0.)


class FactorizedReduce(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, padding=0, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, padding=0, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x):
        x = self.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


OPS = {
    "none": lambda c, stride: Zero(stride),
    "avg_pool_3x3": lambda c, stride: nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False),
    "max_pool_3x3": lambda c, stride: nn.MaxPool2d(3, stride=stride, padding=1),
    "skip_connect": lambda c, stride: Identity() if stride == 1 else FactorizedReduce(c, c),
    "sep_conv_3x3": lambda c, stride: SepConv(c, 3, stride, 1),
    "sep_conv_5x5": lambda c, stride: SepConv(c, 5, stride, 2),
    "dil_conv_3x3": lambda c, stride: DilConv(c, 3, stride, 2, 2),
    "dil_conv_5x5": lambda c, stride: DilConv(c, 5, stride, 4, 2),
}


def drop_path(x, drop_prob):
    """utils.drop_path: per-sample Bernoulli(keep) mask, survivors scaled by 1/keep (in place)."""
    if drop_prob > 0.:
        keep_prob = 1. - drop_prob
        mask = torch.empty(x.size(0), 1, 1, 1, dtype=x.dtype, device=x.device).bernoulli_(keep_prob)
        x.div_(keep_prob)
        x.mul_(mask)
    return x

# ----------------------------------------------------------------------------------------------
# Networks (model.py)
# ----------------------------------------------------------------------------------------------


def _preprocess(cell, c_prev_prev, c_prev, c, reduction_prev):
    """A cell's preprocess0 (FactorizedReduce after a reduction cell) and preprocess1."""
    if reduction_prev:
        cell.preprocess0 = FactorizedReduce(c_prev_prev, c)
    else:
        cell.preprocess0 = ReLUConvBN(c_prev_prev, c, 1, 1, 0)
    cell.preprocess1 = ReLUConvBN(c_prev, c, 1, 1, 0)


class Cell(nn.Module):
    def __init__(self, genotype, c_prev_prev, c_prev, c, reduction, reduction_prev):
        super().__init__()
        _preprocess(self, c_prev_prev, c_prev, c, reduction_prev)
        if reduction:
            op_names, indices = zip(*genotype.reduce)
            concat = genotype.reduce_concat
        else:
            op_names, indices = zip(*genotype.normal)
            concat = genotype.normal_concat
        self._steps = len(op_names) // 2
        self._concat = concat
        self.multiplier = len(concat)
        self._ops = nn.ModuleList()
        for name, index in zip(op_names, indices):
            stride = 2 if reduction and index < 2 else 1
            self._ops.append(OPS[name](c, stride))
        self._indices = indices

    def forward(self, s0, s1, drop_prob):
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for i in range(self._steps):
            op1, op2 = self._ops[2 * i], self._ops[2 * i + 1]
            h1 = op1(states[self._indices[2 * i]])
            h2 = op2(states[self._indices[2 * i + 1]])
            if self.training and drop_prob > 0.:
                if not isinstance(op1, Identity):
                    h1 = drop_path(h1, drop_prob)
                if not isinstance(op2, Identity):
                    h2 = drop_path(h2, drop_prob)
            states.append(h1 + h2)
        return torch.cat([states[i] for i in self._concat], dim=1)


class DCOCell(nn.Module):
    """FairDARTS' cell of a sparse genotype (its model.py `DCOCell`): ops keyed by destination
    node and input, a node sums the ops of the inputs that exist, drop path acts on each node's
    sum, and the output concatenates every node that has an op (in the genotype's order)."""

    def __init__(self, genotype, c_prev_prev, c_prev, c, reduction, reduction_prev):
        super().__init__()
        _preprocess(self, c_prev_prev, c_prev, c, reduction_prev)
        genes = genotype.reduce if reduction else genotype.normal
        self._ops = nn.ModuleDict()
        for name, to, frm in genes:
            stride = 2 if reduction and frm < 2 else 1
            node = self._ops[str(to)] if str(to) in self._ops else nn.ModuleDict()
            self._ops[str(to)] = node
            if str(frm) not in node:
                node[str(frm)] = nn.ModuleList()
            node[str(frm)].append(OPS[name](c, stride))
        self.multiplier = len(self._ops)

    def forward(self, s0, s1, drop_prob):
        states = {"0": self.preprocess0(s0), "1": self.preprocess1(s1)}
        for to, node in self._ops.items():
            h = [sum(op(states[frm]) for op in ops) for frm, ops in node.items() if frm in states]
            out = sum(h)
            if self.training and drop_prob > 0.:
                out = drop_path(out, drop_prob)
            states[to] = out
        return torch.cat(list(states.values())[2:], dim=1)


class AuxiliaryHeadCIFAR(nn.Module):
    def __init__(self, c, num_classes):
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=True),
            nn.AvgPool2d(5, stride=3, padding=0, count_include_pad=False),
            nn.Conv2d(c, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(inplace=True))
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x):
        x = self.features(x)
        return self.classifier(x.view(x.size(0), -1))


class AuxiliaryHeadImageNet(nn.Module):
    def __init__(self, c, num_classes):
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=True),
            nn.AvgPool2d(5, stride=2, padding=0, count_include_pad=False),
            nn.Conv2d(c, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
            # The reference leaves this BN out "for consistency with the experiments in the paper".
            nn.ReLU(inplace=True))
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x):
        x = self.features(x)
        return self.classifier(x.view(x.size(0), -1))


def _cells(net, genotype, layers, c_prev_prev, c_prev, c_curr, reduction_prev):
    """The cell stack; returns the channels the auxiliary head and the classifier take."""
    net.cells = nn.ModuleList()
    c_aux = None
    for i in range(layers):
        reduction = i in (layers // 3, 2 * layers // 3)
        if reduction:
            c_curr *= 2
        sparse = len(genotype.normal[0]) == 3
        cell = (DCOCell if sparse else Cell)(genotype, c_prev_prev, c_prev, c_curr, reduction, reduction_prev)
        reduction_prev = reduction
        net.cells.append(cell)
        c_prev_prev, c_prev = c_prev, cell.multiplier * c_curr
        if i == 2 * layers // 3:
            c_aux = c_prev
    return c_aux, c_prev


class NetworkCIFAR(nn.Module):
    def __init__(self, C, num_classes, layers, auxiliary, genotype):
        super().__init__()
        self._layers = layers
        self._auxiliary = auxiliary
        self.drop_path_prob = 0.0
        c_stem = 3 * C
        self.stem = nn.Sequential(nn.Conv2d(3, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem))
        c_aux, c_prev = _cells(self, genotype, layers, c_stem, c_stem, C, False)
        if auxiliary:
            self.auxiliary_head = AuxiliaryHeadCIFAR(c_aux, num_classes)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward(self, x):
        logits_aux = None
        s0 = s1 = self.stem(x)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == 2 * self._layers // 3 and self._auxiliary and self.training:
                logits_aux = self.auxiliary_head(s1)
        out = self.global_pooling(s1)
        return self.classifier(out.view(out.size(0), -1)), logits_aux


class NetworkImageNet(nn.Module):
    def __init__(self, C, num_classes, layers, auxiliary, genotype):
        super().__init__()
        self._layers = layers
        self._auxiliary = auxiliary
        self.drop_path_prob = 0.0
        self.stem0 = nn.Sequential(
            nn.Conv2d(3, C // 2, kernel_size=3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(C // 2),
            nn.ReLU(inplace=True),
            nn.Conv2d(C // 2, C, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(C))
        self.stem1 = nn.Sequential(
            nn.ReLU(inplace=True),
            nn.Conv2d(C, C, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(C))
        c_aux, c_prev = _cells(self, genotype, layers, C, C, C, True)
        if auxiliary:
            self.auxiliary_head = AuxiliaryHeadImageNet(c_aux, num_classes)
        self.global_pooling = nn.AvgPool2d(7)
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward(self, x):
        logits_aux = None
        s0 = self.stem0(x)
        s1 = self.stem1(s0)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == 2 * self._layers // 3 and self._auxiliary and self.training:
                logits_aux = self.auxiliary_head(s1)
        out = self.global_pooling(s1)
        return self.classifier(out.view(out.size(0), -1)), logits_aux


def count_without_aux(model):
    """utils.count_parameters_in_MB, in parameters: names containing "auxiliary" left out."""
    return sum(p.numel() for n, p in model.named_parameters() if "auxiliary" not in n)

# ----------------------------------------------------------------------------------------------
# The shared deterministic initialisation (src/rng.rs: xoshiro256++ seeded by SplitMix64)
# ----------------------------------------------------------------------------------------------

MASK64 = (1 << 64) - 1


def _rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & MASK64


class Rng:
    def __init__(self, seed):
        x, self.s = seed, []
        for _ in range(4):
            x = (x + 0x9E3779B97F4A7C15) & MASK64
            z = x
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
            self.s.append(z ^ (z >> 31))

    def next_u64(self):
        s = self.s
        result = (_rotl((s[0] + s[3]) & MASK64, 23) + s[0]) & MASK64
        t = (s[1] << 17) & MASK64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = _rotl(s[3], 45)
        return result

    def uniforms(self, n, lo, hi):
        scale = 1.0 / (1 << 53)
        return [lo + (hi - lo) * ((self.next_u64() >> 11) * scale) for _ in range(n)]


def shared_init(model, seed):
    """Every parameter from Rng(seed), in sorted name order (see the module docstring)."""
    rng = Rng(seed)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name in sorted(params):
            p = params[name]
            if p.dim() >= 2:
                b = 1.0 / math.sqrt(p.numel() // p.shape[0])
                lo, hi = -b, b
            elif name.endswith(".weight"):
                lo, hi = 0.5, 1.5
            else:
                lo, hi = -0.1, 0.1
            p.copy_(torch.tensor(rng.uniforms(p.numel(), lo, hi), dtype=torch.float64).reshape(p.shape))

# ----------------------------------------------------------------------------------------------
# safetensors, by hand (the format of ../shared/bench/darts_torch.py): u64 little-endian header
# length, JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {...}}, raw data.
# ----------------------------------------------------------------------------------------------

_ST_CODES = {np.dtype("<f8"): "F64", np.dtype("<f4"): "F32", np.dtype("<i8"): "I64"}


def write_safetensors(path, tensors, metadata=None):
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, t in tensors.items():
        arr = t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
        # (ascontiguousarray would turn a 0-d num_batches_tracked into shape [1].)
        blob = np.asarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes(order="C")
        header[name] = {"dtype": _ST_CODES[arr.dtype], "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    head += b" " * (-len(head) % 8)
    tmp = "%s.tmp%d" % (path, os.getpid())
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for blob in blobs:
            f.write(blob)
    os.replace(tmp, path)

# ----------------------------------------------------------------------------------------------
# Commands
# ----------------------------------------------------------------------------------------------

# The step fixtures' networks and data (NetworkCIFAR, 10 classes): the paper's cell with the
# auxiliary head, and every op without it.
STEP_CONFIGS = {
    "darts_v2": dict(genotype="DARTS_V2", channels=8, layers=5, auxiliary=True, batch=2, hw=32, labels=[3, 7]),
    "all_ops": dict(genotype="ALL_OPS", channels=4, layers=3, auxiliary=False, batch=2, hw=16, labels=[5, 0]),
    "fair_sparse": dict(genotype="FAIR_SPARSE", channels=4, layers=5, auxiliary=False, batch=2, hw=16,
                        labels=[2, 9]),
    # The head after the last cell: its in-place ReLU reaches the classifier. Outputs only (the
    # head's 768x128x2x2 conv alone is 3 MB in float64).
    "darts_v2_l3_aux": dict(genotype="DARTS_V2", channels=4, layers=3, auxiliary=True, batch=2, hw=32,
                            labels=[1, 8], outputs_only=True),
}
INIT_SEED, INPUT_SEED = 1, 2
LR, MOMENTUM, WEIGHT_DECAY, GRAD_CLIP, AUX_WEIGHT = 0.025, 0.9, 3e-4, 5.0, 0.4

# Networks whose names `names` lists: (key, class, C, classes, layers, auxiliary, genotype).
NAMED = [
    ("cifar_v2_c8_l5_aux", NetworkCIFAR, 8, 10, 5, True, "DARTS_V2"),
    ("cifar_v1_c4_l6", NetworkCIFAR, 4, 10, 6, False, "DARTS_V1"),
    ("imagenet_v2_c8_l5_aux", NetworkImageNet, 8, 1000, 5, True, "DARTS_V2"),
    ("cifar_fair_sparse_c4_l5_aux", NetworkCIFAR, 4, 10, 5, True, "FAIR_SPARSE"),
]


def cmd_names(args):
    out = collections.OrderedDict()
    for key, cls, c, classes, layers, aux, g in NAMED:
        model = cls(c, classes, layers, aux, GENOTYPES[g])
        out[key] = collections.OrderedDict((k, list(v.shape)) for k, v in model.state_dict().items())
    counts = collections.OrderedDict([
        ("cifar_darts_v2_c36_l20", count_without_aux(NetworkCIFAR(36, 10, 20, True, DARTS_V2))),
        ("cifar_darts_v1_c36_l20", count_without_aux(NetworkCIFAR(36, 10, 20, True, DARTS_V1))),
        ("imagenet_darts_v2_c48_l14", count_without_aux(NetworkImageNet(48, 1000, 14, True, DARTS_V2))),
    ])
    out["param_counts_without_aux"] = counts
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(json.dumps({"cmd": "names", "out": args.out, "param_counts_without_aux": counts}))


def cmd_step(args):
    cfg = STEP_CONFIGS[args.config]
    torch.set_default_dtype(torch.float64)
    model = NetworkCIFAR(cfg["channels"], 10, cfg["layers"], cfg["auxiliary"], GENOTYPES[cfg["genotype"]]).double()
    shared_init(model, INIT_SEED)
    b, hw = cfg["batch"], cfg["hw"]
    x = torch.tensor(Rng(INPUT_SEED).uniforms(b * 3 * hw * hw, -1.0, 1.0), dtype=torch.float64).reshape(b, 3, hw, hw)
    y = torch.tensor(cfg["labels"], dtype=torch.int64)

    model.eval()
    with torch.no_grad():
        logits_eval, _ = model(x)

    model.train()
    model.drop_path_prob = 0.0
    opt = torch.optim.SGD(model.parameters(), LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    opt.zero_grad()
    logits, logits_aux = model(x)
    loss = F.cross_entropy(logits, y)
    if logits_aux is not None:
        loss = loss + AUX_WEIGHT * F.cross_entropy(logits_aux, y)
    out = collections.OrderedDict()
    out["out.logits_eval"] = logits_eval
    out["out.logits"] = logits
    if logits_aux is not None:
        out["out.logits_aux"] = logits_aux
    out["out.loss"] = loss.reshape(1)
    if not cfg.get("outputs_only"):
        loss.backward()
        grad_norm = nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        opt.step()
        out["out.grad_norm"] = grad_norm.reshape(1)
        for k, v in model.state_dict().items():
            out[k] = v
    meta = dict(cfg, config=args.config, init_seed=INIT_SEED, input_seed=INPUT_SEED, lr=LR, momentum=MOMENTUM,
                weight_decay=WEIGHT_DECAY, grad_clip=GRAD_CLIP, aux_weight=AUX_WEIGHT, torch=torch.__version__)
    write_safetensors(args.out, out, metadata=meta)
    print(json.dumps({"cmd": "step", "config": args.config, "out": args.out, "loss": loss.item(),
                      "grad_norm": None if cfg.get("outputs_only") else grad_norm.item(),
                      "tensors": len(out)}))


def cmd_time(args):
    """Seconds per training step of NetworkCIFAR(DARTS_V2) in float32 on random batches, timed as
    `darts bench train-step` times ours: forward with the auxiliary head and drop path, CE + 0.4
    CE_aux, backward, gradient-norm clip 5, SGD step, loss read back; one JSON line."""
    import resource
    import time
    torch.set_num_threads(args.threads or torch.get_num_threads())
    dev = torch.device(args.device)
    model = NetworkCIFAR(args.channels, 10, args.layers, True, DARTS_V2).to(dev)
    model.train()
    model.drop_path_prob = args.drop_path
    opt = torch.optim.SGD(model.parameters(), LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    gen = torch.Generator().manual_seed(2)
    batches = [(torch.randn(args.batch, 3, 32, 32, generator=gen).to(dev),
                torch.randint(0, 10, (args.batch,), generator=gen).to(dev)) for _ in range(args.warmup + args.steps)]
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    times = []
    for i, (x, y) in enumerate(batches):
        sync()
        t0 = time.perf_counter()
        opt.zero_grad()
        logits, logits_aux = model(x)
        loss = F.cross_entropy(logits, y) + AUX_WEIGHT * F.cross_entropy(logits_aux, y)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        opt.step()
        final = loss.item()
        sync()
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    times.sort()
    mid = len(times) // 2
    median = times[mid] if len(times) % 2 else (times[mid - 1] + times[mid]) / 2
    if dev.type == "cuda":
        peak, kind = torch.cuda.max_memory_allocated(), "torch.cuda.max_memory_allocated"
    else:
        peak, kind = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "peak RSS of the process (ru_maxrss)"
    print(json.dumps({"mode": "time", "engine": "pytorch", "network": "eval", "device": args.device,
                      "batch": args.batch, "C": args.channels, "layers": args.layers, "order": "train",
                      "steps": args.steps, "warmup": args.warmup, "median_s": median, "times_s": times,
                      "peak_mem_bytes": peak, "peak_mem_kind": kind, "threads": torch.get_num_threads(),
                      "torch": torch.__version__, "final_loss": final,
                      "params": count_without_aux(model)}))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name, fn in (("names", cmd_names), ("step", cmd_step)):
        s = sub.add_parser(name)
        s.add_argument("--out", required=True)
        if name == "step":
            s.add_argument("--config", choices=sorted(STEP_CONFIGS), default="darts_v2")
        s.set_defaults(fn=fn)
    t = sub.add_parser("time")
    t.add_argument("--channels", type=int, default=36)
    t.add_argument("--layers", type=int, default=20)
    t.add_argument("--batch", type=int, default=96)
    t.add_argument("--steps", type=int, default=3)
    t.add_argument("--warmup", type=int, default=1)
    t.add_argument("--drop-path", type=float, default=0.2)
    t.add_argument("--threads", type=int, default=0)
    t.add_argument("--device", default="cpu")
    t.set_defaults(fn=cmd_time)
    args = p.parse_args()
    if args.cmd != "time":
        torch.set_num_threads(1)
    args.fn(args)


if __name__ == "__main__":
    main()
