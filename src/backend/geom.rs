//! Shapes of the spatial ops, shared by every backend (CPU functions and GPU launches read the
//! same structs, so grid sizing and indexing agree).

/// A 2-D convolution on NCHW input with an OIHW weight `[c_out, c_in / groups, kh, kw]`, no bias.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dGeom {
    /// Batch.
    pub n: usize,
    /// Input channels.
    pub c_in: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub c_out: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Stride (both axes).
    pub stride: usize,
    /// Zero padding (both axes, both sides).
    pub pad: usize,
    /// Dilation (both axes).
    pub dilation: usize,
    /// Groups: 1 is dense, `c_in == c_out == groups` is depthwise.
    pub groups: usize,
}

impl Conv2dGeom {
    /// Output height: floor((h + 2p - d(k-1) - 1) / s) + 1.
    pub fn out_h(&self) -> usize {
        out_dim(self.h, self.kh, self.stride, self.pad, self.dilation)
    }
    /// Output width.
    pub fn out_w(&self) -> usize {
        out_dim(self.w, self.kw, self.stride, self.pad, self.dilation)
    }
    /// Input channels per group.
    pub fn cin_per_group(&self) -> usize {
        self.c_in / self.groups
    }
    /// Output channels per group.
    pub fn cout_per_group(&self) -> usize {
        self.c_out / self.groups
    }
    /// Elements of the input.
    pub fn x_len(&self) -> usize {
        self.n * self.c_in * self.h * self.w
    }
    /// Elements of the weight.
    pub fn w_len(&self) -> usize {
        self.c_out * self.cin_per_group() * self.kh * self.kw
    }
    /// Elements of the output.
    pub fn y_len(&self) -> usize {
        self.n * self.c_out * self.out_h() * self.out_w()
    }
    /// One weight per channel, one input channel per output channel. A single channel counts
    /// (PC-DARTS' partial channels can be that narrow): its dense conv is the same sum.
    pub fn is_depthwise(&self) -> bool {
        self.groups == self.c_in && self.c_out == self.c_in
    }
    /// A dense 1x1 conv with no padding (stride may be > 1).
    pub fn is_pointwise(&self) -> bool {
        self.groups == 1 && self.kh == 1 && self.kw == 1 && self.pad == 0
    }
}

/// A k x k pooling window with stride and zero padding, NCHW, channels unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2dGeom {
    /// Batch.
    pub n: usize,
    /// Channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Window size (both axes).
    pub k: usize,
    /// Stride.
    pub stride: usize,
    /// Padding.
    pub pad: usize,
}

impl Pool2dGeom {
    /// Output height.
    pub fn out_h(&self) -> usize {
        out_dim(self.h, self.k, self.stride, self.pad, 1)
    }
    /// Output width.
    pub fn out_w(&self) -> usize {
        out_dim(self.w, self.k, self.stride, self.pad, 1)
    }
    /// Elements of the input.
    pub fn x_len(&self) -> usize {
        self.n * self.c * self.h * self.w
    }
    /// Elements of the output.
    pub fn y_len(&self) -> usize {
        self.n * self.c * self.out_h() * self.out_w()
    }
}

/// The layout batch norm reduces over: per channel `c`, over `n` images of `hw` pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BnGeom {
    /// Batch.
    pub n: usize,
    /// Channels.
    pub c: usize,
    /// Pixels per channel plane (H * W; 1 for a 2-D input).
    pub hw: usize,
}

impl BnGeom {
    /// Elements of the tensor.
    pub fn len(&self) -> usize {
        self.n * self.c * self.hw
    }
    /// True when the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Values reduced per channel (n * hw).
    pub fn per_channel(&self) -> usize {
        self.n * self.hw
    }
}

/// floor((len + 2 pad - dil (k - 1) - 1) / stride) + 1, or 0 when the window does not fit.
pub fn out_dim(len: usize, k: usize, stride: usize, pad: usize, dil: usize) -> usize {
    let span = dil * (k - 1) + 1;
    let padded = len + 2 * pad;
    if padded < span {
        0
    } else {
        (padded - span) / stride + 1
    }
}
