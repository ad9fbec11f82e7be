//! Every op's analytic backward against central finite differences in f64 (relative error
//! below 1e-6), for every variant DARTS uses, on random inputs of odd sizes.

mod common;

use common::{gradcheck, randn};
use darts::autograd::functions as F;
use darts::autograd::functions::BnState;
use darts::autograd::{Tape, Var};
use darts::ops::ConvParams;
use darts::rng::Rng;
use darts::{DType, Tensor};

const TOL: f64 = 1e-6;

/// Projects a non-scalar output onto a fixed random direction so it can be differentiated.
fn project(y: &darts::autograd::Var, seed: u64) -> darts::autograd::Var {
    let mut rng = Rng::new(seed);
    F::inner(y, &randn(&mut rng, y.shape()))
}

fn check_conv(name: &str, c_in: usize, c_out: usize, k: usize, p: ConvParams) {
    let mut rng = Rng::new(11);
    let x = randn(&mut rng, &[2, c_in, 7, 7]);
    let w = randn(&mut rng, &[c_out, c_in / p.groups, k, k]);
    gradcheck(name, &[x, w], TOL, |v| project(&F::conv2d(&v[0], &v[1], p), 5));
}

#[test]
fn conv2d_dense_3x3_stride_1_and_2() {
    check_conv("conv 3x3 s1", 3, 4, 3, ConvParams::new(1, 1));
    check_conv("conv 3x3 s2", 3, 4, 3, ConvParams::new(2, 1));
}

#[test]
fn conv2d_pointwise_stride_1_and_2() {
    check_conv("conv 1x1 s1", 3, 5, 1, ConvParams::new(1, 0));
    check_conv("conv 1x1 s2", 3, 5, 1, ConvParams::new(2, 0));
}

#[test]
fn conv2d_depthwise_every_darts_variant() {
    for (k, d, s) in [(3, 1, 1), (3, 1, 2), (5, 1, 1), (5, 1, 2), (3, 2, 1), (3, 2, 2), (5, 2, 1), (5, 2, 2)]
    {
        let pad = d * (k - 1) / 2;
        let p = ConvParams::new(s, pad).dilation(d).groups(3);
        check_conv(&format!("depthwise {k}x{k} d{d} s{s}"), 3, 3, k, p);
    }
}

#[test]
fn conv2d_grouped_and_dilated_dense() {
    check_conv("conv groups 2", 4, 6, 3, ConvParams::new(1, 1).groups(2));
    check_conv("conv 5x5 dil 2", 3, 2, 5, ConvParams::new(1, 4).dilation(2));
}

#[test]
fn batch_norm_train_and_eval_affine_and_not() {
    let mut rng = Rng::new(3);
    let x = randn(&mut rng, &[2, 3, 7, 7]);
    let gamma = randn(&mut rng, &[3]);
    let beta = randn(&mut rng, &[3]);
    let mut running = BnState::new(3, DType::F64);
    running.running_mean = randn(&mut rng, &[3]);
    running.running_var = Tensor::from_f64(&[3], &[0.5, 1.5, 2.0], DType::F64);
    for training in [true, false] {
        let st = running.clone();
        gradcheck(
            &format!("bn affine train={training}"),
            &[x.clone(), gamma.clone(), beta.clone()],
            TOL,
            |v| {
                let mut s = st.clone();
                project(&F::batch_norm(&v[0], Some((&v[1], &v[2])), &mut s, training), 8)
            },
        );
        let st = running.clone();
        gradcheck(&format!("bn plain train={training}"), std::slice::from_ref(&x), TOL, |v| {
            let mut s = st.clone();
            project(&F::batch_norm(&v[0], None, &mut s, training), 8)
        });
    }
    // 2-D input [n, c] as after a linear layer.
    let x2 = randn(&mut rng, &[5, 3]);
    gradcheck("bn 2-D train", &[x2], TOL, |v| {
        let mut s = BnState::new(3, DType::F64);
        project(&F::batch_norm(&v[0], None, &mut s, true), 8)
    });
}

