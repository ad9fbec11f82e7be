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

/// A crop window: `y[n, c, i, j] = x[n, c, top + i, left + j]` for `i < oh`, `j < ow`, x
/// `[n, c, h, w]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CropGeom {
    /// Batch.
    pub n: usize,
    /// Channels.
    pub c: usize,
    /// Height of x.
    pub h: usize,
    /// Width of x.
    pub w: usize,
    /// First row of the window.
    pub top: usize,
    /// First column of the window.
    pub left: usize,
    /// Rows of the window (y's height).
    pub oh: usize,
    /// Columns of the window (y's width).
    pub ow: usize,
}

impl CropGeom {
    /// Elements of x.
    pub fn x_len(&self) -> usize {
        self.n * self.c * self.h * self.w
    }

    /// Elements of y.
    pub fn y_len(&self) -> usize {
        self.n * self.c * self.oh * self.ow
    }

    /// Panics unless the window fits x and the buffers hold `x_len` and `y_len` elements.
    pub fn check(&self, op: &str, x_len: usize, y_len: usize) {
        let CropGeom { n, c, h, w, top, left, oh, ow } = *self;
        assert!(
            top + oh <= h && left + ow <= w,
            "{op}: window rows {top}..{} cols {left}..{} exceed the {h}x{w} input",
            top + oh,
            left + ow
        );
        assert!(
            x_len == self.x_len(),
            "{op}: full tensor has {x_len} elements, [n={n}, c={c}, h={h}, w={w}] needs {}",
            self.x_len()
        );
        assert!(
            y_len == self.y_len(),
            "{op}: cropped tensor has {y_len} elements, [n={n}, c={c}, h={oh}, w={ow}] needs {}",
            self.y_len()
        );
    }
}

/// The shapes of one partial-channel merge of an edge whose input x has `c` channels: the
/// mixed op's output m on x's first c/k, and the bypassed rest x[:, c/k:], which the merge
/// reads as its own tensor (`[n, c − c/k, h, w]`: PC-DARTS states travel as these two parts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PcGeom {
    /// Batch.
    pub n: usize,
    /// Channels of the edge's input x and of the output y.
    pub c: usize,
    /// Height of x.
    pub h: usize,
    /// Width of x.
    pub w: usize,
    /// Channel proportion and shuffle groups.
    pub k: usize,
    /// 1 (identity bypass) or 2 (2x2 max-pool bypass).
    pub stride: usize,
}

impl PcGeom {
    /// Channels through the mixed op (c/k).
    pub fn cpk(&self) -> usize {
        self.c / self.k
    }
    /// Output height.
    pub fn oh(&self) -> usize {
        self.h / self.stride
    }
    /// Output width.
    pub fn ow(&self) -> usize {
        self.w / self.stride
    }
    /// Elements of y (and of the unshuffled v).
    pub fn y_len(&self) -> usize {
        self.n * self.c * self.oh() * self.ow()
    }
    /// Elements of m.
    pub fn m_len(&self) -> usize {
        self.n * self.cpk() * self.oh() * self.ow()
    }
    /// The shape of m `[n, c/k, oh, ow]`.
    pub fn m_shape(&self) -> [usize; 4] {
        [self.n, self.cpk(), self.oh(), self.ow()]
    }
    /// Channels of the bypassed part x[:, c/k:] (c − c/k), its own tensor.
    pub fn xc(&self) -> usize {
        self.c - self.cpk()
    }
    /// The shape of the bypassed part `[n, c − c/k, h, w]`.
    pub fn x_shape(&self) -> [usize; 4] {
        [self.n, self.xc(), self.h, self.w]
    }
    /// Elements of the bypassed part.
    pub fn x_len(&self) -> usize {
        self.n * self.xc() * self.h * self.w
    }
    /// The channel of v that output channel `o` reads: q = (o mod k)·(c/k) + o div k.
    pub fn source(&self, o: usize) -> usize {
        (o % self.k) * self.cpk() + o / self.k
    }
    /// The output channel that reads channel `q` of v: o = (q mod c/k)·k + q div (c/k).
    pub fn dest(&self, q: usize) -> usize {
        (q % self.cpk()) * self.k + q / self.cpk()
    }
    /// Panics (naming the op) unless the geometry is valid: k ≥ 1 divides c, stride 1 or 2 with
    /// even h and w on stride 2.
    pub fn check(&self, op: &str) {
        assert!(
            self.k >= 1 && self.c % self.k == 0,
            "{op}: k = {} must divide the {} channels",
            self.k,
            self.c
        );
        assert!(
            self.stride == 1 || (self.stride == 2 && self.h % 2 == 0 && self.w % 2 == 0),
            "{op}: stride {} on {}x{} (stride 1, or 2 on even sizes)",
            self.stride,
            self.h,
            self.w
        );
    }
}

/// Edges into the nodes of a cell with `steps` intermediate nodes: 2 + 3 + ... + (steps + 1).
pub fn node_edges(steps: usize) -> usize {
    steps * (steps + 3) / 2
}
