//! The fused mixed op: one DARTS edge's candidates after their bodies, as one tape node.
//!
//! The search cells' BNs are non-affine, so every BN-terminated candidate j (pools,
//! FactorizedReduce, sep and dil convs) outputs x̂_j = (z_j − μ_j)·rstd_j of its pre-BN output
//! z_j, and the edge is a BN apply with a scalar gain per candidate, w = softmax(α_row) (DARTS)
//! or w_j = σ(α_row,j) each (FairDARTS, [`Weighting`]):
//!
//! ```text
//! y      = acc + Σ_j w_j x̂_j + w_s x                      (s: the identity; `none` adds nothing)
//! dz_j   = w_j rstd_j (dy − mean(dy) − x̂_j mean(dy x̂_j))  (training; eval: w_j rstd_j dy)
//! dx     = w_s dy,   dacc = dy
//! g_j    = Σ dy·x̂_j (BN slots), Σ dy·x (identity), 0 (`none`)
//! dα_row = w ⊙ (g − Σ w g)   (softmax),   w ⊙ (1 − w) ⊙ g   (sigmoid)
//! ```
//!
//! α has `cols` ≤ K columns: column c weighs slot c + K − cols (FairDARTS drops `none`, slot 0:
//! its 7 columns are slots 1..8); the slots below weigh 0 and must be unused.
//!
//! The unfused reference is `nn::PoolBn`/`SepConv`/... each ending in its own BN, the `zero` op,
//! `row`, `softmax`, `weighted_sum` and the node's `add`s (`MixedOp::forward`).
//!
//! Saved: the candidates' z_j (their own nodes' outputs), μ_j and rstd_j (`[2·K·c]`), x, α.
//! Recomputed, never stored: x̂_j, w, the weighted products, the identity's product.
//! Launches on a GPU: forward 2 (statistics and running-stat updates of every candidate in
//! one, merged from the per-tile partials of operands whose producer gathered them, see
//! [`TileStats`], else read from the operand; the epilogue in the other); backward 2 (the per-channel sums, then every dz_j, dx and
//! dα). The softmax and dα never leave the device.

pub mod cpu;
pub mod gpu;

use crate::autograd::functions::BnState;
use crate::autograd::Var;
use crate::backend::cpu::Real as _;
use crate::backend::gpu::{DevPtr, GpuBuf};
use crate::ops::norm::bn_geom;
use crate::tensor::{fmt_shape, gpu_ok, Tensor};
use crate::with_dtype;

pub use gpu::K;

/// How an edge turns its α row into candidate weights.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Weighting {
    /// w = softmax(α_row) (DARTS).
    #[default]
    Softmax,
    /// w_j = σ(α_j) = 1/(1 + e^{−α_j}) each (FairDARTS).
    Sigmoid,
}

