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

/// The search method and the regularisers of DARTS' successors; each overrides the preset's
/// value.
#[derive(clap::Args, Debug)]
pub struct MethodArgs {
    /// Search method: darts; pc-darts (partial channels: 1/--pc-k of each edge's channels go
    /// through the mixed op, then a channel shuffle; per-edge weights β normalised over each
    /// node's inputs; α frozen for the first --arch-warmup epochs); fair-darts (independent
    /// sigmoid weights, no `none` op, α from 0, the zero-one loss, genotype by threshold 0.85).
    /// Each brings its published recipe (batch, learning rates, warm-up) on the preset's
    /// network; the flags below and the optimisation flags override it [default: darts].
    #[arg(long, value_parser = ["darts", "pc-darts", "fair-darts"])]
    pub method: Option<String>,
    /// PC-DARTS: 1/K of each edge's channels go through its candidate ops; must divide
    /// --channels [default: 4].
    #[arg(long, value_name = "K")]
    pub pc_k: Option<usize>,
    /// Epochs at the start with α frozen: the architecture step is skipped (PC-DARTS' warm-up)
    /// [default: 0; pc-darts: 15 of 50 epochs, scaled to the preset's epochs].
    #[arg(long, value_name = "EPOCHS")]
    pub arch_warmup: Option<usize>,
    /// FairDARTS: weight of the zero-one loss −mean((σ(α) − 0.5)²) in the architecture
    /// objective [default: 10].
    #[arg(long, value_name = "W", allow_negative_numbers = true)]
    pub zero_one_weight: Option<f64>,
    /// Scheduled drop path during the search (R-DARTS(DP)): each edge's output is dropped per
    /// sample with a probability growing linearly from 0 at the first epoch to P at the last
    /// [default: 0, off].
    #[arg(long, value_name = "P", allow_negative_numbers = true)]
    pub drop_path: Option<f64>,
    /// DARTS-ADA: when the DARTS-ES rule fires, roll back to the epoch it names, multiply the
    /// weights' weight decay by --ada-factor (up to --ada-max-weight-decay) and go on; at the
    /// cap the rule no longer acts. Needs --hessian-every; excludes --early-stop.
    #[arg(long)]
    pub ada: bool,
    /// DARTS-ADA's weight-decay factor [default: 10].
    #[arg(long, value_name = "F", allow_negative_numbers = true)]
    pub ada_factor: Option<f64>,
    /// DARTS-ADA's weight-decay cap [default: 0.03].
    #[arg(long, value_name = "WD", allow_negative_numbers = true)]
    pub ada_max_weight_decay: Option<f64>,
    /// DARTS-ES/ADA rule: evaluations in the local average of λ_max (odd) [default: 5].
    #[arg(long, value_name = "N")]
    pub es_window: Option<usize>,
    /// DARTS-ES/ADA rule: how many evaluations back the average is compared with [default: 4].
    #[arg(long, value_name = "N")]
    pub es_delta: Option<usize>,
    /// DARTS-ES/ADA rule: the growth ratio of the average that fires it [default: 1.3].
    #[arg(long, value_name = "F", allow_negative_numbers = true)]
    pub es_factor: Option<f64>,
    /// DARTS-ES/ADA rule: the earliest epoch it may roll back to [default: 10].
    #[arg(long, value_name = "EPOCH")]
    pub es_start_epoch: Option<usize>,
}

impl MethodArgs {
    /// Sets the fields of the flags given (not the method: it chooses the preset). A method's
    /// option given to another method is refused, naming both.
    pub fn apply(&self, cfg: &mut SearchConfig) -> Result<(), String> {
        let only = |flag: &str, given: bool, method: &str| -> Result<(), String> {
            if given && cfg.method != method {
                return Err(format!("{flag} is a {method} option; this search's --method is {}", cfg.method));
            }
            Ok(())
        };
        only("--pc-k", self.pc_k.is_some(), "pc-darts")?;
        only("--zero-one-weight", self.zero_one_weight.is_some(), "fair-darts")?;
        if !self.ada && (self.ada_factor.is_some() || self.ada_max_weight_decay.is_some()) {
            return Err("--ada-factor and --ada-max-weight-decay set DARTS-ADA: add --ada".into());
        }
        cfg.pc_k = self.pc_k.unwrap_or(cfg.pc_k);
        cfg.arch_warmup = self.arch_warmup.unwrap_or(cfg.arch_warmup);
        cfg.zero_one_weight = self.zero_one_weight.unwrap_or(cfg.zero_one_weight);
        cfg.drop_path = self.drop_path.unwrap_or(cfg.drop_path);
        cfg.ada |= self.ada;
        cfg.ada_factor = self.ada_factor.unwrap_or(cfg.ada_factor);
        cfg.ada_max_weight_decay = self.ada_max_weight_decay.unwrap_or(cfg.ada_max_weight_decay);
        let es = [
            self.es_window.is_some(),
            self.es_delta.is_some(),
            self.es_factor.is_some(),
            self.es_start_epoch.is_some(),
        ];
        if es.contains(&true) && !(cfg.early_stop || cfg.ada) {
            return Err("--es-window, --es-delta, --es-factor and --es-start-epoch set the rule of --early-stop or --ada: add one".into());
        }
        let r = &mut cfg.es_rule;
        r.window = self.es_window.unwrap_or(r.window);
        r.delta = self.es_delta.unwrap_or(r.delta);
        r.factor = self.es_factor.unwrap_or(r.factor);
        r.start_epoch = self.es_start_epoch.unwrap_or(r.start_epoch);
        Ok(())
    }
}

/// With `--resume`: `wanted` is the run's recorded config with the flags given applied. Any
/// field they changed is refused, naming the flag, both values and what to do instead.
pub fn check_resume(recorded: &SearchConfig, wanted: &SearchConfig) -> Result<(), String> {
    let (r, w) = (recorded, wanted);
    let rule = |r: &SearchConfig| {
        let e = &r.es_rule;
        format!("window {}, delta {}, factor {}, start epoch {}", e.window, e.delta, e.factor, e.start_epoch)
    };
    let pairs: [(&str, String, String); 27] = [
        ("--method", r.method.clone(), w.method.clone()),
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
        ("--pc-k", r.pc_k.to_string(), w.pc_k.to_string()),
        ("--arch-warmup", r.arch_warmup.to_string(), w.arch_warmup.to_string()),
        ("--zero-one-weight", r.zero_one_weight.to_string(), w.zero_one_weight.to_string()),
        ("--drop-path", r.drop_path.to_string(), w.drop_path.to_string()),
        ("--ada", r.ada.to_string(), w.ada.to_string()),
        ("--ada-factor", r.ada_factor.to_string(), w.ada_factor.to_string()),
        ("--ada-max-weight-decay", r.ada_max_weight_decay.to_string(), w.ada_max_weight_decay.to_string()),
        ("--es-*", rule(r), rule(w)),
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
