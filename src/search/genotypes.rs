//! Genotypes as a user names them: a `genotype.json` (ours), the reference's Python notation
//! (`Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=range(2, 6), ...)`), or a
//! published name (`DARTS_V1`, `DARTS_V2`, `DARTS` = V2, from the reference's `genotypes.py`).
//! Every genotype read here is validated against the search space, and a bad one is an error
//! that names the bad part.

use std::fmt;
use std::path::Path;

use super::genotype::Genotype;
use crate::model::cell::STEPS;
use crate::model::PRIMITIVES;

/// Why a genotype could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GenotypeError {
    /// A name that is not a published genotype.
    UnknownName {
        /// The name given.
        name: String,
    },
    /// An op that is not one of [`PRIMITIVES`].
    UnknownOp {
        /// `normal` or `reduce`.
        cell: &'static str,
        /// Position of the gene in the cell's list.
        gene: usize,
        /// The op name given.
        op: String,
    },
    /// A gene whose input is not a state its node can read (node i reads states 0..i+2).
    InputOutOfRange {
        /// `normal` or `reduce`.
        cell: &'static str,
        /// Position of the gene.
        gene: usize,
        /// The input index given.
        input: usize,
    },
    /// A cell whose gene count is not two per node (odd, or none at all).
    WrongCount {
        /// `normal` or `reduce`.
        cell: &'static str,
        /// How many genes it has.
        count: usize,
    },
    /// A sparse gene whose destination is not an intermediate state (2..6) or comes before the
    /// previous gene's.
    NodeOutOfOrder {
        /// `normal` or `reduce`.
        cell: &'static str,
        /// Position of the gene.
        gene: usize,
        /// The destination given.
        node: usize,
    },
    /// A sparse genotype (FairDARTS) whose node has inputs but none of them exists (each is an
    /// isolated node, or one that itself reads none): FairDARTS' DCOCell cannot compute it.
    NodeWithoutInput {
        /// `normal` or `reduce`.
        cell: &'static str,
        /// The intermediate node (0..4).
        node: usize,
    },
    /// A sparse genotype (FairDARTS) whose cell keeps no edge at all: its output would have no
    /// channels.
    EmptyCell {
        /// `normal` or `reduce`.
        cell: &'static str,
    },
    /// A concat list that is empty or names a state the cell does not have.
    BadConcat {
        /// `normal_concat` or `reduce_concat`.
        field: &'static str,
        /// The list given.
        concat: Vec<usize>,
        /// States of the cell (2 inputs + nodes).
        states: usize,
    },
    /// Text that is neither JSON, the Python notation nor a name, or that does not parse.
    Syntax(String),
    /// A genotype file that could not be read.
    Io {
        /// The file.
        path: String,
        /// The OS error.
        error: String,
    },
}

/// The published genotype names, as [`Genotype::published`] takes them.
pub const PUBLISHED: [&str; 3] = ["DARTS_V1", "DARTS_V2", "DARTS"];

impl fmt::Display for GenotypeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GenotypeError::UnknownName { name } => {
                write!(f, "unknown genotype name {name:?}; known: {}", PUBLISHED.join(", "))
            }
            GenotypeError::UnknownOp { cell, gene, op } => write!(
                f,
                "{cell} gene {gene}: unknown op {op:?}; the primitives are {}",
                PRIMITIVES.join(", ")
            ),
            GenotypeError::InputOutOfRange { cell, gene, input } => write!(
                f,
                "{cell} gene {gene}: input {input} out of range: node {} reads states 0..={}",
                gene / 2,
                gene / 2 + 1
            ),
            GenotypeError::WrongCount { cell, count } => {
                write!(f, "{cell}: {count} genes, expected two per node (an even number, at least 2)")
            }
            GenotypeError::NodeOutOfOrder { cell, gene, node } => write!(
                f,
                "{cell} gene {gene}: destination state {node} out of order or outside 2..={}",
                STEPS + 1
            ),
            GenotypeError::NodeWithoutInput { cell, node } => write!(
                f,
                "{cell} node {node}: none of its inputs exists (each is an isolated node), so this \
                 sparse (FairDARTS) genotype cannot be trained"
            ),
            GenotypeError::EmptyCell { cell } => write!(
                f,
                "the {cell} cell keeps no edge (no weight reached the threshold), so this sparse \
                 (FairDARTS) genotype cannot be trained: search longer or lower the threshold"
            ),
            GenotypeError::BadConcat { field, concat, states } => {
                write!(f, "{field} {concat:?}: must be a non-empty list of states 0..{states}")
            }
            GenotypeError::Syntax(msg) => write!(f, "{msg}"),
            GenotypeError::Io { path, error } => write!(f, "cannot read genotype file {path}: {error}"),
        }
    }
}

