"""The restore wizard: site → point in time → scope → target → confirm.

Every step is a plain GET form carrying the earlier answers as hidden fields (it works
without JavaScript) and, asked by htmx for "#wizard", only the wizard panel. The
snapshots come from a real local restic repository; restores are created for real
(Restore and Operation rows) but never run.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from backups import policy, restic
from backups.models import Restore, RestoreScope, RestoreTarget
from farm.models import AuditEvent, Operation
from sites.models import Site, SiteStatus
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

PASSWORD = "only for tests"
HTMX = {"HX-Request": "true", "HX-Target": "wizard"}


SITE_ID = 4242  # fixed, so that one repository made per module serves every test


def take(repo: restic.Repository, kind: str, hours_ago: float, tmp_path: Path) -> restic.Snapshot:
    source = tmp_path / "source" / f"{kind}-{hours_ago}"
    source.mkdir(parents=True)
    (source / "data").write_text(f"{kind} {hours_ago}")
    when = timezone.now() - timedelta(hours=hours_ago)
    tags = {"site": str(SITE_ID), "kind": kind}
    restic.backup_paths(repo, [source], tags=tags, time=when)
    return next(
        s for s in restic.snapshots(repo, tags=tags) if abs((s.time - when).total_seconds()) < 1
    )


@pytest.fixture(scope="module")
def made_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, restic.Snapshot]]:
    """Database snapshots 5 h and 1 h old, files 3 h old (restic is slow to start: once)."""
    tmp = tmp_path_factory.mktemp("restic")
    repo = restic.Repository(str(tmp / "repo"), PASSWORD, {}, tmp / "cache")
    restic.ensure_repository(repo)
    snapshots = {
        "db_old": take(repo, "db", 5, tmp),
        "files": take(repo, "files", 3, tmp),
        "db_new": take(repo, "db", 1, tmp),
    }
    empty = restic.Repository(str(tmp / "empty"), PASSWORD, {}, tmp / "cache")
    restic.ensure_repository(empty)
    return tmp, snapshots


@pytest.fixture(autouse=True)
def _no_cached_listing() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


def use_repository(settings, path: Path, tmp_path: Path) -> None:
    shutil.copytree(path, tmp_path / "repo")
    settings.FARM_BACKUP_REPOSITORY = str(tmp_path / "repo")
    settings.FARM_RESTIC_PASSWORD = PASSWORD
    settings.FARM_RESTIC_CACHE_DIR = str(tmp_path / "restic-cache")
    cache.clear()


@pytest.fixture
def repo(settings, tmp_path: Path, made_repo) -> restic.Repository:
    """The farm's repository, without a snapshot."""
    use_repository(settings, made_repo[0] / "empty", tmp_path)
    return restic.repository_from_settings()


@pytest.fixture
def snapshots(settings, tmp_path: Path, made_repo) -> dict[str, restic.Snapshot]:
    """The farm's repository, with the site's snapshots, as the RPO check listed it."""
    use_repository(settings, made_repo[0] / "repo", tmp_path)
    policy.record_listing(policy.list_repository())
    return made_repo[1]


@pytest.fixture
def site(tenant, worker_node) -> Site:
    return Site.objects.create(
        pk=SITE_ID, tenant=tenant, domain="shop.acme.test", status=SiteStatus.ACTIVE
    )


def url(site: Site) -> str:
    return reverse("restore_wizard", args=[site.pk])


def wizard_panel(body: str) -> str:
    match = re.search(r'<section id="wizard".*?</section>', body, re.S)
    assert match, "the page has the wizard panel"
    return match.group(0)


def hidden(body: str) -> dict[str, str]:
    """The hidden fields of the wizard's form (the earlier answers)."""
    fields = re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', wizard_panel(body))
    return {name: value for name, value in fields if name != "csrfmiddlewaretoken"}


def answers(point: datetime, scope: str = "both", target: str = "beside") -> dict[str, str]:
    return {"point": point.isoformat(), "scope": scope, "target": target}


# -- each step ------------------------------------------------------------------------------


def test_step_one_lists_the_sites_the_user_may_restore(owner, member, tenant, site, outsider):
    Site.objects.create(tenant=tenant, domain="gone.acme.test", status=SiteStatus.DELETED)
    response = client_for(owner).get(reverse("restore_start"))
    assert response.status_code == 200 and response.context["step"] == "site"
    assert [s.domain for s in response.context["sites"]] == ["shop.acme.test"]
    assert f'href="{url(site)}"' in response.content.decode(), "a plain link, no JavaScript"
    assert client_for(member).get(reverse("restore_start")).context["sites"] == []
    assert client_for(outsider).get(reverse("restore_start")).context["sites"] == []
    assert client_for(owner).post(reverse("restore_start")).status_code == 405


