//! Parameter ids, gradient groups and the gradient store.

use std::collections::HashMap;
use std::ops::BitOr;

use crate::ops::elementwise;
use crate::tensor::Tensor;

/// Identifies a leaf (parameter or input) across forward passes; chosen by the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParamId(pub usize);

/// A set of gradient groups, as bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Groups(u8);

impl Groups {
    /// No gradients.
    pub const NONE: Groups = Groups(0);
    /// Network weights (conv, BN affine, linear).
    pub const WEIGHTS: Groups = Groups(1);
    /// Architecture parameters (alphas).
    pub const ARCH: Groups = Groups(2);
    /// Inputs (for gradient checks and input attribution).
    pub const INPUTS: Groups = Groups(4);
    /// Everything.
    pub const ALL: Groups = Groups(7);

    /// True if the two sets share a group.
    pub fn intersects(self, other: Groups) -> bool {
        self.0 & other.0 != 0
    }
    /// True if the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl BitOr for Groups {
    type Output = Groups;
    fn bitor(self, rhs: Groups) -> Groups {
        Groups(self.0 | rhs.0)
    }
}

/// Gradients of the leaves, keyed by parameter id, accumulated over every use of a leaf.
#[derive(Clone, Debug, Default)]
pub struct GradStore {
    grads: HashMap<ParamId, Tensor>,
}

impl GradStore {
    /// The gradient of `id`, if it was requested and reached.
    pub fn get(&self, id: ParamId) -> Option<&Tensor> {
        self.grads.get(&id)
    }
    /// Removes and returns the gradient of `id`.
    pub fn take(&mut self, id: ParamId) -> Option<Tensor> {
        self.grads.remove(&id)
    }
    /// Number of gradients held.
    pub fn len(&self) -> usize {
        self.grads.len()
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.grads.is_empty()
    }
    /// Sets the gradient of `id`.
    pub fn insert(&mut self, id: ParamId, g: Tensor) {
        self.grads.insert(id, g);
    }
    /// Adds `g` to the gradient of `id`.
    pub(crate) fn accumulate(&mut self, id: ParamId, g: Tensor) {
        match self.grads.remove(&id) {
            Some(prev) => {
                let sum = elementwise::add(&prev, &g);
                self.grads.insert(id, sum);
            }
            None => {
                self.grads.insert(id, g);
            }
        }
    }
    /// Iterates over (id, gradient).
    pub fn iter(&self) -> impl Iterator<Item = (&ParamId, &Tensor)> {
        self.grads.iter()
    }
}
