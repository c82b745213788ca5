"""Where a visit takes place beyond the address: the video room of a video visit."""

from __future__ import annotations

from scheduling.config import Practice
from scheduling.model import Channel


def room_name(uid: str) -> str:
    """A per-visit room name from the appointment's uid: stable, unguessable, and URL-safe."""
    return "bb" + uid.split("@", 1)[0][:24]


def video_link(practice: Practice, *, specialist_id: str, location_id: str, uid: str, channel: str) -> str:
    """The video room of a video visit: the specialist's link, else the location's; "" when none is set."""
    if channel != Channel.VIDEO:
        return ""
    spec = practice.specialist_by_id.get(specialist_id)
    loc = practice.location_by_id.get(location_id)
    template = (spec.video_link if spec else "") or (loc.video_link if loc else "")
    return template.replace("{appointment}", room_name(uid))
