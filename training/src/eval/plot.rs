//! SVG plots for run directories: loss curves and ROC curves (SVG needs no fonts).

use std::path::Path;

use plotters::prelude::*;

use super::metrics::RocPoint;

/// Writes a line plot of `series` (name, points) to `path` as SVG.
pub fn line_plot(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(&str, Vec<(f64, f64)>)],
) -> Result<(), String> {
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (_, pts) in series {
        for &(x, y) in pts.iter().filter(|(x, y)| x.is_finite() && y.is_finite()) {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if x1 - x0 < 1e-12 {
        x1 = x0 + 1.0;
    }
    if y1 - y0 < 1e-12 {
        y1 = y0 + 1.0;
    }
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|e| e.to_string())?;
    chart.configure_mesh().x_desc(x_label).y_desc(y_label).draw().map_err(|e| e.to_string())?;
    for (i, (name, pts)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                pts.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()),
                color.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

/// Writes a ROC curve (with the chance diagonal) to `path` as SVG.
pub fn roc_plot(path: &Path, title: &str, curves: &[(&str, &[RocPoint])]) -> Result<(), String> {
    let mut series: Vec<(&str, Vec<(f64, f64)>)> =
        curves.iter().map(|(n, c)| (*n, c.iter().map(|p| (p.fpr, p.tpr)).collect())).collect();
    series.push(("chance", vec![(0.0, 0.0), (1.0, 1.0)]));
    line_plot(path, title, "false positive rate", "true positive rate", &series)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_svg_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("loss.svg");
        line_plot(&p, "loss", "step", "loss", &[("train", vec![(0.0, 1.0), (1.0, 0.5), (2.0, 0.25)])]).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.starts_with("<svg") && text.contains("polyline"), "{}", &text[..100.min(text.len())]);
        let roc = crate::eval::roc_curve(&[0.1, 0.9, 0.4], &[false, true, true]);
        roc_plot(&dir.path().join("roc.svg"), "ROC", &[("dev", &roc)]).unwrap();
    }
}
