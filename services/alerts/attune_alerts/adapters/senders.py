"""The two delivery channels: signed webhook POSTs (httpx) and e-mail (aiosmtplib)."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage

import aiosmtplib
import httpx

from attune_alerts.ports import Mailer, SendResult, Webhooks
from attune_alerts.settings import AlertsSettings
from attune_alerts.signing import HEADER, sign


class WebhookSender(Webhooks):
    """POSTs an alert event's JSON, signed, with a total deadline per attempt."""

    def __init__(self, client: httpx.AsyncClient, timeout_s: float) -> None:
        self.client = client
        self.timeout_s = timeout_s

    async def post(self, url: str, secret: str, body: str, *, event_id: str, attempt: int) -> SendResult:
        """One attempt; never raises for network trouble (that is an outcome)."""
        data = body.encode()
        headers = {
            "Content-Type": "application/json",
            HEADER: sign(secret, data),
            "X-Attune-Event-Id": event_id,
            "X-Attune-Delivery-Attempt": str(attempt),
            "User-Agent": "attune-alerts/1",
        }
        try:
            async with asyncio.timeout(self.timeout_s):
                resp = await self.client.post(url, content=data, headers=headers, timeout=self.timeout_s)
        except (TimeoutError, httpx.TimeoutException):
            return SendResult(False, "timeout", error=f"no answer within {self.timeout_s:g}s")
        except httpx.HTTPError as exc:
            return SendResult(False, "error", error=f"{type(exc).__name__}: {str(exc)[:200]}")
        if 200 <= resp.status_code < 300:
            return SendResult(True, "delivered", status=resp.status_code)
        return SendResult(False, "http_error", status=resp.status_code, error=f"HTTP {resp.status_code}")


class EmailSender(Mailer):
    """Sends plain-text e-mail through the configured SMTP server."""

    def __init__(self, settings: AlertsSettings) -> None:
        self.settings = settings

    async def send(self, to: str, subject: str, text: str) -> SendResult:
        """One attempt; SMTP and network errors are outcomes."""
        s = self.settings
        msg = EmailMessage()
        msg["From"] = s.attune_smtp_from or f"attune-alerts@{s.attune_smtp_host}"
        msg["To"] = to
        msg["Subject"] = subject
        msg.set_content(text)
        try:
            await aiosmtplib.send(
                msg,
                hostname=s.attune_smtp_host,
                port=s.attune_smtp_port,
                username=s.attune_smtp_username,
                password=s.attune_smtp_password.get_secret_value() if s.attune_smtp_password else None,
                start_tls=s.attune_smtp_starttls,
                timeout=s.attune_alerts_webhook_timeout_seconds,
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            return SendResult(False, "error", error=f"{type(exc).__name__}: {str(exc)[:200]}")
        return SendResult(True, "delivered", status=250)
