//! Differentiable ops: each runs the forward through `ops`, records what its backward needs,
//! and supplies the hand-written backward.
//!
//! Saved state per op: conv saves its input and weight; ReLU its input; BN its input and batch
//! statistics; max pool its input (the argmax is recomputed); avg pool and the layout ops save
//! only shapes; the weighted sum saves its inputs and weights; cross-entropy its probabilities.

use crate::ops::{self, ConvParams};
use crate::tensor::{fmt_shape, Tensor};

use super::tape::Var;

fn same_tape<'a>(op: &str, vars: impl IntoIterator<Item = &'a Var>) -> &'a Var {
    let mut it = vars.into_iter();
    let first = it.next().unwrap_or_else(|| panic!("{op}: no inputs"));
    first
}

/// 2-D convolution without bias.
pub fn conv2d(x: &Var, w: &Var, p: ConvParams) -> Var {
    let y = ops::conv::conv2d(x.value(), w.value(), p);
    let (xv, wv) = (x.value().clone(), w.value().clone());
    x.tape().push(
        y,
        &[x, w],
        Box::new(move |dy, need| {
            vec![
                need[0].then(|| ops::conv::conv2d_bwd_data(dy, &wv, xv.shape(), p)),
                need[1].then(|| ops::conv::conv2d_bwd_weight(&xv, dy, wv.shape(), p)),
            ]
        }),
    )
}

/// conv2d(relu(x)[:, :, shift.., shift..], w) as one node that keeps only its inputs: x is the
/// channel concat of `xs` (a search cell's nodes, which the cell's edges keep anyway), and x
/// itself, relu(x) and the one-pixel shift FactorizedReduce's second conv reads (`shift` 1) are
/// recomputed in the backward instead of being saved.
pub fn relu_conv2d(xs: &[&Var], w: &Var, p: ConvParams, shift: usize) -> Var {
    let first = *xs.first().expect("relu_conv2d: no inputs");
    let parts: Vec<Tensor> = xs.iter().map(|x| x.value().clone()).collect();
    let input = move |parts: &[Tensor]| {
        let x = match parts {
            [x] => x.clone(),
            _ => ops::layout::concat_channels(&parts.iter().collect::<Vec<_>>()),
        };
        let r = ops::elementwise::relu(&x);
        let r = match shift {
            0 => r,
            s => {
                let (h, w) = (x.shape()[2], x.shape()[3]);
                assert!(h > s && w > s, "relu_conv2d: shift {s} of x {}", fmt_shape(x.shape()));
                ops::layout::crop(&r, s, s, h - s, w - s)
            }
        };
        (x, r)
    };
    let y = ops::conv::conv2d(&input(&parts).1, w.value(), p);
    let wv = w.value().clone();
    let mut parents: Vec<&Var> = xs.to_vec();
    parents.push(w);
    first.tape().push(
        y,
        &parents,
        Box::new(move |dy, need| {
            let (x, r) = input(&parts);
            let k = parts.len();
            let mut out: Vec<Option<Tensor>> = if need[..k].iter().any(|&n| n) {
                let dr = ops::conv::conv2d_bwd_data(dy, &wv, r.shape(), p);
                let dr = match shift {
                    0 => dr,
                    s => ops::layout::crop_bwd(&dr, x.shape(), s, s),
                };
                let dx = ops::elementwise::relu_bwd(&x, &dr);
                let dxs = match k {
                    1 => vec![dx],
                    _ => ops::layout::split_channels(
                        &dx,
                        &parts.iter().map(|t| t.shape()[1]).collect::<Vec<_>>(),
                    ),
                };
                dxs.into_iter().zip(&need[..k]).map(|(d, &n)| n.then_some(d)).collect()
            } else {
                vec![None; k]
            };
            out.push(need[k].then(|| ops::conv::conv2d_bwd_weight(&r, dy, wv.shape(), p)));
            out
        }),
    )
}

/// max(x, 0).
pub fn relu(x: &Var) -> Var {
    let y = ops::elementwise::relu(x.value());
    let xv = x.value().clone();
    x.tape().push(y, &[x], Box::new(move |dy, _| vec![Some(ops::elementwise::relu_bwd(&xv, dy))]))
}

