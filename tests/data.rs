//! The CIFAR-10 pipeline on the shipped sample (`data/sample`) and on bad files written to
//! temporary directories.

use std::path::{Path, PathBuf};

use darts::data::{
    build_batch, default_data_dir, eval_batches, search_samplers, train_val_split, AugParams, BatchPlan,
    Cifar10, CifarFile, DataError, EpochSampler, Loader, NormTable, RandomBatchSampler, Sampler,
    SamplerState, MEAN, STD,
};
use darts::DType;

const RECORD: usize = 3073;

fn sample_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample")
}

fn sample() -> Cifar10 {
    Cifar10::open(sample_dir()).expect("the shipped sample opens")
}

/// A fresh empty temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("darts-data-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `n` valid records with labels `i % 10`.
fn records(n: usize) -> Vec<u8> {
    (0..n * RECORD).map(|i| if i % RECORD == 0 { (i / RECORD % 10) as u8 } else { (i % 253) as u8 }).collect()
}

fn assert_mentions(e: &DataError, parts: &[&str]) {
    let msg = e.to_string();
    for p in parts {
        assert!(msg.contains(p), "error message lacks {p:?}:\n{msg}");
    }
}

#[test]
fn sample_counts_labels_and_first_pixels() {
    let d = sample();
    assert_eq!(d.train().len(), 2000);
    assert_eq!(d.test().len(), 500);
    let names: Vec<_> = d.train().files().iter().map(|f| f.path().file_name().unwrap().to_owned()).collect();
    assert_eq!(names, ["data_batch_1.bin", "data_batch_2.bin"]);
    let labels = d.train().labels();
    assert!(labels.iter().all(|&l| l < 10));
    // data/sample/README.md: per-class counts of data_batch_1.bin.
    let mut counts = [0; 10];
    labels[..1000].iter().for_each(|&l| counts[l as usize] += 1);
    assert_eq!(counts, [102, 112, 99, 92, 99, 85, 107, 102, 99, 103]);
    assert!(d.test().labels().iter().all(|&l| l < 10));

    let raw = std::fs::read(sample_dir().join("data_batch_1.bin")).unwrap();
    assert_eq!(d.train().label(0), raw[0]);
    assert_eq!(&d.train().image(0)[..16], &raw[1..17]);
    assert_eq!(d.train().image(0), &raw[1..RECORD]);
    // The second file follows the first.
    let raw2 = std::fs::read(sample_dir().join("data_batch_2.bin")).unwrap();
    assert_eq!(d.train().label(1000), raw2[0]);
    assert_eq!(d.train().image(1001), &raw2[RECORD + 1..2 * RECORD]);
    let test_raw = std::fs::read(sample_dir().join("test_batch.bin")).unwrap();
    assert_eq!(test_raw.len(), 500 * RECORD);
    assert_eq!(d.test().image(499), &test_raw[499 * RECORD + 1..]);

    // An evaluation batch holds the normalised raw bytes: red (0,0,0), green (0,0,1), blue (0,31,31).
    let b = eval_batches(d.test(), 0..500, 64, DType::F64).next().unwrap();
    assert_eq!(b.images.shape(), &[64, 3, 32, 32]);
    let x = b.images.to_f64_vec();
    let norm = |c: usize, v: u8| (v as f64 / 255.0 - MEAN[c]) / STD[c];
    assert_eq!(x[0], norm(0, test_raw[1]));
    assert_eq!(x[1024 + 1], norm(1, test_raw[1 + 1024 + 1]));
    assert_eq!(x[3071], norm(2, test_raw[3072]));
    assert_eq!(b.labels[0], test_raw[0] as u32);
    let sizes: Vec<usize> = eval_batches(d.test(), 0..500, 64, DType::F32).map(|b| b.len()).collect();
    assert_eq!(sizes, [64, 64, 64, 64, 64, 64, 64, 52]);
}

#[test]
fn default_dir_falls_back_to_the_sample() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (dir, what) = default_data_dir(root);
    if root.join("data/cifar-10-batches-bin").is_dir() {
        assert!(dir.ends_with("data/cifar-10-batches-bin") && what.contains("full"));
    } else {
        assert!(dir.ends_with("data/sample") && what.contains("sample"), "{what}");
    }
    let t = TempDir::new("root");
    std::fs::create_dir_all(t.0.join("data/cifar-10-batches-bin")).unwrap();
    assert_eq!(default_data_dir(&t.0).0, t.0.join("data/cifar-10-batches-bin"));
}

