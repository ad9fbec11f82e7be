//! DARTS's CIFAR-10 transforms on raw uint8 images: `RandomCrop(32, padding=4)`,
//! `RandomHorizontalFlip()`, `ToTensor()`, `Normalize(mean, std)` for search batches, and
//! `ToTensor()` + `Normalize` alone for evaluation.
//!
//! As in torchvision, the crop pads the *uint8* image with zeros, so a padded pixel is 0 in [0, 1]
//! pixel space and `(0 - mean) / std` after normalisation. The arithmetic follows the reference in
//! the output precision: `(v / 255 - mean) / std`, each step rounded to `T` (f32 like PyTorch, or
//! f64), with `mean` and `std` rounded to `T` first; it is tabulated per channel and byte value.

use crate::rng::Rng;
use crate::tensor::Element;

use super::cifar::{CHANNELS, HEIGHT, IMAGE_BYTES, WIDTH};

/// Per-channel mean of CIFAR-10 training pixels in [0, 1], as the project specifies it and as
/// the PyTorch reference in `../shared/bench` (the fixtures' source) uses it. The original DARTS
/// `utils.py` carries more digits (0.49139968, ...); the difference is below 1e-4 relative.
pub const MEAN: [f64; 3] = [0.4914, 0.4822, 0.4465];
/// Per-channel standard deviation (see [`MEAN`]).
pub const STD: [f64; 3] = [0.2470, 0.2435, 0.2616];
/// Zero padding on each side before the random 32x32 crop.
pub const PAD: usize = 4;
/// Crop offsets range over `0..=MAX_OFFSET` in the padded 40x40 image.
pub const MAX_OFFSET: usize = 2 * PAD;

/// One image's random augmentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AugParams {
    /// Row of the crop's top-left corner in the zero-padded 40x40 image (0..=8; 4 = no shift).
    pub top: u8,
    /// Column of the crop's top-left corner in the padded image (0..=8; 4 = no shift).
    pub left: u8,
    /// Mirror the crop left-right.
    pub flip: bool,
    /// Cutout after normalisation (the evaluation training's regulariser), if any.
    pub cutout: Option<Cutout>,
}

/// The reference's `Cutout(length)` (`utils.py`), applied to the normalised image: with a centre
/// (y, x) drawn uniformly over the 32 x 32 pixels, every channel is set to 0 on rows
/// clip(y − len/2, 0, 32) .. clip(y + len/2, 0, 32) and the same columns in x (integer
/// division; the square is clipped at the border, so it may be smaller or empty of the image).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cutout {
    /// Centre row, 0..32.
    pub y: u8,
    /// Centre column, 0..32.
    pub x: u8,
    /// Side of the square (16 in DARTS).
    pub len: u8,
}

impl Cutout {
    /// Draws a centre (row, then column, uniform like numpy's `randint(h)`) for a square of `len`.
    pub fn random(len: u8, rng: &mut Rng) -> Cutout {
        let y = rng.below(HEIGHT as u64) as u8;
        let x = rng.below(WIDTH as u64) as u8;
        Cutout { y, x, len }
    }

    /// The rows (and, from `x`, the columns) the square covers: [lo, hi).
    pub fn span(centre: u8, len: u8, size: usize) -> std::ops::Range<usize> {
        let half = (len / 2) as isize;
        let clip = |v: isize| v.clamp(0, size as isize) as usize;
        clip(centre as isize - half)..clip(centre as isize + half)
    }

    /// Zeroes the square in every channel of a normalised `[3, 32, 32]` image.
    pub fn apply<T: Element>(&self, out: &mut [T]) {
        let (rows, cols) = (Cutout::span(self.y, self.len, HEIGHT), Cutout::span(self.x, self.len, WIDTH));
        for plane in out.chunks_exact_mut(HEIGHT * WIDTH) {
            for y in rows.clone() {
                plane[y * WIDTH + cols.start..y * WIDTH + cols.end].fill(T::ZERO);
            }
        }
    }
}

impl AugParams {
    /// The identity: centre crop, no flip, no cutout.
    pub const IDENTITY: AugParams = AugParams { top: PAD as u8, left: PAD as u8, flip: false, cutout: None };

