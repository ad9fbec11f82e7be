//! Kernel throughput cases: every op family, forward and backward, at the DARTS search shapes
//! (batch 64; C = 16 at 32x32, 32 at 16x16, 64 at 8x8), each with the least work it must do.
//!
//! The same list feeds the criterion bench (`benches/kernels.rs`) and the roofline table of
//! `darts bench kernels`. A case is one op-layer call, which may launch more than one kernel
//! (a two-pass reduction, BN statistics then apply); its cost is that of the whole call.
//!
//! Minimum bytes: every input read once and every output written once, in f32; a tensor both
//! read and written (optimiser state, `axpy`'s y) counts twice. FLOPs: 2 per multiply-add of
//! the convolutions and the linear layer (the GEMM-shaped work), 0 elsewhere.

use crate::model::{NetConfig, Network};
use crate::ops::{self, ConvParams};
use crate::rng::Rng;
use crate::tensor::{DType, Device, Tensor};

/// What a case's throughput is reported in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Measure {
    /// Bytes per second (memory-bound ops).
    Bytes,
    /// Floating-point operations per second (convolutions, linear).
    Flops,
}

/// One op call to time.
pub struct KernelCase {
    /// Op family: `conv_pointwise`, `batch_norm`, ...
    pub family: &'static str,
    /// Part and shape, e.g. `fwd [64,16,32,32] k3 d2`.
    pub name: String,
    /// The fewest bytes the call must move.
    pub bytes: u64,
    /// Useful floating-point operations (0 for data movement).
    pub flops: u64,
    /// What its throughput is reported in.
    pub measure: Measure,
    run: Box<dyn FnMut()>,
}

impl KernelCase {
    /// Enqueues the call once (on a GPU it may still be running when this returns).
    pub fn run(&mut self) {
        (self.run)()
    }

    /// `family/name`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.family, self.name)
    }

    /// Bytes or FLOPs per call, whichever [`KernelCase::measure`] says.
    pub fn amount(&self) -> u64 {
        match self.measure {
            Measure::Bytes => self.bytes,
            Measure::Flops => self.flops,
        }
    }
}

/// The DARTS search shapes: (channels, height = width).
pub const SHAPES: [(usize, usize); 3] = [(16, 32), (32, 16), (64, 8)];

const F32: u64 = 4;

/// Builds the cases on `device` at batch `b`, keeping those whose `family/name` contains
/// `filter` (all when empty).
pub fn kernel_cases(device: &Device, b: usize, filter: &str) -> Vec<KernelCase> {
    let mut cs = Cases { device: device.clone(), rng: Rng::new(11), filter: filter.to_string(), out: vec![] };
    cs.convs(b);
    cs.batch_norm(b);
    cs.pools(b);
    cs.elementwise(b);
    cs.layout(b);
    cs.successors(b);
    cs.head(b);
    cs.optimisers();
    cs.out
}

struct Cases {
    device: Device,
    rng: Rng,
    filter: String,
    out: Vec<KernelCase>,
}

fn numel(shape: &[usize]) -> u64 {
    shape.iter().product::<usize>() as u64
}

fn fmt(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", dims.join(","))
}

impl Cases {
    fn rand(&mut self, shape: &[usize]) -> Tensor {
        Tensor::from_f64(shape, &self.rng.normals(shape.iter().product()), DType::F32).to_device(&self.device)
    }

    fn push(
        &mut self,
        family: &'static str,
        name: String,
        bytes: u64,
        flops: u64,
        run: impl FnMut() + 'static,
    ) {
        if !format!("{family}/{name}").contains(&self.filter) {
            return;
        }
        let measure = if flops > 0 { Measure::Flops } else { Measure::Bytes };
        self.out.push(KernelCase { family, name, bytes, flops, measure, run: Box::new(run) });
    }