/// What one edge feeds the fused node.
pub struct MixedEdge<'a> {
    /// The cell type's architecture logits `[rows, cols]`, cols ≤ K (not their weights).
    pub alpha: &'a Var,
    /// Softmax or sigmoid weights.
    pub weighting: Weighting,
    /// This edge's row of `alpha`.
    pub row: usize,
    /// The identity candidate: its slot and operand (the edge's input).
    pub skip: Option<(usize, &'a Var)>,
    /// The BN-terminated candidates: slots and their pre-BN outputs, one part per slot stacked
    /// along the batch (`[parts·n, c, h, w]`; a single candidate is one part).
    pub normed: Vec<Normed<Var>>,
    /// The sum of the destination node's earlier edges, added to the output.
    pub acc: Option<&'a Var>,
    /// PC-DARTS: the vector s and the index e whose entry scales this edge's output downstream
    /// ([`crate::autograd::functions::pc_merge`] with `m_in_edge`); the node then also gives
    /// ∂L/∂s through its output, Σ dy_m·m = (Σ_j w_j g_j)/s_e, so the merge need not keep m.
    /// Only without `acc`.
    pub scale: Option<(&'a Var, usize)>,
}

const OP: &str = "mixed_edge";

/// One stacked operand of BN-terminated candidates: `z` is `[parts·n, c, h, w]`, part i the
/// pre-BN output of candidate slot `slots[i]`.
pub struct Normed<Z> {
    /// The candidate slots, one per part.
    pub slots: Vec<usize>,
    /// The stacked pre-BN outputs.
    pub z: Z,
    /// Per-tile BN partials of `z` gathered by the kernel that wrote it, if it did: the
    /// training statistics are then merged from them instead of re-reading `z`.
    pub tiles: Option<TileStats>,
}

impl<Z> Normed<Z> {
    /// An operand without partials.
    pub fn new(slots: Vec<usize>, z: Z) -> Normed<Z> {
        Normed { slots, z, tiles: None }
    }
}

/// Per-tile BN partials of a stacked operand, from the pointwise epilogue of the conv stages
/// (`kernels/sepconv.cu` per block on a GPU, in f32; `dw_pw_fwd_pre_stats` per cache band on
/// the CPU, in f64): per part `[2, c, n·tiles]`, the mean and the centred sum of squares M2 of
/// channel ch over tile b = image·tiles + t (pixels `[t·ptile, min((t+1)·ptile, h·w))` of that
/// image, row-major), `tiles = ceil(h·w / ptile)`.
#[derive(Clone)]
pub struct TileStats {
    /// The partials, parts one after another.
    pub partials: Tensor,
    /// Pixels per tile.
    pub ptile: usize,
}

fn ptr_at(b: &GpuBuf, offset: usize) -> DevPtr {
    b.ptr() + (offset * 4) as DevPtr
}

/// One edge's operands as tensors (the tensor-level form of [`MixedEdge`]).
pub struct EdgeOperands<'a> {
    /// Architecture logits `[rows, cols]`, cols ≤ K.
    pub alpha: &'a Tensor,
    /// Softmax or sigmoid weights.
    pub weighting: Weighting,
    /// This edge's row.
    pub row: usize,
    /// The identity's slot and operand.
    pub skip: Option<(usize, &'a Tensor)>,
    /// The BN-terminated candidates' slots and pre-BN outputs (one part per slot, stacked along
    /// the batch).
    pub normed: Vec<Normed<&'a Tensor>>,
    /// Added to the output.
    pub acc: Option<&'a Tensor>,
}

/// The fused edge on tensors: the output and what its backward needs. `bns[i]` holds the
/// running statistics of the i-th normed slot's BN, slots in the order `e.normed` lists them
/// (updated in training mode, used in eval mode).
pub fn forward(e: &EdgeOperands, bns: &mut [&mut BnState], training: bool) -> (Tensor, MixedSaved) {
    let alpha = e.alpha;
    let &[rows, cols] = alpha.shape() else {
        panic!("{OP}: alpha must be [rows, cols ≤ {K}], got {}", fmt_shape(alpha.shape()))
    };
    assert!(
        (1..=K).contains(&cols) && e.row < rows,
        "{OP}: row {} of alpha {} (want [rows, cols ≤ {K}])",
        e.row,
        fmt_shape(alpha.shape())
    );
    let pairs: Vec<(Vec<usize>, &Tensor)> = e.normed.iter().map(|o| (o.slots.clone(), o.z)).collect();
    let nslots: usize = pairs.iter().map(|(js, _)| js.len()).sum();
    assert_eq!(bns.len(), nslots, "{OP}: {} BN states for {nslots} candidates", bns.len());
    let shape: Vec<usize> = match (pairs.first(), e.skip) {
        (Some((js, z)), _) => part_shape(z.shape(), js.len()),
        (None, Some((_, x))) => x.shape().to_vec(),
        (None, None) => panic!("{OP}: an edge needs at least one candidate besides none"),
    };
    for (js, z) in &pairs {
        assert!(!js.is_empty(), "{OP}: a stacked operand without slots");
        assert_eq!(
            z.shape(),
            &stacked_shape(&shape, js.len())[..],
            "{OP}: operand of slots {js:?} vs output {}",
            fmt_shape(&shape)
        );
        crate::ops::same_dtype(OP, alpha, z);
    }
    let operands = e.skip.map(|s| s.1).into_iter().chain(e.acc);
    for v in operands {
        assert_eq!(
            v.shape(),
            &shape[..],
            "{OP}: operand {} vs output {}",
            fmt_shape(v.shape()),
            fmt_shape(&shape)
        );
        crate::ops::same_dtype(OP, alpha, v);
    }
    let mut slots_used = [false; K];
    for &j in pairs.iter().flat_map(|(js, _)| js) {
        assert!(j < K && !slots_used[j], "{OP}: slot {j} given twice or out of range");
        slots_used[j] = true;
    }
    if let Some((j, _)) = e.skip {
        assert!(j < K && !slots_used[j], "{OP}: identity slot {j} clashes");
        slots_used[j] = true;
    }
    assert!(
        slots_used[..K - cols].iter().all(|&u| !u),
        "{OP}: a candidate in slots 0..{} has no column in alpha {}",
        K - cols,
        fmt_shape(alpha.shape())
    );
    let g = bn_geom(OP, &shape);
    let (eps, momentum) = bns.first().map_or((1e-5, 0.1), |b| (b.eps, b.momentum));
    assert!(
        bns.iter().all(|b| b.eps == eps && b.momentum == momentum),
        "{OP}: BN layers differ in eps/momentum"
    );
    let c = g.c;
    let tiles = slot_tiles(&e.normed, &g);

    let (y, stats) = if let Some(rt) = crate::ops::gpu_rt(OP, &[alpha]) {
        let mut stats = Tensor::empty_gpu(&[2 * K * c], &rt);
        let mut y = Tensor::empty_gpu(&shape, &rt);
        let mut p = gpu::MixedFwd {
            n: g.n as i32,
            c: c as i32,
            hw: g.hw as i32,
            k: K as i32,
            cols: cols as i32,
            sigmoid: (e.weighting == Weighting::Sigmoid) as i32,
            skip: e.skip.map_or(-1, |s| s.0 as i32),
            training: training as i32,
            eps: eps as f32,
            momentum: momentum as f32,
            ..Default::default()
        };
        let sb = stats.gpu_buf_mut();
        let ptile = e.normed.iter().find_map(|o| o.tiles.as_ref()).map_or(0, |t| t.ptile);
        p.ptile = ptile as i32;
        for (((j, z, part), bn), tiles) in parts(&pairs).zip(bns.iter_mut()).zip(&tiles) {
            p.normed |= 1 << j;
            if let Some((t, off)) = tiles {
                assert_eq!(
                    t.ptile, ptile,
                    "{OP}: operands tiled differently ({} and {ptile} pixels)",
                    t.ptile
                );
                p.part[j] = ptr_at(t.partials.gpu_buf().expect("partials on the GPU"), *off);
            }
            p.z[j] = ptr_at(z.gpu_buf().expect("z on the GPU"), part * g.len());
            let j = &j;
            p.mean[*j] = ptr_at(sb, j * c);
            p.invstd[*j] = ptr_at(sb, (K + j) * c);
            p.rmean[*j] = bn.running_mean.gpu_buf_mut().ptr();
            p.rvar[*j] = bn.running_var.gpu_buf_mut().ptr();
        }
        p.x = e.skip.map_or(0, |(_, x)| x.gpu_buf().expect("x on the GPU").ptr());
        p.acc = e.acc.map_or(0, |a| a.gpu_buf().expect("acc on the GPU").ptr());
        p.alpha = ptr_at(alpha.gpu_buf().expect("alpha on the GPU"), e.row * cols);
        p.y = y.gpu_buf_mut().ptr();
        gpu_ok(gpu::forward(&*rt, &p));
        (y, stats)
    } else {
        with_dtype!(alpha.dtype(), T => {
            let w = cpu::slot_weights(&alpha.data::<T>()[e.row * cols..(e.row + 1) * cols], e.weighting);
            let mut st = vec![T::ZERO; 2 * K * c];
            for (((j, z, part), bn), tiles) in parts(&pairs).zip(bns.iter_mut()).zip(&tiles) {
                let (head, tail) = st.split_at_mut((K + j) * c);
                let (mean, invstd) = (&mut head[j * c..(j + 1) * c], &mut tail[..c]);
                if training {
                    let z = &z.data::<T>()[part * g.len()..(part + 1) * g.len()];
                    let tiles = tiles.map(|(t, off)| (&t.partials.data::<f64>()[off..off + tile_len(&g, t.ptile)], t.ptile));
                    host_stats_update(&g, z, tiles, bn, mean, invstd);
                } else {
                    let (rm, rv) = (bn.running_mean.data::<T>(), bn.running_var.data::<T>());
                    cpu::running_stats(rm, rv, eps, mean, invstd);
                }
            }
            let normed: Vec<(Vec<usize>, Tensor)> = pairs.iter().map(|(js, z)| (js.clone(), (*z).clone())).collect();
            let edge = host_edge::<T>(&g, &w, &normed, e.skip, &st);
            let mut y = vec![T::ZERO; g.len()];
            cpu::forward(&edge, e.acc.map(|a| a.data::<T>()), &mut y);
            (Tensor::from_vec(&shape, y), Tensor::from_vec(&[2 * K * c], st))
        })
    };
    let saved = MixedSaved {
        alpha: alpha.clone(),
        weighting: e.weighting,
        row: e.row,
        skip: e.skip.map(|(j, x)| (j, x.clone())),
        normed: pairs.iter().map(|(js, z)| (js.clone(), (*z).clone())).collect(),
        stats,
        training,
        scale: None,
    };
    (y, saved)
}

/// Training-mode BN statistics of `z` `[n, c, h, w]` (mean and 1/√(var_biased + eps)) with the
/// running statistics of `bn` updated as the unfused batch norm does: one launch on a GPU
/// (`mixed_stats_f32` on a single slot) instead of statistics, rstd and update apart.
pub fn batch_stats_update(z: &Tensor, bn: &mut BnState) -> (Tensor, Tensor) {
    const OP: &str = "batch_stats_update";
    let g = bn_geom(OP, z.shape());
    assert!(
        g.per_channel() > 1,
        "{OP}: needs more than one value per channel, z is {}",
        fmt_shape(z.shape())
    );
    if let Some(rt) = crate::ops::gpu_rt(OP, &[z, &bn.running_mean]) {
        let (mut mean, mut rstd) = (Tensor::empty_gpu(&[g.c], &rt), Tensor::empty_gpu(&[g.c], &rt));
        let mut p = gpu::MixedFwd {
            n: g.n as i32,
            c: g.c as i32,
            hw: g.hw as i32,
            k: K as i32,
            skip: -1,
            normed: 1,
            training: 1,
            eps: bn.eps as f32,
            momentum: bn.momentum as f32,
            ..Default::default()
        };
        p.z[0] = z.gpu_buf().expect("z on the GPU").ptr();
        p.mean[0] = mean.gpu_buf_mut().ptr();
        p.invstd[0] = rstd.gpu_buf_mut().ptr();
        p.rmean[0] = bn.running_mean.gpu_buf_mut().ptr();
        p.rvar[0] = bn.running_var.gpu_buf_mut().ptr();
        gpu_ok(gpu::stats_slots(&*rt, &p, 1));
        return (mean, rstd);
    }
    with_dtype!(z.dtype(), T => {
        let (mut mean, mut rstd) = (vec![T::ZERO; g.c], vec![T::ZERO; g.c]);
        host_stats_update(&g, z.data::<T>(), None, bn, &mut mean, &mut rstd);
        (Tensor::from_vec(&[g.c], mean), Tensor::from_vec(&[g.c], rstd))
    })
}

/// The fused edge as one tape node. `bns[i]` holds the running statistics of `e.normed[i]`'s
/// BN (updated in training mode, used in eval mode).
pub fn mixed_edge(e: MixedEdge, bns: &mut [&mut BnState], training: bool) -> Var {
    let operands = EdgeOperands {
        alpha: e.alpha.value(),
        weighting: e.weighting,
        row: e.row,
        skip: e.skip.map(|(j, x)| (j, x.value())),
        normed: e
            .normed
            .iter()
            .map(|o| Normed { slots: o.slots.clone(), z: o.z.value(), tiles: o.tiles.clone() })
            .collect(),
        acc: e.acc.map(|a| a.value()),
    };
    let (y, mut saved) = forward(&operands, bns, training);
    assert!(e.scale.is_none() || e.acc.is_none(), "{OP}: a scaled edge has no accumulator");
    saved.scale = e.scale.map(|(s, i)| {
        assert!(
            s.shape().len() == 1 && i < s.shape()[0],
            "{OP}: scale index {i} of {}",
            fmt_shape(s.shape())
        );
        (s.value().clone(), i)
    });
    // Parents: α, then the identity's operand, the accumulator, the candidates, the scale.
    let mut parents: Vec<&Var> = vec![e.alpha];
    parents.extend(e.skip.map(|s| s.1));
    parents.extend(e.acc);
    parents.extend(e.normed.iter().map(|o| &o.z));
    parents.extend(e.scale.map(|s| s.0));
    let (has_skip, has_acc, has_scale) = (e.skip.is_some(), e.acc.is_some(), e.scale.is_some());
    e.alpha.tape().push(
        y,
        &parents,
        Box::new(move |dy, need| {
            // need: [α, x?, acc?, z_0, ..., s?].
            let mut at = 1;
            let need_x = has_skip && {
                at += 1;
                need[at - 1]
            };
            let need_acc = has_acc && {
                at += 1;
                need[at - 1]
            };
            let (need_z, need_s) = match has_scale {
                true => (&need[at..need.len() - 1], need[need.len() - 1]),
                false => (&need[at..], false),
            };
            let g = saved.backward(dy, need[0], need_x, need_z, need_s);
            let mut out = vec![g.dalpha];
            if has_skip {
                out.push(g.dx);
            }
            if has_acc {
                out.push(need_acc.then(|| dy.clone()));
            }
            out.extend(g.dz);
            if has_scale {
                out.push(g.dscale);
            }
            out
        }),
    )
}

/// Host batch statistics of `z` (merged from its per-tile partials `(f64 partials, ptile)` when
/// given) and the running update of `bn`, as the unfused batch norm.
pub(crate) fn host_stats_update<T: crate::tensor::Element>(
    g: &crate::backend::geom::BnGeom,
    z: &[T],
    tiles: Option<(&[f64], usize)>,
    bn: &mut BnState,
    mean: &mut [T],
    invstd: &mut [T],
) {
    match tiles {
        Some((partials, ptile)) => cpu::tile_stats(g, partials, ptile, bn.eps, mean, invstd),
        None => cpu::batch_stats(g, z, bn.eps, mean, invstd),
    }
    crate::backend::cpu::batchnorm::bn_update_running(
        g,
        mean,
        invstd,
        T::from_f64(bn.eps),
        T::from_f64(bn.momentum),
        bn.running_mean.data_mut::<T>(),
        bn.running_var.data_mut::<T>(),
    );
}

/// Floats of one part's per-tile partials.
fn tile_len(g: &crate::backend::geom::BnGeom, ptile: usize) -> usize {
    2 * g.c * g.n * g.hw.div_ceil(ptile)
}

/// Each normed slot's per-tile partials, in [`parts`] order, if its operand came with them:
/// the partials and the part's offset in them.
fn slot_tiles<'a>(
    normed: &'a [Normed<&Tensor>],
    g: &crate::backend::geom::BnGeom,
) -> Vec<Option<(&'a TileStats, usize)>> {
    let mut v = Vec::new();
    for o in normed {
        if let Some(t) = &o.tiles {
            let len = tile_len(g, t.ptile);
            assert!(
                t.ptile > 0 && t.partials.numel() == o.slots.len() * len,
                "{OP}: {} partials, {} pixels per tile, for operand {} ({} parts of {len})",
                t.partials.numel(),
                t.ptile,
                fmt_shape(o.z.shape()),
                o.slots.len()
            );
        }
        v.extend((0..o.slots.len()).map(|part| o.tiles.as_ref().map(|t| (t, part * tile_len(g, t.ptile)))));
    }
    v
}