#[test]
fn relu_and_pools_stride_1_and_2() {
    let mut rng = Rng::new(4);
    let x = randn(&mut rng, &[2, 3, 7, 7]);
    gradcheck("relu", std::slice::from_ref(&x), TOL, |v| project(&F::relu(&v[0]), 1));
    for s in [1, 2] {
        gradcheck(&format!("max_pool s{s}"), std::slice::from_ref(&x), TOL, |v| {
            project(&F::max_pool(&v[0], 3, s, 1), 2)
        });
        gradcheck(&format!("avg_pool s{s}"), std::slice::from_ref(&x), TOL, |v| {
            project(&F::avg_pool(&v[0], 3, s, 1), 2)
        });
    }
    let odd = randn(&mut rng, &[1, 2, 5, 6]);
    gradcheck("avg_pool 5x6 s2", std::slice::from_ref(&odd), TOL, |v| {
        project(&F::avg_pool(&v[0], 3, 2, 1), 3)
    });
    gradcheck("max_pool 5x6 s2", &[odd], TOL, |v| project(&F::max_pool(&v[0], 3, 2, 1), 3));
}

#[test]
fn add_scale_weighted_sum_and_zero() {
    let mut rng = Rng::new(5);
    let a = randn(&mut rng, &[2, 3, 5, 5]);
    let b = randn(&mut rng, &[2, 3, 5, 5]);
    let c = randn(&mut rng, &[2, 3, 5, 5]);
    let w = randn(&mut rng, &[3]);
    gradcheck("add", &[a.clone(), b.clone()], TOL, |v| project(&F::add(&v[0], &v[1]), 1));
    gradcheck("scale", std::slice::from_ref(&a), TOL, |v| project(&F::scale(&v[0], -0.7), 1));
    gradcheck("weighted_sum", &[a.clone(), b.clone(), c.clone(), w], TOL, |v| {
        project(&F::weighted_sum(&v[..3], &v[3]), 1)
    });
    // The zero op's output does not depend on x: the gradient is exactly zero (stride 2 shape).
    gradcheck("zero s2 in a sum", &[a.clone(), b], TOL, |v| {
        let z = F::zero(&v[0], 2);
        assert_eq!(z.shape(), &[2, 3, 3, 3]);
        let pooled = F::avg_pool(&v[1], 3, 2, 1);
        project(&F::add(&z, &pooled), 4)
    });
}

#[test]
fn concat_split_and_crop() {
    let mut rng = Rng::new(6);
    let a = randn(&mut rng, &[2, 2, 5, 5]);
    let b = randn(&mut rng, &[2, 3, 5, 5]);
    gradcheck("concat", &[a.clone(), b], TOL, |v| project(&F::concat_channels(v), 1));
    // FactorizedReduce's shifted view x[:, :, 1:, 1:] then a strided 1x1 conv.
    let w = randn(&mut rng, &[2, 2, 1, 1]);
    gradcheck("crop + 1x1 s2", &[a, w], TOL, |v| {
        let shifted = F::crop(&v[0], 1, 1, 4, 4);
        project(&F::conv2d(&shifted, &v[1], ConvParams::new(2, 0)), 2)
    });
}

/// FairDARTS' architecture weights and zero-one loss: σ(α) elementwise, and
/// L01 = −mean((σ − ½)²) over two tensors (both cell types) at once, forward against its
/// formula and backward by finite differences.
#[test]
fn sigmoid_and_zero_one_loss() {
    let mut rng = Rng::new(11);
    let (an, ar) = (randn(&mut rng, &[14, 7]), randn(&mut rng, &[14, 7]));
    gradcheck("sigmoid", std::slice::from_ref(&an), TOL, |v| project(&F::sigmoid(&v[0]), 1));
    gradcheck("zero_one_loss of sigmoids", &[an.clone(), ar.clone()], TOL, |v| {
        F::zero_one_loss(&[&F::sigmoid(&v[0]), &F::sigmoid(&v[1])])
    });
    let tape = darts::autograd::Tape::new();
    let (sn, sr) = (F::sigmoid(&tape.constant(an.clone())), F::sigmoid(&tape.constant(ar.clone())));
    let got = F::zero_one_loss(&[&sn, &sr]).value().item();
    let all: Vec<f64> = [an.to_f64_vec(), ar.to_f64_vec()].concat();
    let want = -all.iter().map(|a| (1.0 / (1.0 + (-a).exp()) - 0.5).powi(2)).sum::<f64>() / all.len() as f64;
    assert!((got - want).abs() <= 1e-15 * want.abs(), "zero_one_loss {got} vs {want}");
}

