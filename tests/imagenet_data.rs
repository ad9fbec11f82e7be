//! The ImageNet folder reader on the committed tiny tree `tests/fixtures/imagenet-tiny/`
//! (written by `scripts/make-imagenet-tiny.py`, with what PIL and torchvision make of some of its
//! images under `expected/`) and on broken copies of it in temporary directories.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use darts::data::imagenet::transform::{
    adjust_hue, color_jitter, flip_horizontal, normalize, resize_box, Adjust, JitterParams,
};
use darts::data::imagenet::{
    decode_jpeg, read_jpeg, CropBox, EvalTransform, ImageFolder, ImageNetFolders, ImageNetSource, RgbImage,
    TrainParams, TrainTransform, IMAGENET_MEAN, IMAGENET_STD,
};
use darts::data::{BatchSource, DataError, Loader};
use darts::rng::Rng;
use darts::DType;

const CLASSES: [&str; 3] = ["n01440764", "n01443537", "n01484850"];

/// Largest difference, in 8-bit levels, between zune-jpeg's decode and PIL's (libjpeg's) of a
/// file without chroma subsampling (greyscale, PIL's CMYK): only the inverse DCT's integer
/// rounding differs.
const DECODE_TOL_FULL: f32 = 1.0;
/// The same for 4:2:0 files, away from the last row and column: the chroma upsampling filters
/// (both "fancy", triangular) round differently, by up to 4 levels at sharp colour edges (3 on
/// the first fixture image, 4 on the portrait one) and within 2 levels on 99% of the values.
const DECODE_TOL_420: f32 = 4.0;
/// On the last row and column of a 4:2:0 image whose size is not a multiple of the 16-pixel
/// block, the two decoders treat the border of the half-filled chroma block differently (up to
/// 7 levels measured on the fixture); both are valid JPEG decodes.
const DECODE_TOL_420_BORDER: f32 = 8.0;
/// Largest difference, in levels, between our f32 resize and PIL's: PIL rounds to 8 bits after
/// its horizontal pass (at most 1/2 level, carried through the convex vertical weights) and at
/// the end (1/2 level); its 22-bit fixed-point weights add well under 1e-3.
const RESIZE_TOL: f32 = 1.0 + 1e-3;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/imagenet-tiny")
}

fn expected(name: &str) -> PathBuf {
    fixture().join("expected").join(name)
}

fn meta() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(expected("meta.json")).unwrap()).unwrap()
}

/// A raw RGB dump from `expected/` as an image.
fn raw_image(entry: &serde_json::Value) -> RgbImage {
    let (w, h) = (entry["width"].as_u64().unwrap() as usize, entry["height"].as_u64().unwrap() as usize);
    RgbImage::new(w, h, std::fs::read(expected(entry["file"].as_str().unwrap())).unwrap())
}