def test_step_two_lists_the_snapshots_newest_first_with_age_and_kind(owner, site, snapshots):
    response = client_for(owner).get(url(site))
    assert response.status_code == 200 and response.context["step"] == "point"
    listed = [(c.kind, c.id) for c in response.context["snapshots"]]
    assert listed == [
        ("db", snapshots["db_new"].id),
        ("files", snapshots["files"].id),
        ("db", snapshots["db_old"].id),
    ]
    body = response.content.decode()
    assert '<form method="get"' in body
    assert body.count('type="radio" name="point"') == 3
    assert "1\xa0hour" in body and "3\xa0hours" in body and "5\xa0hours" in body, "ages"
    assert snapshots["db_new"].short_id in body


def test_a_site_without_snapshots_says_so(owner, site, repo):
    body = client_for(owner).get(url(site)).content.decode()
    assert "No snapshot of this site is in the repository yet." in body
    assert "Next: what to restore" not in body


def test_the_steps_carry_the_earlier_answers_as_hidden_fields(owner, site, snapshots):
    client = client_for(owner)
    point = snapshots["db_new"].time

    scope = client.get(url(site), {"point": point.isoformat()})
    assert scope.context["step"] == "scope"
    assert hidden(scope.content.decode()) == {"point": point.isoformat()}
    assert '<form method="get"' in scope.content.decode()

    target = client.get(url(site), {"point": point.isoformat(), "scope": "db"})
    assert target.context["step"] == "target"
    assert hidden(target.content.decode()) == {"point": point.isoformat(), "scope": "db"}

    confirm = client.get(url(site), answers(point, scope="db"))
    assert confirm.context["step"] == "confirm"
    body = confirm.content.decode()
    assert hidden(body) == {"point": point.isoformat(), "scope": "db", "target": "beside"}
    assert '<form method="post"' in body and "csrfmiddlewaretoken" in wizard_panel(body)
    assert 'name="confirm_domain"' in body
    assert not Restore.objects.exists(), "looking at the steps changes nothing"


def submit(client, site: Site, body: str, method: str = "get", **typed: str):
    """What a browser without JavaScript sends: the hidden and the checked fields."""
    form = wizard_panel(body)
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', form))
    fields.update(re.findall(r'<input type="radio" name="(\w+)" value="([^"]*)"[^>]*checked', form))
    fields.update(typed)
    return getattr(client, method)(url(site), fields)


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata"])
def test_walking_the_wizard_with_the_default_answers(owner, site, snapshots, settings, zone):
    settings.TIME_ZONE = zone
    client = client_for(owner)
    point = client.get(url(site))
    scope = submit(client, site, point.content.decode())
    assert scope.context["step"] == "scope"
    assert scope.context["point"] == snapshots["db_new"].time, "the newest, to the microsecond"
    target = submit(client, site, scope.content.decode())
    assert target.context["scope"] == "both"
    confirm = submit(client, site, target.content.decode())
    assert confirm.context["target"] == "beside"
    done = submit(client, site, confirm.content.decode(), "post", confirm_domain=site.domain)
    assert done.status_code == 302
    restore = Restore.objects.get()
    assert restore.db_snapshot_id == snapshots["db_new"].id
    assert restore.files_snapshot_id == snapshots["files"].id


def test_each_step_is_also_an_htmx_partial(owner, site, snapshots):
    client = client_for(owner)
    point = snapshots["db_new"].time.isoformat()
    for params in (
        {},
        {"point": point},
        {"point": point, "scope": "db"},
        {"point": point, "scope": "db", "target": "in_place"},
    ):
        full = client.get(url(site), params).content.decode()
        partial = client.get(url(site), params, headers=HTMX).content.decode()
        assert "<html" in full
        assert "<html" not in partial and partial.lstrip().startswith('<section id="wizard"')
    start = client.get(reverse("restore_start"), headers=HTMX).content.decode()
    assert "<html" not in start and 'id="wizard"' in start


def test_an_answer_that_makes_no_sense_asks_the_question_again(owner, site, snapshots):
    client = client_for(owner)
    point = snapshots["db_new"].time.isoformat()
    assert client.get(url(site), {"point": "yesterday"}).context["step"] == "point"
    assert client.get(url(site), {"point": "2025-02-30T10:00:00+00:00"}).context["step"] == (
        "point"
    )
    assert client.get(url(site), {"point": point, "scope": "all"}).context["step"] == "scope"
    assert (
        client.get(url(site), {"point": point, "scope": "db", "target": "moon"}).context["step"]
        == "target"
    )


# -- confirming --------------------------------------------------------------------------------


