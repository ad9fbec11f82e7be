//! Helpers shared by the evaluation-network tests.
#![allow(dead_code)]

use darts::nn::Store;
use darts::rng::Rng;
use darts::search::genotype::Genotype;
use darts::Tensor;

/// The deterministic initialisation `scripts/eval_torch.py` also draws (see its docstring): for
/// each parameter in sorted name order, row-major from `Rng::new(seed)`: tensors of two or more
/// dims U(±1/√fan_in), 1-D `*.weight` (BN γ) U(0.5, 1.5), other 1-D U(−0.1, 0.1).
pub fn shared_init(store: &mut Store, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut order: Vec<usize> = (0..store.params.len()).collect();
    order.sort_by(|&a, &b| store.params[a].name.cmp(&store.params[b].name));
    for i in order {
        let p = &mut store.params[i];
        let shape = p.value.shape().to_vec();
        let n = p.value.numel();
        let (lo, hi) = if shape.len() >= 2 {
            let b = 1.0 / ((n / shape[0]) as f64).sqrt();
            (-b, b)
        } else if p.name.ends_with(".weight") {
            (0.5, 1.5)
        } else {
            (-0.1, 0.1)
        };
        p.value =
            Tensor::from_f64(&shape, &rng.uniforms(n, lo, hi), store.dtype).to_device(&p.value.device());
    }
}

/// Images `[n, 3, hw, hw]` U(−1, 1) from `Rng::new(seed)`, row-major (the fixture's input).
pub fn images(seed: u64, n: usize, hw: usize, dtype: darts::DType) -> Tensor {
    let len = n * 3 * hw * hw;
    Tensor::from_f64(&[n, 3, hw, hw], &Rng::new(seed).uniforms(len, -1.0, 1.0), dtype)
}

/// A genotype with every op (`ALL_OPS` of `scripts/eval_torch.py`): a `none`, a stride-2 `skip_connect` (FactorizedReduce) and a
/// reduction cell concatenating three nodes.
pub fn all_ops() -> Genotype {
    let g = |v: &[(&str, usize)]| v.iter().map(|&(o, j)| (o.to_string(), j)).collect();
    Genotype {
        normal: g(&[
            ("sep_conv_3x3", 0),
            ("dil_conv_5x5", 1),
            ("avg_pool_3x3", 0),
            ("skip_connect", 2),
            ("sep_conv_5x5", 3),
            ("max_pool_3x3", 1),
            ("dil_conv_3x3", 4),
            ("none", 2),
        ]),
        normal_concat: vec![2, 3, 4, 5],
        reduce: g(&[
            ("skip_connect", 0),
            ("sep_conv_5x5", 1),
            ("avg_pool_3x3", 1),
            ("dil_conv_3x3", 2),
            ("max_pool_3x3", 0),
            ("sep_conv_3x3", 3),
            ("dil_conv_5x5", 1),
            ("skip_connect", 4),
        ]),
        reduce_concat: vec![3, 4, 5],
        ..Default::default()
    }
}

/// A sparse FairDARTS genotype (`FAIR_SPARSE` of `scripts/eval_torch.py`), built as FairDARTS'
/// DCOCell: normal node 2 of two inputs, node 3 of one, node 4 isolated, node 5 reading node 3
/// and the isolated node 4; the reduction cell keeps nodes 2 and 4 (a stride-2 skip_connect).
pub fn fair_sparse() -> Genotype {
    Genotype::parse(
        "FAIR_SPARSE = Genotype(normal=[('sep_conv_3x3', 2, 0), ('skip_connect', 2, 1), \
         ('dil_conv_3x3', 3, 2), ('max_pool_3x3', 5, 3), ('sep_conv_5x5', 5, 4)], \
         normal_concat=range(2, 6), reduce=[('skip_connect', 2, 0), ('avg_pool_3x3', 2, 1), \
         ('dil_conv_5x5', 4, 2), ('max_pool_3x3', 4, 1)], reduce_concat=range(2, 6))",
    )
    .expect("FAIR_SPARSE parses")
}
