//! Line-chart primitives written as SVG text by hand (no plotting crate): axes with ticks and
//! labels, polylines, legends. Coordinates are printed with one decimal, so the same data give
//! the same bytes.

use std::fmt::Write;

/// The start of an SVG document of `w` x `h` pixels on a white background.
pub fn header(w: f64, h: f64) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" \
         font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    )
}

/// Text at (x, y); `anchor` is start, middle or end. The caller's text must not hold `<` or `&`.
pub fn text(s: &mut String, x: f64, y: f64, anchor: &str, size: f64, body: &str) {
    let _ = writeln!(
        s,
        "<text x=\"{x:.1}\" y=\"{y:.1}\" text-anchor=\"{anchor}\" font-size=\"{size}\">{body}</text>"
    );
}

/// Up to about `max` round tick values (multiples of 1, 2 or 5 times a power of ten) in
/// [lo, hi]; with `integer`, steps are at least 1.
pub fn ticks(lo: f64, hi: f64, max: usize, integer: bool) -> Vec<f64> {
    let span = (hi - lo).max(f64::MIN_POSITIVE);
    let raw = span / max.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let mut step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|&s| s >= raw * (1.0 - 1e-9))
        .unwrap_or(mag * 10.0);
    if integer {
        step = step.max(1.0).round();
    }
    let (first, last) = ((lo / step - 1e-9).ceil() as i64, (hi / step + 1e-9).floor() as i64);
    (first..=last).map(|k| k as f64 * step).collect()
}

/// Round ticks from at or below `lo` to at or above `hi` (about `max` of them), so that the
/// first and last can be the axis range. An empty range is widened to [lo, lo + 1].
pub fn covering_ticks(lo: f64, hi: f64, max: usize) -> Vec<f64> {
    let hi = if hi > lo { hi } else { lo + 1.0 };
    let inner = ticks(lo, hi, max, false);
    let step = match inner[..] {
        [a, b, ..] => b - a,
        _ => hi - lo,
    };
    let (first, last) = ((lo / step + 1e-9).floor() as i64, (hi / step - 1e-9).ceil() as i64);
    (first..=last).map(|k| k as f64 * step).collect()
}

/// A tick label: as many decimals as the spacing of `ticks` needs.
pub fn tick_label(v: f64, ticks: &[f64]) -> String {
    let step = match ticks {
        [a, b, ..] => b - a,
        _ => 1.0,
    };
    let decimals = if step >= 1.0 { 0 } else { (-step.log10().floor()) as usize };
    format!("{v:.decimals$}")
}

/// A chart's data area on the page and the data ranges it shows.
#[derive(Clone, Copy, Debug)]
pub struct Axes {
    /// Left edge of the data area (pixels).
    pub left: f64,
    /// Top edge of the data area.
    pub top: f64,
    /// Width of the data area.
    pub width: f64,
    /// Height of the data area.
    pub height: f64,
    /// Data x at the left and right edges.
    pub x: (f64, f64),
    /// Data y at the bottom and top edges.
    pub y: (f64, f64),
}

impl Axes {
    /// The page x of data x.
    pub fn px(&self, x: f64) -> f64 {
        self.left + (x - self.x.0) / (self.x.1 - self.x.0) * self.width
    }

    /// The page y of data y (up is larger).
    pub fn py(&self, y: f64) -> f64 {
        self.top + self.height - (y - self.y.0) / (self.y.1 - self.y.0) * self.height
    }

