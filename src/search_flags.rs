//! `darts search`'s optimisation flags (the reference `train_search.py`'s hyperparameters), and
//! the rule for flags given with `--resume`: a resumed run keeps the values its config.json
//! recorded, and a flag that asks for another value is refused rather than silently ignored.

use darts::search::run::SearchConfig;

/// The search's optimisation hyperparameters; each overrides the preset's value.
#[derive(clap::Args, Debug)]
pub struct HyperArgs {
    /// Learning rate of the weights (SGD) at epoch 0, annealed by a cosine to --lr-min over the
    /// epochs [default: 0.025].
    #[arg(long, value_name = "LR", allow_negative_numbers = true)]
    pub lr: Option<f64>,
    /// Floor of the weights' cosine learning-rate schedule [default: 0.001].
    #[arg(long, value_name = "LR", allow_negative_numbers = true)]
    pub lr_min: Option<f64>,
    /// SGD momentum of the weights, in [0, 1) [default: 0.9].
    #[arg(long, allow_negative_numbers = true)]
    pub momentum: Option<f64>,
    /// SGD weight decay of the weights (L2 added to the gradient) [default: 3e-4].
    #[arg(long, value_name = "WD", allow_negative_numbers = true)]
    pub weight_decay: Option<f64>,
    /// Largest L2 norm of all weight gradients together; above it they are scaled down
    /// [default: 5].
    #[arg(long, value_name = "NORM", allow_negative_numbers = true)]
    pub grad_clip: Option<f64>,
    /// Adam learning rate of the architecture parameters (alphas); 0 freezes them
    /// [default: 3e-4].
    #[arg(long, value_name = "LR", allow_negative_numbers = true)]
    pub arch_lr: Option<f64>,
    /// Adam weight decay of the alphas (L2 added to the gradient) [default: 1e-3].
    #[arg(long, value_name = "WD", allow_negative_numbers = true)]
    pub arch_weight_decay: Option<f64>,
    /// Adam betas of the alphas, as B1,B2, each in [0, 1) [default: 0.5,0.999].
    #[arg(long, value_name = "B1,B2", value_delimiter = ',', allow_negative_numbers = true)]
    pub arch_betas: Option<Vec<f64>>,
    /// Cutout (a zeroed N x N square, at most 32) on the weight-training batches, as
    /// RobustDARTS' DP variant regularises the search; 0 for none. The alphas' batches never get
    /// cutout [default: 0].
    #[arg(long, value_name = "N")]
    pub cutout: Option<usize>,
    /// Write a step line to log.jsonl for the first step of each epoch and every N-th after it
    /// (epoch lines are always written) [default: 1, every step].
    #[arg(long, value_name = "N")]
    pub report_freq: Option<usize>,
}

impl HyperArgs {
    /// Sets the fields of the flags given. Values are checked by [`SearchConfig::validate`];
    /// only the shape of `--arch-betas` is checked here.
    pub fn apply(&self, cfg: &mut SearchConfig) -> Result<(), String> {
        let set = |field: &mut f64, v: Option<f64>| *field = v.unwrap_or(*field);
        set(&mut cfg.lr_max, self.lr);
        set(&mut cfg.lr_min, self.lr_min);
        set(&mut cfg.momentum, self.momentum);
        set(&mut cfg.weight_decay, self.weight_decay);
        set(&mut cfg.grad_clip, self.grad_clip);
        set(&mut cfg.arch_lr, self.arch_lr);
        set(&mut cfg.arch_weight_decay, self.arch_weight_decay);
        if let Some(b) = &self.arch_betas {
            let [b1, b2] = b[..] else {
                return Err(format!(
                    "--arch-betas takes two numbers B1,B2 (e.g. 0.5,0.999), got {}",
                    b.len()
                ));
            };
            cfg.arch_betas = (b1, b2);
        }
        cfg.cutout = self.cutout.unwrap_or(cfg.cutout);
        cfg.report_freq = self.report_freq.unwrap_or(cfg.report_freq);
        Ok(())
    }
}

/// With `--resume`: `wanted` is the run's recorded config with the flags given applied. Any
/// field they changed is refused, naming the flag, both values and what to do instead.
pub fn check_resume(recorded: &SearchConfig, wanted: &SearchConfig) -> Result<(), String> {
    let (r, w) = (recorded, wanted);
    let pairs: [(&str, String, String); 18] = [
        ("--preset", r.preset.clone(), w.preset.clone()),
        ("--epochs", r.epochs.to_string(), w.epochs.to_string()),
        ("--layers", r.layers.to_string(), w.layers.to_string()),
        ("--channels", r.channels.to_string(), w.channels.to_string()),
        ("--batch", r.batch.to_string(), w.batch.to_string()),
        ("--train-images", images(r.train_images), images(w.train_images)),
        ("--lr", r.lr_max.to_string(), w.lr_max.to_string()),
        ("--lr-min", r.lr_min.to_string(), w.lr_min.to_string()),
        ("--momentum", r.momentum.to_string(), w.momentum.to_string()),
        ("--weight-decay", r.weight_decay.to_string(), w.weight_decay.to_string()),
        ("--grad-clip", r.grad_clip.to_string(), w.grad_clip.to_string()),
        ("--arch-lr", r.arch_lr.to_string(), w.arch_lr.to_string()),
        ("--arch-weight-decay", r.arch_weight_decay.to_string(), w.arch_weight_decay.to_string()),
        ("--arch-betas", betas(r.arch_betas), betas(w.arch_betas)),
        ("--cutout", r.cutout.to_string(), w.cutout.to_string()),
        ("--report-freq", r.report_freq.to_string(), w.report_freq.to_string()),
        ("--hessian-every", r.hessian_every.to_string(), w.hessian_every.to_string()),
        ("--early-stop", r.early_stop.to_string(), w.early_stop.to_string()),
    ];
    let conflicts: Vec<String> = pairs
        .iter()
        .filter(|(_, a, b)| a != b)
        .map(|(flag, a, b)| format!("{flag} {b} (the run has {a})"))
        .collect();
    if conflicts.is_empty() {
        return Ok(());
    }
    Err(format!(
        "--resume continues a run with the settings in its config.json; these flags ask for others: {}. \
         Drop them to resume, or start a new run in another --out directory",
        conflicts.join(", ")
    ))
}

fn images(n: Option<usize>) -> String {
    n.map_or("all".into(), |n| n.to_string())
}

fn betas((b1, b2): (f64, f64)) -> String {
    format!("{b1},{b2}")
}
