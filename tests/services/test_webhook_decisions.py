"""The webhook decisions on their own: what an attempt's answer leads to, which addresses may
receive deliveries, and the signed message a receiver checks."""

from __future__ import annotations

import ipaddress
import json
import uuid
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook as Verifier
from standardwebhooks.webhooks import WebhookVerificationError

from app.services.webhooks import messages
from app.services.webhooks.decisions import (
    DEFAULT_RETRY_SCHEDULE,
    Attempt,
    Delivered,
    GiveUp,
    RetryIn,
    after_attempt,
    parse_schedule,
)
from app.services.webhooks.targets import (
    TargetRefused,
    check_addresses,
    check_url,
    refused_address,
    resolve,
)

# --- after_attempt -----------------------------------------------------------------------------


@pytest.mark.parametrize("code", [200, 201, 202, 204, 299])
def test_any_2xx_delivers(code: int) -> None:
    assert after_attempt(1, Attempt(status_code=code), DEFAULT_RETRY_SCHEDULE) == Delivered()


@pytest.mark.parametrize("attempt", [Attempt(status_code=500), Attempt(error="refused")])
def test_a_failure_waits_for_the_next_step_of_the_schedule(attempt: Attempt) -> None:
    waits = [after_attempt(n, attempt, (5, 300, 1800)) for n in (1, 2, 3)]
    assert waits == [RetryIn(5), RetryIn(300), RetryIn(1800)]


def test_after_the_last_step_it_gives_up() -> None:
    step = after_attempt(4, Attempt(status_code=503), (5, 300, 1800))
    assert isinstance(step, GiveUp) and not step.disable
    assert "4 attempts" in step.reason


def test_410_gives_up_and_disables_the_webhook_at_once() -> None:
    step = after_attempt(1, Attempt(status_code=410), DEFAULT_RETRY_SCHEDULE)
    assert isinstance(step, GiveUp) and step.disable


@pytest.mark.parametrize("code", [301, 302, 307, 308, 400, 404, 429])
def test_redirects_and_other_answers_are_failures(code: int) -> None:
    assert after_attempt(1, Attempt(status_code=code), (5,)) == RetryIn(5)


def test_the_default_schedule_retries_within_ten_seconds_and_ends_after_about_a_day() -> None:
    assert DEFAULT_RETRY_SCHEDULE[0] <= 10
    assert list(DEFAULT_RETRY_SCHEDULE) == sorted(DEFAULT_RETRY_SCHEDULE)
    assert 20 * 3600 <= sum(DEFAULT_RETRY_SCHEDULE) <= 30 * 3600


def test_attempts_count_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        after_attempt(0, Attempt(status_code=200), (5,))


def test_a_schedule_is_read_from_comma_separated_seconds() -> None:
    assert parse_schedule("0.5, 2,10") == (0.5, 2.0, 10.0)
    for bad in ("", "a,b", "5,-1"):
        with pytest.raises(ValueError, match="schedule"):
            parse_schedule(bad)


# --- targets -----------------------------------------------------------------------------------


def test_https_is_required_unless_http_is_allowed() -> None:
    with pytest.raises(TargetRefused) as refused:
        check_url("http://hooks.example.com/x", allow_http=False)
    assert refused.value.code == "webhook_url_invalid"
    assert "PASEO_GATEWAY_WEBHOOKS_ALLOW_HTTP" in str(refused.value)
    target = check_url("http://hooks.example.com:8080/x", allow_http=True)
    assert (target.scheme, target.host, target.port) == ("http", "hooks.example.com", 8080)
    assert check_url("https://hooks.example.com/x", allow_http=False).port == 443


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/",
        "https:///path",
        "https://user:pw@example.com/",
        "//x",
        "https://example.com:port/",
    ],
)
def test_urls_that_cannot_be_targets_are_refused(url: str) -> None:
    with pytest.raises(TargetRefused) as refused:
        check_url(url, allow_http=True)
    assert refused.value.code == "webhook_url_invalid"


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fd00:ec2::254",  # AWS's IPv6 metadata
        "::ffff:127.0.0.1",  # IPv4 inside IPv6
        "224.0.0.1",
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert refused_address(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert refused_address(ipaddress.ip_address(address)) is None


def test_one_private_address_among_public_ones_refuses_the_host() -> None:
    target = check_url("https://mixed.example.com/", allow_http=False)
    addresses = [ipaddress.ip_address("1.1.1.1"), ipaddress.ip_address("10.0.0.1")]
    with pytest.raises(TargetRefused) as refused:
        check_addresses(target, addresses, allow_private=False)
    assert refused.value.code == "webhook_target_private"
    assert "ALLOW_PRIVATE_TARGETS" in str(refused.value)
    assert check_addresses(target, addresses, allow_private=True).addresses == tuple(addresses)


async def test_a_name_is_resolved_and_checked() -> None:
    target = check_url("http://localhost:9/", allow_http=True)
    with pytest.raises(TargetRefused) as refused:
        await resolve(target, allow_private=False)
    assert refused.value.code == "webhook_target_private"
    resolved = await resolve(target, allow_private=True)
    assert all(address.is_loopback for address in resolved.addresses)


async def test_a_name_that_does_not_resolve_is_refused() -> None:
    target = check_url("https://no-such-host.invalid/", allow_http=False)
    with pytest.raises(TargetRefused) as refused:
        await resolve(target, allow_private=True)
    assert refused.value.code == "webhook_host_unresolvable"


# --- messages ----------------------------------------------------------------------------------


def test_a_signed_message_verifies_with_the_standard_webhooks_library() -> None:
    secret = messages.new_secret()
    assert secret.startswith("whsec_")
    session_id, turn_id = uuid.uuid4(), uuid.uuid4()
    occurred = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    content = messages.body(
        "turn.completed", occurred, {"status": "completed"}, session_id, turn_id
    )
    msg_id = messages.message_id(uuid.uuid4())
    headers = messages.signed_headers(secret, msg_id, datetime.now(UTC), content)
    payload = Verifier(secret).verify(content, headers)
    assert payload == json.loads(content)
    assert payload == {
        "type": "turn.completed",
        "timestamp": "2026-12-07T12:00:00Z",
        "data": {"status": "completed", "session_id": str(session_id), "turn_id": str(turn_id)},
    }
    with pytest.raises(WebhookVerificationError):
        Verifier(messages.new_secret()).verify(content, headers)
    with pytest.raises(WebhookVerificationError):
        Verifier(secret).verify(content.replace(b"completed", b"failed", 1), headers)
