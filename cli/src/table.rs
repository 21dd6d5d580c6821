//! Aligned plain-text tables and the number formats every command shares.

/// Columns of text, the first left-aligned and the others right-aligned
/// (they hold numbers and intervals).
#[derive(Debug)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Self {
            rows: vec![header.iter().map(|h| (*h).to_owned()).collect()],
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table, two spaces between columns, each line ending in a newline.
    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|row| row.get(c))
                    .map(|cell| cell.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            let cells: Vec<String> = row
                .iter()
                .enumerate()
                .map(|(c, cell)| {
                    let pad = " ".repeat(widths[c] - cell.chars().count());
                    if c == 0 {
                        format!("{cell}{pad}")
                    } else {
                        format!("{pad}{cell}")
                    }
                })
                .collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
        }
        out
    }
}

/// Name/value lines with the values aligned.
pub fn pairs(pairs: &[(String, String)]) -> String {
    let width = pairs
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    pairs
        .iter()
        .map(|(k, v)| format!("{k}{}  {v}\n", " ".repeat(width - k.chars().count())))
        .collect()
}

/// A probability or a proportion: four decimals.
pub fn prob(x: f64) -> String {
    format!("{x:.4}")
}

/// A quantity that is often tiny (an expected loss): scientific below 1e-3.
pub fn small(x: f64) -> String {
    if x != 0.0 && x.abs() < 1e-3 {
        format!("{x:.2e}")
    } else {
        format!("{x:.4}")
    }
}

/// A relative change as a signed percentage.
pub fn percent(x: f64) -> String {
    format!("{:+.1}%", x * 100.0)
}

/// `[lower, upper]` with `format` applied to both ends.
pub fn interval(lower: f64, upper: f64, format: fn(f64) -> String) -> String {
    format!("[{}, {}]", format(lower), format(upper))
}

/// A mass as a percentage label: 0.89 → "89%", 0.955 → "95.5%".
pub fn mass_label(mass: f64) -> String {
    let percent = mass * 100.0;
    if (percent - percent.round()).abs() < 1e-9 {
        format!("{percent:.0}%")
    } else {
        format!("{}%", (percent * 1e6).round() / 1e6)
    }
}