#[test]
fn softmax_rows_gap_linear_cross_entropy() {
    let mut rng = Rng::new(7);
    let alpha = randn(&mut rng, &[3, 8]);
    gradcheck("softmax rows", std::slice::from_ref(&alpha), TOL, |v| project(&F::softmax(&v[0]), 1));
    gradcheck("row of softmax", &[alpha], TOL, |v| project(&F::row(&F::softmax(&v[0]), 2), 1));
    let x = randn(&mut rng, &[3, 4, 5, 5]);
    gradcheck("global_avg_pool", std::slice::from_ref(&x), TOL, |v| project(&F::global_avg_pool(&v[0]), 1));
    let feats = randn(&mut rng, &[3, 4]);
    let w = randn(&mut rng, &[5, 4]);
    let b = randn(&mut rng, &[5]);
    gradcheck("linear", &[feats.clone(), w.clone(), b.clone()], TOL, |v| {
        project(&F::linear(&v[0], &v[1], &v[2]), 1)
    });
    gradcheck("linear + cross_entropy", &[feats, w, b], TOL, |v| {
        F::cross_entropy(&F::linear(&v[0], &v[1], &v[2]), (&[4, 0, 2]).into())
    });
    gradcheck("sum_all", &[x], TOL, |v| F::sum_all(&F::relu(&v[0])));
}

#[test]
fn cross_entropy_with_label_smoothing() {
    let mut rng = Rng::new(8);
    let logits = randn(&mut rng, &[4, 7]);
    for eps in [0.1, 0.5, 1.0] {
        gradcheck(&format!("cross_entropy_smooth eps={eps}"), std::slice::from_ref(&logits), TOL, |v| {
            F::cross_entropy_smooth(&F::scale(&v[0], 3.0), (&[6, 0, 2, 2]).into(), eps)
        });
    }
}

