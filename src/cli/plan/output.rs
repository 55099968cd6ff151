//! How `reaper plan` writes what it found: the [`Summary`] (counts per verdict) and the plan
//! itself as text for people, JSON (`{"summary": {…}, "items": [{"line", "request_id",
//! "verdict", "detail"}, …]}`, design 1.5) or CSV (`line,request_id,verdict,detail`).
//! Pure: renders to bytes; the caller decides where they go.

use super::check::{Item, Verdict};
use serde::Serialize;

/// How the plan is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanFormat {
    /// Aligned columns for people, then the summary.
    Text,
    /// One JSON object: the summary and the items.
    Json,
    /// A header row, then `line,request_id,verdict,detail` per line of the file.
    Csv,
}

/// How many lines got each verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub would_delete: usize,
    pub absent: usize,
    pub protected: usize,
    pub invalid: usize,
    pub unchecked: usize,
}

impl Summary {
    pub fn of(items: &[Item]) -> Self {
        let mut s = Summary::default();
        for item in items {
            *match item.verdict {
                Verdict::WouldDelete => &mut s.would_delete,
                Verdict::Absent => &mut s.absent,
                Verdict::Protected => &mut s.protected,
                Verdict::Invalid => &mut s.invalid,
                Verdict::Unchecked => &mut s.unchecked,
            } += 1;
        }
        s
    }

    /// One line for people: `plan of FILE: 3 would_delete, 1 absent, … (nothing was deleted)`.
    pub fn line(&self, file: &std::path::Path) -> String {
        format!(
            "plan of {}: {} would_delete, {} absent, {} protected, {} invalid, {} unchecked \
             (nothing was deleted)",
            file.display(),
            self.would_delete,
            self.absent,
            self.protected,
            self.invalid,
            self.unchecked
        )
    }
}

#[derive(Serialize)]
struct Plan<'a> {
    summary: Summary,
    items: &'a [Item],
}

/// The plan as `format` says (text without the summary: the caller prints it).
pub fn render(format: PlanFormat, summary: Summary, items: &[Item]) -> anyhow::Result<Vec<u8>> {
    Ok(match format {
        PlanFormat::Text => text(items).into_bytes(),
        PlanFormat::Json => {
            let mut out = serde_json::to_vec_pretty(&Plan { summary, items })?;
            out.push(b'\n');
            out
        }
        PlanFormat::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record(["line", "request_id", "verdict", "detail"])?;
            for i in items {
                let id = i.request_id.as_deref().unwrap_or_default();
                let line = i.line.to_string();
                w.write_record([line.as_str(), id, i.verdict.as_str(), &i.detail])?;
            }
            w.into_inner()
                .map_err(|e| anyhow::anyhow!("{}", e.error()))?
        }
    })
}

/// Aligned columns, one line per item; control characters in a detail (an endpoint's
/// message) are shown as spaces, so that one item stays one line.
fn text(items: &[Item]) -> String {
    let id_of = |i: &Item| i.request_id.clone().unwrap_or_else(|| "-".into());
    let width = items.iter().map(|i| id_of(i).len()).max().unwrap_or(0);
    let width = width.max("request_id".len());
    let mut out = format!(
        "{:>6}  {:<width$}  {:<12}  detail\n",
        "line", "request_id", "verdict"
    );
    for i in items {
        let detail: String = i
            .detail
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        out.push_str(&format!(
            "{:>6}  {:<width$}  {:<12}  {detail}\n",
            i.line,
            id_of(i),
            i.verdict.as_str()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items() -> Vec<Item> {
        let item = |line, id: Option<&str>, verdict, detail: &str| Item {
            line,
            request_id: id.map(str::to_string),
            verdict,
            detail: detail.into(),
        };
        vec![
            item(
                1,
                Some("a"),
                Verdict::WouldDelete,
                "exists: GET /api/jobs/x",
            ),
            item(2, None, Verdict::Invalid, "body is not JSON"),
            item(
                3,
                Some("c"),
                Verdict::Protected,
                "job name `p, q` matches `p*`",
            ),
            item(4, Some("d"), Verdict::Unchecked, "EM answered 500: a\nb"),
        ]
    }

    #[test]
    fn the_summary_counts_each_verdict() {
        let s = Summary::of(&items());
        let want = Summary {
            would_delete: 1,
            protected: 1,
            invalid: 1,
            unchecked: 1,
            absent: 0,
        };
        assert_eq!(s, want);
    }

    #[test]
    fn json_has_the_shape_of_the_contract() {
        let items = items();
        let out = render(PlanFormat::Json, Summary::of(&items), &items).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let summary = serde_json::json!({"would_delete": 1, "absent": 0, "protected": 1,
            "invalid": 1, "unchecked": 1});
        assert_eq!(v["summary"], summary);
        let first = serde_json::json!({"line": 1, "request_id": "a",
            "verdict": "would_delete", "detail": "exists: GET /api/jobs/x"});
        assert_eq!(v["items"][0], first);
        assert_eq!(v["items"][1]["request_id"], serde_json::Value::Null);
        assert_eq!(v["items"].as_array().unwrap().len(), 4);
    }

    #[test]
    fn csv_quotes_what_needs_it_and_text_keeps_one_line_per_item() {
        let items = items();
        let csv = String::from_utf8(render(PlanFormat::Csv, Summary::of(&items), &items).unwrap())
            .unwrap();
        let mut rows = csv.lines();
        assert_eq!(rows.next(), Some("line,request_id,verdict,detail"));
        assert_eq!(
            rows.next(),
            Some("1,a,would_delete,exists: GET /api/jobs/x")
        );
        assert_eq!(rows.next(), Some("2,,invalid,body is not JSON"));
        assert!(
            csv.contains("3,c,protected,\"job name `p, q` matches `p*`\""),
            "{csv}"
        );
        let text =
            String::from_utf8(render(PlanFormat::Text, Summary::of(&items), &items).unwrap())
                .unwrap();
        assert_eq!(
            text.lines().count(),
            5,
            "a header and one line per item: {text}"
        );
        assert!(text.contains("EM answered 500: a b"), "{text}");
    }
}