/// A fresh temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("darts-imagenet-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    /// A copy of the fixture tree (train/ and val/).
    fn with_fixture(tag: &str) -> TempDir {
        let t = TempDir::new(tag);
        for split in ["train", "val"] {
            copy_dir(&fixture().join(split), &t.0.join(split));
        }
        t
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.path().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn names(folder: &ImageFolder) -> Vec<String> {
    folder.samples().iter().map(|s| s.path.file_name().unwrap().to_string_lossy().into_owned()).collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// CHW planes of an interleaved image, as f32 levels.
fn planes(img: &RgbImage) -> Vec<f32> {
    (0..3).flat_map(|c| (0..img.height * img.width).map(move |i| img.pixels[i * 3 + c] as f32)).collect()
}

#[test]
fn classes_are_sorted_folders_and_labels_their_positions() {
    let tree = ImageNetFolders::open(fixture()).unwrap();
    assert_eq!(tree.classes(), CLASSES);
    assert_eq!(tree.val().classes(), CLASSES);
    let train = tree.train();
    // notes.txt in the first class is not an image; .jpg, .jpeg and .JPG count.
    assert_eq!(
        names(train),
        [
            "n01440764_10026.JPEG",
            "n01440764_10027.JPEG",
            "n01440764_10042.jpg",
            "n01443537_1000.JPEG",
            "n01443537_10007.jpeg",
            "n01484850_1001.JPEG",
            "n01484850_10016.JPG",
        ]
    );
    assert_eq!(train.samples().iter().map(|s| s.label).collect::<Vec<_>>(), [0, 0, 0, 1, 1, 2, 2]);
    assert_eq!(tree.val().samples().iter().map(|s| s.label).collect::<Vec<_>>(), [0, 1, 1, 2]);
    assert_eq!(train.path(3).parent().unwrap().file_name().unwrap(), CLASSES[1]);
}

#[test]
fn missing_and_empty_folders_are_named() {
    let t = TempDir::new("missing");
    let e = ImageNetFolders::open(t.0.join("nowhere")).unwrap_err();
    assert!(e.to_string().contains("nowhere") && e.to_string().contains("train/<class>/*.JPEG"), "{e}");

    std::fs::create_dir_all(t.0.join("train/cat")).unwrap();
    std::fs::copy(fixture().join("train/n01440764/n01440764_10026.JPEG"), t.0.join("train/cat/a.JPEG"))
        .unwrap();
    let e = ImageNetFolders::open(&t.0).unwrap_err();
    assert!(matches!(&e, DataError::MissingImageDir { path, .. } if path == &t.0.join("val")), "{e}");
    assert!(e.to_string().contains("validation images"), "{e}");

    std::fs::create_dir_all(t.0.join("val")).unwrap();
    let e = ImageNetFolders::open(&t.0).unwrap_err();
    assert!(matches!(&e, DataError::NoClasses { dir } if dir == &t.0.join("val")), "{e}");
    assert!(e.to_string().contains("no class subdirectories"), "{e}");

    std::fs::create_dir_all(t.0.join("val/cat")).unwrap();
    std::fs::write(t.0.join("val/cat/readme.txt"), "no images here").unwrap();
    let e = ImageNetFolders::open(&t.0).unwrap_err();
    assert!(matches!(&e, DataError::EmptyClass { dir } if dir == &t.0.join("val/cat")), "{e}");
    assert!(e.to_string().contains("val/cat") && e.to_string().contains("no .JPEG"), "{e}");
}

#[test]
fn train_and_val_must_list_the_same_classes() {
    let t = TempDir::with_fixture("mismatch");
    std::fs::rename(t.0.join("val/n01443537"), t.0.join("val/n01443999")).unwrap();
    let e = ImageNetFolders::open(&t.0).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains(&t.0.join("train").display().to_string()), "{msg}");
    assert!(msg.contains(&t.0.join("val").display().to_string()), "{msg}");
    assert!(
        msg.contains("class 1") && msg.contains("\"n01443537\"") && msg.contains("\"n01443999\""),
        "{msg}"
    );

    // One class fewer in val: the first missing one is named.
    std::fs::rename(t.0.join("val/n01443999"), t.0.join("val-n01443999")).unwrap();
    let msg = ImageNetFolders::open(&t.0).unwrap_err().to_string();
    assert!(msg.contains("class 1") && msg.contains("\"n01443537\""), "{msg}");
    std::fs::remove_dir_all(t.0.join("val/n01484850")).unwrap();
    std::fs::create_dir_all(t.0.join("val/n01443537")).unwrap();
    std::fs::copy(
        fixture().join("val/n01443537/ILSVRC2012_val_00002138.JPEG"),
        t.0.join("val/n01443537/x.JPEG"),
    )
    .unwrap();
    let msg = ImageNetFolders::open(&t.0).unwrap_err().to_string();
    assert!(msg.contains("training folder has 3 classes, the validation folder 2"), "{msg}");
    assert!(msg.contains("\"n01484850\""), "{msg}");
}

#[test]
fn an_undecodable_file_is_named_with_the_decoders_reason() {
    let e = decode_jpeg(b"GIF89a not a jpeg", Path::new("bad.JPEG")).unwrap_err();
    assert!(matches!(e, DataError::Decode { .. }), "{e}");
    assert!(e.to_string().starts_with("bad.JPEG: cannot decode the JPEG: "), "{e}");

    // A truncated file inside a tree: the loader hands the error over, naming the file.
    let t = TempDir::with_fixture("corrupt");
    let victim = t.0.join("train/n01443537/n01443537_10007.jpeg");
    let bytes = std::fs::read(&victim).unwrap();
    std::fs::write(&victim, &bytes[..40]).unwrap();
    let tree = ImageNetFolders::open(&t.0).unwrap();
    let source = ImageNetSource::train(tree.train().clone(), TrainTransform::with_size(8), 7, 0, 2).unwrap();
    let mut loader = Loader::from_source(source, 2).unwrap();
    let e = loader.try_next_batch().unwrap_err();
    assert!(e.to_string().contains(&victim.display().to_string()), "{e}");
    assert!(e.to_string().contains("cannot decode the JPEG: ") && e.to_string().len() > 80, "{e}");
    let again = loader.try_next_batch().unwrap_err();
    assert!(again.to_string().contains("stopped after an earlier error"), "{again}");
}

#[test]
fn decoded_pixels_match_pil_within_the_decoder_tolerance() {
    let m = meta();
    for key in ["rgb", "grey", "cmyk"] {
        let entry = &m["decoded"][key];
        let pil = raw_image(entry);
        let ours = read_jpeg(&fixture().join(entry["image"].as_str().unwrap())).unwrap();
        let (w, h) = (ours.width, ours.height);
        assert_eq!((w, h), (pil.width, pil.height), "{key}");
        let (mut inner, mut border, mut within2, mut sum) = (0f32, 0f32, 0usize, 0f32);
        for y in 0..h {
            for x in 0..w {
                for c in 0..3 {
                    let d = (ours.at(x, y, c) as f32 - pil.at(x, y, c) as f32).abs();
                    if x + 1 == w || y + 1 == h {
                        border = border.max(d);
                    } else {
                        inner = inner.max(d);
                    }
                    within2 += (d <= 2.0) as usize;
                    sum += d;
                }
            }
        }
        let n = (w * h * 3) as f32;
        let (mean, frac2) = (sum / n, within2 as f32 / n);
        let (tol_inner, tol_border) = match entry["mode"].as_str().unwrap() {
            "RGB" => (DECODE_TOL_420, DECODE_TOL_420_BORDER),
            _ => (DECODE_TOL_FULL, DECODE_TOL_FULL),
        };
        assert!(
            inner <= tol_inner && border <= tol_border && frac2 >= 0.99 && mean < 0.5,
            "{key}: max diff {inner} levels inside, {border} on the last row/column, {frac2} within 2, mean {mean}"
        );
        if key == "grey" {
            // Greyscale becomes R = G = B.
            assert!(ours.pixels.chunks_exact(3).all(|p| p[0] == p[1] && p[1] == p[2]));
        }
    }
}

#[test]
fn resize_is_pils_antialiased_bilinear_on_hand_computed_cases() {
    // Downscale 4 -> 2: s = 2, so each output averages a triangle 2 pixels wide: output 0 has
    // centre 1 and weights (3/4, 3/4, 1/4) / (7/4) on inputs 0, 1, 2. PIL gives [29, 91].
    let row = |v: &[u8]| RgbImage::new(v.len(), 1, v.iter().flat_map(|&x| [x, x, x]).collect());
    let img = row(&[0, 40, 80, 120]);
    let mut out = vec![0.0; 6];
    resize_box(&img, CropBox { top: 0, left: 0, height: 1, width: 4 }, (2, 1), (0..1, 0..2), &mut out);
    let want = [(0.75 * 40.0 + 0.25 * 80.0) / 1.75, (0.25 * 40.0 + 0.75 * 80.0 + 0.75 * 120.0) / 1.75];
    for c in 0..3 {
        assert!((out[2 * c] - want[0]).abs() < 1e-4 && (out[2 * c + 1] - want[1]).abs() < 1e-4, "{out:?}");
    }
    // (Without antialiasing, i.e. OpenCV or torch's interpolate, it would be [20, 100].)
    assert_eq!(want.map(|v: f32| v.round()), [29.0, 91.0]);

    // Upscale 2 -> 4: plain bilinear between pixel centres, edges replicated: PIL gives
    // [0, 25, 75, 100].
    let img = row(&[0, 100]);
    let mut out = vec![0.0; 12];
    resize_box(&img, CropBox { top: 0, left: 0, height: 1, width: 2 }, (4, 1), (0..1, 0..4), &mut out);
    assert_eq!(&out[..4], &[0.0, 25.0, 75.0, 100.0]);

    // A crop is resized on its own: pixels outside it never leak in.
    let img = row(&[255, 0, 100, 255]);
    let mut out = vec![0.0; 12];
    resize_box(&img, CropBox { top: 0, left: 1, height: 1, width: 2 }, (4, 1), (0..1, 0..4), &mut out);
    assert_eq!(&out[..4], &[0.0, 25.0, 75.0, 100.0]);
}

#[test]
fn resize_matches_pil_on_the_same_decoded_pixels() {
    let m = meta();
    let img = raw_image(&m["decoded"]["rgb"]);
    // Downscale of the whole image (Resize(20)'s geometry).
    let pil = raw_image(&m["pil_down"]);
    let mut out = vec![0.0; 3 * pil.width * pil.height];
    let whole = CropBox { top: 0, left: 0, height: img.height, width: img.width };
    resize_box(&img, whole, (pil.width, pil.height), (0..pil.height, 0..pil.width), &mut out);
    let d = max_diff(&out, &planes(&pil));
    assert!(d <= RESIZE_TOL, "downscale: max diff {d} levels");
    // Upscale of a crop box (RandomResizedCrop's geometry).
    let pil = raw_image(&m["pil_up"]);
    let b: Vec<usize> =
        m["pil_up"]["box_ltrb"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
    let crop = CropBox { top: b[1], left: b[0], height: b[3] - b[1], width: b[2] - b[0] };
    let mut out = vec![0.0; 3 * pil.width * pil.height];
    resize_box(&img, crop, (pil.width, pil.height), (0..pil.height, 0..pil.width), &mut out);
    let d = max_diff(&out, &planes(&pil));
    assert!(d <= RESIZE_TOL, "crop + upscale: max diff {d} levels");
}

#[test]
fn val_transform_matches_torchvision() {
    let m = meta();
    let vt = &m["val_transform"];
    if vt.is_null() {
        panic!("expected/val_transform.f32 is missing: rerun scripts/make-imagenet-tiny.py with torchvision");
    }
    let t = EvalTransform {
        resize: vt["resize"].as_u64().unwrap() as usize,
        crop: vt["crop"].as_u64().unwrap() as usize,
    };
    let want: Vec<f32> = std::fs::read(expected(vt["file"].as_str().unwrap()))
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let plane = t.crop * t.crop;
    // In levels: |ours - theirs| * std * 255.
    let levels = |out: &[f32]| {
        (0..3)
            .map(|c| {
                max_diff(&out[c * plane..(c + 1) * plane], &want[c * plane..(c + 1) * plane])
                    * IMAGENET_STD[c]
                    * 255.0
            })
            .fold(0.0, f32::max)
    };
    // On PIL's own decode, only the resize's rounding separates us from torchvision.
    let mut out = vec![0.0; t.output_len()];
    t.apply(&raw_image(&m["decoded"]["rgb"]), &mut out);
    let d = levels(&out);
    assert!(d <= RESIZE_TOL + 1e-3, "on PIL's pixels: max diff {d} levels");
    // End to end from the JPEG: the decoders' difference adds at most DECODE_TOL_420, since the
    // resize is a convex combination and the centre crop's footprint (source rows < 28 of 30,
    // columns < 33 of 40) stays off the last row and column.
    t.apply(&read_jpeg(&fixture().join(vt["image"].as_str().unwrap())).unwrap(), &mut out);
    let d = levels(&out);
    assert!(d <= DECODE_TOL_420 + RESIZE_TOL + 1e-3, "from the JPEG: max diff {d} levels");
}

#[test]
fn eval_geometry_follows_torchvision() {
    let t = EvalTransform::default();
    assert_eq!(t.resized_size(500, 375), (341, 256));
    assert_eq!(t.resized_size(375, 500), (256, 341));
    assert_eq!(t.resized_size(300, 300), (256, 256));
    // (341 - 224) / 2 = 58.5 rounds half to even.
    assert_eq!(t.crop_origin((341, 256)), (16, 58));
    assert_eq!(t.crop_origin((343, 256)), (16, 60));
}

/// True when a box could come from an accepted attempt: some real (w', h') within rounding
/// (1/2) of (w, h) has its area and ratio in range.
fn plausible(b: &CropBox, width: usize, height: usize) -> bool {
    let (w, h, a) = (b.width as f64, b.height as f64, (width * height) as f64);
    (w + 0.5) / (h - 0.5) >= 0.75
        && (w - 0.5) / (h + 0.5) <= 4.0 / 3.0
        && (w + 0.5) * (h + 0.5) >= 0.08 * a
        && (w - 0.5) * (h - 0.5) <= a
}

#[test]
fn random_resized_crop_boxes_stay_inside_with_area_and_ratio_in_range() {
    let t = TrainTransform::default();
    let mut rng = Rng::new(123);
    for (w, h) in [(500, 375), (375, 500), (40, 30), (224, 224), (17, 90)] {
        let (mut min_area, mut max_area, mut min_ratio, mut max_ratio) = (1f64, 0f64, 9f64, 0f64);
        let mut lefts = std::collections::BTreeSet::new();
        for _ in 0..3000 {
            let b = t.crop_box(w, h, &mut rng);
            assert!(
                b.width > 0 && b.height > 0 && b.left + b.width <= w && b.top + b.height <= h,
                "{w}x{h}: {b:?}"
            );
            assert!(plausible(&b, w, h), "{w}x{h}: {b:?} out of range");
            let frac = (b.width * b.height) as f64 / (w * h) as f64;
            let r = b.width as f64 / b.height as f64;
            (min_area, max_area) = (min_area.min(frac), max_area.max(frac));
            (min_ratio, max_ratio) = (min_ratio.min(r), max_ratio.max(r));
            lefts.insert(b.left);
        }
        if (w, h) == (500, 375) {
            // The draws cover the ranges, not just a corner of them.
            assert!(min_area < 0.09 && max_area > 0.95, "area {min_area}..{max_area}");
            assert!(min_ratio < 0.76 && max_ratio > 1.32, "ratio {min_ratio}..{max_ratio}");
            assert!(lefts.len() > 200, "{} distinct left edges", lefts.len());
        }
    }
    // A 1 x 100 strip admits no box (w >= round(sqrt(0.08 * 100 * 3/4)) = 2 > 1): the fallback
    // is the centred 1 x round(1 / (3/4)) = 1 x 1 box; likewise for 100 x 1.
    assert_eq!(t.crop_box(1, 100, &mut rng), CropBox { top: 49, left: 0, height: 1, width: 1 });
    assert_eq!(t.crop_box(100, 1, &mut rng), CropBox { top: 0, left: 49, height: 1, width: 1 });
}

#[test]
fn flip_mirrors_exactly() {
    let img = read_jpeg(&fixture().join("train/n01440764/n01440764_10026.JPEG")).unwrap();
    let t = TrainTransform::with_size(12);
    let crop = CropBox { top: 3, left: 5, height: 20, width: 25 };
    let p = TrainParams { crop, flip: false, jitter: JitterParams::IDENTITY };
    let (mut a, mut b) = (vec![0.0; t.output_len()], vec![0.0; t.output_len()]);
    t.apply(&img, &p, &mut a);
    t.apply(&img, &TrainParams { flip: true, ..p }, &mut b);
    for c in 0..3 {
        for y in 0..12 {
            for x in 0..12 {
                assert_eq!(b[(c * 12 + y) * 12 + x].to_bits(), a[(c * 12 + y) * 12 + 11 - x].to_bits());
            }
        }
    }
    let mut v: Vec<f32> = (0..3 * 2 * 3).map(|i| i as f32).collect();
    flip_horizontal(&mut v, 3, 2);
    assert_eq!(&v[..6], &[2.0, 1.0, 0.0, 5.0, 4.0, 3.0]);
}

/// Every order of the four adjustments.
fn all_orders() -> Vec<[Adjust; 4]> {
    let all = [Adjust::Brightness, Adjust::Contrast, Adjust::Saturation, Adjust::Hue];
    let mut out = Vec::new();
    for a in 0..4 {
        for b in 0..4 {
            for c in 0..4 {
                for d in 0..4 {
                    let idx = [a, b, c, d];
                    let mut seen = idx.to_vec();
                    seen.sort();
                    seen.dedup();
                    if seen.len() == 4 {
                        out.push(idx.map(|i| all[i]));
                    }
                }
            }
        }
    }
    out
}

#[test]
fn color_jitter_with_neutral_factors_is_the_identity_and_known_shifts_are_exact() {
    let mut rng = Rng::new(5);
    let plane = 7 * 5;
    let img: Vec<f32> = (0..3 * plane).map(|_| rng.uniform() as f32).collect();
    let orders = all_orders();
    assert_eq!(orders.len(), 24);
    for order in orders {
        let mut x = img.clone();
        color_jitter(&mut x, plane, &JitterParams { order, ..JitterParams::IDENTITY });
        assert!(x.iter().zip(&img).all(|(a, b)| a.to_bits() == b.to_bits()), "{order:?}");
    }
    // A third of a turn takes pure red to pure green, and green to blue up to the f32 rounding of
    // 1/3 + 1/3 (h * 6 comes out as 4.0000005, so red keeps about 5e-7, as in torchvision).
    let mut x = vec![1.0, 0.0, 0.0, 1.0, 0.0, 0.0]; // R, G planes of two pixels; B = 0
    adjust_hue(&mut x, 2, 1.0 / 3.0);
    assert_eq!([x[0], x[2], x[4]], [0.0, 1.0, 0.0]);
    assert!(x[1] < 1e-6 && x[3] == 0.0 && x[5] == 1.0, "{x:?}");
    // Brightness 0.5 halves; saturation 0 leaves the luma 0.2989 R + 0.587 G + 0.114 B in all
    // channels; contrast 0 leaves the image's mean luma everywhere.
    let px = |p: JitterParams| {
        let mut x = vec![0.8, 0.2, 0.4, 0.6, 0.1, 0.3];
        color_jitter(&mut x, 2, &p);
        x
    };
    let id = JitterParams::IDENTITY;
    assert_eq!(px(JitterParams { brightness: 0.5, ..id }), [0.4, 0.1, 0.2, 0.3, 0.05, 0.15]);
    let l = [0.2989 * 0.8 + 0.587 * 0.4 + 0.114 * 0.1, 0.2989 * 0.2 + 0.587 * 0.6 + 0.114 * 0.3];
    let s = px(JitterParams { saturation: 0.0, ..id });
    for (i, v) in s.iter().enumerate() {
        assert!((v - l[i % 2]).abs() < 1e-6, "{s:?}");
    }
    let c = px(JitterParams { contrast: 0.0, ..id });
    assert!(c.iter().all(|v| (v - (l[0] + l[1]) / 2.0).abs() < 1e-6), "{c:?}");
    // Brightness above 1 saturates at 1.
    assert!(px(JitterParams { brightness: 1.4, ..id }).iter().all(|&v| v <= 1.0));
}

#[test]
fn jitter_draws_follow_torchvisions_ranges() {
    let t = TrainTransform::default();
    let mut rng = Rng::new(77);
    let mut firsts = [0usize; 4];
    for _ in 0..4000 {
        let p = t.jitter_params(&mut rng);
        for f in [p.brightness, p.contrast, p.saturation] {
            assert!((0.6..=1.4).contains(&f), "{f}");
        }
        assert!((-0.2..=0.2).contains(&p.hue), "{}", p.hue);
        let mut o = p.order.to_vec();
        o.dedup();
        assert_eq!(o.len(), 4);
        firsts[p.order[0] as usize] += 1;
    }
    // Each adjustment comes first about a quarter of the time.
    assert!(firsts.iter().all(|&n| (850..1150).contains(&n)), "{firsts:?}");
}

#[test]
fn normalisation_uses_the_imagenet_constants() {
    assert_eq!(IMAGENET_MEAN, [0.485, 0.456, 0.406]);
    assert_eq!(IMAGENET_STD, [0.229, 0.224, 0.225]);
    let mut x = vec![0.485, 1.0, 0.456, 0.0, 0.406, 0.5];
    normalize(&mut x, 2);
    assert_eq!(x, [0.0, (1.0 - 0.485) / 0.229, 0.0, -0.456 / 0.224, 0.0, (0.5 - 0.406) / 0.225]);
    // A uniform image through the whole val transform: v / 255 normalised, in every pixel.
    let img = RgbImage::new(9, 6, [200u8, 30, 124].repeat(54));
    let t = EvalTransform { resize: 5, crop: 4 };
    let mut out = vec![0.0; t.output_len()];
    t.apply(&img, &mut out);
    for (c, v) in [200.0f32, 30.0, 124.0].into_iter().enumerate() {
        let want = (v / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
        assert!(out[c * 16..(c + 1) * 16].iter().all(|o| (o - want).abs() < 1e-5), "{c}: {out:?}");
    }
}

fn train_source(workers: usize, seed: u64) -> ImageNetSource {
    let tree = ImageNetFolders::open(fixture()).unwrap();
    ImageNetSource::train(tree.train().clone(), TrainTransform::with_size(24), 4, seed, workers).unwrap()
}

fn draw(s: &mut impl BatchSource, n: usize) -> Vec<(Vec<u32>, Vec<u32>)> {
    (0..n)
        .map(|_| {
            let b = s.next_batch().unwrap();
            (b.labels, b.images.data::<f32>().iter().map(|v| v.to_bits()).collect())
        })
        .collect()
}

#[test]
fn batches_are_bitwise_the_same_for_any_number_of_workers() {
    // 7 images in batches of 4: four batches cross two epoch boundaries.
    let one = draw(&mut train_source(1, 9), 4);
    assert_eq!(one.iter().map(|b| b.0.len()).collect::<Vec<_>>(), [4, 3, 4, 3]);
    assert_eq!(one[0].1.len(), 4 * 3 * 24 * 24);
    assert_eq!(draw(&mut train_source(3, 9), 4), one);
    assert_eq!(draw(&mut train_source(0, 9), 4), one);
    assert_ne!(draw(&mut train_source(2, 10), 4), one);
    // Each epoch covers every image once.
    let mut labels: Vec<u32> = one[0].0.iter().chain(&one[1].0).copied().collect();
    labels.sort();
    assert_eq!(labels, [0, 0, 0, 1, 1, 2, 2]);
}

#[test]
fn the_loader_resumes_where_it_stopped() {
    for cut in [1, 2, 3] {
        let mut a = Loader::from_source(train_source(2, 4), 2).unwrap();
        let _ = (0..cut).map(|_| a.try_next_batch().unwrap()).count();
        let state = a.state();
        let mut b_src = train_source(1, 1234);
        b_src.set_state(&state).unwrap();
        let mut b = Loader::from_source(b_src, 3).unwrap();
        for _ in 0..4 {
            let (x, y) = (a.try_next_batch().unwrap(), b.try_next_batch().unwrap());
            assert_eq!(x.labels, y.labels, "cut {cut}");
            assert_eq!(x.images.to_f64_vec(), y.images.to_f64_vec(), "cut {cut}");
            assert_eq!(a.state(), b.state());
        }
    }
    // Evaluation batches resume too, and wrap around after one pass.
    let tree = ImageNetFolders::open(fixture()).unwrap();
    let eval =
        || ImageNetSource::eval(tree.val().clone(), EvalTransform { resize: 20, crop: 16 }, 3, 2).unwrap();
    let mut a = eval().with_dtype(DType::F64);
    assert_eq!(a.batches_per_epoch(), 2);
    let first = a.next_batch().unwrap();
    assert_eq!(first.images.shape(), [3, 3, 16, 16]);
    assert_eq!(first.labels, [0, 1, 1]);
    let mut b = eval().with_dtype(DType::F64);
    b.set_state(&a.state()).unwrap();
    assert_eq!(b.next_batch().unwrap().labels, [2]);
    assert_eq!(b.next_batch().unwrap().images.to_f64_vec(), first.images.to_f64_vec());
    // A state saved over another image count is refused.
    let other = ImageNetSource::train(
        Arc::new(ImageFolder::scan(fixture().join("val")).unwrap()),
        TrainTransform::with_size(8),
        2,
        0,
        1,
    )
    .unwrap();
    let e = train_source(1, 0).set_state(&other.state()).unwrap_err();
    assert!(e.to_string().contains("saved over 4 images, this sampler has 7"), "{e}");
}

/// Decode + augment throughput. Run on 500x375 images with
/// `python3 scripts/make-imagenet-tiny.py --bench /tmp/imnet-bench 256` then
/// `DARTS_IMAGENET_DIR=/tmp/imnet-bench cargo test --test imagenet_data -- --ignored --nocapture throughput`
/// (the test profile is optimised).
#[test]
#[ignore = "a timing run, not a check; see its doc comment"]
fn throughput() {
    let root = std::env::var_os("DARTS_IMAGENET_DIR").map(PathBuf::from).unwrap_or_else(fixture);
    let tree = ImageNetFolders::open(&root).unwrap();
    let n = tree.train().len();
    for workers in [1, 2] {
        let mut s =
            ImageNetSource::train(tree.train().clone(), TrainTransform::default(), 32, 0, workers).unwrap();
        let batches = s.batches_per_epoch();
        let start = std::time::Instant::now();
        let _ = s.next_batch().unwrap(); // warm the page cache and the pool
        let warm = start.elapsed();
        let start = std::time::Instant::now();
        let mut images = 0;
        for _ in 0..batches {
            images += s.next_batch().unwrap().len();
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{n} images, {workers} worker(s): {:.0} images/s (train transform 224, batch 32; first batch {warm:?})",
            images as f64 / secs
        );
    }
}