/// PC-DARTS' merge (stride 1 and 2, with and without an accumulator, k = 4, 2 and 1), the
/// two-output channel split and split BN (a state's head and tail), and node softmax; and the merge's forward
/// against the shuffle written out by its definition (view [n, k, c/k, h, w], swap axes 1 and
/// 2, flatten).
#[test]
fn pc_merge_channel_split_and_node_softmax() {
    let mut rng = Rng::new(12);
    for (c, k, stride) in [(8, 4, 1), (8, 4, 2), (6, 2, 2), (4, 1, 2)] {
        let (h, w) = (4, 6);
        let (oh, ow) = (h / stride, w / stride);
        let m = randn(&mut rng, &[2, c / k, oh, ow]);
        // The edge input's bypassed channels x[:, c/k:], their own tensor (none when k = 1).
        let x = (k > 1).then(|| randn(&mut rng, &[2, c - c / k, h, w]));
        let s = randn(&mut rng, &[5]);
        let acc = randn(&mut rng, &[2, c, oh, ow]);
        let mut inputs = vec![m.clone(), s.clone(), acc];
        inputs.extend(x.clone());
        let tail = |v: &[Var]| if k > 1 { Some(v[3].clone()) } else { None };
        gradcheck(&format!("pc_merge c{c} k{k} s{stride}"), &inputs, TOL, |v| {
            project(&F::pc_merge(&v[0], tail(v).as_ref(), Some(&v[2]), &v[1], 2, k, stride, false), 3)
        });
        let no_acc: Vec<Tensor> =
            inputs.iter().enumerate().filter(|(i, _)| *i != 2).map(|(_, t)| t.clone()).collect();
        gradcheck(&format!("pc_merge c{c} k{k} s{stride}, no acc"), &no_acc, TOL, |v| {
            let x = (k > 1).then(|| v[2].clone());
            project(&F::pc_merge(&v[0], x.as_ref(), None, &v[1], 4, k, stride, false), 4)
        });
        // cat(m, bypass) then the shuffle, from the definition.
        let (mv, sv) = (m.to_f64_vec(), s.to_f64_vec());
        let xv = x.as_ref().map_or(vec![], |x| x.to_f64_vec());
        let cpk = c / k;
        let cat = |ni: usize, q: usize, i: usize, j: usize| -> f64 {
            if q < cpk {
                return mv[((ni * cpk + q) * oh + i) * ow + j];
            }
            let at = |a: usize, b: usize| xv[((ni * (c - cpk) + q - cpk) * h + a) * w + b];
            if stride == 1 {
                at(i, j)
            } else {
                at(2 * i, 2 * j)
                    .max(at(2 * i, 2 * j + 1))
                    .max(at(2 * i + 1, 2 * j))
                    .max(at(2 * i + 1, 2 * j + 1))
            }
        };
        let mut want = Vec::new();
        for ni in 0..2 {
            for o in 0..c {
                let (p, g) = (o / k, o % k);
                for i in 0..oh {
                    for j in 0..ow {
                        want.push(sv[1] * cat(ni, g * cpk + p, i, j));
                    }
                }
            }
        }
        let got = darts::ops::pcdarts::pc_merge(&m, x.as_ref(), None, &s, 1, k, stride).to_f64_vec();
        assert_eq!(got, want, "pc_merge c{c} k{k} s{stride}: forward vs the definition");
    }
    let x = randn(&mut rng, &[2, 7, 3, 5]);
    // The split BN is the BN, split: the same values and running statistics, in both modes.
    for training in [true, false] {
        let tape = Tape::new();
        let xv = tape.constant(x.clone());
        let (mut whole, mut split) = (BnState::new(7, DType::F64), BnState::new(7, DType::F64));
        let y = F::batch_norm(&xv, None, &mut whole, training).value().to_f64_vec();
        let [h, t] = F::batch_norm_split(&xv, &mut split, training, 2);
        let (hv, tv) = (h.value().to_f64_vec(), t.value().to_f64_vec());
        for ni in 0..2 {
            let img = &y[ni * 7 * 15..(ni + 1) * 7 * 15];
            assert_eq!(
                &hv[ni * 2 * 15..(ni + 1) * 2 * 15],
                &img[..2 * 15],
                "batch_norm_split head, {training}"
            );
            assert_eq!(
                &tv[ni * 5 * 15..(ni + 1) * 5 * 15],
                &img[2 * 15..],
                "batch_norm_split tail, {training}"
            );
        }
        assert_eq!(whole.running_mean.to_f64_vec(), split.running_mean.to_f64_vec());
        assert_eq!(whole.running_var.to_f64_vec(), split.running_var.to_f64_vec());
    }
    // Both outputs, or one alone (the other's gradient is zeros).
    for (name, use_head, use_tail) in [("both", true, true), ("head", true, false), ("tail", false, true)] {
        let combine = |[h, t]: [Var; 2]| match (use_head, use_tail) {
            (true, true) => F::add(&project(&h, 8), &project(&t, 9)),
            (true, false) => project(&h, 8),
            _ => project(&t, 9),
        };
        gradcheck(&format!("split_channels, {name}"), std::slice::from_ref(&x), TOL, |v| {
            combine(F::split_channels(&F::scale(&v[0], 1.5), 3))
        });
        gradcheck(&format!("batch_norm_split, {name}"), std::slice::from_ref(&x), TOL, |v| {
            let mut state = BnState::new(7, v[0].value().dtype());
            combine(F::batch_norm_split(&v[0], &mut state, true, 2))
        });
    }
    let beta = randn(&mut rng, &[14]);
    gradcheck("node_softmax", &[beta], TOL, |v| project(&F::node_softmax(&v[0], 4), 7));
}