    /// Forward, data gradient and weight gradient of one convolution.
    fn conv(&mut self, family: &'static str, x: [usize; 4], w: [usize; 4], p: ConvParams, tag: &str) {
        let (xt, wt) = (self.rand(&x), self.rand(&w));
        let y = ops::conv::conv2d(&xt, &wt, p);
        let dy = self.rand(y.shape());
        let ys = y.shape().to_vec();
        let (nx, nw, ny) = (numel(&x), numel(&w), numel(&ys));
        // One multiply-add per output, input channel of its group, and tap.
        let flops = 2 * ny * (w[1] * w[2] * w[3]) as u64;
        let label = format!("{} {tag}", fmt(&x));
        let (x1, w1) = (xt.clone(), wt.clone());
        self.push(family, format!("fwd {label}"), F32 * (nx + nw + ny), flops, move || {
            drop(ops::conv::conv2d(&x1, &w1, p))
        });
        let (dy1, w2) = (dy.clone(), wt);
        self.push(family, format!("bwd_data {label}"), F32 * (ny + nw + nx), flops, move || {
            drop(ops::conv::conv2d_bwd_data(&dy1, &w2, &x, p))
        });
        self.push(family, format!("bwd_weight {label}"), F32 * (nx + ny + nw), flops, move || {
            drop(ops::conv::conv2d_bwd_weight(&xt, &dy, &w, p))
        });
    }

    /// The ReLU-fused depthwise convolution: like [`Cases::conv`], with the ReLU mask
    /// recomputed from x in both gradients (so the data gradient also reads x).
    fn relu_depthwise(&mut self, x: [usize; 4], w: [usize; 4], p: ConvParams, tag: &str) {
        let family = "conv_depthwise_relu";
        let (xt, wt) = (self.rand(&x), self.rand(&w));
        let y = ops::conv::relu_conv2d_depthwise(&xt, &wt, p);
        let dy = self.rand(y.shape());
        let (nx, nw, ny) = (numel(&x), numel(&w), numel(y.shape()));
        let flops = 2 * ny * (w[2] * w[3]) as u64;
        let label = format!("{} {tag}", fmt(&x));
        let (x1, w1) = (xt.clone(), wt.clone());
        self.push(family, format!("fwd {label}"), F32 * (nx + nw + ny), flops, move || {
            drop(ops::conv::relu_conv2d_depthwise(&x1, &w1, p))
        });
        let (x2, dy2) = (xt.clone(), dy.clone());
        self.push(family, format!("bwd_data {label}"), F32 * (nx + ny + nw + nx), flops, move || {
            drop(ops::conv::relu_conv2d_depthwise_bwd_data(&x2, &dy2, &wt, p))
        });
        self.push(family, format!("bwd_weight {label}"), F32 * (nx + ny + nw), flops, move || {
            drop(ops::conv::relu_conv2d_depthwise_bwd_weight(&xt, &dy, &w, p))
        });
    }

    /// Normalise → ReLU → depthwise (a fused sep conv's second stage: the per-channel
    /// normalisation and ReLU applied on load, recomputed from x in both gradients).
    fn bnrelu_depthwise(&mut self, x: [usize; 4], w: [usize; 4], p: ConvParams, tag: &str) {
        use crate::fused::sepconv::{bnrelu_dw, bnrelu_dw_bwd_data, bnrelu_dw_bwd_weight};
        let family = "conv_depthwise_bnrelu";
        let (xt, wt, mean) = (self.rand(&x), self.rand(&w), self.rand(&[x[1]]));
        let var = Tensor::full_on(&[x[1]], 1.0, DType::F32, &self.device);
        let rstd = crate::fused::sepconv::invstd(&var, 1e-5);
        let y = bnrelu_dw(&xt, &mean, &rstd, &wt, p);
        let dy = self.rand(y.shape());
        let (nx, nw, ny) = (numel(&x), numel(&w), numel(y.shape()));
        let flops = 2 * ny * (w[2] * w[3]) as u64;
        let label = format!("{} {tag}", fmt(&x));
        let (x1, w1, m1, r1) = (xt.clone(), wt.clone(), mean.clone(), rstd.clone());
        self.push(family, format!("fwd {label}"), F32 * (nx + nw + ny), flops, move || {
            drop(bnrelu_dw(&x1, &m1, &r1, &w1, p))
        });
        let (x2, dy2, m2, r2) = (xt.clone(), dy.clone(), mean.clone(), rstd.clone());
        self.push(family, format!("bwd_data {label}"), F32 * (nx + ny + nw + nx), flops, move || {
            drop(bnrelu_dw_bwd_data(&x2, &m2, &r2, &dy2, &wt, p))
        });
        self.push(family, format!("bwd_weight {label}"), F32 * (nx + ny + nw), flops, move || {
            drop(bnrelu_dw_bwd_weight(&xt, &mean, &rstd, &dy, &w, p))
        });
    }