impl std::error::Error for GenotypeError {}

fn genes(list: &[(&str, usize)]) -> Vec<(String, usize)> {
    list.iter().map(|&(op, j)| (op.to_string(), j)).collect()
}

impl Genotype {
    /// A published genotype of the reference's `genotypes.py`: `DARTS_V1` (first order),
    /// `DARTS_V2` (second order, the paper's cell) or `DARTS` (= `DARTS_V2`).
    pub fn published(name: &str) -> Result<Genotype, GenotypeError> {
        let concat = vec![2, 3, 4, 5];
        let (normal, reduce) = match name {
            "DARTS_V1" => (
                genes(&[
                    ("sep_conv_3x3", 1),
                    ("sep_conv_3x3", 0),
                    ("skip_connect", 0),
                    ("sep_conv_3x3", 1),
                    ("skip_connect", 0),
                    ("sep_conv_3x3", 1),
                    ("sep_conv_3x3", 0),
                    ("skip_connect", 2),
                ]),
                genes(&[
                    ("max_pool_3x3", 0),
                    ("max_pool_3x3", 1),
                    ("skip_connect", 2),
                    ("max_pool_3x3", 0),
                    ("max_pool_3x3", 0),
                    ("skip_connect", 2),
                    ("skip_connect", 2),
                    ("avg_pool_3x3", 0),
                ]),
            ),
            "DARTS_V2" | "DARTS" => (
                genes(&[
                    ("sep_conv_3x3", 0),
                    ("sep_conv_3x3", 1),
                    ("sep_conv_3x3", 0),
                    ("sep_conv_3x3", 1),
                    ("sep_conv_3x3", 1),
                    ("skip_connect", 0),
                    ("skip_connect", 0),
                    ("dil_conv_3x3", 2),
                ]),
                genes(&[
                    ("max_pool_3x3", 0),
                    ("max_pool_3x3", 1),
                    ("skip_connect", 2),
                    ("max_pool_3x3", 1),
                    ("max_pool_3x3", 0),
                    ("skip_connect", 2),
                    ("skip_connect", 2),
                    ("max_pool_3x3", 1),
                ]),
            ),
            _ => return Err(GenotypeError::UnknownName { name: name.to_string() }),
        };
        Ok(Genotype {
            normal,
            normal_concat: concat.clone(),
            reduce,
            reduce_concat: concat,
            ..Default::default()
        })
    }