    /// The frame (thicker when `bold`), light grid lines and labels at the ticks, and an x-axis
    /// title under the tick labels when `x_title` is not empty.
    pub fn frame(&self, s: &mut String, xt: &[f64], yt: &[f64], x_title: &str, bold: bool) {
        let (l, t, r, b) = (self.left, self.top, self.left + self.width, self.top + self.height);
        for &v in xt {
            let x = self.px(v);
            let _ = writeln!(
                s,
                "<line x1=\"{x:.1}\" y1=\"{t:.1}\" x2=\"{x:.1}\" y2=\"{b:.1}\" stroke=\"#eee\"/>"
            );
            text(s, x, b + 12.0, "middle", 10.0, &tick_label(v, xt));
        }
        for &v in yt {
            let y = self.py(v);
            let _ = writeln!(
                s,
                "<line x1=\"{l:.1}\" y1=\"{y:.1}\" x2=\"{r:.1}\" y2=\"{y:.1}\" stroke=\"#eee\"/>"
            );
            text(s, l - 4.0, y + 3.5, "end", 10.0, &tick_label(v, yt));
        }
        let _ = writeln!(
            s,
            "<rect x=\"{l:.1}\" y=\"{t:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"none\" stroke=\"{}\" stroke-width=\"{}\"/>",
            self.width,
            self.height,
            if bold { "#000" } else { "#999" },
            if bold { 2 } else { 1 }
        );
        if !x_title.is_empty() {
            text(s, (l + r) / 2.0, b + 25.0, "middle", 10.0, x_title);
        }
    }

    /// A line through `points` (data coordinates), with a dot at each point when `dots`
    /// (a single point is otherwise invisible). `style` adds attributes (e.g. a dash array).
    pub fn line(&self, s: &mut String, points: &[(f64, f64)], colour: &str, style: &str, dots: bool) {
        let pts: Vec<String> =
            points.iter().map(|&(x, y)| format!("{:.1},{:.1}", self.px(x), self.py(y))).collect();
        let _ = writeln!(
            s,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\"{style}/>",
            pts.join(" ")
        );
        if dots {
            for &(x, y) in points {
                let _ = writeln!(
                    s,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"{colour}\"/>",
                    self.px(x),
                    self.py(y)
                );
            }
        }
    }
}

/// A legend row from (x, y): a short line in each entry's colour and style, then its name.
pub fn legend(s: &mut String, x: f64, y: f64, entries: &[(&str, &str, &str)], spacing: f64) {
    for (i, (name, colour, style)) in entries.iter().enumerate() {
        let x0 = x + i as f64 * spacing;
        let _ = writeln!(
            s,
            "<line x1=\"{x0:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{colour}\" stroke-width=\"3\"{style}/>",
            y - 4.0,
            x0 + 18.0,
            y - 4.0
        );
        text(s, x0 + 22.0, y, "start", 11.0, name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_inside_the_range() {
        assert_eq!(ticks(0.0, 1.0, 2, false), [0.0, 0.5, 1.0]);
        assert_eq!(ticks(0.0, 49.0, 5, true), [0.0, 10.0, 20.0, 30.0, 40.0]);
        assert_eq!(ticks(0.0, 3.0, 5, true), [0.0, 1.0, 2.0, 3.0]);
        // One epoch: a degenerate range still gets its tick.
        assert_eq!(ticks(-0.5, 0.5, 5, true), [0.0]);
        assert_eq!(ticks(0.0, 8f64.ln(), 5, false), [0.0, 0.5, 1.0, 1.5, 2.0]);
        assert_eq!(covering_ticks(0.0, 37.0, 4), [0.0, 10.0, 20.0, 30.0, 40.0]);
        assert_eq!(covering_ticks(0.0, 0.0, 4), [0.0, 0.5, 1.0]);
        assert_eq!(tick_label(0.5, &[0.0, 0.5, 1.0]), "0.5");
        assert_eq!(tick_label(20.0, &[0.0, 10.0]), "20");
    }

    #[test]
    fn axes_map_data_to_the_page() {
        let a = Axes { left: 10.0, top: 20.0, width: 100.0, height: 50.0, x: (0.0, 4.0), y: (0.0, 1.0) };
        assert_eq!((a.px(0.0), a.px(4.0), a.py(0.0), a.py(1.0)), (10.0, 110.0, 70.0, 20.0));
    }
}
