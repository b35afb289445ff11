"""Hand-written SVG pictures of an evaluation: the PR curve and the confusion matrix."""

from __future__ import annotations

from html import escape

from domain.evaluation import EvaluationReport

_W, _H, _PAD = 480, 400, 56
_FONT = 'font-family="sans-serif" font-size="12"'


def _svg(width: int, height: int, body: list[str], title: str) -> str:
    return "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"'
            f' viewBox="0 0 {width} {height}" role="img">',
            f"<title>{escape(title)}</title>",
            f'<rect width="{width}" height="{height}" fill="white"/>',
            *body,
            "</svg>",
        ]
    )


def pr_curve_svg(report: EvaluationReport, title: str) -> str:
    """Precision (y) against recall (x) over confidence thresholds; the best-F1 point marked."""
    c = report.curve
    plot_w, plot_h = _W - 2 * _PAD, _H - 2 * _PAD

    def xy(recall: float, precision: float) -> tuple[float, float]:
        return _PAD + recall * plot_w, _H - _PAD - precision * plot_h

    body = [
        f'<text x="{_W / 2}" y="24" text-anchor="middle" {_FONT}>{escape(title)}: PR curve</text>',
        f'<rect x="{_PAD}" y="{_PAD}" width="{plot_w}" height="{plot_h}" fill="none"'
        ' stroke="#888"/>',
    ]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        x, _ = xy(tick, 0)
        _, y = xy(0, tick)
        body.append(
            f'<text x="{x:.1f}" y="{_H - _PAD + 16}" text-anchor="middle" {_FONT}>{tick:g}</text>'
        )
        body.append(
            f'<text x="{_PAD - 6}" y="{y + 4:.1f}" text-anchor="end" {_FONT}>{tick:g}</text>'
        )
    body.append(f'<text x="{_W / 2}" y="{_H - 16}" text-anchor="middle" {_FONT}>recall</text>')
    body.append(
        f'<text x="16" y="{_H / 2}" text-anchor="middle" transform="rotate(-90 16 {_H / 2})"'
        f" {_FONT}>precision</text>"
    )
    points = sorted(zip(c.recall, c.precision, strict=True))
    if points:
        path = " ".join(f"{x:.2f},{y:.2f}" for x, y in (xy(r, p) for r, p in points))
        body.append(f'<polyline points="{path}" fill="none" stroke="#1f77b4" stroke-width="2"/>')
    if c.best_recall is not None and c.best_precision is not None:
        bx, by = xy(c.best_recall, c.best_precision)
        body.append(f'<circle cx="{bx:.2f}" cy="{by:.2f}" r="4" fill="#d62728"/>')
        body.append(
            f'<text x="{bx + 6:.1f}" y="{by - 6:.1f}" {_FONT}>best F1 {c.best_f1:.3f}'
            f" @ {c.best_threshold:.3g}</text>"
        )
    else:
        body.append(
            f'<text x="{_W / 2}" y="{_H / 2}" text-anchor="middle" {_FONT}>'
            "no scored detections</text>"
        )
    return _svg(_W, _H, body, f"{title}: PR curve")


def confusion_svg(report: EvaluationReport, title: str) -> str:
    """Rows: true class; columns: predicted class; shade by the row's share."""
    labels, matrix = report.confusion.labels, report.confusion.matrix
    cell, left, top = 56, 130, 110
    size = len(labels)
    width, height = left + cell * size + 20, top + cell * size + 40
    body = [
        f'<text x="{width / 2}" y="24" text-anchor="middle" {_FONT}>{escape(title)}:'
        " confusion matrix</text>",
        f'<text x="{left + cell * size / 2}" y="48" text-anchor="middle" {_FONT}>predicted</text>',
        f'<text x="16" y="{top + cell * size / 2}" text-anchor="middle"'
        f' transform="rotate(-90 16 {top + cell * size / 2})" {_FONT}>true</text>',
    ]
    for j, label in enumerate(labels):
        x = left + j * cell + cell / 2
        body.append(
            f'<text x="{x}" y="{top - 8}" text-anchor="start" transform="rotate(-45 {x} {top - 8})"'
            f" {_FONT}>{escape(label)}</text>"
        )
    for i, (label, row) in enumerate(zip(labels, matrix, strict=True)):
        y = top + i * cell
        body.append(
            f'<text x="{left - 6}" y="{y + cell / 2 + 4}" text-anchor="end" {_FONT}>'
            f"{escape(label)}</text>"
        )
        total = sum(row) or 1
        for j, count in enumerate(row):
            share = count / total
            shade = int(255 - 200 * share)
            colour = f"rgb({shade},{shade},255)" if i == j else f"rgb(255,{shade},{shade})"
            x = left + j * cell
            body.append(
                f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="{colour}"'
                ' stroke="#ccc"/>'
            )
            body.append(
                f'<text x="{x + cell / 2}" y="{y + cell / 2 + 4}" text-anchor="middle"'
                f" {_FONT}>{count}</text>"
            )
    return _svg(width, height, body, f"{title}: confusion matrix")
