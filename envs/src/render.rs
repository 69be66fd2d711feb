//! Rendering: RGB frames and animated GIFs of episodes.

use std::fs::File;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};

/// Default size of one maze cell in an RGB frame, in pixels.
pub const CELL_PX: usize = 16;

/// An RGB image, row-major, 3 bytes per pixel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `height × width × 3` bytes.
    pub rgb: Vec<u8>,
}

impl Frame {
    /// A black frame of `width × height` pixels.
    pub fn new(width: usize, height: usize) -> Self {
        Self {
            width,
            height,
            rgb: vec![0; width * height * 3],
        }
    }

    /// The colour of pixel (`x`, `y`), or `None` outside the frame.
    pub fn pixel(&self, x: usize, y: usize) -> Option<[u8; 3]> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let i = 3 * (y * self.width + x);
        Some([self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]])
    }

    /// Fills the rectangle at (`x`, `y`) of `w × h` pixels with `colour`, clipped to the frame.
    pub fn fill_rect(&mut self, x: usize, y: usize, w: usize, h: usize, colour: [u8; 3]) {
        let (x1, y1) = ((x + w).min(self.width), (y + h).min(self.height));
        for yy in y.min(y1)..y1 {
            for xx in x.min(x1)..x1 {
                let i = 3 * (yy * self.width + xx);
                self.rgb[i..i + 3].copy_from_slice(&colour);
            }
        }
    }

    /// Blends `colour` over the rectangle at (`x`, `y`) of `w × h` pixels with opacity `alpha`
    /// (clamped to `0..=1`), clipped to the frame.
    pub fn blend_rect(
        &mut self,
        x: usize,
        y: usize,
        w: usize,
        h: usize,
        colour: [u8; 3],
        alpha: f32,
    ) {
        let a = alpha.clamp(0.0, 1.0);
        let (x1, y1) = ((x + w).min(self.width), (y + h).min(self.height));
        for yy in y.min(y1)..y1 {
            for xx in x.min(x1)..x1 {
                let i = 3 * (yy * self.width + xx);
                for (p, c) in self.rgb[i..i + 3].iter_mut().zip(colour) {
                    *p = (f32::from(*p) * (1.0 - a) + f32::from(c) * a).round() as u8;
                }
            }
        }
    }

    /// Fills the pixels whose centres lie within `half_width` of the segment from `a` to `b`
    /// (a thick line with round ends), with `colour`; points are `(x, y)` in pixels.
    pub fn fill_segment(&mut self, a: (f64, f64), b: (f64, f64), half_width: f64, colour: [u8; 3]) {
        self.fill_where(colour, |p| segment_distance(p, a, b) <= half_width);
    }

    /// Fills the pixels whose centres lie within `radius` of `centre`, with `colour`.
    pub fn fill_disc(&mut self, centre: (f64, f64), radius: f64, colour: [u8; 3]) {
        self.fill_where(colour, |p| distance(p, centre) <= radius);
    }

    /// Fills every pixel whose centre `inside` accepts.
    fn fill_where(&mut self, colour: [u8; 3], inside: impl Fn((f64, f64)) -> bool) {
        for y in 0..self.height {
            for x in 0..self.width {
                if inside((x as f64 + 0.5, y as f64 + 0.5)) {
                    let i = 3 * (y * self.width + x);
                    self.rgb[i..i + 3].copy_from_slice(&colour);
                }
            }
        }
    }

    /// Copies `other` into this frame with its top-left corner at (`x`, `y`), clipped.
    pub fn paste(&mut self, other: &Frame, x: usize, y: usize) {
        for yy in 0..other.height.min(self.height.saturating_sub(y)) {
            let w = other.width.min(self.width.saturating_sub(x));
            let src = 3 * yy * other.width;
            let dst = 3 * ((y + yy) * self.width + x);
            self.rgb[dst..dst + 3 * w].copy_from_slice(&other.rgb[src..src + 3 * w]);
        }
    }
}

fn distance(a: (f64, f64), b: (f64, f64)) -> f64 {
    (a.0 - b.0).hypot(a.1 - b.1)
}