/// Running statistics and hyperparameters of a batch-norm layer.
#[derive(Clone, Debug)]
pub struct BnState {
    /// Running mean `[c]`.
    pub running_mean: Tensor,
    /// Running (unbiased) variance `[c]`.
    pub running_var: Tensor,
    /// Weight of the new batch statistic in the running update (PyTorch: 0.1).
    pub momentum: f64,
    /// Added to the variance (PyTorch: 1e-5).
    pub eps: f64,
}

impl BnState {
    /// Fresh statistics (mean 0, variance 1) for `c` channels on `device`.
    pub fn new_on(c: usize, dtype: crate::tensor::DType, device: &crate::tensor::Device) -> BnState {
        let mut s = BnState::new(c, dtype);
        s.running_mean = s.running_mean.to_device(device);
        s.running_var = s.running_var.to_device(device);
        s
    }

    /// Fresh statistics (mean 0, variance 1) for `c` channels, PyTorch's defaults.
    pub fn new(c: usize, dtype: crate::tensor::DType) -> BnState {
        BnState {
            running_mean: Tensor::zeros(&[c], dtype),
            running_var: Tensor::full(&[c], 1.0, dtype),
            momentum: 0.1,
            eps: 1e-5,
        }
    }
}

/// Batch norm. `training`: batch statistics (and the running stats in `state` are updated);
/// otherwise the running stats. `affine`: `gamma` and `beta` given together.
pub fn batch_norm(x: &Var, affine: Option<(&Var, &Var)>, state: &mut BnState, training: bool) -> Var {
    let (gamma, beta) = (affine.map(|a| a.0.value().clone()), affine.map(|a| a.1.value().clone()));
    let eps = state.eps;
    let mut parents = vec![x];
    if let Some((g, b)) = affine {
        parents.push(g);
        parents.push(b);
    }
    let xv = x.value().clone();
    if training {
        let (y, saved) = batch_norm_train_update(&xv, gamma.as_ref(), beta.as_ref(), state);
        if affine.is_none() {
            // Without γ and β the output is x̂ itself, which the next op keeps anyway: save it
            // instead of x, so x (a conv's or a concat's output) is freed now.
            drop(xv);
            let yv = y.clone();
            return x.tape().push(
                y,
                &parents,
                Box::new(move |dy, _| {
                    vec![Some(ops::norm::batch_norm_train_bwd_from_output(&yv, dy, &saved))]
                }),
            );
        }
        x.tape().push(
            y,
            &parents,
            Box::new(move |dy, need| {
                let affine_need = need.len() == 3 && (need[1] || need[2]);
                let gr = ops::norm::batch_norm_train_bwd(&xv, dy, &saved, gamma.as_ref(), affine_need);
                let mut out = vec![need[0].then_some(gr.dx)];
                if need.len() == 3 {
                    out.push(gr.dgamma);
                    out.push(gr.dbeta);
                }
                out
            }),
        )
    } else {
        let (rm, rv) = (state.running_mean.clone(), state.running_var.clone());
        let y = ops::norm::batch_norm_eval(&xv, gamma.as_ref(), beta.as_ref(), &rm, &rv, eps);
        x.tape().push(
            y,
            &parents,
            Box::new(move |dy, need| {
                let affine_need = need.len() == 3 && (need[1] || need[2]);
                let gr = ops::norm::batch_norm_eval_bwd(&xv, dy, &rm, &rv, gamma.as_ref(), eps, affine_need);
                let mut out = vec![need[0].then_some(gr.dx)];
                if need.len() == 3 {
                    out.push(gr.dgamma);
                    out.push(gr.dbeta);
                }
                out
            }),
        )
    }
}

/// The training forward on batch statistics, with the running statistics of `state` updated.
fn batch_norm_train_update(
    x: &Tensor,
    gamma: Option<&Tensor>,
    beta: Option<&Tensor>,
    state: &mut BnState,
) -> (Tensor, ops::norm::BnSaved) {
    let (y, saved) = ops::norm::batch_norm_train(x, gamma, beta, state.eps);
    ops::norm::bn_update_running(
        x.shape(),
        &saved,
        state.eps,
        state.momentum,
        &mut state.running_mean,
        &mut state.running_var,
    );
    (y, saved)
}

