//! Shape bugs panic with a message naming the op and both shapes.

use std::panic::{catch_unwind, AssertUnwindSafe};

use darts::ops::{self, ConvParams};
use darts::{DType, Tensor};

fn panic_message(f: impl FnOnce()) -> String {
    let err = catch_unwind(AssertUnwindSafe(f)).expect_err("expected a panic");
    err.downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
fn conv2d_channel_mismatch_names_op_and_shapes() {
    let x = Tensor::zeros(&[2, 3, 7, 7], DType::F32);
    let w = Tensor::zeros(&[8, 4, 3, 3], DType::F32);
    let msg = panic_message(|| {
        ops::conv::conv2d(&x, &w, ConvParams::new(1, 1));
    });
    assert!(msg.contains("conv2d"), "{msg}");
    assert!(msg.contains("[2, 3, 7, 7]") && msg.contains("[8, 4, 3, 3]"), "{msg}");
}

#[test]
fn concat_spatial_mismatch_names_op_and_shapes() {
    let a = Tensor::zeros(&[2, 3, 8, 8], DType::F32);
    let b = Tensor::zeros(&[2, 5, 4, 4], DType::F32);
    let msg = panic_message(|| {
        ops::layout::concat_channels(&[&a, &b]);
    });
    assert!(msg.contains("concat_channels"), "{msg}");
    assert!(msg.contains("[2, 3, 8, 8]") && msg.contains("[2, 5, 4, 4]"), "{msg}");
}

#[test]
fn add_and_dtype_mismatches_name_op_and_shapes() {
    let a = Tensor::zeros(&[2, 3], DType::F64);
    let b = Tensor::zeros(&[3, 2], DType::F64);
    let msg = panic_message(|| {
        ops::elementwise::add(&a, &b);
    });
    assert!(msg.contains("add") && msg.contains("[2, 3]") && msg.contains("[3, 2]"), "{msg}");
    let c = Tensor::zeros(&[2, 3], DType::F32);
    let msg = panic_message(|| {
        ops::elementwise::add(&a, &c);
    });
    assert!(msg.contains("add") && msg.contains("dtype"), "{msg}");
}
