//! The ImageNet transforms of DARTS's `train_imagenet.py`, written by hand on 8-bit RGB input:
//!
//! ```text
//! train: RandomResizedCrop(224) -> RandomHorizontalFlip() -> ColorJitter(0.4, 0.4, 0.4, 0.2)
//!        -> ToTensor() -> Normalize(mean, std)
//! val:   Resize(256) -> CenterCrop(224) -> ToTensor() -> Normalize(mean, std)
//! ```
//!
//! # The math
//!
//! **RandomResizedCrop(S, scale = (0.08, 1), ratio = (3/4, 4/3))**, torchvision's `get_params`:
//! for an image of W x H (area A = W H), up to 10 attempts draw `a ~ U(0.08, 1) * A` and
//! `r = exp(U(ln 3/4, ln 4/3))`, take `w = round(sqrt(a r))`, `h = round(sqrt(a / r))` (Python's
//! round: half to even) and accept when `0 < w <= W` and `0 < h <= H`, with top `i ~ U{0..H-h}`
//! and left `j ~ U{0..W-w}`. If all 10 fail: the centre crop of the largest box whose ratio is
//! clamped to [3/4, 4/3] (`W/H < 3/4`: w = W, h = round(W / (3/4)); `W/H > 4/3`: h = H,
//! w = round(H 4/3); else the whole image), at `((H - h) / 2, (W - w) / 2)` floored. The box is
//! cut out and resized to S x S.
//!
//! **Resize: PIL's antialiased bilinear** (what torchvision does on the PIL images that
//! DARTS's `ImageFolder` yields). Separable; along one axis of input length n resized to m,
//! with `s = n / m` and `fs = max(s, 1)`, output pixel k has centre `c = (k + 1/2) s` and the
//! weights
//!
//! ```text
//! w_k(x) = tri((x + 1/2 - c) / fs) / sum_x' tri((x' + 1/2 - c) / fs),   tri(t) = max(0, 1 - |t|),
//! for x in [trunc(c - fs + 1/2) clamped to 0, trunc(c + fs + 1/2) clamped to n)
//! ```
//!
//! So upsampling (s < 1) is plain bilinear interpolation between pixel centres, edge pixels
//! replicated, and downsampling widens the triangle to s pixels (an average over the source
//! footprint: no aliasing). The crop is cut first, so the filter never reads outside the box.
//! Computed in f32, horizontal pass then vertical, without PIL's rounding to 8 bits after each
//! pass (see [`resize_box`]).
//!
//! **RandomHorizontalFlip(p = 0.5)**: `out[y][x] = in[y][S - 1 - x]`.
//!
//! **ColorJitter(b = 0.4, c = 0.4, s = 0.4, h = 0.2)**, torchvision's semantics on float images
//! in [0, 1]: factors `f_b, f_c, f_s ~ U(max(0, 1 - 0.4), 1.4)`, `f_h ~ U(-0.2, 0.2)`, applied
//! in a uniformly random order (a permutation of the four), each a blend clamped to [0, 1]:
//!
//! ```text
//! blend(x, y, f) = clamp(f x + (1 - f) y, 0, 1)
//! brightness: x <- blend(x, 0, f_b)
//! contrast:   x <- blend(x, m, f_c),  m = mean over the image of gray(x)
//! saturation: x <- blend(x, gray(x), f_s),  gray = 0.2989 R + 0.587 G + 0.114 B (per pixel)
//! hue:        (h, s, v) = hsv(x); h <- (h + f_h) mod 1; x <- rgb(h, s, v)
//! ```
//!
//! with torchvision's `_rgb2hsv`/`_hsv2rgb` (h in [0, 1), s = (max - min) / max, v = max).
//!
//! **ToTensor, Normalize**: `x = v / 255`, then `(x - mean_c) / std_c` with the ImageNet
//! constants [`IMAGENET_MEAN`], [`IMAGENET_STD`], in f32.
//!
//! **Resize(256) -> CenterCrop(224)**: the shorter side becomes 256 and the longer
//! `trunc(256 * long / short)`; the crop's top-left is `round((H' - 224) / 2)`,
//! `round((W' - 224) / 2)` (half to even, as Python's `round`). Only the cropped window of the
//! resized image is computed; its values are those of the full resize.
//!
//! The sizes are parameters ([`TrainTransform::size`], [`EvalTransform::resize`],
//! [`EvalTransform::crop`]) so tests can use tiny ones.