/// The shape of one part of a stacked `[parts·n, ...]` operand.
fn part_shape(stacked: &[usize], parts: usize) -> Vec<usize> {
    let mut s = stacked.to_vec();
    assert!(!s.is_empty() && s[0] % parts == 0, "{OP}: {} does not stack {parts} parts", fmt_shape(stacked));
    s[0] /= parts;
    s
}

fn stacked_shape(part: &[usize], parts: usize) -> Vec<usize> {
    let mut s = part.to_vec();
    s[0] *= parts;
    s
}

/// Every normed slot with its stacked operand and its part index in it, in listing order.
fn parts<Z: std::borrow::Borrow<Tensor>>(
    normed: &[(Vec<usize>, Z)],
) -> impl Iterator<Item = (usize, &Tensor, usize)> {
    normed.iter().flat_map(|(js, z)| js.iter().enumerate().map(move |(part, &j)| (j, z.borrow(), part)))
}

/// The borrowed host view of an edge.
fn host_edge<'a, T: crate::tensor::Element>(
    g: &crate::backend::geom::BnGeom,
    w: &'a [T],
    normed: &'a [(Vec<usize>, Tensor)],
    skip: Option<(usize, &'a Tensor)>,
    stats: &'a [T],
) -> cpu::Edge<'a, T> {
    let mut z: [Option<&[T]>; K] = [None; K];
    for (j, t, part) in parts(normed) {
        z[j] = Some(&t.data::<T>()[part * g.len()..(part + 1) * g.len()]);
    }
    cpu::Edge { g: *g, w, z, skip: skip.map(|(j, x)| (j, x.data::<T>())), stats }
}

