"""One attempt: POST a signed body to a checked address, and say how it went.

The connection goes to the address the check passed (the host is resolved and checked again
first), not to whatever the name resolves to a moment later, so DNS cannot swap in a private
address between the check and the send. TLS still checks the certificate against the host's
name. No redirect is followed, at most `RESPONSE_BYTES` of the answer are read, and the
secret is never logged.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx

from app.services.webhooks.decisions import Attempt
from app.services.webhooks.targets import Target, TargetRefused, check_target

# What of an answer is kept (for `last_error`): enough to see what the receiver said.
RESPONSE_BYTES = 1_024
USER_AGENT = "paseo-gateway-webhooks"


@dataclass(frozen=True)
class SendPolicy:
    allow_http: bool
    allow_private: bool
    timeout_seconds: float


class WebhookSender:
    """Holds one HTTP client for every attempt of this process."""

    def __init__(self, policy: SendPolicy) -> None:
        self.policy = policy
        timeout = httpx.Timeout(policy.timeout_seconds, connect=min(5.0, policy.timeout_seconds))
        self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False)

    @property
    def http_client(self) -> httpx.AsyncClient:
        """The one client, for what wraps it (tracing instruments it)."""
        return self._client

    async def send(self, url: str, content: bytes, headers: dict[str, str]) -> Attempt:
        """POST `content` to `url` with `headers`; never raises for the receiver's sake."""
        try:
            target = await check_target(
                url, allow_http=self.policy.allow_http, allow_private=self.policy.allow_private
            )
        except TargetRefused as refused:
            return Attempt(error=str(refused))
        try:
            async with asyncio.timeout(self.policy.timeout_seconds * 2):
                return await self._post(target, content, headers)
        except TimeoutError:
            return Attempt(error=f"no answer within {self.policy.timeout_seconds * 2:g} s")
        except httpx.HTTPError as exc:
            return Attempt(error=f"{type(exc).__name__}: {exc}"[:500])

    async def _post(self, target: Target, content: bytes, headers: dict[str, str]) -> Attempt:
        address = target.addresses[0]
        pinned = httpx.URL(target.url).copy_with(host=str(address))
        default_port = 443 if target.scheme == "https" else 80
        host_header = target.host if ":" not in target.host else f"[{target.host}]"
        if target.port != default_port:
            host_header += f":{target.port}"
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        request = self._client.build_request(
            "POST",
            pinned,
            content=content,
            headers={
                **headers,
                "content-type": "application/json",
                "user-agent": USER_AGENT,
                "host": host_header,
            },
            extensions=extensions,
        )
        response = await self._client.send(request, stream=True)
        try:
            kept = b""
            async for chunk in response.aiter_raw():
                kept += chunk
                if len(kept) >= RESPONSE_BYTES:
                    break
        finally:
            await response.aclose()
        if 200 <= response.status_code < 300:
            return Attempt(status_code=response.status_code)
        said = kept[:RESPONSE_BYTES].decode("utf-8", "replace").strip()
        return Attempt(
            status_code=response.status_code,
            error=f"HTTP {response.status_code}" + (f": {said}" if said else ""),
        )

    async def aclose(self) -> None:
        await self._client.aclose()