#[test]
fn split_sizes_on_the_sample() {
    let n = sample().train().len();
    let s = train_val_split(n, 0.5).unwrap();
    assert_eq!((s.train.len(), s.val.len()), (1000, 1000));
    assert_eq!(s.val.start, 1000);
    let s = train_val_split(n, 0.3).unwrap();
    assert_eq!((s.train.len(), s.val.len()), (600, 1400));
    let s = train_val_split(n, 0.0005).unwrap(); // floor(1.0) = 1
    assert_eq!(s.train, 0..1);
    assert_mentions(&train_val_split(n, 0.0).unwrap_err(), &["--train-portion", "between 0 and 1", "got 0"]);
    assert_mentions(&train_val_split(n, 1.0).unwrap_err(), &["--train-portion", "got 1"]);
    assert_mentions(&train_val_split(n, 0.0004).unwrap_err(), &["leaves 0 for the weights", "non-empty"]);
}

#[test]
fn normalised_pixel_and_padding() {
    let t = NormTable::<f32>::new();
    // Pixel value 128 in the green channel: (128/255 - 0.4822) / 0.2435 in f32.
    let want = (128.0f32 / 255.0 - 0.4822f32) / 0.2435f32;
    assert_eq!(t.get(1, 128), want);
    assert!((t.get(1, 128) as f64 - (128.0 / 255.0 - 0.4822) / 0.2435).abs() < 1e-6);
    assert!((t.get(0, 255) as f64 - (1.0 - 0.4914) / 0.2470).abs() < 1e-6);
    assert!((t.get(0, 0) as f64 + 0.4914 / 0.2470).abs() < 1e-6);
    // Crop fully shifted: the padded area is the normalised zero, -mean/std per channel.
    let img = vec![255u8; 3072];
    let mut out = vec![0f32; 3072];
    t.augment_image(&img, AugParams { top: 0, left: 0, flip: false, cutout: None }, &mut out);
    for c in 0..3 {
        let pad = (-MEAN[c] / STD[c]) as f32;
        assert!((out[c * 1024] - pad).abs() < 1e-6, "channel {c}: {} vs {pad}", out[c * 1024]);
        assert_eq!(out[c * 1024 + 4 * 32 + 4], t.get(c, 255));
        assert_eq!(out[c * 1024 + 3 * 32 + 31], t.get(c, 0));
    }
}

#[test]
fn crop_moves_a_marked_pixel_and_flip_mirrors_it() {
    let mut img = vec![0u8; 3072];
    img[2 * 1024 + 7 * 32 + 3] = 250; // blue, row 7, column 3
    let t = NormTable::<f64>::new();
    let find = |p: AugParams| {
        let mut out = vec![0f64; 3072];
        t.augment_image(&img, p, &mut out);
        let hits: Vec<usize> = (0..3072).filter(|&i| out[i] == t.get(2, 250)).collect();
        assert_eq!(hits.len(), 1, "{p:?}");
        let i = hits[0] - 2 * 1024;
        (i / 32, i % 32)
    };
    // Output (y, x) shows source (y + top - 4, x + left - 4) (mirrored: x -> 31 - x afterwards).
    assert_eq!(find(AugParams { top: 4, left: 4, flip: false, cutout: None }), (7, 3));
    assert_eq!(find(AugParams { top: 0, left: 2, flip: false, cutout: None }), (11, 5));
    assert_eq!(find(AugParams { top: 8, left: 7, flip: false, cutout: None }), (3, 0));
    assert_eq!(find(AugParams { top: 4, left: 4, flip: true, cutout: None }), (7, 28));
    assert_eq!(find(AugParams { top: 4, left: 6, flip: true, cutout: None }), (7, 30));
    // Shifted out of the crop: everything is the normalised zero.
    let mut out = vec![1f64; 3072];
    t.augment_image(&img, AugParams { top: 0, left: 8, flip: false, cutout: None }, &mut out);
    assert!((0..3).all(|c| out[c * 1024..(c + 1) * 1024].iter().all(|&v| v == t.get(c, 0))));
}

fn same_batches(a: &[darts::data::Batch], b: &[darts::data::Batch]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.labels == y.labels
                && x.images.shape() == y.images.shape()
                && x.images.to_f64_vec() == y.images.to_f64_vec()
        })
}