def test_confirming_without_the_domain_is_a_field_error_and_changes_nothing(owner, site, snapshots):
    client = client_for(owner)
    data = answers(snapshots["db_new"].time)
    for typed in ("", "other.acme.test"):
        response = client.post(url(site), {**data, "confirm_domain": typed})
        assert response.status_code == 200 and response.context["step"] == "confirm"
        assert response.context["form"].errors["confirm_domain"]
        assert 'aria-invalid="true"' in response.content.decode()
    assert not Restore.objects.exists() and not Operation.objects.exists()


def test_confirming_with_the_domain_starts_the_restore(owner, site, snapshots):
    point = snapshots["files"].time  # both: the files of 3 h ago and the database of 5 h ago
    response = client_for(owner).post(
        url(site), {**answers(point), "confirm_domain": "SHOP.acme.test"}
    )
    restore = Restore.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("restore_detail", args=[restore.pk])
    assert restore.site == site and restore.requested_by == owner
    assert restore.scope == RestoreScope.BOTH and restore.target == RestoreTarget.BESIDE
    assert restore.point_in_time == point
    assert restore.files_snapshot_id == snapshots["files"].id
    assert restore.db_snapshot_id == snapshots["db_old"].id, "the newest at or before the point"
    operation = restore.operation
    assert operation is not None
    assert operation.kind == "restore.site"
    assert operation.lock_key == f"site:{site.pk}", "no backup can interleave"
    assert AuditEvent.objects.filter(action="restore.start", actor=owner).exists()


def test_confirming_through_htmx_sends_the_browser_to_the_restore(owner, site, snapshots):
    response = client_for(owner).post(
        url(site),
        {**answers(snapshots["db_new"].time, scope="db"), "confirm_domain": site.domain},
        headers=HTMX,
    )
    restore = Restore.objects.get()
    assert response["HX-Redirect"] == reverse("restore_detail", args=[restore.pk])


def test_a_point_before_every_snapshot_is_refused_on_the_confirm_step(owner, site, snapshots):
    too_early = snapshots["db_old"].time - timedelta(hours=1)
    response = client_for(owner).post(
        url(site), {**answers(too_early), "confirm_domain": site.domain}
    )
    assert response.status_code == 200 and response.context["step"] == "confirm"
    assert "no database snapshot at or before that time" in response.content.decode()
    assert not Restore.objects.exists()


def test_a_point_without_a_timezone_is_read_in_the_farms_timezone(owner, site, snapshots):
    naive = timezone.make_naive(snapshots["db_new"].time).isoformat()
    response = client_for(owner).post(
        url(site),
        {"point": naive, "scope": "db", "target": "beside", "confirm_domain": site.domain},
    )
    assert response.status_code == 302
    assert Restore.objects.get().db_snapshot_id == snapshots["db_new"].id


def test_a_post_to_an_earlier_step_just_shows_that_step(owner, site, snapshots):
    client = client_for(owner)
    point = snapshots["db_new"].time.isoformat()
    assert client.post(url(site), {}).context["step"] == "point"
    assert (
        client.post(url(site), {"point": point, "confirm_domain": site.domain}).context["step"]
        == "scope"
    )
    assert not Restore.objects.exists()


def test_a_second_restore_while_one_runs_is_refused(owner, site, snapshots):
    client = client_for(owner)
    data = {**answers(snapshots["db_new"].time, scope="db"), "confirm_domain": site.domain}
    client.post(url(site), data)
    again = client.post(url(site), data)
    assert again.status_code == 200
    assert "already has an unfinished operation" in again.content.decode()
    assert Restore.objects.count() == 1


# -- who may restore -------------------------------------------------------------------------


def test_another_tenants_site_is_404(outsider, site, snapshots):
    client = client_for(outsider)
    assert client.get(url(site)).status_code == 404
    data = {**answers(snapshots["db_new"].time), "confirm_domain": site.domain}
    assert client.post(url(site), data).status_code == 404
    assert not Restore.objects.exists()


def test_members_may_not_restore(member, site, snapshots):
    client = client_for(member)
    assert client.get(url(site)).status_code == 403
    data = {**answers(snapshots["db_new"].time), "confirm_domain": site.domain}
    assert client.post(url(site), data).status_code == 403
    assert not Restore.objects.exists()


def test_an_operator_may_restore_any_site(operator, site, snapshots):
    client = client_for(operator)
    assert [s.domain for s in client.get(reverse("restore_start")).context["sites"]] == [
        "shop.acme.test"
    ]
    data = {**answers(snapshots["db_new"].time, target="in_place"), "confirm_domain": site.domain}
    assert client.post(url(site), data).status_code == 302
    assert Restore.objects.get().requested_by == operator


def test_the_wizard_answers_only_get_and_post(owner, site):
    assert client_for(owner).put(url(site)).status_code == 405
    assert client_for(owner).delete(url(site)).status_code == 405
