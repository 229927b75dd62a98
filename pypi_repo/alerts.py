"""Alert channels for the monitor: a log line, a webhook (JSON POST), SMTP email, a command.

Each channel is a small object with ``name`` and ``send(alert)``. The dispatcher calls every
channel and contains its failures: an unreachable mail server must never stop the monitor
from restarting the service (issue 3: "one failing channel never breaks the monitor").
"""
from __future__ import annotations

import json
import logging
import os
import shlex
import smtplib
import socket
import subprocess
import time
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage
from typing import Any, Protocol, Sequence

import requests

from .config import Settings

__all__ = [
    "Alert", "AlertChannel", "AlertDispatcher", "LogChannel", "WebhookChannel",
    "EmailChannel", "CommandChannel", "channels_from_settings",
]

log = logging.getLogger("pypi_repo.monitor")


@dataclass(frozen=True)
class Alert:
    """One thing an operator should hear about (``event`` is a stable machine-readable key:
    ``restart``, ``restart_failed``, ``gave_up``, ``recovered``, ``supervisord_down``,
    ``supervisord_started``, ``supervisord_back``)."""

    event: str
    message: str
    severity: str = "warning"  # "info", "warning" or "critical"
    details: dict[str, Any] = field(default_factory=dict)
    host: str = field(default_factory=socket.gethostname)
    time: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

    @property
    def subject(self) -> str:
        return f"[pypi_repo {self.severity}] {self.event} on {self.host}"

    def as_dict(self) -> dict[str, Any]:
        # "text" makes the payload readable as-is by Slack/Mattermost-style incoming webhooks.
        return {**asdict(self), "text": f"{self.subject}: {self.message}"}


class AlertChannel(Protocol):
    name: str

    def send(self, alert: Alert) -> None:
        """Deliver the alert or raise; the dispatcher logs the failure."""


class LogChannel:
    """Always on: the alert as one line in the monitor log (WARNING or worse)."""

    name = "log"

    def __init__(self, logger: logging.Logger = log) -> None:
        self.logger = logger

    def send(self, alert: Alert) -> None:
        level = logging.CRITICAL if alert.severity == "critical" else (
            logging.INFO if alert.severity == "info" else logging.WARNING)
        self.logger.log(level, "ALERT %s: %s %s", alert.event, alert.message,
                        json.dumps(alert.details, sort_keys=True))


class WebhookChannel:
    """POSTs the alert as JSON; any non-2xx answer counts as a failure."""

    name = "webhook"

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url
        self.timeout = timeout

    def send(self, alert: Alert) -> None:
        resp = requests.post(self.url, json=alert.as_dict(), timeout=self.timeout)
        resp.raise_for_status()


class EmailChannel:
    """Plain-text mail through an SMTP relay (optionally STARTTLS and login)."""

    name = "email"

    def __init__(self, host: str, port: int, sender: str, recipients: Sequence[str],
                 user: str = "", password: str = "", starttls: bool = False, timeout: float = 10.0) -> None:
        self.host, self.port = host, port
        self.sender = sender or f"pypi-repo@{socket.gethostname()}"
        self.recipients = list(recipients)
        self.user, self.password, self.starttls = user, password, starttls
        self.timeout = timeout

    def send(self, alert: Alert) -> None:
        msg = EmailMessage()
        msg["Subject"] = alert.subject
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.recipients)
        msg.set_content(f"{alert.message}\n\n{json.dumps(alert.as_dict(), indent=2, sort_keys=True)}\n")
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls()
            if self.user:
                smtp.login(self.user, self.password)
            smtp.send_message(msg)


class CommandChannel:
    """Runs a command per alert: JSON on stdin, the essentials in ``PYPI_REPO_ALERT_*``."""

    name = "command"

    def __init__(self, argv: Sequence[str], timeout: float = 30.0) -> None:
        self.argv = list(argv)
        self.timeout = timeout

    def send(self, alert: Alert) -> None:
        env = {**os.environ, "PYPI_REPO_ALERT_EVENT": alert.event,
               "PYPI_REPO_ALERT_SEVERITY": alert.severity, "PYPI_REPO_ALERT_MESSAGE": alert.message}
        proc = subprocess.run(self.argv, input=json.dumps(alert.as_dict()), text=True, env=env,
                              capture_output=True, timeout=self.timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"exit status {proc.returncode}: {proc.stderr.strip()[-500:]}")


class AlertDispatcher:
    """Sends an alert to every channel; returns ``{channel: error or None}``, never raises."""

    def __init__(self, channels: Sequence[AlertChannel]) -> None:
        self.channels = list(channels)

    def send(self, alert: Alert) -> dict[str, str | None]:
        outcome: dict[str, str | None] = {}
        for channel in self.channels:
            try:
                channel.send(alert)
                outcome[channel.name] = None
            except Exception as exc:  # a broken channel is reported, never fatal
                outcome[channel.name] = f"{type(exc).__name__}: {exc}"
                log.error("alert channel %s failed for %s: %s", channel.name, alert.event, outcome[channel.name])
        return outcome


def channels_from_settings(settings: Settings) -> list[AlertChannel]:
    """The log channel, plus every channel the settings configure."""
    timeout = max(1.0, settings.monitor_timeout)
    channels: list[AlertChannel] = [LogChannel()]
    if settings.alert_webhook_url:
        channels.append(WebhookChannel(settings.alert_webhook_url, timeout))
    if settings.alert_smtp_host:
        recipients = [r.strip() for r in settings.alert_email_to.split(",") if r.strip()]
        if recipients:
            channels.append(EmailChannel(
                settings.alert_smtp_host, settings.alert_smtp_port, settings.alert_email_from, recipients,
                settings.alert_smtp_user, settings.alert_smtp_password, settings.alert_smtp_starttls, timeout))
        else:
            log.warning("alert_smtp_host is set but alert_email_to is empty: no email alerts")
    if settings.alert_command:
        channels.append(CommandChannel(shlex.split(settings.alert_command)))
    return channels
