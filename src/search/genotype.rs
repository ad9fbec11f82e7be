//! The discrete cell read off the alphas (the reference `_parse`; FairDARTS' `threshold_sparse`
//! parse, [`parse_threshold`]), and its outputs: `genotype.json`, the reference's Python
//! notation, Graphviz DOT and a self-contained SVG.

use serde::{Deserialize, Serialize};

use crate::model::cell::{EDGES, STEPS};
use crate::model::fair::FAIR_PRIMITIVES;
use crate::model::PRIMITIVES;

/// Index of `none` in [`PRIMITIVES`].
const NONE: usize = 0;

/// Two (op, input) pairs per intermediate node, for normal and reduction cells; or, for
/// FairDARTS' sparse cells, any number of genes per node, each with its destination node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genotype {
    /// Normal cell: (op name, input state index) in node order, two per node (sparse: the
    /// genes of `normal_nodes`).
    pub normal: Vec<(String, usize)>,
    /// Nodes concatenated as the normal cell's output.
    pub normal_concat: Vec<usize>,
    /// Reduction cell.
    pub reduce: Vec<(String, usize)>,
    /// Nodes concatenated as the reduction cell's output.
    pub reduce_concat: Vec<usize>,
    /// Sparse genotypes only: the destination state (2..6) of each normal gene, in node order;
    /// empty (and absent from the JSON) for two genes per node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub normal_nodes: Vec<usize>,
    /// Sparse genotypes only: the destination state of each reduce gene.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reduce_nodes: Vec<usize>,
    /// A sparse genotype (FairDARTS): genes are (op, node, input) triples in the Python notation.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sparse: bool,
}

/// A gene with its destination: (op name, destination state 2..6, input state).
pub type Triple = (String, usize, usize);

/// FairDARTS' `threshold_sparse` parse of one cell from its weights σ(α) `[14][7]` (columns in
/// [`FAIR_PRIMITIVES`] order): for node i, the two incoming edges whose strongest weight is
/// largest (ties: the lower input), as DARTS; each kept only if that weight is ≥ `threshold`,
/// with its argmax op (ties: the lower op), as the triple (op, i + 2, input). A node may so keep
/// two, one or no inputs.
pub fn parse_threshold(w: &[[f64; 7]], threshold: f64) -> Vec<Triple> {
    assert_eq!(w.len(), EDGES, "parse_threshold: {} edges, expected {EDGES}", w.len());
    let best_op = |row: &[f64; 7]| argmax_except(row, None);
    top_two_inputs(w, |row| row[best_op(row)])
        .into_iter()
        .filter_map(|(node, j, e)| {
            let k = best_op(&w[e]);
            (w[e][k] >= threshold).then(|| (FAIR_PRIMITIVES[k].to_string(), node + 2, j))
        })
        .collect()
}

/// The index of the largest value of `row` other than `skip` (ties: the lower index).
fn argmax_except(row: &[f64], skip: Option<usize>) -> usize {
    let mut best: Option<usize> = None;
    for (k, &v) in row.iter().enumerate() {
        if Some(k) != skip && best.map_or(true, |b| v > row[b]) {
            best = Some(k);
        }
    }
    best.expect("a row with a value besides the skipped one")
}

/// DARTS' edge choice: for each node i (in order), its two incoming edges whose `strength` is
/// largest (a stable sort: ties keep the lower input first), as (node, input, edge row).
fn top_two_inputs<R>(w: &[R], strength: impl Fn(&R) -> f64) -> Vec<(usize, usize, usize)> {
    let mut out = Vec::with_capacity(2 * STEPS);
    let mut start = 0;
    for i in 0..STEPS {
        let n = i + 2;
        let mut inputs: Vec<usize> = (0..n).collect();
        inputs.sort_by(|&a, &b| strength(&w[start + b]).total_cmp(&strength(&w[start + a])));
        out.extend(inputs[..2].iter().map(|&j| (i, j, start + j)));
        start += n;
    }
    out
}