    /// An edge's four sep/dil conv first stages (ReLU → depthwise k3 d1, k5 d1, k3 d2, k5 d2 →
    /// pointwise 1×1) through the fused slotted op: one launch on a GPU, the depthwise outputs
    /// never written to memory. Least bytes: x once, then both weights and y per slot.
    fn dw_pw_slots(&mut self, x: [usize; 4]) {
        use crate::fused::sepconv::{dw_pw_slots, DwPwSlot};
        let c = x[1];
        let kds = [(3, 1), (5, 1), (3, 2), (5, 2)];
        let ws: Vec<(Tensor, Tensor, ConvParams)> = kds
            .iter()
            .map(|&(k, d)| {
                let p = ConvParams::new(1, d * (k - 1) / 2).dilation(d).groups(c);
                (self.rand(&[c, 1, k, k]), self.rand(&[c, c, 1, 1]), p)
            })
            .collect();
        let xt = self.rand(&x);
        let (nx, ny) = (numel(&x), numel(&x));
        let (mut bytes, mut flops) = (F32 * nx, 0);
        for &(k, _) in &kds {
            bytes += F32 * ((c * k * k + c * c) as u64 + ny);
            flops += 2 * ny * (k * k + c) as u64;
        }
        self.push("conv_dw_pw_slots", format!("fwd {} 4 slots", fmt(&x)), bytes, flops, move || {
            let slots: Vec<DwPwSlot> =
                ws.iter().map(|(dw, pw, p)| DwPwSlot { x: &xt, norm: None, dw, pw, p: *p }).collect();
            drop(dw_pw_slots(&slots))
        });
    }

    fn convs(&mut self, b: usize) {
        // The stem: 3x3, 3 -> 48 (3C).
        self.conv("conv_stem", [b, 3, 32, 32], [48, 3, 3, 3], ConvParams::new(1, 1), "3->48 k3");
        for (c, hw) in SHAPES {
            // ReLUConvBN's 1x1 and the pointwise half of sep/dil convs.
            self.conv("conv_pointwise", [b, c, hw, hw], [c, c, 1, 1], ConvParams::new(1, 0), "1x1");
            // Depthwise halves: sep_conv 3x3 / 5x5, dil_conv 3x3 / 5x5 (dilation 2).
            for (k, d) in [(3, 1), (5, 1), (3, 2), (5, 2)] {
                let p = ConvParams::new(1, d * (k - 1) / 2).dilation(d).groups(c);
                self.conv("conv_depthwise", [b, c, hw, hw], [c, 1, k, k], p, &format!("k{k} d{d}"));
            }
        }
        // ReLU fused into the depthwise load (sep_conv's ReLU -> depthwise), sep_conv 3x3 and 5x5.
        for (c, hw) in SHAPES {
            for k in [3, 5] {
                let p = ConvParams::new(1, (k - 1) / 2).groups(c);
                self.relu_depthwise([b, c, hw, hw], [c, 1, k, k], p, &format!("k{k} d1"));
                self.bnrelu_depthwise([b, c, hw, hw], [c, 1, k, k], p, &format!("k{k} d1"));
            }
        }
        for (c, hw) in SHAPES {
            self.dw_pw_slots([b, c, hw, hw]);
        }
        // FactorizedReduce's strided 1x1 (half the output channels each) at both reductions.
        for (c, hw) in [(32, 32), (64, 16)] {
            let p = ConvParams::new(2, 0);
            self.conv("conv_factorized", [b, c, hw, hw], [c / 2, c, 1, 1], p, "1x1 s2");
        }
    }

    fn batch_norm(&mut self, b: usize) {
        for (c, hw) in SHAPES {
            let shape = [b, c, hw, hw];
            let n = numel(&shape);
            let (x, dy) = (self.rand(&shape), self.rand(&shape));
            let (_, saved) = ops::norm::batch_norm_train(&x, None, None, 1e-5);
            let (rm, rv) = (self.rand(&[c]), Tensor::full(&[c], 1.0, DType::F32).to_device(&self.device));
            let label = fmt(&shape);
            let x1 = x.clone();
            self.push("batch_norm", format!("fwd_train {label}"), F32 * 2 * n, 0, move || {
                drop(ops::norm::batch_norm_train(&x1, None, None, 1e-5))
            });
            let x2 = x.clone();
            self.push("batch_norm", format!("bwd_train {label}"), F32 * 3 * n, 0, move || {
                drop(ops::norm::batch_norm_train_bwd(&x2, &dy, &saved, None, false))
            });
            self.push("batch_norm", format!("fwd_eval {label}"), F32 * 2 * n, 0, move || {
                drop(ops::norm::batch_norm_eval(&x, None, None, &rm, &rv, 1e-5))
            });
        }
    }