    /// A genotype from text: JSON (`genotype.json`), the Python notation, or a published name.
    pub fn parse(text: &str) -> Result<Genotype, GenotypeError> {
        let t = text.trim();
        let g = if t.starts_with('{') {
            serde_json::from_str(t).map_err(|e| GenotypeError::Syntax(format!("genotype JSON: {e}")))?
        } else if t.contains("Genotype(") {
            super::genotype_python::parse(t)?
        } else if !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            Genotype::published(t)?
        } else {
            return Err(GenotypeError::Syntax(format!(
                "not a genotype: {t:?} (expected JSON, Genotype(...) or one of {})",
                PUBLISHED.join(", ")
            )));
        };
        g.validate()?;
        Ok(g)
    }

    /// The genotype `arg` names: a file (JSON or Python notation) if one exists at that path,
    /// else the text itself (a published name or inline notation).
    pub fn from_arg(arg: &str) -> Result<Genotype, GenotypeError> {
        let path = Path::new(arg);
        if path.is_file() {
            let text = std::fs::read_to_string(path)
                .map_err(|e| GenotypeError::Io { path: arg.to_string(), error: e.to_string() })?;
            return Genotype::parse(&text);
        }
        Genotype::parse(arg)
    }

    /// Checks the genotype against the search space: two genes per node, every op one of
    /// [`PRIMITIVES`], node i reading only states 0..i+2 (the cell inputs and earlier nodes),
    /// and each concat list non-empty over existing states.
    ///
    /// A sparse genotype (FairDARTS) instead has one destination per gene, in 2..6 and in node
    /// order, any number of genes per node, and states 0..6.
    pub fn validate(&self) -> Result<(), GenotypeError> {
        for (cell, field, genes, nodes, concat) in [
            ("normal", "normal_concat", &self.normal, &self.normal_nodes, &self.normal_concat),
            ("reduce", "reduce_concat", &self.reduce, &self.reduce_nodes, &self.reduce_concat),
        ] {
            if self.sparse {
                if nodes.len() != genes.len() {
                    return Err(GenotypeError::Syntax(format!(
                        "{cell}: {} genes but {} destination nodes",
                        genes.len(),
                        nodes.len()
                    )));
                }
            } else if !nodes.is_empty() {
                return Err(GenotypeError::Syntax(format!(
                    "{cell}: destination nodes in a genotype not marked sparse"
                )));
            } else if genes.is_empty() || genes.len() % 2 != 0 {
                return Err(GenotypeError::WrongCount { cell, count: genes.len() });
            }
            let mut last = 2;
            for (gene, (op, input)) in genes.iter().enumerate() {
                if !PRIMITIVES.contains(&op.as_str()) {
                    return Err(GenotypeError::UnknownOp { cell, gene, op: op.clone() });
                }
                let node = if self.sparse { nodes[gene] } else { gene / 2 + 2 };
                if self.sparse && !(last..2 + STEPS).contains(&node) {
                    return Err(GenotypeError::NodeOutOfOrder { cell, gene, node });
                }
                last = node;
                if *input >= node && self.sparse {
                    return Err(GenotypeError::Syntax(format!(
                        "{cell} gene {gene}: input {input} out of range: node {} reads states 0..={}",
                        node - 2,
                        node - 1
                    )));
                }
                if *input >= node {
                    return Err(GenotypeError::InputOutOfRange { cell, gene, input: *input });
                }
            }
            let states = if self.sparse { 2 + STEPS } else { 2 + genes.len() / 2 };
            if concat.is_empty() || concat.iter().any(|&s| s >= states) {
                return Err(GenotypeError::BadConcat { field, concat: concat.clone(), states });
            }
        }
        Ok(())
    }

    /// [`Genotype::validate`], and for a sparse genotype (FairDARTS' DCOCell) every node with
    /// inputs reading at least one state that exists (a cell input, or a node that itself has
    /// such an input), and each cell keeping at least one node.
    pub fn validate_trainable(&self) -> Result<(), GenotypeError> {
        self.validate()?;
        if !self.sparse {
            return Ok(());
        }
        for (cell, genes, nodes) in
            [("normal", &self.normal, &self.normal_nodes), ("reduce", &self.reduce, &self.reduce_nodes)]
        {
            if nodes.is_empty() {
                return Err(GenotypeError::EmptyCell { cell });
            }
            let mut exists = [vec![true; 2], vec![false; STEPS]].concat();
            for node in 2..2 + STEPS {
                let mut inputs =
                    genes.iter().zip(nodes).filter(|(_, &d)| d == node).map(|((_, j), _)| *j).peekable();
                if inputs.peek().is_none() {
                    continue;
                }
                if !inputs.any(|j| exists[j]) {
                    return Err(GenotypeError::NodeWithoutInput { cell, node: node - 2 });
                }
                exists[node] = true;
            }
        }
        Ok(())
    }
}

/// The states a sparse cell (FairDARTS' DCOCell) outputs, from its genes' destinations (in
/// node order): each node that has an input, once. Its concat list is not used: the reference
/// concatenates exactly these.
pub fn dco_nodes(nodes: &[usize]) -> Vec<usize> {
    let mut out = nodes.to_vec();
    out.dedup();
    out
}