/// Row-wise sigmoid of `[14, 7]` alpha logits: FairDARTS' weights σ(α).
pub fn sigmoid_rows(alpha: &[f64]) -> Vec<[f64; 7]> {
    assert_eq!(alpha.len(), EDGES * 7, "sigmoid_rows: {} values, expected [{EDGES}, 7]", alpha.len());
    alpha.chunks_exact(7).map(|r| std::array::from_fn(|k| 1.0 / (1.0 + (-r[k]).exp()))).collect()
}

/// One cell's genes from its softmax weights `[14][8]`: for node i, the two incoming edges
/// whose strongest non-`none` weight is largest (ties: the lower input index), each with its
/// argmax op excluding `none` (ties: the lower op index).
pub fn parse_cell(w: &[[f64; 8]]) -> Vec<(String, usize)> {
    assert_eq!(w.len(), EDGES, "parse_cell: {} edges, expected {EDGES}", w.len());
    let best_op = |row: &[f64; 8]| argmax_except(row, Some(NONE));
    top_two_inputs(w, |row| row[best_op(row)])
        .into_iter()
        .map(|(_, j, e)| (PRIMITIVES[best_op(&w[e])].to_string(), j))
        .collect()
}

/// Row-wise softmax of `[14, 8]` alpha logits.
pub fn softmax_rows(alpha: &[f64]) -> Vec<[f64; 8]> {
    alpha
        .chunks_exact(8)
        .map(|r| {
            let m = r.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = r.iter().map(|v| (v - m).exp()).collect();
            let s: f64 = e.iter().sum();
            std::array::from_fn(|k| e[k] / s)
        })
        .collect()
}

impl Genotype {
    /// The genotype of alpha logits (normal and reduce, `[14, 8]` each, row-major).
    pub fn from_alphas(normal: &[f64], reduce: &[f64]) -> Genotype {
        let concat: Vec<usize> = (2..2 + STEPS).collect();
        Genotype {
            normal: parse_cell(&softmax_rows(normal)),
            normal_concat: concat.clone(),
            reduce: parse_cell(&softmax_rows(reduce)),
            reduce_concat: concat,
            ..Default::default()
        }
    }

    /// FairDARTS' genotype of alpha logits (normal and reduce, `[14, 7]` each, row-major):
    /// [`parse_threshold`] of σ(α) at `threshold` (0.85 in the reference,
    /// `crate::model::fair::THRESHOLD`). Always sparse.
    pub fn from_alphas_sparse(normal: &[f64], reduce: &[f64], threshold: f64) -> Genotype {
        let concat: Vec<usize> = (2..2 + STEPS).collect();
        let split = |t: Vec<Triple>| -> (Vec<(String, usize)>, Vec<usize>) {
            t.into_iter().map(|(op, node, j)| ((op, j), node)).unzip()
        };
        let (normal, normal_nodes) = split(parse_threshold(&sigmoid_rows(normal), threshold));
        let (reduce, reduce_nodes) = split(parse_threshold(&sigmoid_rows(reduce), threshold));
        Genotype {
            normal,
            normal_concat: concat.clone(),
            reduce,
            reduce_concat: concat,
            normal_nodes,
            reduce_nodes,
            sparse: true,
        }
    }

    /// A cell's genes as (op, destination state, input) triples (`reduce`: the reduction
    /// cell); a dense genotype's destinations are 2 + gene / 2.
    pub fn triples(&self, reduce: bool) -> Vec<Triple> {
        let (genes, nodes) =
            if reduce { (&self.reduce, &self.reduce_nodes) } else { (&self.normal, &self.normal_nodes) };
        genes
            .iter()
            .enumerate()
            .map(|(g, (op, j))| (op.clone(), if self.sparse { nodes[g] } else { 2 + g / 2 }, *j))
            .collect()
    }