use std::ops::Range;

use crate::rng::Rng;

use super::decode::RgbImage;

/// ImageNet per-channel mean of [0, 1] pixels (R, G, B), as torchvision's examples and DARTS use.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet per-channel standard deviation (see [`IMAGENET_MEAN`]).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];
/// The training crop's side (RandomResizedCrop(224)).
pub const TRAIN_SIZE: usize = 224;
/// The validation resize of the shorter side (Resize(256)).
pub const EVAL_RESIZE: usize = 256;
/// The validation centre crop's side (CenterCrop(224)).
pub const EVAL_CROP: usize = 224;

/// The greyscale weights of torchvision's `rgb_to_grayscale` (ITU-R 601-2 luma).
const GRAY: [f32; 3] = [0.2989, 0.587, 0.114];

/// A crop rectangle in source pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CropBox {
    /// First row.
    pub top: usize,
    /// First column.
    pub left: usize,
    /// Number of rows (> 0).
    pub height: usize,
    /// Number of columns (> 0).
    pub width: usize,
}

/// One of ColorJitter's four adjustments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Adjust {
    /// Blend with black.
    Brightness,
    /// Blend with the image's mean grey.
    Contrast,
    /// Blend with the image's greyscale version.
    Saturation,
    /// Rotate the hue.
    Hue,
}

/// One image's ColorJitter draw.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct JitterParams {
    /// The order in which the four adjustments are applied.
    pub order: [Adjust; 4],
    /// Brightness factor (1 = unchanged).
    pub brightness: f32,
    /// Contrast factor (1 = unchanged).
    pub contrast: f32,
    /// Saturation factor (1 = unchanged).
    pub saturation: f32,
    /// Hue shift in turns, in [-0.5, 0.5] (0 = unchanged).
    pub hue: f32,
}

impl JitterParams {
    /// Factors that change nothing.
    pub const IDENTITY: JitterParams = JitterParams {
        order: [Adjust::Brightness, Adjust::Contrast, Adjust::Saturation, Adjust::Hue],
        brightness: 1.0,
        contrast: 1.0,
        saturation: 1.0,
        hue: 0.0,
    };
}

/// One image's training augmentation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainParams {
    /// The RandomResizedCrop box.
    pub crop: CropBox,
    /// Mirror left-right after the resize.
    pub flip: bool,
    /// The colour jitter.
    pub jitter: JitterParams,
}

/// The training transform's settings; [`TrainTransform::default`] is DARTS's ImageNet setting.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainTransform {
    /// Output side (224).
    pub size: usize,
    /// Range of the crop's area as a fraction of the image's ((0.08, 1)).
    pub scale: (f64, f64),
    /// Range of the crop's width / height ((3/4, 4/3)).
    pub ratio: (f64, f64),
    /// Probability of the horizontal flip (0.5).
    pub flip_p: f64,
    /// ColorJitter strengths (brightness, contrast, saturation, hue): (0.4, 0.4, 0.4, 0.2).
    pub jitter: [f64; 4],
}

impl Default for TrainTransform {
    fn default() -> Self {
        TrainTransform {
            size: TRAIN_SIZE,
            scale: (0.08, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
            flip_p: 0.5,
            jitter: [0.4, 0.4, 0.4, 0.2],
        }
    }
}

/// Python's `round` for non-negative values: half to even.
fn round_half_even(x: f64) -> usize {
    x.round_ties_even() as usize
}

impl TrainTransform {
    /// DARTS's setting with output side `size`.
    pub fn with_size(size: usize) -> TrainTransform {
        TrainTransform { size, ..TrainTransform::default() }
    }

