//! The DARTS train/validation split of the training images: the first `floor(p * N)` train the
//! weights ("train"), the rest train the architecture ("val").

use std::ops::Range;

use super::error::DataError;

/// DARTS's default `--train-portion`.
pub const DEFAULT_TRAIN_PORTION: f64 = 0.5;

/// Index ranges into the training set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    /// Images for the weight updates: `0..floor(p * N)`.
    pub train: Range<usize>,
    /// Images for the architecture updates: `floor(p * N)..N`.
    pub val: Range<usize>,
}

/// Splits `n` training images at `floor(portion * n)`, as DARTS's `train_search.py` does.
/// Errors unless `0 < portion < 1` and both halves are non-empty.
pub fn train_val_split(n: usize, portion: f64) -> Result<Split, DataError> {
    // Written so NaN fails too.
    if !(portion > 0.0 && portion < 1.0) {
        return Err(DataError::BadTrainPortion { portion });
    }
    let cut = ((portion * n as f64).floor() as usize).min(n);
    if cut == 0 || cut == n {
        return Err(DataError::EmptySplit { portion, n, train: cut, val: n - cut });
    }
    Ok(Split { train: 0..cut, val: cut..n })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_split() {
        assert_eq!(train_val_split(50_000, 0.5).unwrap(), Split { train: 0..25_000, val: 25_000..50_000 });
        assert_eq!(train_val_split(2000, 0.5).unwrap(), Split { train: 0..1000, val: 1000..2000 });
        assert_eq!(train_val_split(10, 0.75).unwrap(), Split { train: 0..7, val: 7..10 });
        assert_eq!(train_val_split(3, 0.5).unwrap(), Split { train: 0..1, val: 1..3 });
    }

    #[test]
    fn bad_portions_and_empty_halves() {
        for p in [0.0, 1.0, -0.5, 1.5, f64::NAN, f64::INFINITY] {
            let e = train_val_split(100, p).unwrap_err();
            assert!(matches!(e, DataError::BadTrainPortion { .. }), "{p}: {e}");
            assert!(e.to_string().contains("--train-portion"), "{e}");
        }
        let e = train_val_split(1, 0.5).unwrap_err();
        assert!(e.to_string().contains("leaves 0 for the weights and 1 for the architecture"), "{e}");
        assert_eq!(train_val_split(10, 0.99).unwrap(), Split { train: 0..9, val: 9..10 });
        let e = train_val_split(10, 0.01).unwrap_err();
        assert!(e.to_string().contains("both halves must be non-empty"), "{e}");
        let e = train_val_split(0, 0.5).unwrap_err();
        assert!(matches!(e, DataError::EmptySplit { n: 0, .. }), "{e}");
    }
}