#[test]
fn search_batches_are_seeded() {
    let d = sample();
    let draw = |seed: u64| {
        let mut s = search_samplers(d.train().len(), 0.5, 16, seed).unwrap();
        let t: Vec<_> = (0..3).map(|_| s.train.next_batch(d.train(), DType::F32)).collect();
        let v: Vec<_> = (0..3).map(|_| s.val.next_batch(d.train(), DType::F32)).collect();
        (t, v)
    };
    let (t1, v1) = draw(7);
    let (t2, v2) = draw(7);
    let (t3, v3) = draw(8);
    assert!(same_batches(&t1, &t2) && same_batches(&v1, &v2));
    assert!(!same_batches(&t1, &t3) && !same_batches(&v1, &v3));
    assert_eq!(t1[0].images.shape(), &[16, 3, 32, 32]);
    assert_eq!(t1[0].images.dtype(), DType::F32);
    // The same images augmented differently under another seed: same plan, different params.
    let plan = BatchPlan { indices: vec![0, 1], aug: Some(vec![AugParams::IDENTITY; 2]) };
    let a = build_batch(d.train(), &plan, DType::F64);
    assert_eq!(a.images.dtype(), DType::F64);
    let e = eval_batches(d.train(), 0..2, 2, DType::F64).next().unwrap();
    assert!(same_batches(&[a], &[e]));
    // Train batches come from the train half, val batches from the val half, with their labels.
    let mut s = search_samplers(2000, 0.5, 64, 1).unwrap();
    for _ in 0..20 {
        let p = s.train.next_plan();
        assert!(p.indices.iter().all(|&i| i < 1000) && p.aug.is_some());
        let p = s.val.next_plan();
        assert!(p.indices.iter().all(|&i| (1000..2000).contains(&i)) && p.aug.is_some());
    }
    let p = s.train.next_plan();
    let b = build_batch(d.train(), &p, DType::F32);
    assert_eq!(b.labels, p.indices.iter().map(|&i| d.train().label(i) as u32).collect::<Vec<_>>());
}

#[test]
fn an_epoch_covers_the_train_half_with_a_partial_last_batch() {
    let mut s = search_samplers(2000, 0.5, 64, 3).unwrap();
    assert_eq!(s.train.batches_per_epoch(), 16);
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    for _ in 0..16 {
        let p = s.train.next_plan();
        sizes.push(p.indices.len());
        seen.extend(p.indices);
    }
    assert_eq!(sizes.iter().sum::<usize>(), 1000);
    assert_eq!(*sizes.last().unwrap(), 1000 - 15 * 64);
    seen.sort();
    assert_eq!(seen, (0..1000).collect::<Vec<_>>());
    assert_eq!(s.train.state().epoch, 0);
    s.train.next_plan();
    assert_eq!(s.train.state().epoch, 1);
}

#[test]
fn samplers_resume_identically() {
    let d = sample();
    for cut in [5, 16, 17] {
        let mut a = search_samplers(2000, 0.5, 64, 42).unwrap();
        for _ in 0..cut {
            a.train.next_plan();
            a.val.next_plan();
        }
        let (ts, vs): (SamplerState, SamplerState) = (a.train.state(), a.val.state());
        // A checkpoint stores plain words; a fresh run (any seed) imports them.
        let (tw, vw) = (ts.to_words(), vs.to_words());
        let mut b = search_samplers(2000, 0.5, 64, 0).unwrap();
        b.train.set_state(&SamplerState::from_words(&tw).unwrap()).unwrap();
        b.val.set_state(&SamplerState::from_words(&vw).unwrap()).unwrap();
        let next = |s: &mut darts::data::SearchSamplers| {
            (0..20)
                .map(|_| (s.train.next_batch(d.train(), DType::F32), s.val.next_batch(d.train(), DType::F32)))
                .unzip::<_, _, Vec<_>, Vec<_>>()
        };
        let (at, av) = next(&mut a);
        let (bt, bv) = next(&mut b);
        assert!(same_batches(&at, &bt) && same_batches(&av, &bv), "cut {cut}");
        assert_eq!(a.train.state(), b.train.state());
    }
}

#[test]
fn background_loader_matches_synchronous_batches() {
    let d = sample();
    let s = search_samplers(2000, 0.5, 64, 9).unwrap();
    let (mut sync_t, mut sync_v) = (s.train.clone(), s.val.clone());
    let mut bg_t = Loader::spawn(d.train().clone(), s.train, DType::F32, 3).unwrap();
    let mut bg_v = Loader::spawn(d.train().clone(), s.val, DType::F64, 2).unwrap();
    for step in 0..20 {
        let (a, b) = (sync_t.next_batch(d.train(), DType::F32), bg_t.next_batch());
        assert!(same_batches(&[a], &[b]), "train step {step}");
        let (a, b) = (sync_v.next_batch(d.train(), DType::F64), bg_v.next_batch());
        assert!(same_batches(&[a], &[b]), "val step {step}");
        assert_eq!(bg_t.state(), sync_t.state());
        assert_eq!(bg_v.state(), sync_v.state());
    }
    // Resuming from a loader's state (not the prefetching thread's) continues identically.
    let mut resumed = EpochSampler::new((0..1000).collect(), 64, true, 0).unwrap();
    resumed.set_state(&bg_t.state()).unwrap();
    let mut bg_r = Loader::spawn(d.train().clone(), resumed, DType::F32, 4).unwrap();
    for _ in 0..3 {
        assert!(same_batches(&[bg_t.next_batch()], &[bg_r.next_batch()]));
    }
    drop(bg_t);
    drop(bg_r);
    // Dropping a loader whose thread is blocked on a full channel returns.
    let l = Loader::spawn(
        d.train().clone(),
        RandomBatchSampler::new((0..10).collect(), 4, 1).unwrap(),
        DType::F32,
        2,
    );
    std::thread::sleep(std::time::Duration::from_millis(10));
    drop(l);
}

