//! The search methods one engine runs: DARTS and the successors that change its supernet.
//!
//! - [`Method::Darts`]: softmax(α) over the eight candidates of every edge (Liu et al.).
//! - [`Method::PcDarts`]: partial channels — 1/k of an edge's input channels go through the
//!   mixed op, the rest bypass it — then a channel shuffle with k groups, and per-edge logits β
//!   normalised over each node's incoming edges (Xu et al., `model_search.py` of PC-DARTS).
//! - [`Method::FairDarts`]: sigmoid(α) per op with `none` dropped, α initialised to 0, and the
//!   zero-one loss on the architecture objective (Chu et al., `fairdarts/model_search.py`).

use std::fmt;

/// Partial-channel proportion of PC-DARTS by default (K = 4 in the paper and its code).
pub const PC_K: usize = 4;

/// How a search network mixes its candidates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Method {
    /// DARTS: softmax over all eight candidates.
    #[default]
    Darts,
    /// PC-DARTS with 1/k of the channels through the mixed op.
    PcDarts {
        /// Channel proportion (and shuffle groups).
        k: usize,
    },
    /// FairDARTS: independent sigmoids, no `none`.
    FairDarts,
}

impl Method {
    /// The name `darts search --method` takes and `config.json` records.
    pub fn name(self) -> &'static str {
        match self {
            Method::Darts => "darts",
            Method::PcDarts { .. } => "pc-darts",
            Method::FairDarts => "fair-darts",
        }
    }

    /// The method of a name, with PC-DARTS' proportion `k`; `None` for an unknown name.
    pub fn from_name(name: &str, k: usize) -> Option<Method> {
        match name {
            "darts" => Some(Method::Darts),
            "pc-darts" => Some(Method::PcDarts { k }),
            "fair-darts" => Some(Method::FairDarts),
            _ => None,
        }
    }

    /// The names [`Method::from_name`] accepts.
    pub const NAMES: [&'static str; 3] = ["darts", "pc-darts", "fair-darts"];
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.name())
    }
}