    fn pools(&mut self, b: usize) {
        for (c, hw) in SHAPES {
            let shape = [b, c, hw, hw];
            let n = numel(&shape);
            let x = self.rand(&shape);
            let dy = self.rand(&shape);
            let label = format!("{} k3 s1", fmt(&shape));
            let x1 = x.clone();
            self.push("max_pool", format!("fwd {label}"), F32 * 2 * n, 0, move || {
                drop(ops::pool::max_pool(&x1, 3, 1, 1))
            });
            let (x2, dy2) = (x.clone(), dy.clone());
            // The backward finds each window's argmax again from x.
            self.push("max_pool", format!("bwd {label}"), F32 * 3 * n, 0, move || {
                drop(ops::pool::max_pool_bwd(&x2, &dy2, 3, 1, 1))
            });
            let (x3, dy3) = (x.clone(), self.rand(&[2 * b, c, hw, hw]));
            self.push("avg_pool", format!("fwd {label}"), F32 * 2 * n, 0, move || {
                drop(ops::pool::avg_pool(&x, 3, 1, 1))
            });
            self.push("avg_pool", format!("bwd {label}"), F32 * 2 * n, 0, move || {
                drop(ops::pool::avg_pool_bwd(&dy, &shape, 3, 1, 1))
            });
            // The pair reads x once and writes both halves; its backward reads x and both dy halves.
            let x4 = x3.clone();
            self.push("max_avg_pool", format!("fwd {label}"), F32 * 3 * n, 0, move || {
                drop(ops::pool::max_avg_pool(&x3, 3, 1, 1))
            });
            self.push("max_avg_pool", format!("bwd {label}"), F32 * 4 * n, 0, move || {
                drop(ops::pool::max_avg_pool_bwd(&x4, &dy3, 3, 1, 1))
            });
        }
    }

    /// The fused mixed op on a normal edge: 6 BN candidates, the identity and an accumulator.
    /// Least bytes: forward reads z ×6, x, acc and writes y; backward reads dy, z ×6, x and
    /// writes dz ×6 and dx.
    fn mixed(&mut self, shape: &[usize], label: &str, n: u64) {
        use crate::autograd::functions::BnState;
        use crate::fused::mixed::{self, EdgeOperands, K};
        let slots = [1usize, 2, 4, 5, 6, 7];
        let zs: Vec<Tensor> = slots.iter().map(|_| self.rand(shape)).collect();
        let (alpha, x, acc, dy) = (self.rand(&[14, K]), self.rand(shape), self.rand(shape), self.rand(shape));
        let c = shape[1];
        let device = self.device.clone();
        let run = move |backward: bool| {
            let mut bns: Vec<BnState> =
                slots.iter().map(|_| BnState::new_on(c, DType::F32, &device)).collect();
            let mut states: Vec<&mut BnState> = bns.iter_mut().collect();
            let e = EdgeOperands {
                alpha: &alpha,
                weighting: mixed::Weighting::Softmax,
                row: 5,
                skip: Some((3, &x)),
                normed: slots.iter().zip(&zs).map(|(j, z)| mixed::Normed::new(vec![*j], z)).collect(),
                acc: Some(&acc),
            };
            let (y, saved) = mixed::forward(&e, &mut states, true);
            if backward {
                drop(saved.backward(&dy, true, true, &[true; 6], false));
            }
            drop(y);
        };
        let run2 = run.clone();
        self.push("mixed", format!("fwd 6+skip {label}"), F32 * 9 * n, 0, move || run(false));
        self.push("mixed", format!("fwd+bwd 6+skip {label}"), F32 * 24 * n, 0, move || run2(true));
    }