    /// Draws a crop offset (uniform over the 9 x 9 positions, like torchvision's
    /// `randint(0, h - th + 1)`) and a flip with probability 0.5, in that order; no cutout.
    pub fn random(rng: &mut Rng) -> AugParams {
        let top = rng.below(MAX_OFFSET as u64 + 1) as u8;
        let left = rng.below(MAX_OFFSET as u64 + 1) as u8;
        let flip = rng.uniform() < 0.5;
        AugParams { top, left, flip, cutout: None }
    }
}

/// `(v / 255 - MEAN[c]) / STD[c]` computed in `T` as torchvision does.
pub fn normalize<T: Element>(c: usize, v: u8) -> T {
    let x = T::from_f64(v as f64) / T::from_f64(255.0);
    (x - T::from_f64(MEAN[c])) / T::from_f64(STD[c])
}

/// The normalised value of every byte for every channel.
#[derive(Clone, Debug)]
pub struct NormTable<T> {
    table: [[T; 256]; CHANNELS],
}

impl<T: Element> NormTable<T> {
    /// Tabulates [`normalize`].
    pub fn new() -> NormTable<T> {
        let mut table = [[T::ZERO; 256]; CHANNELS];
        for (c, row) in table.iter_mut().enumerate() {
            for (v, out) in row.iter_mut().enumerate() {
                *out = normalize(c, v as u8);
            }
        }
        NormTable { table }
    }

    /// The normalised value of byte `v` in channel `c`.
    #[inline]
    pub fn get(&self, c: usize, v: u8) -> T {
        self.table[c][v as usize]
    }

    /// Evaluation transform: normalises a 3072-byte CHW image into `out` (3072 values).
    pub fn normalize_image(&self, img: &[u8], out: &mut [T]) {
        assert_eq!(img.len(), IMAGE_BYTES, "normalize_image: image has {} bytes", img.len());
        assert_eq!(out.len(), IMAGE_BYTES, "normalize_image: output has {} values", out.len());
        for c in 0..CHANNELS {
            let plane = c * HEIGHT * WIDTH..(c + 1) * HEIGHT * WIDTH;
            let row = &self.table[c];
            for (o, &v) in out[plane.clone()].iter_mut().zip(&img[plane]) {
                *o = row[v as usize];
            }
        }
    }

    /// Search transform: zero-pad by 4, crop 32x32 at `(p.top, p.left)`, mirror if `p.flip`,
    /// normalise; from a 3072-byte CHW image into `out` (3072 values).
    pub fn augment_image(&self, img: &[u8], p: AugParams, out: &mut [T]) {
        assert_eq!(img.len(), IMAGE_BYTES, "augment_image: image has {} bytes", img.len());
        assert_eq!(out.len(), IMAGE_BYTES, "augment_image: output has {} values", out.len());
        assert!(
            p.top as usize <= MAX_OFFSET && p.left as usize <= MAX_OFFSET,
            "augment_image: crop offset {p:?} outside 0..={MAX_OFFSET}"
        );
        // Output (y, x) reads the padded image at (y + top, x' + left), x' = x or 31 - x, which
        // is the source pixel (y + top - 4, x' + left - 4) or padding.
        let dy = p.top as isize - PAD as isize;
        let dx = p.left as isize - PAD as isize;
        for c in 0..CHANNELS {
            let src = &img[c * HEIGHT * WIDTH..(c + 1) * HEIGHT * WIDTH];
            let dst = &mut out[c * HEIGHT * WIDTH..(c + 1) * HEIGHT * WIDTH];
            let row = &self.table[c];
            let pad = row[0];
            for y in 0..HEIGHT {
                let o = &mut dst[y * WIDTH..(y + 1) * WIDTH];
                let sy = y as isize + dy;
                if !(0..HEIGHT as isize).contains(&sy) {
                    o.fill(pad);
                    continue;
                }
                let s = &src[sy as usize * WIDTH..(sy as usize + 1) * WIDTH];
                // Columns x0..x1 read the image; the rest read the padding.
                let (x0, x1) = if p.flip {
                    (dx.max(0), (WIDTH as isize + dx).min(WIDTH as isize))
                } else {
                    ((-dx).max(0), (WIDTH as isize - dx).min(WIDTH as isize))
                };
                let (x0, x1) = (x0 as usize, x1 as usize);
                o[..x0].fill(pad);
                o[x1..].fill(pad);
                if p.flip {
                    // o[x] = s[31 - x + dx]: the source columns run backwards.
                    let first = (WIDTH as isize - x1 as isize + dx) as usize;
                    let src_cols = &s[first..first + (x1 - x0)];
                    for (ov, &v) in o[x0..x1].iter_mut().zip(src_cols.iter().rev()) {
                        *ov = row[v as usize];
                    }
                } else {
                    let first = (x0 as isize + dx) as usize;
                    for (ov, &v) in o[x0..x1].iter_mut().zip(&s[first..first + (x1 - x0)]) {
                        *ov = row[v as usize];
                    }
                }
            }
        }
        if let Some(c) = p.cutout {
            c.apply(out);
        }
    }
}

