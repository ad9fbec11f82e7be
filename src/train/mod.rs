//! `darts train`: a genotype's evaluation network trained from scratch with the DARTS evaluation
//! protocol, on CIFAR-10 (the reference's `train.py`):
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
//! or on ImageNet in the mobile setting (`train_imagenet.py`, preset `imagenet`):
//!
//! ```text
//! data      train/<class>/*.JPEG: RandomResizedCrop 224 + flip + ColorJitter(0.4, 0.4, 0.4, 0.2),
//!           normalised; top-1 and top-5 on val/ (resize 256, centre crop 224) after every epoch
//! network   NetworkImageNet(C = 48, 14 cells, auxiliary head), drop path 0
//! loss      CE_smooth(logits) + 0.4 · CE_smooth(auxiliary logits), label smoothing 0.1
//!           (validation loss: plain CE, as the reference's `infer`)
//! optimiser SGD, momentum 0.9, weight decay 3e-5, gradient norm clipped at 5,
//!           lr = 0.1 · 0.97^epoch   (StepLR(1, 0.97) stepped at the start of each epoch, as the
//!           reference runs it under PyTorch 0.3: epoch 0 trains at 0.1)
//! batch     128, 250 epochs
//! ```
//!
//! Every value is a field of [`TrainConfig`], saved as the run's `config.json`.

pub mod data;
pub mod run;
pub mod step;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::data::imagenet::TRAIN_SIZE;
use crate::optim::cosine_lr;
use crate::tensor::DType;

/// The data set a run trains on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dataset {
    /// CIFAR-10 in its binary format (`NetworkCIFAR`, 32×32).
    #[default]
    Cifar10,
    /// An ImageNet-style tree of `train/` and `val/` class folders (`NetworkImageNet`, 224×224).
    Imagenet,
}

impl fmt::Display for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dataset::Cifar10 => "cifar10",
            Dataset::Imagenet => "imagenet",
        })
    }
}

impl FromStr for Dataset {
    type Err = String;

    fn from_str(s: &str) -> Result<Dataset, String> {
        match s {
            "cifar10" => Ok(Dataset::Cifar10),
            "imagenet" => Ok(Dataset::Imagenet),
            _ => Err(format!("unknown dataset {s:?}: expected cifar10 or imagenet")),
        }
    }
}

/// How the learning rate falls over the epochs (constant within an epoch).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// `lr · (1 + cos(π · epoch / epochs)) / 2`: to 0 at the end (CIFAR-10).
    #[default]
    Cosine,
    /// `lr · gamma^epoch` (ImageNet: gamma 0.97).
    Step,
}

impl fmt::Display for LrSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LrSchedule::Cosine => "cosine",
            LrSchedule::Step => "step",
        })
    }
}

impl FromStr for LrSchedule {
    type Err = String;

    fn from_str(s: &str) -> Result<LrSchedule, String> {
        match s {
            "cosine" => Ok(LrSchedule::Cosine),
            "step" => Ok(LrSchedule::Step),
            _ => Err(format!("unknown lr schedule {s:?}: expected cosine or step")),
        }
    }
}

fn default_lr_gamma() -> f64 {
    0.97
}

fn default_image_size() -> usize {
    TRAIN_SIZE
}

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
    /// The data directory (absolute): CIFAR-10 binaries, or the root of `train/` and `val/`.
    pub data: PathBuf,
    /// Use only the first N training images (all when absent; CIFAR-10 only, since an ImageNet
    /// tree lists its images class by class).
    #[serde(default)]
    pub train_images: Option<usize>,
    /// Evaluate on only the first N test (ImageNet: validation) images (all when absent).
    #[serde(default)]
    pub test_images: Option<usize>,
    /// The data set (runs from before this field are CIFAR-10).
    #[serde(default)]
    pub dataset: Dataset,
    /// Label smoothing ε of the training loss (0: plain cross-entropy).
    #[serde(default)]
    pub label_smoothing: f64,
    /// The learning-rate schedule.
    #[serde(default)]
    pub lr_schedule: LrSchedule,
    /// The step schedule's factor per epoch.
    #[serde(default = "default_lr_gamma")]
    pub lr_gamma: f64,
    /// ImageNet crop side (training and validation); only 224 fits `NetworkImageNet`'s 7×7 final
    /// pooling. Unused for CIFAR-10.
    #[serde(default = "default_image_size")]
    pub image_size: usize,
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
            dataset: Dataset::Cifar10,
            label_smoothing: 0.0,
            lr_schedule: LrSchedule::Cosine,
            lr_gamma: default_lr_gamma(),
            image_size: TRAIN_SIZE,
        }
    }

    /// The `imagenet` preset: the reference's ImageNet mobile setting (C = 48, 14 cells, batch
    /// 128, 250 epochs, lr 0.1 × 0.97 per epoch, weight decay 3e-5, label smoothing 0.1,
    /// auxiliary 0.4, no drop path, no cutout, 224×224 crops).
    pub fn imagenet(genotype: &str) -> TrainConfig {
        TrainConfig {
            preset: "imagenet".into(),
            channels: 48,
            layers: 14,
            batch: 128,
            epochs: 250,
            lr: 0.1,
            weight_decay: 3e-5,
            cutout: 0,
            drop_path: 0.0,
            dataset: Dataset::Imagenet,
            label_smoothing: 0.1,
            lr_schedule: LrSchedule::Step,
            lr_gamma: 0.97,
            image_size: TRAIN_SIZE,
            ..TrainConfig::paper(genotype)
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
            "imagenet" => Some(TrainConfig::imagenet(genotype)),
            _ => None,
        }
    }

    /// The learning rate of epoch `epoch`.
    pub fn lr_at(&self, epoch: usize) -> f64 {
        match self.lr_schedule {
            LrSchedule::Cosine => cosine_lr(epoch, self.epochs, self.lr, 0.0),
            LrSchedule::Step => self.lr * self.lr_gamma.powi(epoch as i32),
        }
    }

    /// Checks the values a run needs, with a message naming the flag at fault.
    pub fn validate(&self) -> Result<(), String> {
        if self.epochs == 0 || self.batch == 0 || self.channels == 0 || self.layers < 3 {
            return Err("epochs, batch and channels must be positive and layers at least 3".into());
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return Err(format!("--label-smoothing must be in [0, 1), got {}", self.label_smoothing));
        }
        if !(self.lr_gamma > 0.0 && self.lr_gamma <= 1.0) {
            return Err(format!("--lr-gamma must be in (0, 1], got {}", self.lr_gamma));
        }
        if self.dataset == Dataset::Imagenet {
            if self.image_size != TRAIN_SIZE {
                return Err(format!(
                    "--image-size {}: NetworkImageNet ends in the reference's AvgPool2d(7), which needs the \
                     7×7 maps of {TRAIN_SIZE}×{TRAIN_SIZE} inputs; only {TRAIN_SIZE} is supported",
                    self.image_size
                ));
            }
            if self.channels % 2 != 0 {
                return Err(format!(
                    "--channels {}: NetworkImageNet needs an even C (its stem has C/2)",
                    self.channels
                ));
            }
            if self.cutout != 0 {
                return Err(format!(
                    "--cutout {}: cutout is a CIFAR-10 augmentation; ImageNet training has none (use --cutout 0)",
                    self.cutout
                ));
            }
            if self.train_images.is_some() {
                return Err("--train-images is CIFAR-10 only (an ImageNet tree lists its images class by \
                            class, so the first N would be a few classes)"
                    .into());
            }
        }
        Ok(())
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