    fn elementwise(&mut self, b: usize) {
        for (c, hw) in SHAPES {
            let shape = [b, c, hw, hw];
            let n = numel(&shape);
            let label = fmt(&shape);
            let (x, dy) = (self.rand(&shape), self.rand(&shape));
            let x1 = x.clone();
            self.push("relu", format!("fwd {label}"), F32 * 2 * n, 0, move || {
                drop(ops::elementwise::relu(&x1))
            });
            let (x2, dy2) = (x.clone(), dy.clone());
            self.push("relu", format!("bwd {label}"), F32 * 3 * n, 0, move || {
                drop(ops::elementwise::relu_bwd(&x2, &dy2))
            });
            // The mixed op's weighted sum over the 7 candidates that produce a tensor.
            let parts: Vec<Tensor> = (0..7).map(|_| self.rand(&shape)).collect();
            let w =
                Tensor::from_f64(&[7], &self.rng.uniforms(7, 0.0, 1.0), DType::F32).to_device(&self.device);
            let (p1, w1) = (parts.clone(), w.clone());
            self.push("weighted_sum", format!("fwd 7 x {label}"), F32 * 8 * n, 0, move || {
                drop(ops::elementwise::weighted_sum(&p1.iter().collect::<Vec<_>>(), &w1))
            });
            let dy1 = dy.clone();
            self.push("weighted_sum", format!("bwd_weights 7 x {label}"), F32 * 8 * n, 0, move || {
                drop(ops::elementwise::weighted_sum_bwd_weights(&parts.iter().collect::<Vec<_>>(), &dy1))
            });
            let dy2 = dy.clone();
            self.push("weighted_sum", format!("bwd_inputs 7 x {label}"), F32 * 8 * n, 0, move || {
                drop(ops::elementwise::weighted_sum_bwd_inputs(&dy2, &w))
            });
            self.mixed(&shape, &label, n);
            // Gradient accumulation and the second-order step's shifts.
            let (a, bb) = (x.clone(), self.rand(&shape));
            self.push("add", format!("fwd {label}"), F32 * 3 * n, 0, move || {
                drop(ops::elementwise::add(&a, &bb))
            });
            let s = x.clone();
            self.push("scale", format!("fwd {label}"), F32 * 2 * n, 0, move || {
                drop(ops::elementwise::scale(&s, 0.5))
            });
            let mut y = self.rand(&shape);
            self.push("axpy", format!("fwd {label}"), F32 * 3 * n, 0, move || {
                ops::elementwise::axpy(1e-3, &x, &mut y)
            });
        }
    }

    fn layout(&mut self, b: usize) {
        for (c, hw) in SHAPES {
            let node = [b, c, hw, hw];
            let n = numel(&node);
            let nodes: Vec<Tensor> = (0..4).map(|_| self.rand(&node)).collect();
            let label = format!("4 x {}", fmt(&node));
            self.push("concat", format!("fwd {label}"), F32 * 8 * n, 0, move || {
                drop(ops::layout::concat_channels(&nodes.iter().collect::<Vec<_>>()))
            });
            let cat = self.rand(&[b, 4 * c, hw, hw]);
            self.push("concat", format!("split {label}"), F32 * 8 * n, 0, move || {
                drop(ops::layout::split_channels(&cat, &[c; 4]))
            });
            // FactorizedReduce's shifted path: x[:, :, 1:, 1:].
            let x = self.rand(&node);
            let cropped = [b, c, hw - 1, hw - 1];
            let nc = numel(&cropped);
            self.push("crop", format!("fwd {}", fmt(&node)), F32 * 2 * nc, 0, move || {
                drop(ops::layout::crop(&x, 1, 1, hw - 1, hw - 1))
            });
            let dyc = self.rand(&cropped);
            self.push("crop", format!("bwd {}", fmt(&node)), F32 * (nc + n), 0, move || {
                drop(ops::layout::crop_bwd(&dyc, &node, 1, 1))
            });
        }
    }