    /// torchvision's `RandomResizedCrop.get_params` for a `width` x `height` image.
    pub fn crop_box(&self, width: usize, height: usize, rng: &mut Rng) -> CropBox {
        let area = (width * height) as f64;
        let (log_lo, log_hi) = (self.ratio.0.ln(), self.ratio.1.ln());
        for _ in 0..10 {
            let target = area * rng.uniform_in(self.scale.0, self.scale.1);
            let r = rng.uniform_in(log_lo, log_hi).exp();
            let w = round_half_even((target * r).sqrt());
            let h = round_half_even((target / r).sqrt());
            if 0 < w && w <= width && 0 < h && h <= height {
                let top = rng.below((height - h + 1) as u64) as usize;
                let left = rng.below((width - w + 1) as u64) as usize;
                return CropBox { top, left, height: h, width: w };
            }
        }
        // Fallback: the centre crop with the ratio clamped to the allowed range.
        let in_ratio = width as f64 / height as f64;
        let (w, h) = if in_ratio < self.ratio.0 {
            (width, round_half_even(width as f64 / self.ratio.0))
        } else if in_ratio > self.ratio.1 {
            (round_half_even(height as f64 * self.ratio.1), height)
        } else {
            (width, height)
        };
        // Rounding can overshoot by one on extreme shapes (e.g. 1 x n); stay inside the image.
        let (w, h) = (w.clamp(1, width), h.clamp(1, height));
        CropBox { top: (height - h) / 2, left: (width - w) / 2, height: h, width: w }
    }

    /// ColorJitter's `get_params`: a random order, then the four factors.
    pub fn jitter_params(&self, rng: &mut Rng) -> JitterParams {
        let mut order = [Adjust::Brightness, Adjust::Contrast, Adjust::Saturation, Adjust::Hue];
        for i in (1..4).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let [b, c, s, h] = self.jitter;
        let mut factor = |x: f64| rng.uniform_in((1.0 - x).max(0.0), 1.0 + x) as f32;
        let (brightness, contrast, saturation) = (factor(b), factor(c), factor(s));
        let hue = rng.uniform_in(-h, h) as f32;
        JitterParams { order, brightness, contrast, saturation, hue }
    }

    /// Draws one image's augmentation in torchvision's order: crop, flip, jitter.
    pub fn sample(&self, width: usize, height: usize, rng: &mut Rng) -> TrainParams {
        let crop = self.crop_box(width, height, rng);
        let flip = rng.uniform() < self.flip_p;
        let jitter = self.jitter_params(rng);
        TrainParams { crop, flip, jitter }
    }

    /// Values per output image: `3 * size * size`.
    pub fn output_len(&self) -> usize {
        3 * self.size * self.size
    }

    /// Crops, resizes, flips, jitters and normalises `img` into `out` (CHW, `3 * size * size`).
    pub fn apply(&self, img: &RgbImage, p: &TrainParams, out: &mut [f32]) {
        let s = self.size;
        resize_box(img, p.crop, (s, s), (0..s, 0..s), out);
        to_unit(out);
        if p.flip {
            flip_horizontal(out, s, s);
        }
        color_jitter(out, s * s, &p.jitter);
        normalize(out, s * s);
    }
}

/// The validation transform's settings; [`EvalTransform::default`] is Resize(256) ->
/// CenterCrop(224).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EvalTransform {
    /// The shorter side after the resize (256).
    pub resize: usize,
    /// The centre crop's side (224); at most `resize`.
    pub crop: usize,
}

impl Default for EvalTransform {
    fn default() -> Self {
        EvalTransform { resize: EVAL_RESIZE, crop: EVAL_CROP }
    }
}

impl EvalTransform {
    /// The resized size (width, height) of a `width` x `height` image: torchvision's
    /// `Resize(int)` geometry.
    pub fn resized_size(&self, width: usize, height: usize) -> (usize, usize) {
        let r = self.resize;
        if width <= height {
            (r, r * height / width)
        } else {
            (r * width / height, r)
        }
    }

