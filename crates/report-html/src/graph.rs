//! The state machine as a graph, laid out from the ASL definition itself:
//! states are ranked by the longest path of their normal transitions (`Next`,
//! `Default`, `Choices`) from `StartAt`; states reached only through a
//! `Catch` (the error routes) stand in a column of their own to the right.

use std::collections::BTreeMap;

use maud::{Markup, html};
use serde_json::Value;

use crate::facts::{MapItems, StateStatus};

/// One state of the definition with where it is drawn and how it went.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: String,
    pub kind: String,
    pub comment: Option<String>,
    pub rank: usize,
    pub column: usize,
    pub status: StateStatus,
    pub seconds: Option<f64>,
    pub retries: u32,
    pub error: Option<String>,
    pub cause: Option<String>,
    /// A Distributed Map state: its Map Run's items.
    pub items: Option<MapItems>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edge {
    pub from: usize,
    pub to: usize,
    /// An error route (`Catch`), drawn dashed.
    pub catch: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

fn normal_successors(state: &Value) -> Vec<String> {
    let mut next = Vec::new();
    for field in ["Next", "Default"] {
        if let Some(n) = state.get(field).and_then(Value::as_str) {
            next.push(n.to_string());
        }
    }
    for choice in state
        .get("Choices")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(n) = choice.get("Next").and_then(Value::as_str) {
            next.push(n.to_string());
        }
    }
    next
}

fn catch_successors(state: &Value) -> Vec<String> {
    state
        .get("Catch")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("Next").and_then(Value::as_str).map(str::to_string))
        .collect()
}

