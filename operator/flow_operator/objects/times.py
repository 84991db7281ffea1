"""Kubernetes timestamps: RFC 3339 in UTC with a trailing Z, read back as aware datetimes."""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339(ts: datetime) -> str:
    """Kubernetes' timestamp format: UTC, second precision, trailing Z."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_micro(ts: datetime) -> str:
    """MicroTime (Events, Leases): UTC, microsecond precision, trailing Z."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str | None) -> datetime | None:
    """A timestamp the API wrote (Z or an offset), or None when there is none."""
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def parse_aware(value: object) -> datetime | None:
    """A timestamp read from stored or user data: None unless it parses with a zone."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = parse_time(value)
    except ValueError:
        return None
    return parsed if parsed is not None and parsed.tzinfo is not None else None


def utc(t: datetime) -> datetime:
    """An aware datetime in UTC; a naive one has no instant and is refused."""
    if t.tzinfo is None:
        raise ValueError(f"a naive datetime has no instant: {t.isoformat()}")
    return t.astimezone(UTC)
