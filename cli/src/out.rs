//! How the tool prints: aligned text for people (colour only on a terminal, and never with NO_COLOR), one
//! JSON document for scripts.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use serde_json::Value;

#[derive(Clone, Copy)]
pub(crate) enum Tone {
    Good,
    Warn,
    Bad,
    Dim,
}

pub(crate) struct Out {
    pub json: bool,
    colour: bool,
    terminal: bool,
}

impl Out {
    pub(crate) fn new(json: bool) -> Out {
        let terminal = std::io::stdout().is_terminal();
        let colour = terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        Out { json, colour, terminal }
    }

    pub(crate) fn paint(&self, text: &str, tone: Tone) -> String {
        if !self.colour {
            return text.to_string();
        }
        let code = match tone {
            Tone::Good => "32",
            Tone::Warn => "33",
            Tone::Bad => "31;1",
            Tone::Dim => "2",
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    }

    pub(crate) fn line(&self, text: &str) {
        println!("{text}");
    }

    pub(crate) fn heading(&self, text: &str) {
        println!("\n{}", self.paint(text, Tone::Dim));
    }

    pub(crate) fn json_doc(&self, v: &Value) {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    }

    /// `doc` for --json, else `text`.
    pub(crate) fn result(&self, doc: &Value, text: &str) {
        if self.json {
            self.json_doc(doc);
        } else {
            self.line(text);
        }
    }

    /// Columns padded to their widest cell.
    pub(crate) fn table(&self, header: &[&str], rows: &[Vec<String>]) {
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for row in rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let fmt = |cells: &[String]| {
            let mut line = String::new();
            for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
                if i + 1 == cells.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<w$}  "));
                }
            }
            line.trim_end().to_string()
        };
        let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
        println!("{}", self.paint(&fmt(&header), Tone::Dim));
        for row in rows {
            println!("{}", fmt(row));
        }
        if rows.is_empty() {
            println!("{}", self.paint("(none)", Tone::Dim));
        }
    }

    /// A bar redrawn in place on a terminal; a plain line per step otherwise.
    pub(crate) fn progress(&self, done: u64, total: u64) {
        if self.terminal {
            let width = 30;
            let filled = (done.min(total) * width as u64).checked_div(total).map_or(width, |f| f as usize);
            print!("\r[{}{}] {done}/{total}", "#".repeat(filled), " ".repeat(width - filled));
            let _ = std::io::stdout().flush();
        } else {
            println!("sent {done} of {total}");
        }
    }

    pub(crate) fn end_progress(&self) {
        if self.terminal && !self.json {
            println!();
        }
    }
}

/// A duration as people read it: "850 ms", "42 s", "3 min", "5 h", "2 d".
pub(crate) fn age(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => format!("{} ms", d.as_millis()),
        1..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86_400),
    }
}