/// k x k max pooling.
pub fn max_pool(x: &Var, k: usize, stride: usize, pad: usize) -> Var {
    let y = ops::pool::max_pool(x.value(), k, stride, pad);
    let xv = x.value().clone();
    x.tape().push(
        y,
        &[x],
        Box::new(move |dy, _| vec![Some(ops::pool::max_pool_bwd(&xv, dy, k, stride, pad))]),
    )
}

/// Max and average k x k pooling of the same input as one node: `[2n, c, oh, ow]`, the max pool
/// in images `0..n`, the average pool (padding excluded) in `n..2n` (one launch each way on a
/// GPU: an edge's two pool candidates).
pub fn max_avg_pool(x: &Var, k: usize, stride: usize, pad: usize) -> Var {
    let y = ops::pool::max_avg_pool(x.value(), k, stride, pad);
    let xv = x.value().clone();
    x.tape().push(
        y,
        &[x],
        Box::new(move |dy, _| vec![Some(ops::pool::max_avg_pool_bwd(&xv, dy, k, stride, pad))]),
    )
}

/// k x k average pooling, padding excluded from the divisor.
pub fn avg_pool(x: &Var, k: usize, stride: usize, pad: usize) -> Var {
    let y = ops::pool::avg_pool(x.value(), k, stride, pad);
    let shape = x.shape().to_vec();
    x.tape().push(
        y,
        &[x],
        Box::new(move |dy, _| vec![Some(ops::pool::avg_pool_bwd(dy, &shape, k, stride, pad))]),
    )
}

/// a + b.
pub fn add(a: &Var, b: &Var) -> Var {
    let y = ops::elementwise::add(a.value(), b.value());
    a.tape().push(
        y,
        &[a, b],
        Box::new(|dy, need| vec![need[0].then(|| dy.clone()), need[1].then(|| dy.clone())]),
    )
}

/// Σ xs (at least one term).
pub fn add_n(xs: &[Var]) -> Var {
    let first = same_tape("add_n", xs);
    xs[1..].iter().fold(first.clone(), |acc, x| add(&acc, x))
}

/// s · x.
pub fn scale(x: &Var, s: f64) -> Var {
    let y = ops::elementwise::scale(x.value(), s);
    x.tape().push(y, &[x], Box::new(move |dy, _| vec![Some(ops::elementwise::scale(dy, s))]))
}

/// `y[b] = s[first + b] · x[b]` per sample b, `s` a constant vector (drop path's masks scaled by
/// 1 / keep): `dx[b] = s[first + b] · dy[b]`.
pub fn scale_samples(x: &Var, s: &Tensor, first: usize) -> Var {
    let y = ops::elementwise::scale_samples(x.value(), s, first);
    let s = s.clone();
    x.tape().push(y, &[x], Box::new(move |dy, _| vec![Some(ops::elementwise::scale_samples(dy, &s, first))]))
}

/// Σ_k w[k] · xs[k], `w` a vector of length k: the mixed op's weighted sum.
pub fn weighted_sum(xs: &[Var], w: &Var) -> Var {
    let _ = same_tape("weighted_sum", xs);
    let xvals: Vec<Tensor> = xs.iter().map(|x| x.value().clone()).collect();
    let refs: Vec<&Tensor> = xvals.iter().collect();
    let y = ops::elementwise::weighted_sum(&refs, w.value());
    let wv = w.value().clone();
    let mut parents: Vec<&Var> = xs.iter().collect();
    parents.push(w);
    let k = xs.len();
    w.tape().push(
        y,
        &parents,
        Box::new(move |dy, need| {
            let wk = wv.to_f64_vec();
            let mut out: Vec<Option<Tensor>> =
                (0..k).map(|i| need[i].then(|| ops::elementwise::scale(dy, wk[i]))).collect();
            out.push(need[k].then(|| {
                let refs: Vec<&Tensor> = xvals.iter().collect();
                ops::elementwise::weighted_sum_bwd_weights(&refs, dy)
            }));
            out
        }),
    )
}