    /// `genotype.json`: `{"normal": [["sep_conv_3x3", 0], ...], "normal_concat": [2, 3, 4, 5], ...}`.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("genotype serialises")
    }

    /// The reference implementation's Python notation (sparse: FairDARTS' (op, node, input)
    /// triples).
    pub fn to_python(&self) -> String {
        let genes = |reduce: bool| {
            let t = self.triples(reduce);
            let one = |(op, node, j): &Triple| match self.sparse {
                true => format!("('{op}', {node}, {j})"),
                false => format!("('{op}', {j})"),
            };
            t.iter().map(one).collect::<Vec<_>>().join(", ")
        };
        let range = |c: &[usize]| format!("range({}, {})", c[0], c[c.len() - 1] + 1);
        format!(
            "Genotype(normal=[{}], normal_concat={}, reduce=[{}], reduce_concat={})",
            genes(false),
            range(&self.normal_concat),
            genes(true),
            range(&self.reduce_concat)
        )
    }
}

fn state_name(j: usize) -> String {
    match j {
        0 => "c_{k-2}".into(),
        1 => "c_{k-1}".into(),
        n => (n - 2).to_string(),
    }
}

/// Dense genes (two per node, in node order) as triples.
fn dense(genes: &[(String, usize)]) -> Vec<Triple> {
    genes.iter().enumerate().map(|(g, (op, j))| (op.clone(), 2 + g / 2, *j)).collect()
}

/// A Graphviz DOT drawing of one cell (inputs, the four nodes, the output).
pub fn to_dot(genes: &[(String, usize)], title: &str) -> String {
    to_dot_triples(&dense(genes), title)
}

/// [`to_dot`] of (op, node, input) genes ([`Genotype::triples`]): a node without inputs
/// (FairDARTS' sparse cells) is drawn grey and dashed, labelled "(no input)".
pub fn to_dot_triples(genes: &[Triple], title: &str) -> String {
    let mut s = format!("digraph \"{title}\" {{\n  rankdir=LR;\n  node [shape=box, style=filled];\n");
    s.push_str("  \"c_{k-2}\" [fillcolor=darkseagreen2];\n  \"c_{k-1}\" [fillcolor=darkseagreen2];\n");
    for i in 0..STEPS {
        if isolated(genes, i) {
            s.push_str(&format!(
                "  \"{i}\" [fillcolor=lightgrey, style=\"filled,dashed\", label=\"{i}\\n(no input)\"];\n"
            ));
        } else {
            s.push_str(&format!("  \"{i}\" [fillcolor=lightblue];\n"));
        }
    }
    s.push_str("  \"c_{k}\" [fillcolor=palegoldenrod];\n");
    for (op, node, j) in genes {
        s.push_str(&format!("  \"{}\" -> \"{}\" [label=\"{op}\"];\n", state_name(*j), node - 2));
    }
    for i in 0..STEPS {
        s.push_str(&format!("  \"{i}\" -> \"c_{{k}}\";\n"));
    }
    s.push_str("}\n");
    s
}

/// Whether intermediate node `i` (state i + 2) has no incoming gene.
fn isolated(genes: &[Triple], i: usize) -> bool {
    genes.iter().all(|(_, node, _)| *node != i + 2)
}

/// A self-contained SVG of one cell (no Graphviz needed): inputs on the left, nodes in the
/// middle column, the output on the right, edges labelled with their op.
pub fn to_svg(genes: &[(String, usize)], title: &str) -> String {
    to_svg_triples(&dense(genes), title)
}

