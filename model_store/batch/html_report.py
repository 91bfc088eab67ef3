"""A batch report as one self-contained HTML page, for people: written beside its JSON.

Inline CSS and inline SVG only: no script, no external resource (the page's
Content-Security-Policy forbids both as well), a fluid layout that reads on a phone.
Every number shown is the BatchReport's, rendered from the model; all of its text goes
through html.escape, as locations and reasons quote the input (file names, cells).
Standard library only, and imported only when a report is written.
"""

from __future__ import annotations

from html import escape

from model_store.batch.report import BatchReport, Drift, RowError

EXAMPLE_LINES = 5  # line numbers shown per error reason

_HEADLINES = {
    "succeeded": "The file was scored: each data row is in the predictions or the errors.",
    "rejected": "The file cannot be scored as a whole: no row was scored.",
    "failed": "Scoring stopped: this attempt wrote no predictions or errors.",
    "running": "The file is being scored in shards; this report is replaced when they finish.",
}

_CSS = """
*{box-sizing:border-box}
body{margin:0;font:16px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:#1b1f24;background:#f6f7f9}
main{max-width:56rem;margin:0 auto;padding:1rem}
h1{font-size:1.4rem;margin:.2rem 0 .8rem}
h2{font-size:1.1rem;margin:0 0 .6rem}
section{background:#fff;border:1px solid #dde1e6;border-radius:8px;padding:1rem;margin:0 0 1rem}
.status{border-left:6px solid #8a939e}
.succeeded{border-left-color:#1a7f37}.rejected{border-left-color:#bf8700}
.failed{border-left-color:#cf222e}
.badge{display:inline-block;padding:.1rem .6rem;border-radius:1rem;font-weight:600;
background:#eef1f4}
dl{display:grid;grid-template-columns:minmax(7rem,max-content) 1fr;gap:.3rem 1rem;margin:0}
dt{color:#57606a}dd{margin:0;overflow-wrap:anywhere}
.counts{grid-template-columns:repeat(auto-fit,minmax(8rem,1fr));gap:.6rem}
.counts div{background:#f6f7f9;border-radius:6px;padding:.5rem}
.counts dd{font-size:1.3rem;font-weight:600}
ul{list-style:none;margin:0;padding:0}
.bars li{display:grid;grid-template-columns:minmax(6rem,10rem) 1fr 4.5rem;gap:.5rem;
align-items:center;padding:.2rem 0}
.bars svg{width:100%;height:1.1rem;display:block}
.bar{fill:#0969da}.flagged .bar{fill:#cf222e}
.threshold{stroke:#1b1f24;stroke-width:2;stroke-dasharray:3 2}
.psi{text-align:right;font-variant-numeric:tabular-nums}
.flagged .psi{color:#cf222e;font-weight:600}
.note{background:#fff8c5;border-radius:6px;padding:.5rem}
.errors li{padding:.4rem 0;border-top:1px solid #eef1f4}
.reason{overflow-wrap:anywhere}.lines{color:#57606a;font-size:.9rem}
small,.muted{color:#57606a}
@media (max-width:30rem){.bars li{grid-template-columns:1fr 4.5rem}
.bars .name{grid-column:1/-1}}
"""


def render_html(report: BatchReport) -> str:
    """The report as a complete HTML document (a str: encode it as UTF-8)."""
    name = report.source.location.rsplit("/", 1)[-1] or report.source.location
    title = f"{report.status}: {name}"
    return "\n".join(
        [
            "<!doctype html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            '<meta http-equiv="Content-Security-Policy" '
            "content=\"default-src 'none'; style-src 'unsafe-inline'\">",
            f"<title>Batch report: {escape(title)}</title>",
            f"<style>{_CSS}</style></head>",
            "<body><main>",
            _status(report),
            _counts(report),
            _drift(report.drift),
            _errors(report),
            "</main></body></html>",
            "",
        ]
    )


def _value(field: str, value: float, shown: str) -> str:
    """A number as shown, with its exact value in data-value for machines."""
    return f'<dd data-field="{field}" data-value="{value!r}">{escape(shown)}</dd>'


def _text(field: str, value: str | None, missing: str = "none") -> str:
    if value is None:
        return f'<dd data-field="{field}" class="muted">{escape(missing)}</dd>'
    return f'<dd data-field="{field}">{escape(value)}</dd>'


def _status(report: BatchReport) -> str:
    model = f"{report.model.name}@{report.model.version}" if report.model else None
    rows = [
        f'<section class="status {report.status}">',
        "<h1>Batch report</h1>",
        f'<p><span class="badge" data-field="status">{escape(report.status)}</span> '
        f"{escape(_HEADLINES[report.status])}</p>",
        "<dl>",
    ]
    if report.reason is not None:
        rows += ["<dt>Reason</dt>", _text("reason", report.reason)]
    rows += [
        "<dt>Source</dt>",
        _text("source.location", report.source.location),
        "<dt>ETag</dt>",
        _text("source.etag", report.source.etag),
        "<dt>Version</dt>",
        _text("source.version_id", report.source.version_id),
        "<dt>Model</dt>",
        _text("model", model, "none loaded"),
        "<dt>Started</dt>",
        _text("started_at", report.started_at.isoformat()),
    ]
    if report.execution is not None:
        rows += ["<dt>Execution</dt>", _text("execution", report.execution)]
    for output, location in report.outputs.items():
        rows += [f"<dt>{escape(output.capitalize())}</dt>", _text(f"outputs.{output}", location)]
    rows += ["</dl>", "</section>"]
    return "\n".join(rows)