    /// The successors' kernels: PC-DARTS' merge of an edge (1/4 of the channels through the
    /// mixed op) and its node softmax of β, FairDARTS' sigmoid and zero-one loss of α.
    fn successors(&mut self, b: usize) {
        const K: usize = 4;
        for (c, hw) in SHAPES {
            for stride in [1, 2] {
                // x is the edge input's bypassed channels x[:, c/k:], their own tensor.
                let (x, m) =
                    (self.rand(&[b, c - c / K, hw, hw]), self.rand(&[b, c / K, hw / stride, hw / stride]));
                let n_out = numel(&[b, c, hw / stride, hw / stride]);
                let beta = self.rand(&[14]);
                let label = format!("{} stride {stride}", fmt(&[b, c, hw, hw]));
                // Reads m and the bypassed channels, writes the output.
                let bytes = F32 * (numel(m.shape()) + numel(x.shape()) + n_out);
                let (m1, x1, b1) = (m.clone(), x.clone(), beta.clone());
                self.push("pc_merge", format!("fwd {label}"), bytes, 0, move || {
                    drop(ops::pcdarts::pc_merge(&m1, Some(&x1), None, &b1, 3, K, stride))
                });
                let dy = self.rand(&[b, c, hw / stride, hw / stride]);
                self.push("pc_merge", format!("bwd {label}"), 2 * bytes, 0, move || {
                    drop(ops::pcdarts::pc_merge_bwd(
                        Some(&m),
                        Some(&x),
                        &dy,
                        &beta,
                        3,
                        K,
                        stride,
                        [true, true, true],
                    ))
                });
            }
        }
        let beta = self.rand(&[14]);
        self.push("node_softmax", "fwd [14]".into(), F32 * 28, 0, move || {
            drop(ops::pcdarts::node_softmax(&beta, 4))
        });
        let alpha = self.rand(&[14, 7]);
        let a1 = alpha.clone();
        self.push("sigmoid", "fwd [14,7]".into(), F32 * 2 * 98, 0, move || {
            drop(ops::elementwise::sigmoid(&a1))
        });
        let s = ops::elementwise::sigmoid(&alpha);
        self.push("zero_one", "fwd [14,7]".into(), F32 * 98, 0, move || {
            drop(ops::loss::zero_one(&s, 1.0 / 196.0))
        });
    }

    fn head(&mut self, b: usize) {
        let feat = [b, 256, 8, 8];
        let nf = numel(&feat);
        let x = self.rand(&feat);
        self.push(
            "global_avg_pool",
            format!("fwd {}", fmt(&feat)),
            F32 * (nf + (b * 256) as u64),
            0,
            move || drop(ops::reduce::global_avg_pool(&x)),
        );
        let dpool = self.rand(&[b, 256]);
        let d1 = dpool.clone();
        self.push(
            "global_avg_pool",
            format!("bwd {}", fmt(&feat)),
            F32 * (nf + (b * 256) as u64),
            0,
            move || drop(ops::reduce::global_avg_pool_bwd(&d1, &feat)),
        );
        let (lw, lb, dl) = (self.rand(&[10, 256]), self.rand(&[10]), self.rand(&[b, 10]));
        let (nx, nw, ny) = ((b * 256) as u64, 2560u64, (b * 10) as u64);
        let flops = 2 * (b * 256 * 10) as u64;
        let (x1, w1) = (dpool.clone(), lw.clone());
        self.push("linear", "fwd 256->10".into(), F32 * (nx + nw + 10 + ny), flops, move || {
            drop(ops::linear::linear(&x1, &w1, Some(&lb)))
        });
        let (dl1, w2) = (dl.clone(), lw.clone());
        self.push("linear", "bwd_data 256->10".into(), F32 * (ny + nw + nx), flops, move || {
            drop(ops::linear::linear_bwd_data(&dl1, &w2, &[b, 256]))
        });
        let dl2 = dl.clone();
        self.push("linear", "bwd_weight 256->10".into(), F32 * (nx + ny + nw + 10), flops, move || {
            drop(ops::linear::linear_bwd_weight(&dpool, &dl2, &lw))
        });
        let labels: Vec<u32> = (0..b).map(|_| self.rng.below(10) as u32).collect();
        let one = Tensor::full(&[], 1.0, DType::F32).to_device(&self.device);
        self.push("cross_entropy", format!("fwd+bwd [{b},10]"), F32 * 3 * ny, 0, move || {
            let (_, probs) = ops::loss::softmax_xent(&dl, (&labels).into());
            drop(ops::loss::softmax_xent_bwd(&probs, (&labels).into(), &one))
        });
        // The architecture weights: softmax over each edge's 8 candidates.
        let alpha = self.rand(&[14, 8]);
        let dsm = self.rand(&[14, 8]);
        let a1 = alpha.clone();
        self.push("softmax", "fwd [14,8]".into(), F32 * 2 * 112, 0, move || drop(ops::softmax::softmax(&a1)));
        let y = ops::softmax::softmax(&alpha);
        self.push("softmax", "bwd [14,8]".into(), F32 * 3 * 112, 0, move || {
            drop(ops::softmax::softmax_bwd(&y, &dsm))
        });
    }

