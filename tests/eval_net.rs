//! The evaluation network (`model.py` `NetworkCIFAR` / `NetworkImageNet`): the published
//! parameter counts, genotype input, drop path, and a forward on every network shape.

use darts::autograd::Groups;
use darts::model::eval::{count_without_aux, EvalConfig, EvalNetwork, NetworkCifar, NetworkImageNet};
use darts::model::{NetConfig, Network};
use darts::rng::Rng;
use darts::search::genotype::Genotype;
use darts::DType;

fn cifar(name: &str, channels: usize, layers: usize, auxiliary: bool) -> (NetworkCifar, darts::nn::Store) {
    let config = EvalConfig { channels, layers, classes: 10, auxiliary };
    NetworkCifar::new(config, &Genotype::published(name).unwrap(), DType::F32, &mut Rng::new(0)).unwrap()
}

#[test]
fn darts_v2_cifar_has_3349342_parameters_without_the_auxiliary_head() {
    let (_, store) = cifar("DARTS_V2", 36, 20, true);
    assert_eq!(count_without_aux(&store), 3_349_342);
    // The head (C_aux = 576) is there, and is all that the count leaves out.
    assert_eq!(store.count(Groups::WEIGHTS) - count_without_aux(&store), 476_426);
    let (_, no_head) = cifar("DARTS_V2", 36, 20, false);
    assert_eq!(no_head.count(Groups::WEIGHTS), 3_349_342);
}

#[test]
fn darts_v1_cifar_has_3169414_parameters() {
    let (_, store) = cifar("DARTS_V1", 36, 20, true);
    assert_eq!(count_without_aux(&store), 3_169_414);
}

#[test]
fn darts_v2_imagenet_has_4718752_parameters() {
    let config = EvalConfig { channels: 48, layers: 14, classes: 1000, auxiliary: true };
    let g = Genotype::published("DARTS").unwrap();
    let (_, store) = NetworkImageNet::new(config, &g, DType::F32, &mut Rng::new(0)).unwrap();
    assert_eq!(count_without_aux(&store), 4_718_752);
}

#[test]
fn search_network_still_has_1930618_weights() {
    let (_, store) = Network::new(NetConfig::default(), DType::F32, &mut Rng::new(2));
    assert_eq!(store.count(Groups::WEIGHTS), 1_930_618);
}
