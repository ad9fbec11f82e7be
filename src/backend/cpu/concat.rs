//! Channel concatenation and spatial cropping on NCHW tensors:
//! `y[n, off_i + c, p] = part_i[n, c, p]` (split is its inverse and its backward), and
//! `y[n, c, i, j] = x[n, c, top + i, left + j]` (crop; its backward scatters into zeros).

use super::par::{for_each_chunk_mut, is_large};
use super::real::Real;
use crate::backend::geom::CropGeom;
use rayon::prelude::*;

/// Concatenates `parts` along channels: each part is `(data [n, c_i, hw], c_i)`, and `y` is
/// `[n, sum_i c_i, hw]`.
pub fn concat_channels<T: Real>(n: usize, hw: usize, parts: &[(&[T], usize)], y: &mut [T]) {
    let c_total: usize = parts.iter().map(|&(_, c)| c).sum();
    for (i, &(data, c)) in parts.iter().enumerate() {
        assert!(
            data.len() == n * c * hw,
            "concat_channels: part {i} has {} elements, [n={n}, c={c}, hw={hw}] needs {}",
            data.len(),
            n * c * hw
        );
    }
    assert!(
        y.len() == n * c_total * hw,
        "concat_channels: y has {} elements, [n={n}, c={c_total}, hw={hw}] needs {}",
        y.len(),
        n * c_total * hw
    );
    // One task per image: image `ni` of y is the parts' images `ni` laid end to end.
    for_each_chunk_mut(y, c_total * hw, |off, y_img| {
        let ni = off / (c_total * hw);
        let mut start = 0;
        for &(data, c) in parts {
            let block = c * hw;
            y_img[start..start + block].copy_from_slice(&data[ni * block..(ni + 1) * block]);
            start += block;
        }
    });
}

/// Splits `y [n, sum_i c_i, hw]` along channels into `parts` (each `(data [n, c_i, hw], c_i)`):
/// the inverse of [`concat_channels`], and its backward.
pub fn split_channels<T: Real>(n: usize, hw: usize, y: &[T], parts: &mut [(&mut [T], usize)]) {
    let c_total: usize = parts.iter().map(|(_, c)| *c).sum();
    assert!(
        y.len() == n * c_total * hw,
        "split_channels: y has {} elements, [n={n}, c={c_total}, hw={hw}] needs {}",
        y.len(),
        n * c_total * hw
    );
    // Channel offset of each part inside an image of y.
    let mut offsets = Vec::with_capacity(parts.len());
    let mut acc = 0;
    for (i, (data, c)) in parts.iter().enumerate() {
        assert!(
            data.len() == n * *c * hw,
            "split_channels: part {i} has {} elements, [n={n}, c={c}, hw={hw}] needs {}",
            data.len(),
            n * *c * hw
        );
        offsets.push(acc);
        acc += *c;
    }
    let copy_part = |(part, c_off): (&mut (&mut [T], usize), &usize)| {
        let c = part.1;
        let block = c * hw;
        for ni in 0..n {
            let src = (ni * c_total + c_off) * hw;
            part.0[ni * block..(ni + 1) * block].copy_from_slice(&y[src..src + block]);
        }
    };
    if is_large(y.len()) {
        parts.par_iter_mut().zip(&offsets).for_each(copy_part);
    } else {
        parts.iter_mut().zip(&offsets).for_each(copy_part);
    }
}

/// `y[n, c, i, j] = x[n, c, top + i, left + j]` for `i < oh`, `j < ow`; `x` is `[n, c, h, w]`.
pub fn crop_fwd<T: Real>(g: &CropGeom, x: &[T], y: &mut [T]) {
    g.check("crop_fwd", x.len(), y.len());
    let CropGeom { h, w, top, left, oh, ow, .. } = *g;
    // One task per (n, c) plane.
    for_each_chunk_mut(y, oh * ow, |off, y_plane| {
        let x_plane = &x[(off / (oh * ow)) * h * w..][..h * w];
        for i in 0..oh {
            let src = (top + i) * w + left;
            y_plane[i * ow..(i + 1) * ow].copy_from_slice(&x_plane[src..src + ow]);
        }
    });
}

