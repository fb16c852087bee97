"""How far each service's consumer group has come: the demo waits on this before reporting."""

from __future__ import annotations

from attune_shared.kafka import group_lag
from attune_shared.settings import ServiceSettings, load_settings
from attune_shared.topics import Topics

GROUPS: dict[str, list[str]] = {
    "attune-intake": [Topics.EHR_EVENTS],
    "attune-measures": [Topics.CARE],
    "attune-alerts": [Topics.MEASURES],
    "attune-reporting": [Topics.CARE, Topics.MEASURES, Topics.ALERTS],
}


async def drained_lags(settings: ServiceSettings | None = None) -> dict[str, int]:
    """Total lag per consumer group (prefixed names when ATTUNE_NAME_PREFIX is set)."""
    settings = settings or load_settings(ServiceSettings)
    out = {}
    for group, topics in GROUPS.items():
        lags = await group_lag(settings, settings.group(group), [settings.topic(t) for t in topics])
        out[group] = sum(lags.values())
    return out