def _counts(report: BatchReport) -> str:
    items = [
        ("Rows in", _value("rows_in", report.rows_in, f"{report.rows_in:,}")),
        ("Scored", _value("rows_scored", report.rows_scored, f"{report.rows_scored:,}")),
        ("Failed", _value("rows_failed", report.rows_failed, f"{report.rows_failed:,}")),
        (
            "Duration",
            _value(
                "duration_seconds", report.duration_seconds, f"{report.duration_seconds:,.3f} s"
            ),
        ),
        (
            "Rows/s",
            _value("rows_per_second", report.rows_per_second, f"{report.rows_per_second:,.0f}"),
        ),
    ]
    cells = "\n".join(f"<div><dt>{label}</dt>{value}</div>" for label, value in items)
    return f'<section><h2>Counts</h2>\n<dl class="counts">\n{cells}\n</dl></section>'


def _drift(drift: Drift | None) -> str:
    if drift is None:
        return '<section><h2>Drift</h2><p class="muted">No drift in this report.</p></section>'
    threshold = drift.threshold
    parts = [
        "<section><h2>Drift</h2>",
        f"<p>Population stability index (PSI) of each feature against the training data, "
        f'from <span data-field="drift.rows" data-value="{drift.rows!r}">{drift.rows:,}</span>'
        f" scored rows. The dashed line is the threshold, "
        f'<span data-field="drift.threshold" data-value="{threshold!r}">{threshold:g}</span>:'
        f" a feature above it is flagged.</p>",
    ]
    if drift.note is not None:
        parts.append(f'<p class="note" data-field="drift.note">{escape(drift.note)}</p>')
    if not drift.features:
        parts.append('<p class="muted">No features.</p>')
    else:
        top = max([threshold * 1.5, *(d.psi for d in drift.features.values())]) or 1.0
        line = 100 * threshold / top
        parts.append('<ul class="bars">')
        for feature, d in drift.features.items():
            width = 100 * max(d.psi, 0.0) / top
            flag = " (flagged)" if d.flagged else ""
            label = escape(f"{feature}: PSI {d.psi:.3f}, threshold {threshold:g}{flag}")
            parts.append(
                f'<li class="{"flagged" if d.flagged else "ok"}" data-feature="{escape(feature)}"'
                f' data-psi="{d.psi!r}" data-flagged="{str(d.flagged).lower()}">'
                f'<span class="name">{escape(feature)}</span>'
                f'<svg viewBox="0 0 100 10" preserveAspectRatio="none" role="img">'
                f"<title>{label}</title>"
                f'<rect class="bar" x="0" y="1" width="{width:.2f}" height="8"/>'
                f'<line class="threshold" x1="{line:.2f}" x2="{line:.2f}" y1="0" y2="10"'
                f' vector-effect="non-scaling-stroke"/></svg>'
                f'<span class="psi">{d.psi:.3f}</span></li>'
            )
        parts.append("</ul>")
        flagged = ", ".join(drift.flagged)
        parts.append(
            f"<p>Flagged: <strong>{escape(flagged)}</strong></p>"
            if flagged
            else '<p class="muted">No feature is flagged.</p>'
        )
    parts.append("</section>")
    return "\n".join(parts)


def error_groups(errors: list[RowError]) -> list[tuple[str, list[int]]]:
    """(reason, its lines) for ERRORS, the most frequent reason first (ties: first seen)."""
    groups: dict[str, list[int]] = {}
    for error in errors:
        groups.setdefault(error.reason, []).append(error.line)
    return sorted(groups.items(), key=lambda group: -len(group[1]))


def _errors(report: BatchReport) -> str:
    listed = len(report.first_errors)
    failed = report.rows_failed
    parts = ["<section><h2>Row errors</h2>"]
    if not listed:
        said = "No row failed." if not failed else f"{failed:,} rows failed; none is listed."
        parts.append(f'<p class="muted">{said}</p></section>')
        return "\n".join(parts)
    if failed > listed:
        where = report.outputs.get("errors")
        every = f" Every failed row is in {escape(where)}." if where else ""
        parts.append(
            f'<p data-field="first_errors_scope">From the first {listed:,} errors only: '
            f"the report keeps the line and reason of the first {listed:,} of the "
            f"{failed:,} failed rows, so these counts cover those {listed:,}.{every}</p>"
        )
    else:
        parts.append(
            f'<p data-field="first_errors_scope">All {listed:,} failed rows, '
            "by reason, most frequent first.</p>"
        )
    parts.append('<ul class="errors">')
    for reason, lines in error_groups(report.first_errors):
        shown = ", ".join(str(n) for n in lines[:EXAMPLE_LINES])
        more = ", …" if len(lines) > EXAMPLE_LINES else ""
        parts.append(
            f'<li data-reason="{escape(reason)}" data-count="{len(lines)}"'
            f' data-lines="{" ".join(str(n) for n in lines)}">'
            f'<strong class="count">{len(lines):,}&times;</strong> '
            f'<span class="reason">{escape(reason)}</span><br>'
            f'<span class="lines">line{"s" if len(lines) > 1 else ""} {shown}{more}</span></li>'
        )
    parts.append("</ul></section>")
    return "\n".join(parts)
