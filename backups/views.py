"""Backup pages that show backups' own rows: the list, a backup, restores with their RTO
clock, drills (with a small server-rendered SVG chart of their RTOs: no JavaScript),
checks. The pages that act on a site (back up now, the RPO ledger, the
restore wizard, switch) are sites' (``sites.views.backups``, ``sites.views.restore``)."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_GET

from backups.models import RTO_TARGET, Backup, RepositoryCheck, Restore
from farm.decorators import operator_required
from farm.http import AuthedRequest
from farm.live import render_live
from farm.shortcuts import get_for_user


@login_required
@require_GET
def backup_list(request: AuthedRequest) -> HttpResponse:
    backups = Backup.objects.for_user(request.user).select_related("site")
    kind = request.GET.get("kind", "")
    status = request.GET.get("status", "")
    site_id = request.GET.get("site", "")
    if site_id.isdigit():
        backups = backups.filter(site_id=int(site_id))
    if kind:
        backups = backups.filter(kind=kind)
    if status:
        backups = backups.filter(status=status)
    page = Paginator(backups, 50).get_page(request.GET.get("page"))
    return TemplateResponse(
        request,
        "backups/backup_list.html",
        {
            "page": page,
            "kind": kind,
            "status": status,
            "site_id": int(site_id) if site_id.isdigit() else None,
            "kinds": Backup.Kind.choices,
            "statuses": Backup.Status.choices,
            "restores": Restore.objects.for_user(request.user).select_related("site")[:10],
        },
    )


@login_required
@require_GET
def backup_detail(request: AuthedRequest, pk: int) -> HttpResponse:
    backup = get_for_user(Backup, request.user, pk=pk)
    return TemplateResponse(request, "backups/backup_detail.html", {"backup": backup})


@login_required
@require_GET
def restore_detail(request: AuthedRequest, pk: int) -> HttpResponse:
    restore = get_for_user(Restore, request.user, pk=pk)
    operation = restore.operation
    context = {
        "restore": restore,
        "operation": operation,
        "steps": operation.steps.all() if operation else [],
        "rto_target_minutes": int(RTO_TARGET.total_seconds() // 60),
        "live": operation is not None and not operation.is_finished,
    }
    return render_live(
        request,
        "backups/restore_detail.html",
        context,
        finished=not context["live"],
        region=f"restore-{restore.pk}",
    )


@login_required
@require_GET
def drills(request: AuthedRequest) -> HttpResponse:
    restores = list(
        Restore.objects.for_user(request.user).filter(is_drill=True).select_related("site")[:60]
    )
    return TemplateResponse(
        request,
        "backups/drills.html",
        {
            "restores": restores,
            "chart": rto_chart(list(reversed(restores)), RTO_TARGET),
            "rto_target_minutes": int(RTO_TARGET.total_seconds() // 60),
        },
    )


@operator_required
@require_GET
def repository(request: AuthedRequest) -> HttpResponse:
    return TemplateResponse(
        request,
        "backups/repository.html",
        {
            "checks": RepositoryCheck.objects.all()[:30],
            "cluster_backups": Backup.objects.filter(kind=Backup.Kind.CLUSTER)[:30],
        },
    )


# -- the drills' chart --------------------------------------------------------------

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
