//! `ops::pool::max_avg_pool` and its backward (the max + avg pool pair of every DARTS edge, one
//! launch each way on a GPU) against the single pools: each forward half bitwise equal to
//! `max_pool` / `avg_pool`, and the input gradient equal to `max_pool_bwd + avg_pool_bwd`
//! (bitwise on the emulator, to 1e-12 in f64 on the CPU), on normal inputs, exact ties and NaNs.

use darts::ops::elementwise::add;
use darts::ops::pool::{avg_pool, avg_pool_bwd, max_avg_pool, max_avg_pool_bwd, max_pool, max_pool_bwd};
use darts::rng::Rng;
use darts::{DType, Device, Tensor};

/// `(n, c, h, w)`: odd sizes and a DARTS-like edge.
const SHAPES: [(usize, usize, usize, usize); 3] = [(2, 3, 7, 7), (1, 5, 9, 9), (2, 16, 16, 16)];

/// What the input values look like.
#[derive(Clone, Copy, Debug)]
enum Values {
    Normal,
    /// Integers in -2..=2: windows full of exact ties (the first maximum must win).
    Ties,
    /// Normals with a few NaNs (a NaN wins its windows and takes their max gradient).
    Nan,
}

fn values(rng: &mut Rng, kind: Values, len: usize) -> Vec<f64> {
    match kind {
        Values::Normal => rng.normals(len),
        Values::Ties => (0..len).map(|_| rng.below(5) as f64 - 2.0).collect(),
        Values::Nan => {
            let mut v = rng.normals(len);
            v.iter_mut().skip(3).step_by(37).for_each(|e| *e = f64::NAN);
            v
        }
    }
}

/// Bit patterns (after widening to f64), so NaNs compare equal to themselves.
fn bits(t: &Tensor) -> Vec<u64> {
    t.to_f64_vec().into_iter().map(f64::to_bits).collect()
}

/// Every shape, value kind and stride on `dev` in `dtype`. `exact_bwd` asks for a bitwise
/// backward, otherwise a relative error of at most 1e-12; `launches` (on a GPU) counts kernel
/// launches so far, and each pair op must take exactly one.
fn check_pair(dev: &Device, dtype: DType, exact_bwd: bool, launches: Option<&dyn Fn() -> u64>) {
    let mut rng = Rng::new(41);
    let count = || launches.map_or(0, |f| f());
    let want_launches = u64::from(launches.is_some());
    for (n, c, h, w) in SHAPES {
        for kind in [Values::Normal, Values::Ties, Values::Nan] {
            for stride in [1, 2] {
                let tag = format!("{n}x{c}x{h}x{w} s{stride} {kind:?}");
                let xv = values(&mut rng, kind, n * c * h * w);
                let x = Tensor::from_f64(&[n, c, h, w], &xv, dtype).to_device(dev);
                let (ymax, yavg) = (max_pool(&x, 3, stride, 1), avg_pool(&x, 3, stride, 1));
                let (oh, ow) = (ymax.shape()[2], ymax.shape()[3]);
                let half = n * c * oh * ow;

                let before = count();
                let y = max_avg_pool(&x, 3, stride, 1);
                assert_eq!(count() - before, want_launches, "max_avg_pool launches: {tag}");
                assert_eq!(y.shape(), [2 * n, c, oh, ow], "{tag}");
                let yb = bits(&y);
                assert!(yb[..half] == bits(&ymax)[..], "max half differs from max_pool: {tag}");
                assert!(yb[half..] == bits(&yavg)[..], "avg half differs from avg_pool: {tag}");

                let dy = rng.normals(2 * half);
                let dy_max = Tensor::from_f64(&[n, c, oh, ow], &dy[..half], dtype).to_device(dev);
                let dy_avg = Tensor::from_f64(&[n, c, oh, ow], &dy[half..], dtype).to_device(dev);
                let want = add(
                    &max_pool_bwd(&x, &dy_max, 3, stride, 1),
                    &avg_pool_bwd(&dy_avg, x.shape(), 3, stride, 1),
                );
                let dy = Tensor::from_f64(&[2 * n, c, oh, ow], &dy, dtype).to_device(dev);
                let before = count();
                let dx = max_avg_pool_bwd(&x, &dy, 3, stride, 1);
                assert_eq!(count() - before, want_launches, "max_avg_pool_bwd launches: {tag}");
                assert_eq!(dx.shape(), x.shape(), "{tag}");
                if exact_bwd {
                    assert!(bits(&dx) == bits(&want), "backward != max_pool_bwd + avg_pool_bwd: {tag}");
                } else {
                    for (i, (g, e)) in dx.to_f64_vec().iter().zip(&want.to_f64_vec()).enumerate() {
                        assert!(
                            (g - e).abs() <= 1e-12 * e.abs().max(1.0),
                            "backward [{i}] {g} vs {e}: {tag}"
                        );
                    }
                }
            }
        }
    }
}

/// The pair's tape node (`F::max_avg_pool`) against central differences in f64, at strides 1
/// and 2 (distinct random values: no ties at a window's maximum).
#[test]
fn the_pair_node_passes_the_finite_difference_check() {
    use darts::autograd::functions as F;
    for stride in [1, 2] {
        let x = Tensor::from_f64(&[2, 3, 7, 7], &Rng::new(4).normals(294), DType::F64);
        let errs = darts::autograd::check::finite_diff_errors(&[x], 1e-6, |v| {
            let y = F::max_avg_pool(&v[0], 3, stride, 1);
            let r = Tensor::from_f64(y.shape(), &Rng::new(8).normals(y.value().numel()), DType::F64);
            F::inner(&y, &r)
        });
        assert!(errs[0] < 1e-6, "max_avg_pool stride {stride}: finite-difference error {:e}", errs[0]);
    }
}

#[test]
fn the_pair_matches_the_single_pools_on_the_cpu_in_f64() {
    check_pair(&Device::Cpu, DType::F64, false, None);
}

#[test]
fn the_pair_matches_the_single_pools_on_the_cpu_in_f32() {
    check_pair(&Device::Cpu, DType::F32, false, None);
}

#[test]
#[should_panic(expected = "max_avg_pool_bwd: dy [2, 3, 7, 7] vs output [4, 3, 7, 7]")]
fn a_dy_of_one_half_names_the_op_and_shapes() {
    let x = Tensor::from_f64(&[2, 3, 7, 7], &[0.0; 294], DType::F64);
    let dy = Tensor::from_f64(&[2, 3, 7, 7], &[0.0; 294], DType::F64);
    max_avg_pool_bwd(&x, &dy, 3, 1, 1);
}

#[cfg(feature = "emu")]
mod emu {
    use std::sync::Arc;

    use darts::backend::gpu::emu::EmuRuntime;
    use darts::backend::gpu::Runtime as _;

    use super::*;

    /// One launch each way, and the halves and gradient bitwise equal to the single kernels
    /// (followed by `add`), under both fiber schedules.
    #[test]
    fn the_pair_is_one_launch_each_way_and_bitwise_equal_on_the_emulator() {
        for schedule in [0, 1] {
            let rt = Arc::new(EmuRuntime::new(schedule, 0));
            let dev = Device::Gpu(rt.clone());
            check_pair(&dev, DType::F32, true, Some(&|| rt.counts().launches));
            let launched = rt.launch_counts();
            for k in ["max_avg_pool_fwd_f32", "max_avg_pool_bwd_f32"] {
                assert!(launched.contains_key(k), "{k} never launched: {launched:?}");
            }
        }
    }
}