/// Concatenation along channels.
pub fn concat_channels(xs: &[Var]) -> Var {
    let first = same_tape("concat_channels", xs);
    let vals: Vec<&Tensor> = xs.iter().map(|x| x.value()).collect();
    let y = ops::layout::concat_channels(&vals);
    let chans: Vec<usize> = xs.iter().map(|x| x.shape()[1]).collect();
    let parents: Vec<&Var> = xs.iter().collect();
    first.tape().push(
        y,
        &parents,
        Box::new(move |dy, need| {
            ops::layout::split_channels(dy, &chans)
                .into_iter()
                .zip(need)
                .map(|(g, &n)| n.then_some(g))
                .collect()
        }),
    )
}

/// `x[:, :, top..top+oh, left..left+ow]`.
pub fn crop(x: &Var, top: usize, left: usize, oh: usize, ow: usize) -> Var {
    let y = ops::layout::crop(x.value(), top, left, oh, ow);
    let shape = x.shape().to_vec();
    x.tape().push(y, &[x], Box::new(move |dy, _| vec![Some(ops::layout::crop_bwd(dy, &shape, top, left))]))
}

/// The `none` op: zeros of the strided output shape; no gradient flows to `x`.
pub fn zero(x: &Var, stride: usize) -> Var {
    x.tape().constant(ops::elementwise::zero(x.value(), stride))
}

/// σ(x) = 1 / (1 + e^{−x}) elementwise (FairDARTS' architecture weights); dx = dy · y (1 − y).
pub fn sigmoid(x: &Var) -> Var {
    let y = ops::elementwise::sigmoid(x.value());
    let yv = y.clone();
    x.tape().push(y, &[x], Box::new(move |dy, _| vec![Some(ops::elementwise::sigmoid_bwd(&yv, dy))]))
}

/// FairDARTS' zero-one loss L01 = −mean((s − ½)²) over the concatenation of `ss` (σ(α) of both
/// cell types), as a 0-d scalar: one part −Σ(s − ½)²/N per tensor, N the total count, added
/// in order; ds = −2 (s − ½)/N · dL.
pub fn zero_one_loss(ss: &[&Var]) -> Var {
    assert!(!ss.is_empty(), "zero_one_loss: no inputs");
    let count: usize = ss.iter().map(|s| s.value().numel()).sum();
    let scale = 1.0 / count as f64;
    let parts: Vec<Var> = ss
        .iter()
        .map(|s| {
            let sv = s.value().clone();
            let y = ops::loss::zero_one(&sv, scale);
            s.tape().push(y, &[s], Box::new(move |dl, _| vec![Some(ops::loss::zero_one_bwd(&sv, scale, dl))]))
        })
        .collect();
    add_n(&parts)
}

/// Row-wise softmax of `[rows, k]` (or of a `[k]` vector).
pub fn softmax(x: &Var) -> Var {
    let y = ops::softmax::softmax(x.value());
    let yv = y.clone();
    x.tape().push(y, &[x], Box::new(move |dy, _| vec![Some(ops::softmax::softmax_bwd(&yv, dy))]))
}

/// Row `i` of a `[rows, k]` matrix.
pub fn row(x: &Var, i: usize) -> Var {
    let y = ops::softmax::row(x.value(), i);
    let shape = x.shape().to_vec();
    x.tape().push(y, &[x], Box::new(move |dy, _| vec![Some(ops::softmax::row_bwd(dy, &shape, i))]))
}

/// Global average pooling `[n, c, h, w]` -> `[n, c]`.
pub fn global_avg_pool(x: &Var) -> Var {
    let y = ops::reduce::global_avg_pool(x.value());
    let shape = x.shape().to_vec();
    x.tape().push(y, &[x], Box::new(move |dy, _| vec![Some(ops::reduce::global_avg_pool_bwd(dy, &shape))]))
}

/// y = x Wᵀ + b.
pub fn linear(x: &Var, w: &Var, b: &Var) -> Var {
    let y = ops::linear::linear(x.value(), w.value(), Some(b.value()));
    let (xv, wv) = (x.value().clone(), w.value().clone());
    x.tape().push(
        y,
        &[x, w, b],
        Box::new(move |dy, need| {
            let dx = need[0].then(|| ops::linear::linear_bwd_data(dy, &wv, xv.shape()));
            let (dw, db) = if need[1] || need[2] {
                let (dw, db) = ops::linear::linear_bwd_weight(&xv, dy, &wv);
                (Some(dw), Some(db))
            } else {
                (None, None)
            };
            vec![dx, dw, db]
        }),
    )
}

