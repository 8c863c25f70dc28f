//! The simulator's output: CSV (every figure), a Markdown table (the main ones) and SVG
//! plots (latency CDF per profile; requests per message against page size, a line per
//! embed setting). Everything here is a function of the cells: the same seed gives the
//! same bytes.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::error::{Error, IoContext, Result};
use crate::sim::matrix::{embed_label, page_label, Cell};
use crate::sim::Cause;

/// The cell whose latencies the CDF plot shows per profile: page size 16, embed 1 fits
/// every profile's limits.
pub const CDF_CELL: (u64, u64) = (16, 1);

/// Every figure of every cell, one line per cell.
pub fn csv(cells: &[Cell]) -> String {
    let mut out = String::from(
        "profile,page_size,embed,readers,runs,messages,delivered,missing,\
latency_p50_s,latency_p90_s,latency_p99_s,catchup_p50_s,catchup_p90_s,catchup_p99_s,catchup_incomplete,\
ns_fetches_per_msg,cas_gets_per_msg,requests_per_msg,cas_round_trips_per_msg,ns_cache_hits,stale_reads,\
bandwidth,writer_requests,writer_cost,cost_unit",
    );
    for c in Cause::ALL {
        let _ = write!(out, ",missing_{}", c.name());
    }
    out.push('\n');
    for c in cells {
        let r = &c.reader_stats;
        let _ = write!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            c.profile,
            c.page_size,
            embed_label(c.embed),
            c.readers,
            c.runs,
            c.messages,
            c.delivered,
            c.missing_total(),
            num(c.latency(0.5)),
            num(c.latency(0.9)),
            num(c.latency(0.99)),
            num(c.catchup(0.5)),
            num(c.catchup(0.9)),
            num(c.catchup(0.99)),
            c.catchup_incomplete,
            num(c.per_message(r.ns_fetches)),
            num(c.per_message(r.cas_gets)),
            num(c.per_message(r.ns_fetches + r.cas_gets)),
            num(c.per_message(r.cas_round_trips)),
            r.ns_cache_hits,
            r.stale_reads,
            num(c.bandwidth()),
            c.writer_stats.requests(),
            num(c.writer_stats.cost),
            c.cost_unit,
        );
        for cause in Cause::ALL {
            let _ = write!(out, ",{}", c.missing.get(&cause).copied().unwrap_or(0));
        }
        out.push('\n');
    }
    out
}

fn num(x: f64) -> String {
    if x.is_nan() {
        String::new()
    } else {
        format!("{x:.3}")
    }
}

/// A duration for people: `0.35 s`, `12 s`, `3.1 min`, `1.2 h`; `–` when there is none.
pub fn human(s: f64) -> String {
    if s.is_nan() {
        "–".into()
    } else if s < 10.0 {
        format!("{s:.2} s")
    } else if s < 120.0 {
        format!("{s:.0} s")
    } else if s < 7200.0 {
        format!("{:.1} min", s / 60.0)
    } else {
        format!("{:.1} h", s / 3600.0)
    }
}

fn ratio(x: f64) -> String {
    if x.is_nan() {
        "–".into()
    } else if x < 10.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.0}")
    }
}