impl<T: Element> Default for NormTable<T> {
    fn default() -> Self {
        NormTable::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A synthetic image whose pixel (c, y, x) is distinct and non-zero for y, x < 32.
    fn synthetic() -> Vec<u8> {
        (0..IMAGE_BYTES).map(|i| 1 + (i % 251) as u8).collect()
    }

    /// The reference's `Cutout(16)`: rows and columns clip(c − 8, 0, 32) .. clip(c + 8, 0, 32),
    /// every channel set to 0, nothing else touched; a centre near the border clips the square.
    #[test]
    fn cutout_masks_exactly_the_clipped_square() {
        let img = synthetic();
        let t = NormTable::<f64>::new();
        let mut plain = vec![0.0; IMAGE_BYTES];
        t.normalize_image(&img, &mut plain);
        for (cy, cx, rows, cols) in [(16, 16, 8..24, 8..24), (1, 30, 0..9, 22..32), (0, 0, 0..8, 0..8)] {
            let cut = Cutout { y: cy, x: cx, len: 16 };
            let mut out = vec![0.0; IMAGE_BYTES];
            t.augment_image(&img, AugParams { cutout: Some(cut), ..AugParams::IDENTITY }, &mut out);
            for c in 0..CHANNELS {
                for y in 0..HEIGHT {
                    for x in 0..WIDTH {
                        let i = (c * HEIGHT + y) * WIDTH + x;
                        let inside = rows.contains(&y) && cols.contains(&x);
                        let want = if inside { 0.0 } else { plain[i] };
                        assert_eq!(out[i], want, "cutout at ({cy}, {cx}): pixel ({c}, {y}, {x})");
                    }
                }
            }
        }
        // An odd side: len / 2 either way (the reference's integer division), 7 → 3 + 3 rows.
        assert_eq!(Cutout::span(10, 7, 32), 7..13);
    }

    #[test]
    fn normalised_values() {
        // Reference: torch.tensor([v / 255 in float32]) then (x - mean) / std in float32.
        let t = NormTable::<f64>::new();
        assert!((t.get(0, 0) - (-0.4914 / 0.2470)).abs() < 1e-15);
        assert!((t.get(1, 255) - (1.0 - 0.4822) / 0.2435).abs() < 1e-15);
        assert!((t.get(2, 128) - (128.0 / 255.0 - 0.4465) / 0.2616).abs() < 1e-15);
        let f = NormTable::<f32>::new();
        let want = ((128.0f32 / 255.0f32) - 0.4465f32) / 0.2616f32;
        assert_eq!(f.get(2, 128).to_bits(), want.to_bits());
        assert!((f.get(0, 0) as f64 - t.get(0, 0)).abs() < 1e-6);
    }

    #[test]
    fn identity_params_equal_plain_normalisation() {
        let img = synthetic();
        let t = NormTable::<f32>::new();
        let (mut a, mut b) = (vec![0.0; IMAGE_BYTES], vec![0.0; IMAGE_BYTES]);
        t.normalize_image(&img, &mut a);
        t.augment_image(&img, AugParams::IDENTITY, &mut b);
        assert_eq!(a, b);
    }

    #[test]
    fn crop_shifts_and_pads() {
        let mut img = vec![100u8; IMAGE_BYTES];
        // Mark pixel (c=1, y=10, x=20).
        img[1024 + 10 * 32 + 20] = 200;
        let t = NormTable::<f64>::new();
        let mut out = vec![0.0; IMAGE_BYTES];
        // top = 1, left = 7: output (y, x) = source (y - 3, x + 3), so the mark moves to (13, 17).
        t.augment_image(&img, AugParams { top: 1, left: 7, flip: false, cutout: None }, &mut out);
        let at = |c: usize, y: usize, x: usize| out[c * 1024 + y * 32 + x];
        assert_eq!(at(1, 13, 17), t.get(1, 200));
        assert_eq!(at(1, 10, 20), t.get(1, 100));
        // Rows 0..3 come from the zero padding above, columns 29..32 from the padding on the right.
        for c in 0..3 {
            for y in 0..32 {
                for x in 0..32 {
                    let want = if y < 3 || x >= 29 {
                        t.get(c, 0)
                    } else if (c, y, x) == (1, 13, 17) {
                        t.get(1, 200)
                    } else {
                        t.get(c, 100)
                    };
                    assert_eq!(at(c, y, x), want, "({c}, {y}, {x})");
                }
            }
        }
        // The padding is the normalised zero: -mean / std.
        assert!((at(0, 0, 0) + MEAN[0] / STD[0]).abs() < 1e-12);
    }

    #[test]
    fn flip_mirrors_the_crop() {
        let img = synthetic();
        let t = NormTable::<f32>::new();
        for (top, left) in [(4, 4), (0, 8), (8, 0), (3, 6)] {
            let (mut a, mut b) = (vec![0.0; IMAGE_BYTES], vec![0.0; IMAGE_BYTES]);
            t.augment_image(&img, AugParams { top, left, flip: false, cutout: None }, &mut a);
            t.augment_image(&img, AugParams { top, left, flip: true, cutout: None }, &mut b);
            for c in 0..3 {
                for y in 0..32 {
                    for x in 0..32 {
                        assert_eq!(b[c * 1024 + y * 32 + x], a[c * 1024 + y * 32 + 31 - x]);
                    }
                }
            }
        }
        // Centre crop + flip: output (y, x) = source (y, 31 - x).
        let mut out = vec![0.0; IMAGE_BYTES];
        t.augment_image(&img, AugParams { top: 4, left: 4, flip: true, cutout: None }, &mut out);
        assert_eq!(out[2 * 1024 + 5 * 32], t.get(2, img[2 * 1024 + 5 * 32 + 31]));
    }

    /// The definition, pixel by pixel: pad a 40x40 copy with zeros, crop, mirror, normalise.
    fn naive(img: &[u8], p: AugParams) -> Vec<f64> {
        let n = 32 + 2 * PAD;
        let mut padded = vec![0u8; 3 * n * n];
        for c in 0..3 {
            for y in 0..32 {
                for x in 0..32 {
                    padded[c * n * n + (y + PAD) * n + x + PAD] = img[c * 1024 + y * 32 + x];
                }
            }
        }
        let mut out = vec![0.0; IMAGE_BYTES];
        for c in 0..3 {
            for y in 0..32 {
                for x in 0..32 {
                    let xc = if p.flip { 31 - x } else { x };
                    let v = padded[c * n * n + (y + p.top as usize) * n + xc + p.left as usize];
                    out[c * 1024 + y * 32 + x] = normalize::<f64>(c, v);
                }
            }
        }
        out
    }

    #[test]
    fn every_crop_and_flip_matches_the_definition() {
        let img = synthetic();
        let t = NormTable::<f64>::new();
        let mut out = vec![0.0; IMAGE_BYTES];
        for top in 0..=MAX_OFFSET as u8 {
            for left in 0..=MAX_OFFSET as u8 {
                for flip in [false, true] {
                    let p = AugParams { top, left, flip, cutout: None };
                    t.augment_image(&img, p, &mut out);
                    assert_eq!(out, naive(&img, p), "{p:?}");
                }
            }
        }
    }

    #[test]
    fn random_params_cover_the_range() {
        let mut rng = Rng::new(9);
        let mut tops = [0usize; 9];
        let mut flips = 0;
        for _ in 0..9000 {
            let p = AugParams::random(&mut rng);
            tops[p.top as usize] += 1;
            assert!(p.left <= 8);
            flips += p.flip as usize;
        }
        assert!(tops.iter().all(|&n| (800..1200).contains(&n)), "{tops:?}");
        assert!((4200..4800).contains(&flips), "{flips}");
    }
}