/// [`to_svg`] of (op, node, input) genes: a node without inputs is drawn grey with a dashed
/// border and "(no input)" under it.
pub fn to_svg_triples(genes: &[Triple], title: &str) -> String {
    let (w, h) = (760.0, 520.0);
    let pos = |j: usize| -> (f64, f64) {
        match j {
            0 => (70.0, 170.0),
            1 => (70.0, 350.0),
            n => (300.0 + 90.0 * ((n - 2) % 2) as f64, 80.0 + 110.0 * (n - 2) as f64),
        }
    };
    let out = (680.0, 260.0);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"13\">\n\
         <defs><marker id=\"a\" markerWidth=\"10\" markerHeight=\"7\" refX=\"10\" refY=\"3.5\" orient=\"auto\">\
         <polygon points=\"0 0, 10 3.5, 0 7\"/></marker></defs>\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"10\" y=\"22\" font-size=\"16\">{title}</text>\n"
    );
    let line = |s: &mut String, a: (f64, f64), b: (f64, f64), label: &str| {
        // Stop the arrow at the box edge (boxes are 70 wide, 30 tall).
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let len = (dx * dx + dy * dy).sqrt().max(1.0);
        let t = (36.0 / len).min(0.45);
        let (ex, ey) = (b.0 - dx * t, b.1 - dy * t);
        s.push_str(&format!(
            "<line x1=\"{:.0}\" y1=\"{:.0}\" x2=\"{ex:.0}\" y2=\"{ey:.0}\" stroke=\"#555\" marker-end=\"url(#a)\"/>\n",
            a.0, a.1
        ));
        if !label.is_empty() {
            let (mx, my) = (a.0 + dx * 0.55, a.1 + dy * 0.55 - 4.0);
            s.push_str(&format!(
                "<text x=\"{mx:.0}\" y=\"{my:.0}\" text-anchor=\"middle\" fill=\"#a33\">{label}</text>\n"
            ));
        }
    };
    for (op, node, j) in genes {
        line(&mut s, pos(*j), pos(*node), op);
    }
    for i in 0..STEPS {
        line(&mut s, pos(i + 2), out, "");
    }
    let boxed = |s: &mut String, p: (f64, f64), text: &str, fill: &str| {
        s.push_str(&format!(
            "<rect x=\"{:.0}\" y=\"{:.0}\" width=\"70\" height=\"30\" rx=\"4\" fill=\"{fill}\" stroke=\"#333\"/>\
             <text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"middle\">{text}</text>\n",
            p.0 - 35.0,
            p.1 - 15.0,
            p.0,
            p.1 + 5.0
        ));
    };
    boxed(&mut s, pos(0), "c_{k-2}", "#c1e1c1");
    boxed(&mut s, pos(1), "c_{k-1}", "#c1e1c1");
    for i in 0..STEPS {
        if isolated(genes, i) {
            let p = pos(i + 2);
            boxed(&mut s, p, &i.to_string(), "#dddddd");
            s.push_str(&format!(
                "<rect x=\"{:.0}\" y=\"{:.0}\" width=\"70\" height=\"30\" rx=\"4\" fill=\"none\" stroke=\"#fff\" stroke-dasharray=\"4 3\"/>\n\
                 <text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"middle\" font-size=\"11\" fill=\"#666\">(no input)</text>\n",
                p.0 - 35.0,
                p.1 - 15.0,
                p.0,
                p.1 + 28.0
            ));
        } else {
            boxed(&mut s, pos(i + 2), &i.to_string(), "#add8e6");
        }
    }
    boxed(&mut s, out, "c_{k}", "#eee8aa");
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-made weights: node 0 prefers input 1 (sep_conv_5x5) over input 0 (max_pool);
    /// node 1 has `none` strongest everywhere but must pick by non-none strength; node 2 has a
    /// tie between inputs 0 and 3 (lower index wins) and a tie between ops (lower op wins).
    #[test]
    fn parse_follows_the_reference_rules() {
        let mut w = vec![[0.1f64; 8]; EDGES];
        // node 0: edges 0 (from 0), 1 (from 1)
        w[0][1] = 0.5; // max_pool
        w[1][5] = 0.6; // sep_conv_5x5
                       // node 1: edges 2, 3, 4 (from 0, 1, 2); none dominant, then dil_conv_3x3 on input 2,
                       // skip_connect on input 0.
        for row in &mut w[2..5] {
            row[0] = 0.9;
        }
        w[4][6] = 0.3;
        w[2][3] = 0.2;
        // node 2: edges 5..9 (inputs 0..3): inputs 0 and 3 tie at 0.4; input 3's tie is
        // avg_pool (2) vs sep_conv_3x3 (4): the lower op index wins.
        w[5][7] = 0.4;
        w[8][2] = 0.4;
        w[8][4] = 0.4;
        // node 3: edges 9..14 (inputs 0..4): input 4 strongest, then input 2.
        w[13][4] = 0.8;
        w[11][3] = 0.7;
        let g = parse_cell(&w);
        assert_eq!(
            g,
            vec![
                ("sep_conv_5x5".to_string(), 1),
                ("max_pool_3x3".to_string(), 0),
                ("dil_conv_3x3".to_string(), 2),
                ("skip_connect".to_string(), 0),
                ("dil_conv_5x5".to_string(), 0),
                ("avg_pool_3x3".to_string(), 3),
                ("sep_conv_3x3".to_string(), 4),
                ("skip_connect".to_string(), 2),
            ]
        );
    }

    /// FairDARTS' threshold rule on hand-made σ(α): node 0 keeps both inputs, node 1 keeps only
    /// its strongest (the second is below 0.85), node 2 keeps none (an isolated node), node 3
    /// keeps its two strongest of five (ties between ops: the lower op).
    fn fair_weights() -> Vec<[f64; 7]> {
        let mut w = vec![[0.5f64; 7]; EDGES];
        w[0][3] = 0.9; // node 0, input 0: sep_conv_3x3
        w[1][0] = 0.86; // node 0, input 1: max_pool_3x3
        w[3][6] = 0.95; // node 1, input 1: dil_conv_5x5
        w[4][2] = 0.84; // node 1, input 2: skip_connect, below the threshold
        w[5][1] = 0.8; // node 2: nothing reaches 0.85
        w[8][4] = 0.7;
        w[13][5] = 0.99; // node 3, input 4: dil_conv_3x3
        w[10][2] = 0.87; // node 3, input 1: skip_connect and sep_conv_5x5 tie
        w[10][4] = 0.87;
        w
    }

    #[test]
    fn threshold_parse_keeps_strong_edges_and_can_isolate_a_node() {
        let t = |op: &str, node, j| (op.to_string(), node, j);
        assert_eq!(
            parse_threshold(&fair_weights(), 0.85),
            vec![
                t("sep_conv_3x3", 2, 0),
                t("max_pool_3x3", 2, 1),
                t("dil_conv_5x5", 3, 1),
                t("dil_conv_3x3", 5, 4),
                t("skip_connect", 5, 1),
            ]
        );
        // At threshold 0 it is DARTS' parse over the seven ops; a weight at the threshold stays.
        assert_eq!(parse_threshold(&fair_weights(), 0.0).len(), 8);
        let mut w = fair_weights();
        w[1][0] = 0.85;
        assert_eq!(parse_threshold(&w, 0.85)[1], t("max_pool_3x3", 2, 1));
    }

    #[test]
    fn sparse_genotype_outputs_and_validation() {
        let logit = |p: f64| (p / (1.0 - p)).ln();
        let alpha: Vec<f64> = fair_weights().iter().flatten().map(|&p| logit(p)).collect();
        let g = Genotype::from_alphas_sparse(&alpha, &alpha, 0.85);
        assert!(g.sparse && g.normal_nodes == vec![2, 2, 3, 5, 5]);
        assert_eq!(g.normal[3], ("dil_conv_3x3".to_string(), 4));
        assert!(g.to_python().starts_with(
            "Genotype(normal=[('sep_conv_3x3', 2, 0), ('max_pool_3x3', 2, 1), ('dil_conv_5x5', 3, 1), "
        ));
        assert!(g.to_python().contains("normal_concat=range(2, 6)"));
        // The JSON round-trips with the destinations; the validation accepts it, training does not.
        let back: Genotype = serde_json::from_str(&g.to_json()).unwrap();
        assert_eq!(back, g);
        g.validate().unwrap();
        // It trains as FairDARTS' DCOCell: node 1 has one input, the isolated node 2 is left out.
        g.validate_trainable().unwrap();
        assert_eq!(crate::search::genotypes::dco_nodes(&g.normal_nodes), [2, 3, 5]);
        // A node whose only input is the isolated node cannot be computed; nor can an empty cell.
        let mut dead = g.clone();
        dead.normal.truncate(3);
        dead.normal_nodes.truncate(3);
        dead.normal.push(("sep_conv_3x3".into(), 4));
        dead.normal_nodes.push(5);
        dead.validate().unwrap();
        let e = dead.validate_trainable().unwrap_err();
        assert_eq!(e, crate::search::genotypes::GenotypeError::NodeWithoutInput { cell: "normal", node: 3 });
        assert!(e.to_string().contains("cannot be trained"), "{e}");
        let empty = Genotype::from_alphas_sparse(&alpha, &vec![0.0; EDGES * 7], 0.85);
        let e = empty.validate_trainable().unwrap_err();
        assert_eq!(e, crate::search::genotypes::GenotypeError::EmptyCell { cell: "reduce" });
        // The isolated node 2 is drawn as such, and has no incoming edge.
        let dot = to_dot_triples(&g.triples(false), "normal");
        assert!(dot.contains("\"2\" [fillcolor=lightgrey, style=\"filled,dashed\""), "{dot}");
        assert!(!dot.contains("-> \"2\""), "{dot}");
        assert!(dot.contains("\"2\" -> \"3\" [label=\"dil_conv_3x3\"]"), "{dot}");
        let svg = to_svg_triples(&g.triples(false), "normal");
        assert_eq!(svg.matches("(no input)").count(), 1);
        // A sparse genotype with two inputs per node.
        let full: Vec<f64> = vec![logit(0.9); EDGES * 7];
        let two = Genotype::from_alphas_sparse(&full, &full, 0.85);
        two.validate_trainable().unwrap();
        assert_eq!(two.triples(true), Genotype::from_alphas_sparse(&full, &full, 0.0).triples(true));
    }

    #[test]
    fn dense_json_has_no_sparse_fields() {
        let w = vec![0.0f64; 8 * EDGES];
        let json = Genotype::from_alphas(&w, &w).to_json();
        assert!(!json.contains("nodes") && !json.contains("sparse"), "{json}");
        let g: Genotype = serde_json::from_str(&json).unwrap();
        assert!(!g.sparse && g.normal_nodes.is_empty());
        assert_eq!(g.to_json(), json);
    }

    #[test]
    fn python_notation_and_json_shapes() {
        let w = vec![[0.0f64; 8 * EDGES]; 1].concat();
        let g = Genotype::from_alphas(&w, &w);
        // All-equal weights: every node takes inputs 0 and 1 with max_pool_3x3 (first non-none).
        assert!(g.to_python().starts_with("Genotype(normal=[('max_pool_3x3', 0), ('max_pool_3x3', 1), "));
        assert!(g.to_python().contains("normal_concat=range(2, 6)"));
        let v: serde_json::Value = serde_json::from_str(&g.to_json()).unwrap();
        assert_eq!(v["normal"][0], serde_json::json!(["max_pool_3x3", 0]));
        assert_eq!(v["reduce_concat"], serde_json::json!([2, 3, 4, 5]));
        assert!(to_dot(&g.normal, "normal").contains("\"c_{k-2}\" -> \"0\" [label=\"max_pool_3x3\"]"));
        assert!(to_svg(&g.normal, "normal").starts_with("<svg"));
    }

    /// FairDARTS' triples read back from their Python notation (with an isolated node, a node
    /// of one input, and an empty cell) equal the genotype; pairs and triples do not mix.
    #[test]
    fn sparse_python_notation_round_trips() {
        let mut w = vec![[0.5f64; 7]; EDGES];
        w[0][2] = 0.9; // node 0 from input 0: skip_connect
        w[1][3] = 0.95; // node 0 from input 1: sep_conv_3x3
        w[3][6] = 0.86; // node 1 from input 1: dil_conv_5x5 (its other input stays below 0.85)
        let logit = |p: f64| (p / (1.0 - p)).ln();
        let normal: Vec<f64> = w.iter().flatten().map(|&p| logit(p)).collect();
        let reduce = vec![0.0; EDGES * 7];
        let g = Genotype::from_alphas_sparse(&normal, &reduce, 0.85);
        assert_eq!(g.normal_nodes, [2, 2, 3]);
        assert!(g.reduce.is_empty());
        let back = Genotype::parse(&g.to_python()).unwrap();
        assert_eq!(back, g, "{}", g.to_python());
        let mixed =
            "Genotype(normal=[('skip_connect', 2, 0), ('sep_conv_3x3', 1)], normal_concat=range(2, 6), \
                     reduce=[], reduce_concat=range(2, 6))";
        assert!(Genotype::parse(mixed).unwrap_err().to_string().contains("mixes (op, input) pairs and"));
    }
}