/// The backward of [`crop_fwd`]: `dx` is zero except `dx[n, c, top + i, left + j] = dy[n, c, i, j]`.
pub fn crop_bwd<T: Real>(g: &CropGeom, dy: &[T], dx: &mut [T]) {
    g.check("crop_bwd", dx.len(), dy.len());
    let CropGeom { h, w, top, left, oh, ow, .. } = *g;
    for_each_chunk_mut(dx, h * w, |off, dx_plane| {
        let dy_plane = &dy[(off / (h * w)) * oh * ow..][..oh * ow];
        dx_plane.fill(T::ZERO);
        for i in 0..oh {
            let dst = (top + i) * w + left;
            dx_plane[dst..dst + ow].copy_from_slice(&dy_plane[i * ow..(i + 1) * ow]);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::testutil::{assert_rel_close, dot, numeric_grad, Rng};

    #[test]
    fn concat_matches_naive_and_split_inverts_it() {
        let mut rng = Rng::new(10);
        let (n, hw) = (2, 5 * 6);
        let cs = [3usize, 1, 2];
        let parts: Vec<Vec<f64>> = cs.iter().map(|&c| rng.vec(n * c * hw)).collect();
        let refs: Vec<(&[f64], usize)> = parts.iter().zip(cs).map(|(p, c)| (p.as_slice(), c)).collect();
        let ct: usize = cs.iter().sum();
        let mut y = vec![0.0; n * ct * hw];
        concat_channels(n, hw, &refs, &mut y);
        for ni in 0..n {
            let mut c_off = 0;
            for (p, &c) in parts.iter().zip(&cs) {
                for ci in 0..c {
                    for q in 0..hw {
                        assert_eq!(y[(ni * ct + c_off + ci) * hw + q], p[(ni * c + ci) * hw + q]);
                    }
                }
                c_off += c;
            }
        }
        let mut back: Vec<Vec<f64>> = cs.iter().map(|&c| vec![0.0; n * c * hw]).collect();
        let mut muts: Vec<(&mut [f64], usize)> =
            back.iter_mut().zip(cs).map(|(p, c)| (p.as_mut_slice(), c)).collect();
        split_channels(n, hw, &y, &mut muts);
        assert_eq!(back, parts);
    }

    #[test]
    fn crop_forward_and_backward() {
        let mut rng = Rng::new(11);
        for (h, w) in [(7, 7), (5, 6)] {
            let (n, c) = (2, 3);
            let (top, left, oh, ow) = (1, 1, h - 1, w - 1);
            let g = CropGeom { n, c, h, w, top, left, oh, ow };
            let x = rng.vec(n * c * h * w);
            let mut y = vec![0.0; n * c * oh * ow];
            crop_fwd(&g, &x, &mut y);
            for p in 0..n * c {
                for i in 0..oh {
                    for j in 0..ow {
                        assert_eq!(y[(p * oh + i) * ow + j], x[(p * h + top + i) * w + left + j]);
                    }
                }
            }
            let r = rng.vec(y.len());
            let mut dx = vec![f64::NAN; x.len()];
            crop_bwd(&g, &r, &mut dx);
            let loss = |x: &[f64]| {
                let mut y = vec![0.0; n * c * oh * ow];
                crop_fwd(&g, x, &mut y);
                dot(&r, &y)
            };
            assert_rel_close("crop_bwd", &dx, &numeric_grad(loss, &x, 1e-5), 1e-7);
        }
    }

    #[test]
    #[should_panic(expected = "crop_fwd: window rows 1..8")]
    fn crop_out_of_bounds_panics() {
        let x = vec![0.0f32; 49];
        let mut y = vec![0.0f32; 49];
        let g = CropGeom { n: 1, c: 1, h: 7, w: 7, top: 1, left: 0, oh: 7, ow: 7 };
        crop_fwd(&g, &x, &mut y);
    }
}
