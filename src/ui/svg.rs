//! Inline SVG charts drawn from numbers: the fleet page's sparkline of the
//! failed-record ratio and the sync page's records processed vs failed.
//!
//! Drawn on the server because the UI runs no script; inline because the
//! Content-Security-Policy allows no other origin and it costs no request.
//! Only numbers reach this markup (and fixed labels), so it needs no
//! escaping — which is why the templates may insert it as safe.

use std::fmt::Write;

use crate::model::Timestamp;

const SPARK_W: f64 = 96.0;
const SPARK_H: f64 = 20.0;

/// A sparkline of ratios in `[0, 1]`, oldest first; `None` is a bucket with
/// nothing processed (drawn as a gap). The scale tops at the largest value
/// (at least 5%), so a steady 0.2% does not look like an outage, and the
/// last point is marked.
pub fn sparkline(points: &[Option<f64>]) -> String {
    let n = points.len();
    let max = points
        .iter()
        .flatten()
        .fold(0.05_f64, |m, v| m.max(v.clamp(0.0, 1.0)));
    let x = |i: usize| {
        if n <= 1 {
            SPARK_W / 2.0
        } else {
            2.0 + i as f64 * (SPARK_W - 4.0) / (n - 1) as f64
        }
    };
    let y = |v: f64| SPARK_H - 2.0 - (v.clamp(0.0, 1.0) / max) * (SPARK_H - 4.0);
    let mut svg = format!(
        "<svg class=\"spark\" viewBox=\"0 0 {SPARK_W} {SPARK_H}\" width=\"{SPARK_W}\" \
         height=\"{SPARK_H}\" role=\"img\" aria-label=\"failed-record ratio, daily\">"
    );
    let _ = write!(
        svg,
        "<line x1=\"0\" y1=\"{b}\" x2=\"{SPARK_W}\" y2=\"{b}\" stroke=\"#d8dde3\" \
         stroke-width=\"1\"/>",
        b = SPARK_H - 1.5
    );
    // One polyline per run of consecutive known points.
    let mut run: Vec<String> = Vec::new();
    let flush = |run: &mut Vec<String>, svg: &mut String| {
        if run.len() > 1 {
            let _ = write!(
                svg,
                "<polyline fill=\"none\" stroke=\"#c0392b\" stroke-width=\"1.5\" \
                 stroke-linejoin=\"round\" points=\"{}\"/>",
                run.join(" ")
            );
        }
        run.clear();
    };
    for (i, p) in points.iter().enumerate() {
        match p {
            Some(v) => run.push(format!("{:.1},{:.1}", x(i), y(*v))),
            None => flush(&mut run, &mut svg),
        }
    }
    flush(&mut run, &mut svg);
    if let Some((i, Some(v))) = points.iter().enumerate().rev().find(|(_, p)| p.is_some()) {
        let _ = write!(
            svg,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2\" fill=\"#c0392b\"/>",
            x(i),
            y(*v)
        );
    }
    let _ = write!(svg, "<title>{}</title></svg>", spark_title(points));
    svg
}

fn spark_title(points: &[Option<f64>]) -> String {
    let last = points
        .iter()
        .rev()
        .flatten()
        .next()
        .map(|v| format!("{:.1}%", v * 100.0))
        .unwrap_or_else(|| "no records".into());
    format!("failed-record ratio per day, latest {last}")
}

/// One bucket of the sync page's chart.
#[derive(Debug, Clone, Copy)]
pub struct ChartPoint {
    pub at_ms: i64,
    pub processed: u64,
    pub failed: u64,
}

const CHART_W: f64 = 1200.0;
const CHART_H: f64 = 220.0;
const PAD_L: f64 = 56.0;
const PAD_B: f64 = 22.0;
const PAD_T: f64 = 10.0;