    /// The centre crop's (top, left) in the resized image (torchvision's `CenterCrop`).
    pub fn crop_origin(&self, resized: (usize, usize)) -> (usize, usize) {
        let (w, h) = resized;
        let top = round_half_even((h - self.crop) as f64 / 2.0);
        let left = round_half_even((w - self.crop) as f64 / 2.0);
        (top, left)
    }

    /// Values per output image: `3 * crop * crop`.
    pub fn output_len(&self) -> usize {
        3 * self.crop * self.crop
    }

    /// Resizes, centre-crops and normalises `img` into `out` (CHW, `3 * crop * crop`). Panics if
    /// `crop > resize`.
    pub fn apply(&self, img: &RgbImage, out: &mut [f32]) {
        assert!(
            self.crop <= self.resize,
            "EvalTransform: crop {} larger than resize {}",
            self.crop,
            self.resize
        );
        let resized = self.resized_size(img.width, img.height);
        let (top, left) = self.crop_origin(resized);
        let whole = CropBox { top: 0, left: 0, height: img.height, width: img.width };
        let c = self.crop;
        resize_box(img, whole, resized, (top..top + c, left..left + c), out);
        to_unit(out);
        normalize(out, c * c);
    }
}

/// PIL's bilinear weights along one axis: for each output index in `window` (of `out_len`
/// outputs over `in_len` inputs), the first input index and the normalised weights.
fn axis_weights(in_len: usize, out_len: usize, window: Range<usize>) -> Vec<(usize, Vec<f32>)> {
    let scale = in_len as f64 / out_len as f64;
    let fs = scale.max(1.0);
    window
        .map(|k| {
            let centre = (k as f64 + 0.5) * scale;
            // `as usize` truncates toward zero and saturates negatives at 0, as PIL's
            // `(int)` followed by its clamp to 0.
            let lo = (centre - fs + 0.5) as usize;
            let hi = ((centre + fs + 0.5) as usize).min(in_len);
            let mut w: Vec<f64> =
                (lo..hi).map(|x| (1.0 - ((x as f64 + 0.5 - centre) / fs).abs()).max(0.0)).collect();
            let total: f64 = w.iter().sum();
            if total != 0.0 {
                w.iter_mut().for_each(|v| *v /= total);
            }
            (lo, w.into_iter().map(|v| v as f32).collect())
        })
        .collect()
}

/// Resizes the `crop` rectangle of `img` to `size` = (width, height) with PIL's antialiased
/// bilinear filter (see the module doc) and writes the output pixels in `window` = (rows,
/// columns) to `out` as CHW planes of values in [0, 255].
///
/// PIL works in fixed point and rounds to 8 bits after the horizontal pass and at the end; this
/// keeps f32 throughout, so it differs from PIL by at most one level (half a level from each
/// rounding), and is exact on constant regions.
pub fn resize_box(
    img: &RgbImage,
    crop: CropBox,
    size: (usize, usize),
    window: (Range<usize>, Range<usize>),
    out: &mut [f32],
) {
    let (rows, cols) = window;
    let (ow, oh) = (cols.len(), rows.len());
    assert!(crop.width > 0 && crop.height > 0, "resize_box: empty crop {crop:?}");
    assert!(
        crop.left + crop.width <= img.width && crop.top + crop.height <= img.height,
        "resize_box: crop {crop:?} outside the {}x{} image",
        img.width,
        img.height
    );
    assert!(rows.end <= size.1 && cols.end <= size.0, "resize_box: window beyond the {size:?} output");
    assert_eq!(out.len(), 3 * ow * oh, "resize_box: output has {} values for 3x{oh}x{ow}", out.len());
    let wx = axis_weights(crop.width, size.0, cols);
    let wy = axis_weights(crop.height, size.1, rows);
    // Crop rows the vertical pass reads.
    let y_lo = wy.iter().map(|(lo, _)| *lo).min().unwrap_or(0);
    let y_hi = wy.iter().map(|(lo, w)| lo + w.len()).max().unwrap_or(0);
    // Horizontal pass: tmp[(y - y_lo) * ow + x][c] for the crop rows y_lo..y_hi.
    let mut tmp = vec![0f32; (y_hi - y_lo) * ow * 3];
    for y in y_lo..y_hi {
        let src = &img.pixels[((crop.top + y) * img.width + crop.left) * 3..][..crop.width * 3];
        let dst = &mut tmp[(y - y_lo) * ow * 3..][..ow * 3];
        for ((lo, w), d) in wx.iter().zip(dst.chunks_exact_mut(3)) {
            let mut acc = [0f32; 3];
            for (k, &wk) in w.iter().enumerate() {
                let p = &src[(lo + k) * 3..][..3];
                for c in 0..3 {
                    acc[c] += wk * p[c] as f32;
                }
            }
            d.copy_from_slice(&acc);
        }
    }
    // Vertical pass into the CHW planes.
    let plane = ow * oh;
    for (oy, (lo, w)) in wy.iter().enumerate() {
        for ox in 0..ow {
            let mut acc = [0f32; 3];
            for (k, &wk) in w.iter().enumerate() {
                let t = &tmp[((lo + k - y_lo) * ow + ox) * 3..][..3];
                for c in 0..3 {
                    acc[c] += wk * t[c];
                }
            }
            for (c, v) in acc.into_iter().enumerate() {
                out[c * plane + oy * ow + ox] = v;
            }
        }
    }
}

