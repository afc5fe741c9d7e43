"""The reports of `check` and `status` as `rich` tables (their JSON document is each report's
`as_dict`)."""

from __future__ import annotations

from typing import Any

from streams.ops.check import CheckReport
from streams.ops.kafka_probe import DeadLetterCounts
from streams.ops.status import StatusReport

_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}
_LABEL = {"ok": "OK", "warn": "WARN", "fail": "FAIL", "skip": "-"}


def render_check(report: CheckReport, console: Any) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(title="s2s-bridge check", title_justify="left", show_lines=False)
    table.add_column("check", no_wrap=True)
    table.add_column("target", overflow="fold")
    table.add_column("status", no_wrap=True)
    table.add_column("detail", overflow="fold")
    for c in report.checks:
        table.add_row(c.check, c.target, Text(_LABEL[c.status], style=_STYLE[c.status]), c.detail)
    console.print(table)
    n = report.counts()
    if report.ok:
        summary = Text(f"all OK ({n['ok']} ok, {n['warn']} warning(s), {n['skip']} not checked)", style="green")
    else:
        summary = Text(f"NOT OK: {n['fail']} failed, {n['warn']} warning(s), {n['ok']} ok", style="bold red")
    console.print(summary)


def dead_letter_text(d: DeadLetterCounts | None) -> str:
    if d is None:
        return "-"
    if d.error:
        return f"error: {d.error}"
    if not d.exists:
        return "no topic"
    if d.total == 0:
        return "0"
    if d.complete:
        return str(d.total)
    why = "capped by --max-scan" if d.capped else "timed out" if d.timed_out else "partial"
    return f"{d.total} (scanned {d.scanned}, {why})"


def render_status(report: StatusReport, console: Any) -> None:
    from rich.table import Table
    from rich.text import Text

    if report.error:
        console.print(Text(report.error, style="bold red"))
    table = Table(title=f"s2s-bridge status (group {report.group})", title_justify="left")
    table.add_column("route", no_wrap=True)
    table.add_column("topic", overflow="fold")
    table.add_column("lag", justify="right")
    table.add_column("dead letters", overflow="fold")
    table.add_column("paused", overflow="fold")
    table.add_column("destination", overflow="fold")
    for r in report.routes:
        if r.topic_error:
            lag = Text(r.topic_error, style="red")
        else:
            lag = Text(str(r.lag))
            if any(p.committed is None for p in r.partitions):
                lag.append(" (no commits)", style="dim")
        paused = Text(r.paused.text, style="bold red" if r.paused.paused_on else ("dim" if not r.paused.known else ""))
        state = r.destination_state
        dest = Text(
            f"{r.destination}: {state.upper() if state in ('refusing', 'unhealthy') else state or 'unknown'}",
            style="bold red" if state in ("refusing", "unhealthy") else ("dim" if state is None else ""),
        )
        table.add_row(r.route, r.topic, lag, dead_letter_text(r.dead_letters), paused, dest)
    console.print(table)

    rows = [
        (r, stage, reason, n) for r in report.routes if r.dead_letters for (stage, reason), n in r.dead_letters.by_reason.items()
    ]
    if rows:
        by = Table(title="dead letters by stage and reason", title_justify="left")
        by.add_column("route", no_wrap=True)
        by.add_column("dead-letter topic", overflow="fold")
        by.add_column("stage", no_wrap=True)
        by.add_column("reason", overflow="fold")
        by.add_column("records", justify="right")
        for r, stage, reason, n in sorted(rows, key=lambda x: (x[0].route, -x[3], x[1], x[2])):
            assert r.dead_letters is not None
            by.add_row(r.route, r.dead_letters.topic, stage, reason, str(n))
        console.print(by)
    for r in report.routes:
        d = r.dead_letters
        if d is not None and d.exists and d.error is None and not d.complete and d.total:
            console.print(
                Text(
                    f"{r.route}: counted {d.scanned} of {d.total} dead letters "
                    f"({'--max-scan ' + str(report.max_scan) if d.capped else 'scan timed out'}); the breakdown is partial",
                    style="yellow",
                )
            )
    for m in report.metrics:
        if m.error:
            console.print(Text(f"metrics {m.url}: {m.error}", style="yellow"))
