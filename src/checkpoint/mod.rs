//! Checkpoints: named arrays in the safetensors format, written atomically, with the weights,
//! alphas and BN buffers under the reference PyTorch implementation's state-dict names (so a
//! PyTorch user can `load_state_dict` them strictly), and other state under its own prefixes.

pub mod arrays;
pub mod state;

pub use arrays::{read, write_atomic, Array, ArrayData, Arrays, CheckpointError};
pub use state::{load_store, store_arrays, tensor_array};