    /// The weight step's whole-network work: the squared gradient norm, SGD and Adam, once
    /// over the search network's weight tensors (per tensor, one call each, and as the weight
    /// step runs them, multi-tensor: one launch pair for the norm and clip coefficient, one
    /// launch for SGD) and once over one flat tensor of the same size (the kernels' own
    /// throughput).
    fn optimisers(&mut self) {
        let (_, store) = Network::new(NetConfig::default(), DType::F32, &mut Rng::new(0));
        let shapes: Vec<Vec<usize>> = store
            .params
            .iter()
            .filter(|p| p.group.intersects(crate::autograd::Groups::WEIGHTS))
            .map(|p| p.value.shape().to_vec())
            .collect();
        let total: usize = shapes.iter().map(|s| s.iter().product::<usize>()).sum();
        let n = total as u64;
        let per_tensor = format!("{} tensors, {total} weights", shapes.len());
        let flat = format!("flat [{total}]");
        for (label, tensors) in [(per_tensor, shapes), (flat, vec![vec![total]])] {
            let g: Vec<Tensor> = tensors.iter().map(|s| self.rand(s)).collect();
            let g1 = g.clone();
            self.push("grad_norm", format!("sum_sq {label}"), F32 * n, 0, move || {
                std::hint::black_box(ops::elementwise::sum_sq_many(&g1.iter().collect::<Vec<_>>()));
            });
            let mut w: Vec<Tensor> = tensors.iter().map(|s| self.rand(s)).collect();
            let mut mom: Vec<Tensor> = tensors.iter().map(|s| self.rand(s)).collect();
            let g2 = g.clone();
            // w and the momentum buffer read and written, g read.
            self.push("sgd", format!("step {label}"), F32 * 5 * n, 0, move || {
                for ((w, g), m) in w.iter_mut().zip(&g2).zip(mom.iter_mut()) {
                    ops::optim::sgd_step(w, g, m, 1e-6, 0.9, 3e-4, false);
                }
            });
            // The same as the weight step runs them: one multi-tensor launch pair for the norm
            // and the clip coefficient, one for the clipped SGD.
            let g3 = g.clone();
            self.push("grad_norm", format!("clip_scalars {label}"), F32 * n, 0, move || {
                std::hint::black_box(ops::optim::clip_scalars(&g3.iter().collect::<Vec<_>>(), 5.0));
            });
            let mut w: Vec<Tensor> = tensors.iter().map(|s| self.rand(s)).collect();
            let mut mom: Vec<Tensor> = tensors.iter().map(|s| self.rand(s)).collect();
            let g4 = g.clone();
            let clip = ops::optim::clip_scalars(&g4.iter().collect::<Vec<_>>(), 5.0);
            self.push("sgd", format!("step_many {label}"), F32 * 5 * n, 0, move || {
                let mut ws: Vec<&mut Tensor> = w.iter_mut().collect();
                let mut ms: Vec<&mut Tensor> = mom.iter_mut().collect();
                let gs: Vec<&Tensor> = g4.iter().collect();
                ops::optim::sgd_step_many(&mut ws, &gs, &mut ms, Some(&clip), 1e-6, 0.9, 3e-4, false);
            });
            let mut w: Vec<Tensor> = tensors.iter().map(|s| self.rand(s)).collect();
            let mut m: Vec<Tensor> = tensors.iter().map(|s| self.rand(s)).collect();
            // Adam's second moment is non-negative.
            let mut v: Vec<Tensor> = tensors
                .iter()
                .map(|s| {
                    let u = self.rng.uniforms(s.iter().product(), 0.0, 1.0);
                    Tensor::from_f64(s, &u, DType::F32).to_device(&self.device)
                })
                .collect();
            // w, m and v read and written, g read.
            self.push("adam", format!("step {label}"), F32 * 7 * n, 0, move || {
                for (((w, g), m), v) in w.iter_mut().zip(&g).zip(m.iter_mut()).zip(v.iter_mut()) {
                    ops::optim::adam_step(w, g, m, v, 1e-6, (0.5, 0.999), 1e-8, 1e-3, 10, None);
                }
            });
        }
    }
}
