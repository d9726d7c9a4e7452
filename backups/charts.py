"""A small server-rendered SVG chart of drill RTOs against the target (no JavaScript)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

if TYPE_CHECKING:
    from backups.models import Restore

WIDTH, HEIGHT, PAD = 640, 220, 36


def rto_chart(restores: list[Restore], target: timedelta) -> SafeString:
    """Bars of measured RTO (minutes) per drill, oldest first, with the target as a line."""
    measured = [r for r in restores if r.rto_seconds is not None]
    if not measured:
        return mark_safe('<p class="muted">No drill has finished yet.</p>')
    target_min = target.total_seconds() / 60
    top = max(target_min * 1.2, max(r.rto_seconds or 0 for r in measured) / 60 * 1.1)
    plot_w, plot_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD
    step = plot_w / len(measured)

    def y(minutes: float) -> float:
        return PAD + plot_h - plot_h * minutes / top

    def num(value: float) -> str:
        # format_html escapes its arguments into strings, so numbers are formatted first.
        return f"{value:.1f}"

    bars = format_html_join(
        "",
        '<rect x="{}" y="{}" width="{}" height="{}" class="{}"><title>{} · {} min</title></rect>',
        (
            (
                num(PAD + i * step + step * 0.15),
                num(y((r.rto_seconds or 0) / 60)),
                num(step * 0.7),
                num(PAD + plot_h - y((r.rto_seconds or 0) / 60)),
                "bar ok" if (r.rto_seconds or 0) <= target.total_seconds() else "bar bad",
                r.site.domain,
                num((r.rto_seconds or 0) / 60),
            )
            for i, r in enumerate(measured)
        ),
    )
    return format_html(
        '<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-label="Drill RTO in minutes '
        'against the {t} minute target">'
        '<line x1="{p}" y1="{ty}" x2="{x2}" y2="{ty}" class="target"/>'
        '<text x="{x2}" y="{tty}" text-anchor="end" class="label">target {t} min</text>'
        '<line x1="{p}" y1="{p}" x2="{p}" y2="{bottom}" class="axis"/>'
        '<text x="4" y="{p}" class="label">{top} min</text>'
        "{bars}</svg>",
        w=WIDTH,
        h=HEIGHT,
        t=f"{target_min:.0f}",
        p=PAD,
        ty=num(y(target_min)),
        tty=num(y(target_min) - 4),
        x2=WIDTH - PAD,
        bottom=PAD + plot_h,
        top=f"{top:.0f}",
        bars=bars,
    )