/// The main figures as a Markdown table, one row per cell.
pub fn markdown(cells: &[Cell]) -> String {
    let mut out = String::from(
        "| profile | page | embed | readers | delivered | latency p50 / p90 / p99 | catch-up p50 / p90 | NS fetches / msg | CAS gets / msg | bytes moved / payload byte | missing (causes) | writer cost |\n\
|---|---:|---:|---:|---:|---|---|---:|---:|---:|---|---:|\n",
    );
    for c in cells {
        let r = &c.reader_stats;
        let delivered = if c.expected() == 0 {
            "–".to_string()
        } else {
            format!("{:.1}%", 100.0 * c.delivered as f64 / c.expected() as f64)
        };
        let causes: Vec<String> = c
            .missing
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| format!("{} {n}", k.name()))
            .collect();
        let cost = if c.cost_unit.is_empty() {
            format!("{} req", c.writer_stats.requests())
        } else {
            let cost = c.writer_stats.cost;
            let digits = if cost >= 100.0 { 0 } else { 4 };
            format!("{cost:.digits$} {}", c.cost_unit)
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} / {} / {} | {} / {} | {} | {} | {} | {} | {} |",
            c.profile,
            page_label(c.page_size),
            embed_label(c.embed),
            c.readers,
            delivered,
            human(c.latency(0.5)),
            human(c.latency(0.9)),
            human(c.latency(0.99)),
            human(c.catchup(0.5)),
            human(c.catchup(0.9)),
            ratio(c.per_message(r.ns_fetches)),
            ratio(c.per_message(r.cas_gets)),
            ratio(c.bandwidth()),
            if causes.is_empty() {
                "0".to_string()
            } else {
                causes.join(", ")
            },
            cost
        );
    }
    out
}

fn plot_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("cannot draw the {what} plot: {e}"))
}

/// The latency CDF of each profile's [`CDF_CELL`] (or its first cell), as SVG.
pub fn latency_cdf(cells: &[Cell]) -> Result<String> {
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    let mut profiles: Vec<&str> = Vec::new();
    for c in cells {
        if !profiles.contains(&c.profile.as_str()) {
            profiles.push(&c.profile);
        }
    }
    for p in profiles {
        let mine: Vec<&Cell> = cells.iter().filter(|c| c.profile == p).collect();
        let Some(cell) = mine
            .iter()
            .find(|c| (c.page_size, c.embed) == CDF_CELL)
            .or(mine.first())
        else {
            continue;
        };
        let n = cell.latencies.len();
        if n == 0 {
            continue;
        }
        // A share of every (message, reader) pair, so that what never arrived keeps the
        // curve below 1.
        let all = (cell.expected() as usize).max(n) as f64;
        // At most 400 points per curve keep the file small.
        let step = n.div_ceil(400).max(1);
        let mut pts: Vec<(f64, f64)> = (0..n)
            .step_by(step)
            .map(|i| {
                (
                    (cell.latencies[i] as f64 / 1e6).max(0.01),
                    (i + 1) as f64 / all,
                )
            })
            .collect();
        pts.push((
            (cell.latencies[n - 1] as f64 / 1e6).max(0.01),
            n as f64 / all,
        ));
        let label = format!(
            "{p} (page {}, embed {})",
            page_label(cell.page_size),
            embed_label(cell.embed)
        );
        series.push((label, pts));
    }
    let max = series
        .iter()
        .flat_map(|(_, s)| s.iter().map(|p| p.0))
        .fold(1.0f64, f64::max)
        * 1.5;
    let mut svg = String::new();
    let root = SVGBackend::with_string(&mut svg, (900, 560)).into_drawing_area();
    let draw = || -> std::result::Result<(), Box<dyn std::error::Error + '_>> {
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Delivery latency (message created → reader has it)",
                ("sans-serif", 20),
            )
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(55)
            .build_cartesian_2d((0.01f64..max).log_scale(), 0f64..1f64)?;
        chart
            .configure_mesh()
            .x_desc("seconds (log scale)")
            .y_desc("share of (message, reader) pairs delivered")
            .draw()?;
        for (i, (label, pts)) in series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))?
                .label(label.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| plot_err("latency", e))?;
    drop(root);
    Ok(svg)
}