/// Mean softmax cross-entropy of `logits` `[n, classes]` against `labels`.
pub fn cross_entropy(logits: &Var, labels: ops::loss::Labels) -> Var {
    cross_entropy_smooth(logits, labels, 0.0)
}

/// Mean softmax cross-entropy of `logits` `[n, classes]` against labels smoothed by `eps` (the
/// reference's `CrossEntropyLabelSmooth`: targets `(1 - eps) onehot + eps / classes`); `eps = 0`
/// is [`cross_entropy`].
pub fn cross_entropy_smooth(logits: &Var, labels: ops::loss::Labels, eps: f64) -> Var {
    let (loss, probs) = ops::loss::softmax_xent_smooth(logits.value(), labels, eps);
    let (host, dev) = (labels.host.to_vec(), labels.dev.cloned());
    logits.tape().push(
        loss,
        &[logits],
        Box::new(move |dl, _| {
            let labels = ops::loss::Labels { host: &host, dev: dev.as_ref() };
            vec![Some(ops::loss::softmax_xent_smooth_bwd(&probs, labels, eps, dl))]
        }),
    )
}

/// Σ x.
pub fn sum_all(x: &Var) -> Var {
    let y = ops::elementwise::sum_all(x.value());
    let shape = x.shape().to_vec();
    x.tape().push(
        y,
        &[x],
        Box::new(move |dl, _| vec![Some(Tensor::full_on(&shape, dl.item(), dl.dtype(), &dl.device()))]),
    )
}

/// <x, r> for a constant `r` of x's shape: a scalar projection (used by gradient checks).
pub fn inner(x: &Var, r: &Tensor) -> Var {
    assert_eq!(x.shape(), r.shape(), "inner: x {} vs r {}", fmt_shape(x.shape()), fmt_shape(r.shape()));
    let y = ops::elementwise::inner(x.value(), r);
    let rv = r.clone();
    x.tape().push(y, &[x], Box::new(move |dl, _| vec![Some(ops::elementwise::scale(&rv, dl.item()))]))
}

/// PC-DARTS' merge of an edge into its node, one node on the tape:
/// `acc + s[index] · shuffle_k(cat(m, bypass(x_t)))`, `m` the mixed op's output on the first
/// c/k channels of the edge's input x, x_t = x[:, c/k:] its bypassed channels as their own
/// tensor (PC-DARTS states travel as these two parts; `None` when k = 1), bypass the identity
/// (stride 1) or a 2x2 max pool (stride 2), `s` the normalised β (read on the device). Saves
/// references to x_t and s, and to m unless `m_in_edge`: then m's node (the fused mixed edge
/// given `s` as its scale) adds the m part of ds itself, and this node's ds covers the
/// bypassed channels alone.
#[allow(clippy::too_many_arguments)]
pub fn pc_merge(
    m: &Var,
    x: Option<&Var>,
    acc: Option<&Var>,
    s: &Var,
    index: usize,
    k: usize,
    stride: usize,
    m_in_edge: bool,
) -> Var {
    let y = ops::pcdarts::pc_merge(
        m.value(),
        x.map(Var::value),
        acc.map(|a| a.value()),
        s.value(),
        index,
        k,
        stride,
    );
    let mv = (!m_in_edge).then(|| m.value().clone());
    let (xv, sv) = (x.map(|x| x.value().clone()), s.value().clone());
    let mut parents = vec![m, s];
    parents.extend(x);
    parents.extend(acc);
    let (has_x, has_acc) = (x.is_some(), acc.is_some());
    m.tape().push(
        y,
        &parents,
        Box::new(move |dy, need| {
            let need3 = [need[0], has_x && need[2], need[1]];
            let [dm, dx, ds] =
                ops::pcdarts::pc_merge_bwd(mv.as_ref(), xv.as_ref(), dy, &sv, index, k, stride, need3);
            let mut out = vec![dm, ds];
            if has_x {
                out.push(dx);
            }
            if has_acc {
                out.push(need[out.len()].then(|| dy.clone()));
            }
            out
        }),
    )
}