/// Lays out the top-level states of `definition`; every state starts as
/// [`StateStatus::NotRun`].
pub fn layout(definition: &Value) -> Graph {
    let empty = serde_json::Map::new();
    let states = definition
        .get("States")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let start = definition
        .get("StartAt")
        .and_then(Value::as_str)
        .unwrap_or_default();
    // Longest normal path from StartAt; relaxing at most once per state keeps
    // a cycle (a retry loop through a Choice) from running forever.
    let mut rank: BTreeMap<String, usize> = BTreeMap::new();
    if states.contains_key(start) {
        rank.insert(start.to_string(), 0);
    }
    for _ in 0..states.len() {
        let mut changed = false;
        for (name, state) in states {
            let Some(&r) = rank.get(name) else {
                continue;
            };
            for next in normal_successors(state) {
                if !states.contains_key(&next) {
                    continue;
                }
                let entry = rank.entry(next).or_insert(0);
                if *entry < r + 1 && r + 1 < states.len() {
                    *entry = r + 1;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    // Order states by rank, then the order the definition lists them.
    let mut main: Vec<(&str, usize)> = states
        .keys()
        .filter_map(|n| rank.get(n).map(|r| (n.as_str(), *r)))
        .collect();
    main.sort_by_key(|(_, r)| *r);
    let mut nodes = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let mut per_rank: BTreeMap<usize, usize> = BTreeMap::new();
    for (name, r) in &main {
        let column = per_rank.entry(*r).or_default();
        index.insert(name.to_string(), nodes.len());
        nodes.push(node(name, &states[*name], *r, *column));
        *column += 1;
    }
    let side_column = per_rank.values().copied().max().unwrap_or(1);
    let max_rank = main.iter().map(|(_, r)| *r).max().unwrap_or(0);
    // States reached only through Catch (or not at all): the side column, at
    // the middle rank of the states that route to them.
    let mut side_rank = 0;
    for (name, state) in states {
        if index.contains_key(name) {
            continue;
        }
        let sources: Vec<usize> = states
            .iter()
            .filter(|(_, s)| catch_successors(s).iter().any(|n| n == name))
            .filter_map(|(n, _)| rank.get(n).copied())
            .collect();
        let r = if sources.is_empty() {
            side_rank += 1;
            max_rank + side_rank
        } else {
            (sources.iter().min().unwrap() + sources.iter().max().unwrap()) / 2
        };
        index.insert(name.clone(), nodes.len());
        nodes.push(node(name, state, r, side_column));
    }
    let mut edges = Vec::new();
    for (name, state) in states {
        let from = index[name];
        for (targets, catch) in [
            (normal_successors(state), false),
            (catch_successors(state), true),
        ] {
            for target in targets {
                if let Some(&to) = index.get(&target) {
                    let edge = Edge { from, to, catch };
                    if !edges.contains(&edge) {
                        edges.push(edge);
                    }
                }
            }
        }
    }
    Graph { nodes, edges }
}

fn node(name: &str, state: &Value, rank: usize, column: usize) -> Node {
    Node {
        name: name.to_string(),
        kind: state
            .get("Type")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string(),
        comment: state
            .get("Comment")
            .and_then(Value::as_str)
            .map(str::to_string),
        rank,
        column,
        status: StateStatus::NotRun,
        seconds: None,
        retries: 0,
        error: None,
        cause: None,
        items: None,
    }
}

impl Graph {
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// States with no record of their own whose normal successor ran did
    /// run (the Pass state before the first Task, say): they succeeded.
    pub fn infer_passed_states(&mut self) {
        loop {
            let mut changed = false;
            for edge in self.edges.clone() {
                if edge.catch {
                    continue;
                }
                let ran = self.nodes[edge.to].status != StateStatus::NotRun;
                if ran && self.nodes[edge.from].status == StateStatus::NotRun {
                    self.nodes[edge.from].status = StateStatus::Succeeded;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
    }
}

const BOX_W: f64 = 230.0;
const BOX_H: f64 = 50.0;
const COL_W: f64 = 262.0;
const ROW_H: f64 = 78.0;
const MARGIN: f64 = 16.0;

fn position(node: &Node) -> (f64, f64) {
    (
        MARGIN + node.column as f64 * COL_W,
        MARGIN + node.rank as f64 * ROW_H,
    )
}

fn status_class(status: StateStatus) -> &'static str {
    match status {
        StateStatus::Succeeded => "st-ok",
        StateStatus::Failed => "st-failed",
        StateStatus::Caught => "st-caught",
        StateStatus::Running => "st-running",
        StateStatus::NotRun => "st-notrun",
    }
}

/// One line describing a state, as its SVG title and label say it.
pub fn describe(node: &Node) -> String {
    let mut text = format!("{} ({}): {}", node.name, node.kind, node.status.as_str());
    if let Some(s) = node.seconds {
        text.push_str(&format!(", {s:.2} s"));
    }
    if let Some(items) = &node.items {
        text.push_str(&format!(", {}", items.describe()));
    }
    if let Some(e) = &node.error {
        text.push_str(&format!(", {e}"));
    }
    text
}

/// The graph as inline SVG: boxes coloured by status, normal transitions as
/// arrows, Catch routes dashed (red when the error was taken).
pub fn svg(graph: &Graph) -> Markup {
    let columns = graph.nodes.iter().map(|n| n.column).max().unwrap_or(0) + 1;
    let ranks = graph.nodes.iter().map(|n| n.rank).max().unwrap_or(0) + 1;
    let width = 2.0 * MARGIN + (columns - 1) as f64 * COL_W + BOX_W;
    let height = 2.0 * MARGIN + (ranks - 1) as f64 * ROW_H + BOX_H;
    let summary: Vec<String> = graph.nodes.iter().map(describe).collect();
    html! {
        svg.graph viewBox=(format!("0 0 {width} {height}")) width=(width) height=(height)
            role="img" aria-label=(format!("State machine: {}", summary.join("; "))) {
            defs {
                marker #arrow viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse" {
                    path d="M 0 0 L 10 5 L 0 10 z" fill="#555" {}
                }
                marker #arrow-err viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse" {
                    path d="M 0 0 L 10 5 L 0 10 z" fill="#c62828" {}
                }
            }
            @for edge in &graph.edges {
                (edge_path(graph, edge))
            }
            @for node in &graph.nodes {
                @let (x, y) = position(node);
                g class=(format!("state {}", status_class(node.status))) data-state=(node.name) data-status=(node.status.as_str()) {
                    title { (describe(node)) }
                    rect x=(x) y=(y) width=(BOX_W) height=(BOX_H) rx="8" {}
                    text.name x=(x + 12.0) y=(y + 21.0) { (node.name) }
                    text.meta x=(x + 12.0) y=(y + 39.0) {
                        (node.kind) " · " (node.status.as_str())
                        @if let Some(s) = node.seconds { " · " (format!("{s:.2} s")) }
                        @if let Some(items) = &node.items { " · " (items.describe()) }
                        @if node.retries > 0 { " · " (node.retries) " retries" }
                    }
                }
            }
        }
    }
}

fn edge_path(graph: &Graph, edge: &Edge) -> Markup {
    let (from, to) = (&graph.nodes[edge.from], &graph.nodes[edge.to]);
    let (fx, fy) = position(from);
    let (tx, ty) = position(to);
    let taken = edge.catch && from.status == StateStatus::Caught;
    let d = if edge.catch || from.column != to.column {
        // From the source's right side to the target's left side.
        let (x1, y1) = (fx + BOX_W, fy + BOX_H / 2.0);
        let (x2, y2) = if tx > fx {
            (tx, ty + BOX_H / 2.0)
        } else {
            (tx + BOX_W, ty + BOX_H / 2.0)
        };
        let mid = (x1 + x2) / 2.0;
        format!("M {x1} {y1} C {mid} {y1}, {mid} {y2}, {x2} {y2}")
    } else if to.rank > from.rank {
        let x = fx + BOX_W / 2.0;
        format!("M {x} {} L {x} {}", fy + BOX_H, ty)
    } else {
        // A loop back up: around the left side.
        let (x1, y1) = (fx, fy + BOX_H / 2.0);
        let (x2, y2) = (tx, ty + BOX_H / 2.0);
        format!(
            "M {x1} {y1} C {} {y1}, {} {y2}, {x2} {y2}",
            x1 - 40.0,
            x2 - 40.0
        )
    };
    let class = match (edge.catch, taken) {
        (false, _) => "edge",
        (true, false) => "edge catch",
        (true, true) => "edge catch taken",
    };
    let marker = if taken {
        "url(#arrow-err)"
    } else {
        "url(#arrow)"
    };
    html! {
        path class=(class) d=(d) marker-end=(marker) {}
    }
}