/// What the backward keeps: the candidates' pre-BN outputs, their statistics, x and α.
pub struct MixedSaved {
    alpha: Tensor,
    weighting: Weighting,
    row: usize,
    skip: Option<(usize, Tensor)>,
    normed: Vec<(Vec<usize>, Tensor)>,
    stats: Tensor,
    training: bool,
    /// PC-DARTS' downstream scale and this edge's index in it ([`MixedEdge::scale`]).
    scale: Option<(Tensor, usize)>,
}

/// The gradients of a fused edge (the accumulator's is `dy` itself).
pub struct MixedGrads {
    /// `[rows, cols]` as α, zero outside the edge's row.
    pub dalpha: Option<Tensor>,
    /// Of the identity's operand.
    pub dx: Option<Tensor>,
    /// Of each stacked pre-BN operand, in the order given.
    pub dz: Vec<Option<Tensor>>,
    /// Of the downstream scale vector through this edge's output (zero outside its entry).
    pub dscale: Option<Tensor>,
}

impl MixedSaved {
    /// The gradients asked for, given the output's gradient `dy` (`need_scale`: of the
    /// downstream scale, for an edge that has one).
    pub fn backward(
        &self,
        dy: &Tensor,
        need_alpha: bool,
        need_x: bool,
        need_z: &[bool],
        need_scale: bool,
    ) -> MixedGrads {
        let g = bn_geom(OP, dy.shape());
        let scale = self.scale.as_ref().filter(|_| need_scale);
        let c = g.c;
        let (rows, cols) = (self.alpha.shape()[0], self.alpha.shape()[1]);
        let need_x = need_x && self.skip.is_some();
        assert_eq!(
            need_z.len(),
            self.normed.len(),
            "{OP}: {} flags for {} candidates",
            need_z.len(),
            self.normed.len()
        );
        let (dalpha, dx, dz, dscale) = if let Some(rt) = crate::ops::gpu_rt(OP, &[dy, &self.alpha]) {
            let chunks = gpu::bwd_chunks(g.n, c, g.hw);
            let sums = gpu_ok(GpuBuf::alloc(&rt, chunks * (K + 1) * c));
            let sb = self.stats.gpu_buf().expect("stats on the GPU");
            let mut p = gpu::MixedBwd {
                n: g.n as i32,
                c: c as i32,
                hw: g.hw as i32,
                k: K as i32,
                skip: self.skip.as_ref().map_or(-1, |s| s.0 as i32),
                training: self.training as i32,
                rows: rows as i32,
                row: self.row as i32,
                chunks: chunks as i32,
                cols: cols as i32,
                sigmoid: (self.weighting == Weighting::Sigmoid) as i32,
                ..Default::default()
            };
            let mut dz: Vec<Option<Tensor>> = Vec::new();
            for ((js, z), &n) in self.normed.iter().zip(need_z) {
                let mut t = n.then(|| Tensor::empty_gpu(z.shape(), &rt));
                for (part, &j) in js.iter().enumerate() {
                    p.normed |= 1 << j;
                    p.z[j] = ptr_at(z.gpu_buf().expect("z on the GPU"), part * g.len());
                    p.mean[j] = ptr_at(sb, j * c);
                    p.invstd[j] = ptr_at(sb, (K + j) * c);
                    if let Some(t) = t.as_mut() {
                        p.dz[j] = ptr_at(t.gpu_buf_mut(), part * g.len());
                    }
                }
                dz.push(t);
            }
            let mut dx = need_x.then(|| Tensor::empty_gpu(dy.shape(), &rt));
            let mut dalpha = need_alpha.then(|| Tensor::empty_gpu(&[rows, cols], &rt));
            p.x = self.skip.as_ref().map_or(0, |(_, x)| x.gpu_buf().expect("x on the GPU").ptr());
            p.alpha = ptr_at(self.alpha.gpu_buf().expect("alpha on the GPU"), self.row * cols);
            p.dy = dy.gpu_buf().expect("dy on the GPU").ptr();
            p.sums = sums.ptr();
            p.dx_skip = dx.as_mut().map_or(0, |t| t.gpu_buf_mut().ptr());
            p.dalpha = dalpha.as_mut().map_or(0, |t| t.gpu_buf_mut().ptr());
            let mut dscale = scale.map(|(s, i)| {
                p.scale = s.gpu_buf().expect("scale on the GPU").ptr();
                (p.scale_len, p.scale_index) = (s.numel() as i32, *i as i32);
                Tensor::empty_gpu(s.shape(), &rt)
            });
            p.dscale = dscale.as_mut().map_or(0, |t| t.gpu_buf_mut().ptr());
            gpu_ok(gpu::backward(&*rt, &p));
            (dalpha, dx, dz, dscale)
        } else {
            with_dtype!(dy.dtype(), T => {
                let row = &self.alpha.data::<T>()[self.row * cols..(self.row + 1) * cols];
                let w = cpu::slot_weights(row, self.weighting);
                let st = self.stats.data::<T>();
                let edge = host_edge::<T>(&g, &w, &self.normed, self.skip.as_ref().map(|(j, x)| (*j, x)), st);
                let dyv = dy.data::<T>();
                let sums = cpu::backward_sums(&edge, dyv);
                let dz: Vec<Option<Tensor>> = self
                    .normed
                    .iter()
                    .zip(need_z)
                    .map(|((js, z), &n)| {
                        n.then(|| {
                            let mut out = vec![T::ZERO; z.numel()];
                            for (&j, out) in js.iter().zip(out.chunks_mut(g.len())) {
                                cpu::dz(&edge, j, dyv, &sums, self.training, out);
                            }
                            Tensor::from_vec(z.shape(), out)
                        })
                    })
                    .collect();
                let dx = need_x.then(|| {
                    let ws = w[self.skip.as_ref().expect("identity").0];
                    Tensor::from_vec(dy.shape(), dyv.iter().map(|&d| ws * d).collect::<Vec<T>>())
                });
                let dalpha = need_alpha.then(|| {
                    let mut full = vec![T::ZERO; rows * cols];
                    let d = cpu::dalpha_row(&edge, &sums, self.weighting, cols);
                    full[self.row * cols..(self.row + 1) * cols].copy_from_slice(&d);
                    Tensor::from_vec(&[rows, cols], full)
                });
                let dscale = scale.map(|(s, i)| {
                    let sv = s.data::<T>()[*i].to_f64();
                    let wg = cpu::slot_grads(&edge, &sums).1;
                    let mut v = vec![T::ZERO; s.numel()];
                    v[*i] = T::from_f64(if sv != 0.0 { wg / sv } else { 0.0 });
                    Tensor::from_vec(s.shape(), v)
                });
                (dalpha, dx, dz, dscale)
            })
        };
        MixedGrads { dalpha, dx, dz, dscale }
    }
}