/// Distance from `p` to the segment from `a` to `b`.
fn segment_distance(p: (f64, f64), a: (f64, f64), b: (f64, f64)) -> f64 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    let s = if len2 > 0.0 {
        (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    distance(p, (a.0 + s * dx, a.1 + s * dy))
}

/// Writes frames of one size into an animated, looping GIF file.
pub struct GifWriter {
    path: PathBuf,
    width: usize,
    height: usize,
    delay_cs: u16,
    encoder: gif::Encoder<BufWriter<File>>,
}

impl GifWriter {
    /// Creates `path` for frames of `width × height` pixels shown `delay_cs` hundredths of a
    /// second each. Errors name the file.
    pub fn create(
        path: impl AsRef<Path>,
        width: usize,
        height: usize,
        delay_cs: u16,
    ) -> io::Result<Self> {
        let path = path.as_ref().to_path_buf();
        let (w, h) = match (u16::try_from(width), u16::try_from(height)) {
            (Ok(w), Ok(h)) if w > 0 && h > 0 => (w, h),
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "{}: a GIF frame must be 1..=65535 pixels wide and high, got {width}×{height}",
                        path.display()
                    ),
                ));
            }
        };
        let file = File::create(&path).map_err(|e| with_path(&path, e))?;
        let mut encoder =
            gif::Encoder::new(BufWriter::new(file), w, h, &[]).map_err(|e| gif_err(&path, e))?;
        encoder
            .set_repeat(gif::Repeat::Infinite)
            .map_err(|e| gif_err(&path, e))?;
        Ok(Self {
            path,
            width,
            height,
            delay_cs,
            encoder,
        })
    }

    /// Appends one frame; it must have the size given to [`GifWriter::create`].
    pub fn write(&mut self, frame: &Frame) -> io::Result<()> {
        if frame.width != self.width
            || frame.height != self.height
            || frame.rgb.len() != 3 * self.width * self.height
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{}: frame is {}×{} ({} bytes), the GIF is {}×{}",
                    self.path.display(),
                    frame.width,
                    frame.height,
                    frame.rgb.len(),
                    self.width,
                    self.height
                ),
            ));
        }
        let (w, h) = (self.width as u16, self.height as u16);
        let mut gf = match exact_palette(&frame.rgb) {
            Some((indices, palette)) => {
                gif::Frame::from_palette_pixels(w, h, indices, palette, None)
            }
            None => gif::Frame::from_rgb_speed(w, h, &frame.rgb, 10),
        };
        gf.delay = self.delay_cs;
        self.encoder
            .write_frame(&gf)
            .map_err(|e| gif_err(&self.path, e))
    }

    /// Flushes the file; dropping the writer also finishes the GIF but swallows errors.
    pub fn finish(self) -> io::Result<()> {
        let path = self.path;
        let mut w = self.encoder.into_inner().map_err(|e| gif_err(&path, e))?;
        io::Write::flush(&mut w).map_err(|e| with_path(&path, e))
    }
}

/// Saves `frames` as an animated, looping GIF at `path`, `delay_cs` hundredths of a second per
/// frame. All frames must have the same size; errors name the file.
pub fn save_gif(path: impl AsRef<Path>, frames: &[Frame], delay_cs: u16) -> io::Result<()> {
    let path = path.as_ref();
    let first = frames.first().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: no frames to write", path.display()),
        )
    })?;
    let mut writer = GifWriter::create(path, first.width, first.height, delay_cs)?;
    for f in frames {
        writer.write(f)?;
    }
    writer.finish()
}

/// Palette indices and an exact palette if the image has at most 256 colours.
fn exact_palette(rgb: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut palette: Vec<[u8; 3]> = Vec::new();
    let mut indices = Vec::with_capacity(rgb.len() / 3);
    for px in rgb.chunks_exact(3) {
        let c = [px[0], px[1], px[2]];
        let i = match palette.iter().position(|&p| p == c) {
            Some(i) => i,
            None => {
                if palette.len() == 256 {
                    return None;
                }
                palette.push(c);
                palette.len() - 1
            }
        };
        indices.push(i as u8);
    }
    Some((indices, palette.concat()))
}

fn with_path(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

fn gif_err(path: &Path, e: gif::EncodingError) -> io::Error {
    io::Error::other(format!("{}: GIF encoding failed: {e}", path.display()))
}
