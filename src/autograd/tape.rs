//! The tape and its variables.

use std::cell::RefCell;
use std::rc::Rc;

use super::grads::{GradStore, Groups, ParamId};
use crate::ops::elementwise;
use crate::tensor::{fmt_shape, Tensor};

/// A backward function: given d(loss)/d(output) and which inputs need a gradient, returns one
/// entry per input (`None` where not needed).
pub type BackwardFn = Box<dyn Fn(&Tensor, &[bool]) -> Vec<Option<Tensor>>>;

/// The backward of a node with several outputs: given d(loss)/d(output i) for each output
/// (`None` where an output got none) and which inputs need a gradient, returns one entry per
/// input.
pub type MultiBackwardFn = Box<dyn Fn(&[Option<Tensor>], &[bool]) -> Vec<Option<Tensor>>>;

struct Node {
    parents: Vec<usize>,
    /// The groups of the leaves this node depends on (empty: a constant, nothing recorded).
    groups: Groups,
    backward: Option<BackwardFn>,
    leaf: Option<ParamId>,
}

/// A recording of one forward pass. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct Tape(Rc<RefCell<Vec<Node>>>);

/// A value on a tape.
#[derive(Clone)]
pub struct Var {
    tape: Tape,
    id: usize,
    value: Tensor,
}

impl Var {
    /// The forward value.
    pub fn value(&self) -> &Tensor {
        &self.value
    }
    /// The shape of the value.
    pub fn shape(&self) -> &[usize] {
        self.value.shape()
    }
    /// The tape this variable is on.
    pub fn tape(&self) -> &Tape {
        &self.tape
    }
    /// The groups this variable depends on.
    pub fn groups(&self) -> Groups {
        self.tape.0.borrow()[self.id].groups
    }
}

impl Tape {
    /// An empty tape.
    pub fn new() -> Tape {
        Tape::default()
    }

    /// Number of recorded nodes.
    pub fn len(&self) -> usize {
        self.0.borrow().len()
    }

    /// True when nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn push_node(&self, node: Node, value: Tensor) -> Var {
        let mut nodes = self.0.borrow_mut();
        nodes.push(node);
        Var { tape: self.clone(), id: nodes.len() - 1, value }
    }

    /// A leaf whose gradient is collected under `id` when `group` is requested.
    pub fn param(&self, id: ParamId, group: Groups, value: Tensor) -> Var {
        self.push_node(Node { parents: vec![], groups: group, backward: None, leaf: Some(id) }, value)
    }

    /// A leaf that needs no gradient.
    pub fn constant(&self, value: Tensor) -> Var {
        self.push_node(Node { parents: vec![], groups: Groups::NONE, backward: None, leaf: None }, value)
    }

    /// Records an op output `value` computed from `parents`, with its backward function.
    /// When no parent depends on any leaf group, the backward (and what it saved) is dropped.
    pub fn push(&self, value: Tensor, parents: &[&Var], backward: BackwardFn) -> Var {
        let mut groups = Groups::NONE;
        for p in parents {
            assert!(Rc::ptr_eq(&p.tape.0, &self.0), "Tape::push: a parent lives on another tape");
            groups = groups | self.0.borrow()[p.id].groups;
        }
        let backward = (!groups.is_empty()).then_some(backward);
        let parents = parents.iter().map(|p| p.id).collect();
        self.push_node(Node { parents, groups, backward, leaf: None }, value)
    }

    /// Records an op with several outputs `values`, computed from `parents`, with one backward
    /// over all their gradients; returns one variable per output.
    ///
    /// Recorded as a hub node on the parents, whose backward runs `backward`, and one node per
    /// output on the hub: an output's backward hands its gradient to the hub (a shared slot) and
    /// returns a one-element host placeholder as the hub's gradient, so the hub runs once the
    /// walk reaches it, after every output (they are recorded later), and nothing else holds
    /// the outputs' values.
    pub fn push_multi(&self, values: Vec<Tensor>, parents: &[&Var], backward: MultiBackwardFn) -> Vec<Var> {
        let slots: Rc<RefCell<Vec<Option<Tensor>>>> = Rc::new(RefCell::new(vec![None; values.len()]));
        let hub_slots = slots.clone();
        let placeholder = || Tensor::from_vec(&[1], vec![0f32]);
        let hub = self.push(
            placeholder(),
            parents,
            Box::new(move |_, need| {
                let dys = std::mem::take(&mut *hub_slots.borrow_mut());
                backward(&dys, need)
            }),
        );
        values
            .into_iter()
            .enumerate()
            .map(|(i, value)| {
                let slots = slots.clone();
                self.push(
                    value,
                    &[&hub],
                    Box::new(move |dy, _| {
                        slots.borrow_mut()[i] = Some(dy.clone());
                        vec![Some(placeholder())]
                    }),
                )
            })
            .collect()
    }

    /// Gradients of the scalar `loss` w.r.t. the leaves in `wanted`.
    ///
    /// Backward functions are consumed (their saved tensors freed as the walk proceeds), so a
    /// tape is differentiated once.
    pub fn backward(&self, loss: &Var, wanted: Groups) -> GradStore {
        assert_eq!(
            loss.value.numel(),
            1,
            "backward: the loss must be a scalar, got {}",
            fmt_shape(loss.shape())
        );
        let seed = Tensor::full_on(loss.shape(), 1.0, loss.value.dtype(), &loss.value.device());
        self.backward_with_seed(loss, seed, wanted)
    }

    /// Vector-Jacobian product: gradients of <seed, output> w.r.t. the leaves in `wanted`.
    pub fn backward_with_seed(&self, output: &Var, seed: Tensor, wanted: Groups) -> GradStore {
        assert_eq!(
            seed.shape(),
            output.shape(),
            "backward: seed {} does not match output {}",
            fmt_shape(seed.shape()),
            fmt_shape(output.shape())
        );
        let mut store = GradStore::default();
        let mut grads: Vec<Option<Tensor>> = vec![None; output.id + 1];
        grads[output.id] = Some(seed);
        for i in (0..=output.id).rev() {
            let Some(g) = grads[i].take() else { continue };
            let (parents, backward, leaf, groups) = {
                let mut nodes = self.0.borrow_mut();
                let n = &mut nodes[i];
                (n.parents.clone(), n.backward.take(), n.leaf, n.groups)
            };
            if !groups.intersects(wanted) {
                continue;
            }
            if let Some(id) = leaf {
                store.accumulate(id, g);
                continue;
            }
            let Some(backward) = backward else {
                panic!("backward: node {i} was already differentiated (a tape is differentiated once)")
            };
            let need: Vec<bool> = {
                let nodes = self.0.borrow();
                parents.iter().map(|&p| nodes[p].groups.intersects(wanted)).collect()
            };
            let parent_grads = backward(&g, &need);
            assert_eq!(
                parent_grads.len(),
                parents.len(),
                "backward: node {i} returned the wrong number of gradients"
            );
            for ((p, pg), needed) in parents.into_iter().zip(parent_grads).zip(need) {
                let (Some(pg), true) = (pg, needed) else { continue };
                // Accumulate in place (a copy only if the earlier gradient's storage is shared).
                grads[p] = Some(match grads[p].take() {
                    Some(mut prev) => {
                        elementwise::axpy(1.0, &pg, &mut prev);
                        prev
                    }
                    None => pg,
                });
            }
        }
        store
    }
}
