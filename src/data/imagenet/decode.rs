//! JPEG files to 8-bit RGB with `zune-jpeg`, as torchvision's default loader does with
//! `PIL.Image.open(f).convert("RGB")`: YCbCr JPEGs are converted to RGB, greyscale ones get
//! their single channel copied into R, G and B, and Adobe CMYK/YCCK ones are converted to RGB
//! (ImageNet's training set holds a few CMYK files). Other component layouts are an error naming
//! the file.
//!
//! Decoders differ from libjpeg (PIL's) by a level or two on some pixels: the inverse DCT and the
//! chroma upsampling are implementation choices within the JPEG standard's tolerance.

use std::path::Path;

use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

use crate::data::error::DataError;

/// An 8-bit RGB image, rows top to bottom, pixels interleaved (`[y][x][c]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RgbImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `height * width * 3` bytes: R, G, B per pixel.
    pub pixels: Vec<u8>,
}

impl RgbImage {
    /// An image from interleaved RGB bytes; panics unless `pixels.len() == width * height * 3`.
    pub fn new(width: usize, height: usize, pixels: Vec<u8>) -> RgbImage {
        assert_eq!(
            pixels.len(),
            width * height * 3,
            "RgbImage: {width}x{height} needs {} bytes",
            width * height * 3
        );
        RgbImage { width, height, pixels }
    }

    /// Channel `c` of pixel (x, y).
    #[inline]
    pub fn at(&self, x: usize, y: usize, c: usize) -> u8 {
        self.pixels[(y * self.width + x) * 3 + c]
    }
}

/// Reads and decodes the JPEG file at `path` to RGB.
pub fn read_jpeg(path: &Path) -> Result<RgbImage, DataError> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Io { path: path.to_path_buf(), source })?;
    decode_jpeg(&bytes, path)
}

/// Decodes JPEG `bytes` to RGB; `path` only names the file in errors.
pub fn decode_jpeg(bytes: &[u8], path: &Path) -> Result<RgbImage, DataError> {
    let decode_err = |reason: String| DataError::Decode { path: path.to_path_buf(), reason };
    // Ask for RGB: zune converts YCbCr, CMYK and YCCK to it, and switches to one-channel
    // output by itself for greyscale files.
    let options = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::RGB);
    let mut dec = JpegDecoder::new_with_options(bytes, options);
    dec.decode_headers().map_err(|e| decode_err(e.to_string()))?;
    let input = dec.get_input_colorspace().expect("headers decoded");
    if !matches!(
        input,
        ColorSpace::YCbCr | ColorSpace::RGB | ColorSpace::Luma | ColorSpace::CMYK | ColorSpace::YCCK
    ) {
        return Err(DataError::UnsupportedColor {
            path: path.to_path_buf(),
            colorspace: format!("{input:?}"),
        });
    }
    let data = dec.decode().map_err(|e| decode_err(e.to_string()))?;
    let info = dec.info().expect("image decoded");
    let (width, height) = (info.width as usize, info.height as usize);
    let out = dec.get_output_colorspace().expect("image decoded");
    let pixels = match out {
        ColorSpace::RGB => data,
        ColorSpace::Luma => data.iter().flat_map(|&v| [v, v, v]).collect(),
        other => {
            return Err(DataError::UnsupportedColor {
                path: path.to_path_buf(),
                colorspace: format!("{input:?} (decoded as {other:?})"),
            })
        }
    };
    if pixels.len() != width * height * 3 {
        return Err(decode_err(format!(
            "decoded {} bytes for a {width}x{height} image, expected {}",
            pixels.len(),
            width * height * 3
        )));
    }
    Ok(RgbImage { width, height, pixels })
}
