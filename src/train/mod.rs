//! `darts train`: a genotype's evaluation network trained from scratch on CIFAR-10 with the
//! DARTS evaluation protocol (the reference's `train.py`):
//!
//! ```text
//! data      the whole training set, random crop 32 (pad 4) + flip + cutout 16, normalised;
//!           test accuracy on the test set after every epoch
//! network   NetworkCIFAR(C = 36, 20 cells, auxiliary head), drop path p · epoch / epochs
//! loss      CE(logits) + 0.4 · CE(auxiliary logits)
//! optimiser SGD, momentum 0.9, weight decay 3e-4, gradient norm clipped at 5,
//!           lr = 0.025 · (1 + cos(π · epoch / epochs)) / 2   (cosine to 0 over 600 epochs)
//! batch     96
//! ```
//!
//! Every value is a field of [`TrainConfig`], saved as the run's `config.json`.

pub mod run;
pub mod step;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::tensor::DType;

/// Everything that defines a training run (saved as `config.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Preset the defaults came from (`paper` or `cpu-small`).
    pub preset: String,
    /// The genotype, in the reference's `Genotype(...)` notation.
    pub genotype: String,
    /// Initial channels C.
    pub channels: usize,
    /// Cells.
    pub layers: usize,
    /// Batch size.
    pub batch: usize,
    /// Epochs (the cosine schedule's period).
    pub epochs: usize,
    /// Learning rate at epoch 0.
    pub lr: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// SGD weight decay.
    pub weight_decay: f64,
    /// Gradient-norm clip.
    pub grad_clip: f64,
    /// Cutout side (0: none).
    pub cutout: u8,
    /// Train with the auxiliary head.
    pub auxiliary: bool,
    /// Weight of the auxiliary loss.
    pub auxiliary_weight: f64,
    /// Drop-path probability at the last epoch (scaled by epoch / epochs).
    pub drop_path: f64,
    /// Seed of initialisation, data order, augmentation and drop path.
    pub seed: u64,
    /// `f32` or `f64`.
    pub dtype: String,
    /// CIFAR-10 directory (absolute).
    pub data: PathBuf,
    /// Use only the first N training images (all when absent).
    #[serde(default)]
    pub train_images: Option<usize>,
    /// Evaluate on only the first N test images (all when absent).
    #[serde(default)]
    pub test_images: Option<usize>,
}

impl TrainConfig {
    /// The `paper` preset: the evaluation protocol of DARTS (C = 36, 20 cells, batch 96, 600
    /// epochs, auxiliary 0.4, drop path 0.2, cutout 16).
    pub fn paper(genotype: &str) -> TrainConfig {
        TrainConfig {
            preset: "paper".into(),
            genotype: genotype.into(),
            channels: 36,
            layers: 20,
            batch: 96,
            epochs: 600,
            lr: 0.025,
            momentum: 0.9,
            weight_decay: 3e-4,
            grad_clip: 5.0,
            cutout: 16,
            auxiliary: true,
            auxiliary_weight: 0.4,
            drop_path: 0.2,
            seed: 0,
            dtype: "f32".into(),
            data: PathBuf::new(),
            train_images: None,
            test_images: None,
        }
    }

    /// The `cpu-small` preset: the same protocol on a network a CPU trains in minutes per epoch
    /// (C = 16, 8 cells, batch 64, 20 epochs).
    pub fn cpu_small(genotype: &str) -> TrainConfig {
        TrainConfig {
            preset: "cpu-small".into(),
            channels: 16,
            layers: 8,
            batch: 64,
            epochs: 20,
            ..TrainConfig::paper(genotype)
        }
    }

    /// A preset by name.
    pub fn preset(name: &str, genotype: &str) -> Option<TrainConfig> {
        match name {
            "paper" => Some(TrainConfig::paper(genotype)),
            "cpu-small" => Some(TrainConfig::cpu_small(genotype)),
            _ => None,
        }
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        if self.dtype == "f64" {
            DType::F64
        } else {
            DType::F32
        }
    }
}