#[test]
fn bad_inputs_give_clear_errors() {
    // Missing directory.
    let missing = std::env::temp_dir().join(format!("darts-no-such-dir-{}", std::process::id()));
    let e = Cifar10::open(&missing).unwrap_err();
    assert!(matches!(e, DataError::MissingDir { .. }));
    assert_mentions(&e, &[&missing.display().to_string(), "does not exist", "cifar-10-binary.tar.gz"]);

    // Empty directory: no training files.
    let t = TempDir::new("empty");
    let e = Cifar10::open(&t.0).unwrap_err();
    assert!(matches!(e, DataError::NoTrainingFiles { .. }));
    assert_mentions(
        &e,
        &["no CIFAR-10 training files", &t.0.display().to_string(), "data/cifar-10-batches-bin"],
    );

    // Training files but no test_batch.bin.
    t.write("data_batch_1.bin", &records(3));
    let e = Cifar10::open(&t.0).unwrap_err();
    assert!(matches!(e, DataError::MissingFile { .. }));
    assert_mentions(&e, &["test_batch.bin", "file not found"]);

    // Size not a multiple of 3073.
    let mut bytes = records(2);
    bytes.extend_from_slice(&[1, 2, 3, 4, 5]);
    let bad = t.write("data_batch_2.bin", &bytes);
    t.write("test_batch.bin", &records(1));
    let e = Cifar10::open(&t.0).unwrap_err();
    assert!(matches!(e, DataError::BadSize { size: 6151, remainder: 5, .. }), "{e:?}");
    assert_mentions(&e, &[&bad.display().to_string(), "6151 bytes", "remainder 5", "3073"]);

    // Label 10 in record 1.
    let mut bytes = records(3);
    bytes[RECORD] = 10;
    t.write("data_batch_2.bin", &bytes);
    let e = Cifar10::open(&t.0).unwrap_err();
    assert!(matches!(e, DataError::BadLabel { record: 1, label: 10, .. }), "{e:?}");
    assert_mentions(&e, &["data_batch_2.bin", "record 1", "label 10", "0..9"]);

    // Empty file.
    let empty = t.write("data_batch_2.bin", &[]);
    let e = CifarFile::open(&empty).unwrap_err();
    assert!(matches!(e, DataError::EmptyFile { .. }));
    assert_mentions(&e, &["data_batch_2.bin", "empty"]);
    assert!(Cifar10::open(&t.0).is_err());

    // A valid directory: files sorted by number (10 after 2), any multiple of 3073 accepted.
    t.write("data_batch_2.bin", &records(2));
    t.write("data_batch_10.bin", &records(4));
    t.write("readme.html", b"not data");
    let d = Cifar10::open(&t.0).unwrap();
    assert_eq!(d.train().len(), 3 + 2 + 4);
    let names: Vec<_> = d
        .train()
        .files()
        .iter()
        .map(|f| f.path().file_name().unwrap().to_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["data_batch_1.bin", "data_batch_2.bin", "data_batch_10.bin"]);
    assert_eq!(d.test().len(), 1);

    // Every error is a std::error::Error.
    let boxed: Box<dyn std::error::Error> = Box::new(e);
    assert!(!boxed.to_string().is_empty());
}

#[test]
fn loader_is_fast_enough() {
    // Loading + augmenting one 64-image batch takes well under a millisecond in release; this
    // only guards against pathological slowness (a debug build is much slower).
    let d = sample();
    let mut s = search_samplers(2000, 0.5, 64, 0).unwrap();
    let t0 = std::time::Instant::now();
    for _ in 0..50 {
        let b = s.val.next_batch(d.train(), DType::F32);
        assert_eq!(b.len(), 64);
    }
    let per = t0.elapsed() / 50;
    eprintln!("one augmented 64-image f32 batch: {per:?}");
    assert!(per.as_millis() < 200, "{per:?}");
}