/// ToTensor's scaling of [0, 255] values to [0, 1].
pub fn to_unit(x: &mut [f32]) {
    x.iter_mut().for_each(|v| *v /= 255.0);
}

/// Mirrors each row of the CHW planes of `width` x `height`.
pub fn flip_horizontal(x: &mut [f32], width: usize, height: usize) {
    assert_eq!(x.len(), 3 * width * height, "flip_horizontal: {} values for 3x{height}x{width}", x.len());
    x.chunks_exact_mut(width).for_each(|row| row.reverse());
}

/// `(x - mean_c) / std_c` per channel over CHW planes of `plane` pixels.
pub fn normalize(x: &mut [f32], plane: usize) {
    assert_eq!(x.len(), 3 * plane, "normalize: {} values for 3 planes of {plane}", x.len());
    for (c, p) in x.chunks_exact_mut(plane).enumerate() {
        let (m, s) = (IMAGENET_MEAN[c], IMAGENET_STD[c]);
        p.iter_mut().for_each(|v| *v = (*v - m) / s);
    }
}

#[inline]
fn blend(x: f32, y: f32, f: f32) -> f32 {
    (f * x + (1.0 - f) * y).clamp(0.0, 1.0)
}

#[inline]
fn gray(r: f32, g: f32, b: f32) -> f32 {
    GRAY[0] * r + GRAY[1] * g + GRAY[2] * b
}

/// ColorJitter's four adjustments in `p.order` on CHW planes of `plane` pixels in [0, 1]. A
/// factor of 1 leaves the image bit for bit unchanged (`1 x + 0 y = x`); a hue shift of 0 skips
/// the HSV round trip, which in torchvision changes values by float rounding only.
pub fn color_jitter(x: &mut [f32], plane: usize, p: &JitterParams) {
    assert_eq!(x.len(), 3 * plane, "color_jitter: {} values for 3 planes of {plane}", x.len());
    for adjust in p.order {
        match adjust {
            Adjust::Brightness => adjust_brightness(x, p.brightness),
            Adjust::Contrast => adjust_contrast(x, plane, p.contrast),
            Adjust::Saturation => adjust_saturation(x, plane, p.saturation),
            Adjust::Hue if p.hue != 0.0 => adjust_hue(x, plane, p.hue),
            Adjust::Hue => {}
        }
    }
}

/// `blend(x, 0, f)`.
pub fn adjust_brightness(x: &mut [f32], f: f32) {
    x.iter_mut().for_each(|v| *v = blend(*v, 0.0, f));
}

/// `blend(x, m, f)` with m the mean grey level of the image (summed in f64, in pixel order).
pub fn adjust_contrast(x: &mut [f32], plane: usize, f: f32) {
    let (r, rest) = x.split_at(plane);
    let (g, b) = rest.split_at(plane);
    let sum: f64 = (0..plane).map(|i| gray(r[i], g[i], b[i]) as f64).sum();
    let m = (sum / plane as f64) as f32;
    x.iter_mut().for_each(|v| *v = blend(*v, m, f));
}