/// `x` split along its channels into `[n, at, h, w]` and `[n, c − at, h, w]`, one node with
/// two outputs that keeps nothing: the backward concatenates the parts' gradients (zeros for a
/// part without one). The parts are copies, and x is freed once nothing else holds it.
pub fn split_channels(x: &Var, at: usize) -> [Var; 2] {
    let c = split_channels_of("split_channels", x, at);
    let parts = ops::layout::split_channels(x.value(), &[at, c - at]);
    let shape = x.shape().to_vec();
    let outs = x.tape().push_multi(
        parts,
        &[x],
        Box::new(move |dys, _| vec![Some(concat_grads(dys, &shape, &[at, c - at]))]),
    );
    outs.try_into().unwrap_or_else(|_| unreachable!("two parts give two outputs"))
}

/// The channels of `x` (`[n, c, h, w]`), checked to be split at `at` into two non-empty parts.
fn split_channels_of(op: &str, x: &Var, at: usize) -> usize {
    let [_, c, _, _] = x
        .shape()
        .try_into()
        .unwrap_or_else(|_| panic!("{op}: x must be [n, c, h, w], got {}", fmt_shape(x.shape())));
    assert!(0 < at && at < c, "{op}: at {at} must lie inside the {c} channels of x");
    c
}

/// The channel concat of the parts' gradients `dys` (part i has `chans[i]` channels) of a tensor
/// shaped `shape`, zeros for a part without one (at least one has).
fn concat_grads(dys: &[Option<Tensor>], shape: &[usize], chans: &[usize]) -> Tensor {
    let some = dys.iter().flatten().next().expect("concat_grads: no part has a gradient");
    let parts: Vec<Tensor> = dys
        .iter()
        .zip(chans)
        .map(|(d, &ch)| match d {
            Some(d) => d.clone(),
            None => Tensor::zeros_on(&[shape[0], ch, shape[2], shape[3]], some.dtype(), &some.device()),
        })
        .collect();
    let refs: Vec<&Tensor> = parts.iter().collect();
    ops::layout::concat_channels(&refs)
}

/// A non-affine batch norm whose output comes split along its channels at `at` (see
/// [`split_channels`]), one node: in training it keeps the two output parts (x̂, which their
/// consumers keep anyway) instead of x, and its backward concatenates them and their gradients
/// transiently. So a state whose channels travel as two parts (PC-DARTS' head and tail) is not
/// also kept whole.
pub fn batch_norm_split(x: &Var, state: &mut BnState, training: bool, at: usize) -> [Var; 2] {
    let c = split_channels_of("batch_norm_split", x, at);
    let xv = x.value().clone();
    let shape = xv.shape().to_vec();
    let outs = if training {
        let (y, saved) = batch_norm_train_update(&xv, None, None, state);
        drop(xv);
        let parts = ops::layout::split_channels(&y, &[at, c - at]);
        drop(y);
        let kept = parts.clone();
        x.tape().push_multi(
            parts,
            &[x],
            Box::new(move |dys, _| {
                let dy = concat_grads(dys, &shape, &[at, c - at]);
                let y = ops::layout::concat_channels(&[&kept[0], &kept[1]]);
                vec![Some(ops::norm::batch_norm_train_bwd_from_output(&y, &dy, &saved))]
            }),
        )
    } else {
        let (rm, rv, eps) = (state.running_mean.clone(), state.running_var.clone(), state.eps);
        let y = ops::norm::batch_norm_eval(&xv, None, None, &rm, &rv, eps);
        let parts = ops::layout::split_channels(&y, &[at, c - at]);
        x.tape().push_multi(
            parts,
            &[x],
            Box::new(move |dys, _| {
                let dy = concat_grads(dys, &shape, &[at, c - at]);
                vec![Some(ops::norm::batch_norm_eval_bwd(&xv, &dy, &rm, &rv, None, eps, false).dx)]
            }),
        )
    };
    outs.try_into().unwrap_or_else(|_| unreachable!("two parts give two outputs"))
}

/// Softmax of β over each node's incoming edges (slices of 2, 3, ..., steps + 1).
pub fn node_softmax(beta: &Var, steps: usize) -> Var {
    let y = ops::pcdarts::node_softmax(beta.value(), steps);
    let yv = y.clone();
    beta.tape().push(
        y,
        &[beta],
        Box::new(move |dy, _| vec![Some(ops::pcdarts::node_softmax_bwd(&yv, dy, steps))]),
    )
}