/// Records processed (bars) and failed (red bars in front) per bucket,
/// oldest first, with a y axis in records and the first and last bucket
/// times on the x axis.
pub fn chart(points: &[ChartPoint]) -> String {
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {CHART_W} {CHART_H}\" role=\"img\" \
         aria-label=\"records processed and failed over time\">"
    );
    if points.is_empty() {
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#6b7785\" \
             font-size=\"13\">No finished runs in this period.</text></svg>",
            CHART_W / 2.0,
            CHART_H / 2.0
        );
        return svg;
    }
    let max = points
        .iter()
        .map(|p| p.processed.max(p.failed))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let plot_w = CHART_W - PAD_L - 8.0;
    let plot_h = CHART_H - PAD_B - PAD_T;
    let slot = plot_w / points.len() as f64;
    let bar = (slot * 0.8).max(1.0);
    let y = |v: f64| PAD_T + plot_h - (v / max) * plot_h;
    for frac in [0.0, 0.5, 1.0] {
        let v = max * frac;
        let _ = write!(
            svg,
            "<line x1=\"{PAD_L}\" y1=\"{y:.1}\" x2=\"{x2}\" y2=\"{y:.1}\" stroke=\"#e3e7ec\"/>\
             <text x=\"{tx}\" y=\"{ty:.1}\" text-anchor=\"end\" font-size=\"11\" \
             fill=\"#6b7785\">{label}</text>",
            y = y(v),
            x2 = CHART_W - 8.0,
            tx = PAD_L - 6.0,
            ty = y(v) + 4.0,
            label = short(v as u64)
        );
    }
    for (i, p) in points.iter().enumerate() {
        let x = PAD_L + i as f64 * slot + (slot - bar) / 2.0;
        let title = format!(
            "{}: {} processed, {} failed",
            crate::notify::format::when(Timestamp(p.at_ms)),
            crate::notify::format::thousands(p.processed),
            crate::notify::format::thousands(p.failed)
        );
        let _ = write!(svg, "<g><title>{title}</title>");
        if p.processed > 0 {
            let _ = write!(
                svg,
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"{:.1}\" \
                 fill=\"#9fb8d6\"/>",
                y(p.processed as f64),
                PAD_T + plot_h - y(p.processed as f64)
            );
        }
        if p.failed > 0 {
            // At least a pixel: a handful of failures among millions must
            // still show.
            let h = (PAD_T + plot_h - y(p.failed as f64)).max(1.5);
            let _ = write!(
                svg,
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"{h:.1}\" \
                 fill=\"#c0392b\"/>",
                PAD_T + plot_h - h
            );
        }
        svg.push_str("</g>");
    }
    let first = points.first().map(|p| p.at_ms).unwrap_or_default();
    let last = points.last().map(|p| p.at_ms).unwrap_or_default();
    let _ = write!(
        svg,
        "<text x=\"{PAD_L}\" y=\"{ly}\" font-size=\"11\" fill=\"#6b7785\">{}</text>\
         <text x=\"{rx}\" y=\"{ly}\" font-size=\"11\" fill=\"#6b7785\" \
         text-anchor=\"end\">{}</text></svg>",
        crate::notify::format::when(Timestamp(first)),
        crate::notify::format::when(Timestamp(last)),
        ly = CHART_H - 6.0,
        rx = CHART_W - 8.0
    );
    svg
}

/// `1.2k`, `3.4M`: axis labels stay narrow.
fn short(n: u64) -> String {
    match n {
        0..1_000 => n.to_string(),
        1_000..1_000_000 => format!("{:.1}k", n as f64 / 1e3),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sparkline_breaks_at_unknown_points_and_marks_the_last() {
        let svg = sparkline(&[Some(0.0), Some(0.5), None, Some(0.1), Some(0.2)]);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 1);
        assert!(svg.contains("latest 20.0%"));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    }

    #[test]
    fn an_empty_sparkline_is_still_an_image() {
        let svg = sparkline(&[None, None]);
        assert!(!svg.contains("<polyline"));
        assert!(svg.contains("no records"));
    }

    #[test]
    fn the_chart_draws_a_bar_per_bucket_and_shows_rare_failures() {
        let pts = [
            ChartPoint {
                at_ms: 0,
                processed: 1_000_000,
                failed: 1,
            },
            ChartPoint {
                at_ms: 3_600_000,
                processed: 0,
                failed: 0,
            },
        ];
        let svg = chart(&pts);
        assert_eq!(svg.matches("fill=\"#9fb8d6\"").count(), 1);
        assert_eq!(svg.matches("fill=\"#c0392b\"").count(), 1);
        assert!(svg.contains("1.0M"));
        assert!(chart(&[]).contains("No finished runs"));
    }
}
