//! RobustDARTS' λ_max: power iteration over finite-difference Hessian-vector products of α
//! equals the largest eigenvalue of the explicit α-Hessian built column by column from the same
//! products (symmetrised) and diagonalised, on a tiny search network in f64.

use darts::model::{NetConfig, Network};
use darts::rng::Rng;
use darts::search::hessian::{
    dominant_eigenvalue, explicit_hessian, symmetric_eigenvalues, AlphaHessian, HessianOpts,
};
use darts::{DType, Tensor};

#[test]
fn power_iteration_equals_the_largest_eigenvalue_of_the_explicit_hessian() {
    let mut rng = Rng::new(7);
    let (net, mut store) = Network::new(
        NetConfig { channels: 2, layers: 3, classes: 10, ..Default::default() },
        DType::F64,
        &mut rng,
    );
    // α away from their 1e-3 initialisation, so the softmax weights differ and H is not tiny.
    for p in [net.alphas_normal, net.alphas_reduce] {
        let v = &store.params[p.0].value;
        let shape = v.shape().to_vec();
        store.params[p.0].value = Tensor::from_f64(&shape, &rng.normals(v.numel()), DType::F64);
    }
    let x = Tensor::from_f64(&[2, 3, 8, 8], &rng.normals(2 * 3 * 64), DType::F64);
    let labels = [3u32, 8];
    let before: Vec<Vec<f64>> = store.params.iter().map(|p| p.value.to_f64_vec()).collect();
    let opts = HessianOpts { eps: 1e-6, l2: 1e-3, max_iters: 500, tol: 1e-12, seed: 1 };

    let mut h = AlphaHessian::new(&net, &store, &x, &labels, opts);
    assert_eq!(h.dim(), 2 * 14 * 8);
    let explicit = explicit_hessian(&mut h);
    let eig = symmetric_eigenvalues(&explicit);
    let want = *eig.last().unwrap();
    let mut h = AlphaHessian::new(&net, &store, &x, &labels, opts);
    let got = dominant_eigenvalue(&mut h);
    println!(
        "λ_max: power {} ({} products), explicit {want}; spectrum [{}, {}]",
        got.lambda_max, got.products, eig[0], want
    );
    assert!(want > 0.0, "the Hessian with l2 has a positive top eigenvalue: {want}");
    assert!(
        (got.lambda_max - want).abs() <= 1e-6 * want.abs(),
        "power {} vs explicit {want}",
        got.lambda_max
    );
    // The products leave the network untouched (they run on a copy of the store).
    let after: Vec<Vec<f64>> = store.params.iter().map(|p| p.value.to_f64_vec()).collect();
    assert!(before == after, "the Hessian changed the store");
}