/// `blend(x, gray(x), f)` per pixel.
pub fn adjust_saturation(x: &mut [f32], plane: usize, f: f32) {
    let (r, rest) = x.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    for i in 0..plane {
        let l = gray(r[i], g[i], b[i]);
        r[i] = blend(r[i], l, f);
        g[i] = blend(g[i], l, f);
        b[i] = blend(b[i], l, f);
    }
}

/// torchvision's `_rgb2hsv` for one pixel in [0, 1]: (h in [0, 1), s, v).
pub fn rgb_to_hsv(r: f32, g: f32, b: f32) -> (f32, f32, f32) {
    let maxc = r.max(g).max(b);
    let minc = r.min(g).min(b);
    let eqc = maxc == minc;
    let cr = maxc - minc;
    let s = cr / if eqc { 1.0 } else { maxc };
    let d = if eqc { 1.0 } else { cr };
    let (rc, gc, bc) = ((maxc - r) / d, (maxc - g) / d, (maxc - b) / d);
    let h = if maxc == r {
        bc - gc
    } else if maxc == g {
        2.0 + rc - bc
    } else {
        4.0 + gc - rc
    };
    // torch.fmod of a value in [-1/6 + 1, 5/6 + 1): one subtraction at most.
    let h = h / 6.0 + 1.0;
    (h % 1.0, s, maxc)
}

/// torchvision's `_hsv2rgb` for one pixel.
pub fn hsv_to_rgb(h: f32, s: f32, v: f32) -> (f32, f32, f32) {
    let h6 = h * 6.0;
    let i = h6.floor();
    let f = h6 - i;
    let p = (v * (1.0 - s)).clamp(0.0, 1.0);
    let q = (v * (1.0 - s * f)).clamp(0.0, 1.0);
    let t = (v * (1.0 - s * (1.0 - f))).clamp(0.0, 1.0);
    match (i as i32).rem_euclid(6) {
        0 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    }
}

/// Rotates the hue of every pixel by `shift` turns.
pub fn adjust_hue(x: &mut [f32], plane: usize, shift: f32) {
    let (r, rest) = x.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    for i in 0..plane {
        let (h, s, v) = rgb_to_hsv(r[i], g[i], b[i]);
        // Python's / torch's `%` by 1: the result has the divisor's sign, so it is in [0, 1].
        let h = h + shift;
        let h = h - h.floor();
        (r[i], g[i], b[i]) = hsv_to_rgb(h, s, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_even_rounding_like_python() {
        assert_eq!(round_half_even(0.5), 0);
        assert_eq!(round_half_even(1.5), 2);
        assert_eq!(round_half_even(2.5), 2);
        assert_eq!(round_half_even(2.4999), 2);
    }

    #[test]
    fn hsv_round_trip_and_known_values() {
        assert_eq!(rgb_to_hsv(1.0, 0.0, 0.0), (0.0, 1.0, 1.0));
        // 2/6 + 1 then mod 1, in f32 as torchvision does: 1/3 up to the rounding of the + 1.
        assert!((rgb_to_hsv(0.0, 1.0, 0.0).0 - 1.0 / 3.0).abs() < 1e-7);
        assert_eq!(rgb_to_hsv(0.5, 0.5, 0.5), (0.0, 0.0, 0.5));
        for &(r, g, b) in &[(0.2f32, 0.7f32, 0.1f32), (0.9, 0.1, 0.6), (0.3, 0.3, 0.8), (0.0, 0.0, 0.0)] {
            let (h, s, v) = rgb_to_hsv(r, g, b);
            let (r2, g2, b2) = hsv_to_rgb(h, s, v);
            assert!((r - r2).abs() < 1e-6 && (g - g2).abs() < 1e-6 && (b - b2).abs() < 1e-6, "{r} {g} {b}");
        }
    }
}