/// Requests (NS fetches + CAS gets) per delivered message against page size, one panel
/// per profile and one line per embed setting, as SVG.
pub fn requests(cells: &[Cell]) -> Result<String> {
    let mut profiles: Vec<&str> = Vec::new();
    let mut pages: Vec<u64> = Vec::new();
    let mut embeds: Vec<u64> = Vec::new();
    for c in cells {
        if !profiles.contains(&c.profile.as_str()) {
            profiles.push(&c.profile);
        }
        if !pages.contains(&c.page_size) {
            pages.push(c.page_size);
        }
        if !embeds.contains(&c.embed) {
            embeds.push(c.embed);
        }
    }
    // Unbounded (0) last: it is the largest page.
    pages.sort_by_key(|p| if *p == 0 { u64::MAX } else { *p });
    let cols = profiles.len().clamp(1, 4);
    let rows = profiles.len().div_ceil(cols).max(1);
    let mut svg = String::new();
    let root = SVGBackend::with_string(&mut svg, (300 * cols as u32, 260 * rows as u32 + 40))
        .into_drawing_area();
    let draw = || -> std::result::Result<(), Box<dyn std::error::Error + '_>> {
        root.fill(&WHITE)?;
        let (title, body) = root.split_vertically(40);
        title.titled(
            "Reader requests per delivered message against page size (a line per embed setting)",
            ("sans-serif", 18),
        )?;
        let panels = body.split_evenly((rows, cols));
        for (panel, profile) in panels.iter().zip(&profiles) {
            let value = |page: u64, embed: u64| {
                cells
                    .iter()
                    .filter(|c| c.profile == *profile && c.page_size == page && c.embed == embed)
                    .map(|c| c.per_message(c.reader_stats.ns_fetches + c.reader_stats.cas_gets))
                    .find(|v| v.is_finite())
            };
            let top = pages
                .iter()
                .flat_map(|p| embeds.iter().filter_map(move |e| value(*p, *e)))
                .fold(1.0f64, f64::max)
                * 1.7; // room above the lines for the legend
            let n = pages.len();
            let labels: Vec<String> = pages.iter().map(|p| page_label(*p)).collect();
            let mut chart = ChartBuilder::on(panel)
                .caption(*profile, ("sans-serif", 16))
                .margin(8)
                .x_label_area_size(30)
                .y_label_area_size(40)
                .build_cartesian_2d(-0.3f64..(n as f64 - 0.7), 0f64..top)?;
            chart
                .configure_mesh()
                .x_labels(n)
                .x_label_formatter(&|x| {
                    let i = x.round();
                    if (x - i).abs() < 0.01 && i >= 0.0 {
                        labels.get(i as usize).cloned().unwrap_or_default()
                    } else {
                        String::new()
                    }
                })
                .y_labels(5)
                .draw()?;
            for (k, e) in embeds.iter().enumerate() {
                let color = Palette99::pick(k).to_rgba();
                let pts: Vec<(f64, f64)> = pages
                    .iter()
                    .enumerate()
                    .filter_map(|(i, p)| value(*p, *e).map(|v| (i as f64, v)))
                    .collect();
                chart
                    .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))?
                    .label(format!("embed {}", embed_label(*e)))
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                    });
                chart.draw_series(pts.iter().map(|p| Circle::new(*p, 3, color.filled())))?;
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.9))
                .border_style(BLACK)
                .label_font(("sans-serif", 11))
                .draw()?;
        }
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| plot_err("requests", e))?;
    drop(root);
    Ok(svg)
}

/// The files [`write_all`] wrote.
#[derive(Debug, Clone)]
pub struct Written {
    /// Paths, in the order written.
    pub files: Vec<PathBuf>,
}

/// Writes results.csv, results.md and, unless `plots` is false, latency-cdf.svg and
/// requests.svg into `dir` (created if needed), each durably.
pub fn write_all(cells: &[Cell], dir: &Path, plots: bool) -> Result<Written> {
    std::fs::create_dir_all(dir).at(dir)?;
    let mut files = Vec::new();
    let csv_path = dir.join("results.csv");
    crate::fsutil::write_atomic(&csv_path, csv(cells).as_bytes())?;
    files.push(csv_path);
    let md_path = dir.join("results.md");
    crate::fsutil::write_atomic(&md_path, markdown(cells).as_bytes())?;
    files.push(md_path);
    if plots {
        for (name, svg) in [
            ("latency-cdf.svg", latency_cdf(cells)?),
            ("requests.svg", requests(cells)?),
        ] {
            let path = dir.join(name);
            crate::fsutil::write_atomic(&path, svg.as_bytes())?;
            files.push(path);
        }
    }
    Ok(Written { files })
}
