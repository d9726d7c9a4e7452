"""Cloudflare DNS: the real SDK against a local fake of the Cloudflare v4 API."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import cloudflare
import pytest
from django.core.exceptions import ImproperlyConfigured

from sites.dns import (
    CloudflareDns,
    DnsConfig,
    DnsError,
    DnsNameTaken,
    dns_config_from_settings,
    farm_mark,
    managed_zone_for,
    marked_site,
    record_for_target,
)
from tests.fakes.cloudflare_api import FakeCloudflareApi, running_fake_cloudflare

# Exercises an external system through its module; the panel database plays no part.
pytestmark = pytest.mark.external

TOKEN = "farm-dns-token"
EDGE_IP = "203.0.113.10"
SITE = 12  # the site the records are made for
MINE = farm_mark(SITE)  # "wpfarm site 12 (managed)"
MakeDns = Callable[..., CloudflareDns]


@pytest.fixture
def api() -> Iterator[FakeCloudflareApi]:
    with running_fake_cloudflare(token=TOKEN, zones=["example.com"]) as fake:
        yield fake


@pytest.fixture
def make_dns(api: FakeCloudflareApi) -> Iterator[MakeDns]:
    """CloudflareDns pointed at the fake; every client made is closed afterwards."""
    made: list[CloudflareDns] = []

    def make(
        *,
        target: str = EDGE_IP,
        proxied: bool = True,
        zones: tuple[str, ...] = ("example.com",),
        token: str = TOKEN,
        ttl: int = 1,
        **options: Any,
    ) -> CloudflareDns:
        config = DnsConfig(
            api_token=token,
            zones=zones,
            target=target,
            proxied=proxied,
            base_url=api.base_url,
            ttl=ttl,
        )
        dns = CloudflareDns(config, **options)
        made.append(dns)
        return dns

    yield make
    for dns in made:
        dns.close()


def writes(api: FakeCloudflareApi) -> list[str]:
    return [f"{r.method} {r.path.rsplit('/', 1)[-1]}" for r in api.requests if r.method != "GET"]


# ---- create, update, unchanged, replace, delete ---------------------------------


def test_upsert_creates_a_proxied_a_record_for_an_ipv4_target(api, make_dns):
    result = make_dns().upsert_record("shop.example.com", site_id=SITE)

    assert result.action == "created"
    assert result.removed == ()
    [stored] = api.records_named("shop.example.com")
    assert (stored["type"], stored["content"], stored["proxied"]) == ("A", EDGE_IP, True)
    assert result.record.id == stored["id"]
    [create] = api.calls("POST")
    assert create.body == {
        "name": "shop.example.com",
        "type": "A",
        "content": EDGE_IP,
        "proxied": True,
        "ttl": 1,
        "comment": "wpfarm site 12 (managed)",
    }
    assert stored["comment"] == MINE


def test_upsert_twice_is_unchanged_and_writes_nothing_the_second_time(api, make_dns):
    dns = make_dns()
    first = dns.upsert_record("shop.example.com", site_id=SITE)
    api.requests.clear()

    second = dns.upsert_record("shop.example.com", site_id=SITE)

    assert second.action == "unchanged"
    assert second.record == first.record
    assert writes(api) == []
    assert len(api.records_named("shop.example.com")) == 1


def test_upsert_edits_a_record_with_the_wrong_address_in_place(api, make_dns):
    old = api.add_record(
        "example.com", name="shop", type="A", content="198.51.100.7", proxied=True, comment=MINE
    )

    result = make_dns().upsert_record("shop.example.com", site_id=SITE)

    assert result.action == "updated"
    assert result.record.id == old["id"]
    assert result.record.content == EDGE_IP
    assert [r.method for r in api.calls(path_contains=old["id"])] == ["PATCH"]


def test_upsert_fixes_the_proxied_flag(api, make_dns):
    api.add_record("example.com", name="shop.example.com", type="A", content=EDGE_IP, comment=MINE)

    result = make_dns(proxied=True).upsert_record("shop.example.com", site_id=SITE)

    assert result.action == "updated"
    assert api.records_named("shop.example.com")[0]["proxied"] is True


def test_upsert_replaces_a_cname_with_an_a_record(api, make_dns):
    cname = api.add_record(
        "example.com",
        name="shop.example.com",
        type="CNAME",
        content="old-host.example.net",
        comment=MINE,
    )

    result = make_dns().upsert_record("shop.example.com", site_id=SITE)

    assert result.action == "updated"
    assert [r.id for r in result.removed] == [cname["id"]]
    [stored] = api.records_named("shop.example.com")
    assert (stored["type"], stored["content"]) == ("A", EDGE_IP)
    # The CNAME must go first: Cloudflare refuses an A record beside a CNAME.
    assert writes(api) == [f"DELETE {cname['id']}", "POST dns_records"]


def test_upsert_with_a_host_name_target_replaces_a_and_aaaa_with_one_cname(api, make_dns):
    api.add_record("example.com", name="shop.example.com", type="A", content=EDGE_IP, comment=MINE)
    api.add_record(
        "example.com", name="shop.example.com", type="AAAA", content="2001:db8::1", comment=MINE
    )

    result = make_dns(target="Edge.Farm.example.net.").upsert_record(
        "shop.example.com", site_id=SITE
    )

    assert result.action == "updated"
    assert sorted(r.type for r in result.removed) == ["A", "AAAA"]
    [stored] = api.records_named("shop.example.com")
    assert (stored["type"], stored["content"]) == ("CNAME", "edge.farm.example.net")


def test_upsert_with_an_ipv6_target_makes_an_aaaa_record_and_then_stays_unchanged(api, make_dns):
    dns = make_dns(target="2001:DB8:0:0::10")

    assert dns.upsert_record("shop.example.com", site_id=SITE).action == "created"
    assert dns.upsert_record("shop.example.com", site_id=SITE).action == "unchanged"
    [stored] = api.records_named("shop.example.com")
    assert (stored["type"], stored["content"]) == ("AAAA", "2001:db8::10")


def test_upsert_removes_a_stale_extra_a_record_but_keeps_the_right_one(api, make_dns):
    right = api.add_record(
        "example.com",
        name="shop.example.com",
        type="A",
        content=EDGE_IP,
        proxied=True,
        comment=MINE,
    )
    stale = api.add_record(
        "example.com", name="shop.example.com", type="A", content="192.0.2.99", comment=MINE
    )

    result = make_dns().upsert_record("shop.example.com", site_id=SITE)

    assert result.action == "updated"
    assert result.record.id == right["id"]
    assert [r.id for r in result.removed] == [stale["id"]]
    assert [r["id"] for r in api.records_named("shop.example.com")] == [right["id"]]


def test_upsert_leaves_other_record_types_on_the_name_alone(api, make_dns):
    api.add_record("example.com", name="shop.example.com", type="TXT", content="v=spf1 -all")
    api.add_record(
        "example.com", name="shop.example.com", type="MX", content="mx.example.net", priority=10
    )

    make_dns().upsert_record("shop.example.com", site_id=SITE)

    types = sorted(r["type"] for r in api.records_named("shop.example.com"))
    assert types == ["A", "MX", "TXT"]


def test_unproxied_records_keep_the_configured_ttl(api, make_dns):
    dns = make_dns(proxied=False, ttl=300)

    assert dns.upsert_record("shop.example.com", site_id=SITE).record.ttl == 300
    assert dns.upsert_record("shop.example.com", site_id=SITE).action == "unchanged"


def test_proxied_records_do_not_flap_over_a_ttl_cloudflare_overrides(api, make_dns):
    dns = make_dns(proxied=True, ttl=300)

    # Cloudflare serves proxied records with automatic TTL.
    assert dns.upsert_record("shop.example.com", site_id=SITE).record.ttl == 1
    assert dns.upsert_record("shop.example.com", site_id=SITE).action == "unchanged"


def test_delete_records_is_idempotent_and_spares_other_types(api, make_dns):
    api.add_record("example.com", name="shop.example.com", type="A", content=EDGE_IP, comment=MINE)
    api.add_record(
        "example.com", name="shop.example.com", type="AAAA", content="2001:db8::1", comment=MINE
    )
    api.add_record("example.com", name="shop.example.com", type="TXT", content="keep me")
    dns = make_dns()

    assert dns.delete_records("shop.example.com", site_id=SITE) == 2
    assert dns.delete_records("shop.example.com", site_id=SITE) == 0
    assert [r["type"] for r in api.records_named("shop.example.com")] == ["TXT"]


def test_delete_counts_a_record_someone_else_deleted_meanwhile_as_gone(api, make_dns):
    api.add_record("example.com", name="shop.example.com", type="A", content=EDGE_IP, comment=MINE)
    api.fail_next(
        status=404, errors=[{"code": 81044, "message": "Record does not exist."}], method="DELETE"
    )

    assert make_dns().delete_records("shop.example.com", site_id=SITE) == 0


# ---- reading: zones, names, pages ----------------------------------------------------


def test_find_records_walks_every_page(api, make_dns):
    for n in range(120):
        api.add_record("example.com", name="shop.example.com", type="TXT", content=f"token-{n}")
    wanted = api.add_record("example.com", name="shop.example.com", type="A", content=EDGE_IP)

    found = make_dns(per_page=50).find_records("shop.example.com")

    assert [r.id for r in found] == [wanted["id"]]  # record 121: on page 3
    lists = api.calls("GET", "/dns_records")
    assert [r.query.get("page") for r in lists] == [None, ["2"], ["3"]]
    assert all(r.query["name.exact"] == ["shop.example.com"] for r in lists)
    assert all(r.query["per_page"] == ["50"] for r in lists)


def test_find_records_ignores_other_names_in_a_busy_zone(api, make_dns):
    for n in range(120):
        api.add_record("example.com", name=f"site{n}.example.com", type="A", content=EDGE_IP)
    api.add_record("example.com", name="a.shop.example.com", type="A", content=EDGE_IP)
    wanted = api.add_record("example.com", name="shop.example.com", type="A", content=EDGE_IP)

    found = make_dns(per_page=50).find_records("shop.example.com")

    assert [r.id for r in found] == [wanted["id"]]


def test_zone_id_is_looked_up_by_name_once(api, make_dns):
    dns = make_dns()

    dns.upsert_record("a.example.com", site_id=SITE)
    dns.upsert_record("b.example.com", site_id=SITE)

    zone_lookups = api.calls("GET", "/zones")
    zone_lookups = [r for r in zone_lookups if r.path == "/zones"]
    assert len(zone_lookups) == 1
    assert zone_lookups[0].query["name"] == ["example.com"]
    assert dns.zone_id("example.com") == api.zone_id_of("example.com")


def test_a_zone_cloudflare_does_not_have_is_a_clear_non_retryable_error(api, make_dns):
    dns = make_dns(zones=("example.org",))

    with pytest.raises(DnsError) as caught:
        dns.upsert_record("shop.example.org", site_id=SITE)

    assert "no zone named example.org" in caught.value.message
    assert caught.value.retryable is False


def test_a_domain_outside_the_managed_zones_is_refused(api, make_dns):
    with pytest.raises(DnsError, match="not in a zone the farm manages") as caught:
        make_dns().upsert_record("shop.example.net", site_id=SITE)

    assert caught.value.retryable is False
    assert api.requests == []


# ---- failures -------------------------------------------------------------------------


def test_rate_limit_is_retried_after_the_time_cloudflare_asks_for(api, make_dns):
    api.fail_next(status=429, retry_after=1)

    result = make_dns().upsert_record("shop.example.com", site_id=SITE)

    assert result.action == "created"
    limited, retried = api.requests[:2]
    assert limited.status == 429 and retried.status == 200
    assert (limited.method, limited.path) == (retried.method, retried.path)
    assert retried.headers["x-stainless-retry-count"] == "1"
    assert 0.9 <= retried.at - limited.at < 10


def test_rate_limit_that_outlasts_the_retries_is_retryable(api, make_dns):
    api.fail_next(5, status=429, retry_after=0.05)

    with pytest.raises(DnsError) as caught:
        make_dns(max_retries=1).upsert_record("shop.example.com", site_id=SITE)

    assert caught.value.retryable is True
    assert caught.value.status_code == 429
    assert "rate-limiting" in caught.value.message
    assert "Please wait and consider throttling your request speed (code 971)" in str(caught.value)


def test_persistent_server_errors_are_retryable_and_carry_cloudflares_message(api, make_dns):
    api.fail_next(10, status=500, errors=[{"code": 10013, "message": "Upstream DNS store down"}])

    with pytest.raises(DnsError) as caught:
        make_dns(max_retries=1).upsert_record("shop.example.com", site_id=SITE)

    assert caught.value.retryable is True
    assert caught.value.error_codes == (10013,)
    assert "Upstream DNS store down (code 10013)" in caught.value.message
    assert len(api.requests) == 2  # the SDK tried once more before giving up


def test_a_bad_token_is_an_authentication_error_that_retrying_cannot_fix(api, make_dns):
    with pytest.raises(DnsError) as caught:
        make_dns(token="not-the-token").upsert_record("shop.example.com", site_id=SITE)

    assert caught.value.retryable is False
    assert caught.value.status_code == 401
    assert "authentication" in caught.value.message.lower()
    assert "Authentication error (code 10000)" in caught.value.message
    assert len(api.requests) == 1  # the SDK does not retry a 401


def test_a_refused_change_is_not_retryable_and_says_why(api, make_dns):
    api.fail_next(
        status=400,
        errors=[{"code": 9005, "message": "Content for A record must be a valid IPv4 address."}],
        method="POST",
    )

    with pytest.raises(DnsError) as caught:
        make_dns().upsert_record("shop.example.com", site_id=SITE)

    assert caught.value.retryable is False
    assert "create the A record for shop.example.com" in caught.value.message
    assert "(code 9005)" in caught.value.message


def test_a_dropped_connection_is_retryable(api, make_dns):
    api.disconnect_next(3)

    with pytest.raises(DnsError) as caught:
        make_dns(max_retries=0).upsert_record("shop.example.com", site_id=SITE)

    assert caught.value.retryable is True
    assert "Could not reach Cloudflare" in caught.value.message


def test_nothing_listening_is_retryable():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before the client connects
    config = DnsConfig(
        api_token=TOKEN,
        zones=("example.com",),
        target=EDGE_IP,
        base_url=f"http://127.0.0.1:{port}/client/v4",
    )

    with CloudflareDns(config, max_retries=0) as dns, pytest.raises(DnsError) as caught:
        dns.find_records("shop.example.com")

    assert caught.value.retryable is True


# ---- the fake answers like the real API --------------------------------------------


@pytest.fixture
def sdk(api: FakeCloudflareApi) -> Iterator[cloudflare.Cloudflare]:
    with cloudflare.Cloudflare(api_token=TOKEN, base_url=api.base_url, max_retries=0) as client:
        yield client


def test_fake_rejects_an_a_record_that_is_not_an_ipv4_address(api, sdk):
    zone_id = api.zone_id_of("example.com")

    with pytest.raises(cloudflare.BadRequestError) as caught:
        sdk.dns.records.create(zone_id=zone_id, name="x", ttl=1, type="A", content="2001:db8::1")

    assert caught.value.errors[0].code == 9005


def test_fake_rejects_an_identical_record_and_a_cname_beside_an_a_record(api, sdk):
    zone_id = api.zone_id_of("example.com")
    sdk.dns.records.create(zone_id=zone_id, name="x", ttl=1, type="A", content=EDGE_IP)

    with pytest.raises(cloudflare.BadRequestError) as identical:
        sdk.dns.records.create(zone_id=zone_id, name="x", ttl=1, type="A", content=EDGE_IP)
    with pytest.raises(cloudflare.BadRequestError) as beside:
        sdk.dns.records.create(zone_id=zone_id, name="x", ttl=1, type="CNAME", content="e.example")

    assert identical.value.errors[0].code == 81058
    assert identical.value.errors[0].message == "An identical record already exists."
    assert beside.value.errors[0].code == 81053


def test_fake_overwrites_with_put_and_reports_missing_records(api, sdk):
    zone_id = api.zone_id_of("example.com")
    record = api.add_record("example.com", name="x", type="A", content=EDGE_IP, comment="old")

    updated = sdk.dns.records.update(
        record["id"], zone_id=zone_id, name="x", ttl=300, type="A", content="192.0.2.5"
    )
    with pytest.raises(cloudflare.NotFoundError) as missing:
        sdk.dns.records.get("0" * 32, zone_id=zone_id)

    assert updated is not None
    assert (updated.name, updated.content, updated.ttl, updated.comment) == (
        "x.example.com",
        "192.0.2.5",
        300,
        None,
    )
    assert missing.value.errors[0].code == 81044


def test_fake_pages_report_result_info(api, sdk):
    for n in range(7):
        api.add_record("example.com", name=f"h{n}", type="TXT", content="t")

    page = sdk.dns.records.list(zone_id=api.zone_id_of("example.com"), per_page=5, page=2)

    info = page.model_dump()["result_info"]
    assert info == {"page": 2, "per_page": 5, "count": 2, "total_count": 7, "total_pages": 2}


def test_fake_without_credentials_answers_like_cloudflare(api):
    with cloudflare.Cloudflare(api_token="x", base_url=api.base_url, max_retries=0) as client:
        client.api_token = None
        with pytest.raises(cloudflare.BadRequestError) as caught:
            client.zones.list(extra_headers={"Authorization": cloudflare.Omit()})

    assert caught.value.errors[0].code == 9106


# ---- configuration --------------------------------------------------------------------


def config_with(*zones: str) -> DnsConfig:
    return DnsConfig(api_token=TOKEN, zones=zones, target=EDGE_IP)


@pytest.mark.parametrize(
    ("domain", "zone"),
    [
        ("example.com", "example.com"),
        ("www.example.com", "example.com"),
        ("a.b.example.com", "example.com"),
        ("a.shop.example.com", "shop.example.com"),
        ("shop.example.com", "shop.example.com"),  # nested zone wins over its parent
        ("notexample.com", None),
        ("example.net", None),
        ("shop.localhost", None),
        ("example.com.localhost", None),
    ],
)
def test_managed_zone_is_the_longest_zone_the_domain_is_in(domain, zone):
    config = config_with("example.com", "shop.example.com", "localhost")

    assert managed_zone_for(domain, config) == zone


def test_record_type_follows_the_target():
    assert record_for_target("203.0.113.10") == ("A", "203.0.113.10")
    assert record_for_target("2001:DB8::1") == ("AAAA", "2001:db8::1")
    assert record_for_target("Edge.Example.NET.") == ("CNAME", "edge.example.net")


def test_no_token_means_no_dns(settings):
    settings.CLOUDFLARE_API_TOKEN = ""

    assert dns_config_from_settings() is None


def test_settings_make_a_normalised_config(settings):
    settings.CLOUDFLARE_API_TOKEN = TOKEN
    settings.CLOUDFLARE_ZONES = ["Example.COM.", "bücher.example"]
    settings.CLOUDFLARE_RECORD_TARGET = " 2001:DB8::1 "
    settings.CLOUDFLARE_PROXIED = False
    settings.CLOUDFLARE_BASE_URL = ""

    config = dns_config_from_settings()

    assert config == DnsConfig(
        api_token=TOKEN,
        zones=("example.com", "xn--bcher-kva.example"),
        target="2001:db8::1",
        proxied=False,
        base_url=None,
        ttl=1,
    )


@pytest.mark.parametrize(
    ("zones", "target", "complaint"),
    [
        ([], EDGE_IP, "CLOUDFLARE_ZONES is empty"),
        (["example.com"], "", "CLOUDFLARE_RECORD_TARGET is empty"),
        (["exa mple.com"], EDGE_IP, "CLOUDFLARE_ZONES"),
        (["example.com"], "edge_host!", "CLOUDFLARE_RECORD_TARGET"),
    ],
)
def test_a_token_with_incomplete_settings_fails_loudly(settings, zones, target, complaint):
    settings.CLOUDFLARE_API_TOKEN = TOKEN
    settings.CLOUDFLARE_ZONES = zones
    settings.CLOUDFLARE_RECORD_TARGET = target

    with pytest.raises(ImproperlyConfigured, match=complaint):
        dns_config_from_settings()


def test_a_ttl_cloudflare_would_refuse_fails_loudly(settings):
    settings.CLOUDFLARE_API_TOKEN = TOKEN
    settings.CLOUDFLARE_ZONES = ["example.com"]
    settings.CLOUDFLARE_RECORD_TARGET = EDGE_IP
    settings.CLOUDFLARE_RECORD_TTL = 5

    with pytest.raises(ImproperlyConfigured, match="TTL 5"):
        dns_config_from_settings()


def test_config_repr_hides_the_token():
    assert TOKEN not in repr(config_with("example.com"))


def test_config_refuses_a_ttl_cloudflare_would_refuse():
    with pytest.raises(ValueError, match="TTL"):
        DnsConfig(api_token=TOKEN, zones=("example.com",), target=EDGE_IP, ttl=5)


# ---- issue 9, item 2: the farm changes only records it created ----------------------


def test_item_2_upsert_marks_what_it_creates_with_the_sites_id(api, make_dns):
    result = make_dns().upsert_record("shop.example.com", site_id=12)

    [stored] = api.records_named("shop.example.com")
    assert stored["comment"] == "wpfarm site 12 (managed)"
    assert stored["comment_modified_on"]
    assert result.record.farm_site == 12


@pytest.mark.parametrize(
    ("rtype", "content"),
    [
        ("A", "198.51.100.7"),  # someone's server
        ("A", EDGE_IP),  # even pointing at the farm already: not the farm's record
        ("AAAA", "2001:db8::7"),
        ("CNAME", "shop.example.net"),
        ("NS", "ns1.elsewhere.example"),  # a delegation
    ],
)
def test_item_2_upsert_refuses_a_name_with_a_record_the_farm_did_not_create(
    api, make_dns, rtype, content
):
    foreign = api.add_record("example.com", name="shop.example.com", type=rtype, content=content)
    api.requests.clear()

    with pytest.raises(DnsNameTaken) as caught:
        make_dns().upsert_record("shop.example.com", site_id=SITE)

    assert caught.value.retryable is False
    assert "shop.example.com already has DNS records the farm did not create" in str(caught.value)
    assert f"{rtype} record not created by the farm" in caught.value.message
    assert content not in caught.value.message, "a proxied origin is nobody else's business"
    assert writes(api) == [], "nothing is written before the refusal"
    assert api.records_named("shop.example.com") == [foreign]


def test_item_2_a_record_with_someone_elses_comment_is_foreign(api, make_dns):
    api.add_record(
        "example.com", name="shop.example.com", type="A", content=EDGE_IP, comment="ops: keep"
    )

    with pytest.raises(DnsNameTaken):
        make_dns().upsert_record("shop.example.com", site_id=SITE)

    assert api.records_named("shop.example.com")[0]["comment"] == "ops: keep"


def test_item_2_a_record_marked_for_another_site_is_not_touched(api, make_dns):
    theirs = api.add_record(
        "example.com", name="shop.example.com", type="A", content=EDGE_IP, comment=farm_mark(7)
    )
    dns = make_dns()
    api.requests.clear()

    with pytest.raises(DnsNameTaken, match="A record the farm made for site 7"):
        dns.upsert_record("shop.example.com", site_id=SITE)
    assert dns.delete_records("shop.example.com", site_id=SITE) == 0

    assert writes(api) == []
    assert api.records_named("shop.example.com") == [theirs]


def test_item_2_delete_removes_only_the_sites_own_records(api, make_dns):
    mine = api.add_record(
        "example.com", name="shop.example.com", type="A", content=EDGE_IP, comment=MINE
    )
    foreign = api.add_record(
        "example.com", name="shop.example.com", type="A", content="198.51.100.7"
    )
    other_site = api.add_record(
        "example.com", name="shop.example.com", type="A", content="192.0.2.8", comment=farm_mark(7)
    )

    assert make_dns().delete_records("shop.example.com", site_id=SITE) == 1

    assert [r.path.rsplit("/", 1)[-1] for r in api.calls("DELETE")] == [mine["id"]]
    assert api.records_named("shop.example.com") == [foreign, other_site]


def test_item_2_delete_leaves_a_foreign_record_of_the_name_alone(api, make_dns):
    foreign = api.add_record("example.com", name="shop.example.com", type="A", content=EDGE_IP)

    assert make_dns().delete_records("shop.example.com", site_id=SITE) == 0

    assert api.calls("DELETE") == []
    assert api.records_named("shop.example.com") == [foreign]


def test_item_2_the_farms_own_record_is_updated_in_place_and_keeps_its_mark(api, make_dns):
    old = api.add_record(
        "example.com", name="shop.example.com", type="A", content="198.51.100.7", comment=MINE
    )

    result = make_dns().upsert_record("shop.example.com", site_id=SITE)

    assert (result.action, result.record.id, result.record.content) == (
        "updated",
        old["id"],
        EDGE_IP,
    )
    [stored] = api.records_named("shop.example.com")
    assert stored["comment"] == MINE
    [patch] = api.calls("PATCH")
    assert patch.body["comment"] == MINE


def test_item_2_a_leftover_of_a_site_that_no_longer_holds_the_name_is_taken_over(api, make_dns):
    # Site 7 was deleted (or switched to a preview) and its record stayed behind.
    leftover = api.add_record(
        "example.com", name="shop.example.com", type="A", content=EDGE_IP, comment=farm_mark(7)
    )

    result = make_dns().upsert_record(
        "shop.example.com", site_id=SITE, is_leftover=lambda site: site == 7
    )

    assert (result.action, result.record.id) == ("updated", leftover["id"])
    assert api.records_named("shop.example.com")[0]["comment"] == MINE


def test_item_2_a_leftover_is_deleted_with_the_site_that_holds_the_name(api, make_dns):
    api.add_record(
        "example.com", name="shop.example.com", type="A", content=EDGE_IP, comment=farm_mark(7)
    )

    removed = make_dns().delete_records(
        "shop.example.com", site_id=SITE, is_leftover=lambda site: site == 7
    )

    assert removed == 1
    assert api.records_named("shop.example.com") == []


def test_item_2_check_name_free_before_the_site_exists(api, make_dns):
    dns = make_dns()
    api.add_record("example.com", name="taken.example.com", type="CNAME", content="x.example.net")
    api.add_record("example.com", name="free.example.com", type="TXT", content="v=spf1 -all")
    api.add_record(
        "example.com", name="left.example.com", type="A", content=EDGE_IP, comment=farm_mark(3)
    )

    with pytest.raises(DnsNameTaken, match="CNAME record not created by the farm"):
        dns.check_name_free("taken.example.com")
    dns.check_name_free("free.example.com")  # a TXT record does not say who serves it
    dns.check_name_free("left.example.com", is_leftover=lambda site: site == 3)
    with pytest.raises(DnsNameTaken, match="made for site 3"):
        dns.check_name_free("left.example.com")


@pytest.mark.parametrize(
    ("comment", "site"),
    [
        ("wpfarm site 12 (managed)", 12),
        ("wpfarm site 1 (managed)", 1),
        ("wpfarm site 12 (managed) by hand", None),
        ("WPFARM SITE 12 (MANAGED)", None),
        ("wpfarm site 012 (managed)", None),
        ("wpfarm site -1 (managed)", None),
        ("managed by the farm", None),
        ("", None),
        (None, None),
    ],
)
def test_item_2_only_the_exact_mark_names_a_site(comment, site):
    assert marked_site(comment) == site


def test_item_2_fake_stores_filters_and_limits_comments_like_cloudflare(api, sdk):
    zone_id = api.zone_id_of("example.com")
    marked = sdk.dns.records.create(
        zone_id=zone_id, name="a", ttl=1, type="A", content=EDGE_IP, comment=MINE
    )
    sdk.dns.records.create(zone_id=zone_id, name="b", ttl=1, type="A", content=EDGE_IP)
    assert marked is not None and marked.comment == MINE

    exact = sdk.dns.records.list(zone_id=zone_id, comment={"exact": MINE.upper()})
    absent = sdk.dns.records.list(zone_id=zone_id, comment={"absent": "true"})
    kept = sdk.dns.records.edit(
        marked.id, zone_id=zone_id, name="a", ttl=1, type="A", content="192.0.2.1"
    )
    with pytest.raises(cloudflare.BadRequestError) as too_long:
        sdk.dns.records.create(
            zone_id=zone_id, name="c", ttl=1, type="A", content=EDGE_IP, comment="x" * 101
        )

    assert [r.name for r in exact.result] == ["a.example.com"]  # case-insensitive
    assert [r.name for r in absent.result] == ["b.example.com"]
    assert kept is not None and kept.comment == MINE, "PATCH keeps a comment it is not sent"
    assert too_long.value.errors[0].code == 9313
    assert "comment_modified_on" not in api.records_named("b.example.com")[0]
