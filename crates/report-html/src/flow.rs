//! The flow of rows, landing -> trusted -> curated: one lane per dataset,
//! one segment per transition. A segment's input bar splits into the rows
//! kept (which feed the lane's next segment) and one outflow per quarantine
//! reason and per drop rule, each as wide as its rows (scaled per lane, so a
//! lane of a thousand customers is as legible as one of a million readings).

use maud::{Markup, html};
use zones::Table;
use zones::report::{Report, TransitionLine};

/// The table a transition's main input comes from.
pub fn source_of(table: Table) -> Table {
    match table {
        Table::CustomerTrusted => Table::CustomerLanding,
        Table::AccelerometerTrusted => Table::AccelerometerLanding,
        Table::StepTrainerTrusted => Table::StepTrainerLanding,
        Table::CustomersCurated => Table::CustomerTrusted,
        Table::MachineLearningCurated => Table::StepTrainerTrusted,
        other => other,
    }
}

/// Transitions grouped into lanes: each lane starts at a landing table and
/// follows the tables produced from the previous one.
pub fn lanes(report: &Report) -> Vec<Vec<&TransitionLine>> {
    let mut lanes: Vec<Vec<&TransitionLine>> = Vec::new();
    for line in &report.transitions {
        let source = source_of(line.table);
        match lanes
            .iter_mut()
            .find(|lane| lane.last().is_some_and(|l| l.table == source))
        {
            Some(lane) => lane.push(line),
            None => lanes.push(vec![line]),
        }
    }
    lanes
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Kept,
    Quarantined,
    Dropped,
}

impl Kind {
    fn class(self) -> &'static str {
        match self {
            Kind::Kept => "kept",
            Kind::Quarantined => "quarantined",
            Kind::Dropped => "dropped",
        }
    }
}

/// Where a transition's input rows went, kept first.
pub fn outflows(line: &TransitionLine) -> Vec<(Kind, String, u64)> {
    let mut out = vec![(Kind::Kept, line.table.to_string(), line.counts.kept)];
    out.extend(
        line.counts
            .quarantined
            .iter()
            .map(|(r, n)| (Kind::Quarantined, r.clone(), *n)),
    );
    out.extend(
        line.counts
            .dropped
            .iter()
            .map(|(r, n)| (Kind::Dropped, r.clone(), *n)),
    );
    out
}

const BAR: f64 = 12.0;
const CURVE: f64 = 170.0;
const LABELS: f64 = 320.0;
const SEGMENT: f64 = BAR + CURVE + LABELS;
const LANE_MAX: f64 = 140.0;
const SLOT_MIN: f64 = 18.0;
const GAP: f64 = 6.0;
const TOP: f64 = 48.0;

fn px(n: u64, scale: f64) -> f64 {
    if n == 0 {
        0.0
    } else {
        (n as f64 * scale).max(1.5)
    }
}

/// A label of the kept bar: its table, rows, and under strict the rubric's rows.
fn kept_label(line: &TransitionLine, report: &Report) -> String {
    let mut text = format!("{} {}", line.table, line.counts.kept);
    if line.rows != line.counts.kept {
        text.push_str(&format!(" → {} rows", line.rows));
    }
    if let Some(c) = report
        .rubric_comparison
        .iter()
        .find(|c| c.table == line.table)
    {
        text.push_str(&format!(" (rubric {})", c.rubric_rows));
    }
    text
}

/// One lane as SVG.
pub fn lane_svg(lane: &[&TransitionLine], report: &Report) -> Markup {
    let max_in = lane
        .iter()
        .map(|l| l.counts.input)
        .max()
        .unwrap_or(0)
        .max(1);
    let scale = LANE_MAX / max_in as f64;
    // Height: the tallest stack of outflows.
    let height = lane
        .iter()
        .map(|l| {
            outflows(l)
                .iter()
                .map(|(_, _, n)| px(*n, scale).max(SLOT_MIN) + GAP)
                .sum::<f64>()
        })
        .fold(0.0, f64::max)
        + TOP
        + 10.0;
    // The last kept label runs past the last segment's bars.
    let width = lane.len() as f64 * SEGMENT + 140.0;
    let first = lane[0];
    let title = format!(
        "{} rows of {}: {}",
        first.counts.input,
        source_of(first.table),
        lane.iter()
            .map(|l| {
                outflows(l)
                    .iter()
                    .map(|(k, name, n)| format!("{} {name} {n}", k.class()))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .collect::<Vec<_>>()
            .join("; then ")
    );
    html! {
        svg.flow viewBox=(format!("0 0 {width} {height}")) width=(width) height=(height)
            role="img" aria-label=(title) {
            @for (i, line) in lane.iter().enumerate() {
                (segment(line, report, 10.0 + i as f64 * SEGMENT, scale, i + 1 < lane.len()))
            }
        }
    }
}

fn segment(line: &TransitionLine, report: &Report, x: f64, scale: f64, feeds_next: bool) -> Markup {
    let x_out = x + BAR + CURVE;
    let in_h = px(line.counts.input, scale);
    let mut in_y = TOP;
    let mut out_y = TOP;
    let mut bands = Vec::new();
    for (kind, name, n) in outflows(line) {
        let h = px(n, scale);
        bands.push((kind, name, n, in_y, out_y, h));
        in_y += h;
        out_y += h.max(SLOT_MIN) + GAP;
    }
    html! {
        g.segment data-table=(line.table.to_string()) {
            // The input bar and its label above it.
            rect.node x=(x) y=(TOP) width=(BAR) height=(in_h.max(1.0)) {
                title { (source_of(line.table).name()) " " (line.counts.input) " rows in" }
            }
            @if x < 20.0 {
                text.flow-label.input-label x=(x) y=(TOP - 26.0) { (source_of(line.table).name()) " " (line.counts.input) }
            }
            @for (kind, name, n, iy, oy, h) in &bands {
                @let (x1, x2) = (x + BAR, x_out);
                @let mid = (x1 + x2) / 2.0;
                @let d = format!(
                    "M {x1} {iy} C {mid} {iy}, {mid} {oy}, {x2} {oy} L {x2} {} C {mid} {}, {mid} {}, {x1} {} Z",
                    oy + h, oy + h, iy + h, iy + h
                );
                path class=(format!("band {}", kind.class())) d=(d) {
                    title { (kind.class()) " " (name) ": " (n) }
                }
                rect class=(format!("node {}", kind.class())) x=(x_out) y=(*oy) width=(BAR) height=(h.max(1.0)) {}
                @if *kind == Kind::Kept {
                    @if feeds_next {
                        // Kept rows run on to the next transition's input bar.
                        rect class="band kept" x=(x_out + BAR) y=(*oy) width=(LABELS) height=(h.max(1.0)) {}
                    }
                    text.flow-label.kept-label x=(x_out) y=(oy - 8.0) { (kept_label(line, report)) }
                } @else {
                    text class=(format!("flow-label {}", kind.class())) x=(x_out + BAR + 6.0) y=(oy + h.max(SLOT_MIN) / 2.0 + 4.0) {
                        @if *kind == Kind::Quarantined { "quarantine · " } @else { "drop · " }
                        (name) " " (n)
                    }
                }
            }
        }
    }
}
