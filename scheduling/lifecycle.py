"""The appointment lifecycle: which status may follow which, checked in this one place."""

from __future__ import annotations

from scheduling.model import Status


class InvalidTransition(Exception):
    """A status change the lifecycle does not allow (e.g. approving a cancelled request)."""

    def __init__(self, current: Status, target: Status):
        super().__init__(f"{current} -> {target} is not allowed")
        self.current = current
        self.target = target


ALLOWED: dict[Status, frozenset[Status]] = {
    Status.REQUESTED: frozenset({Status.CONFIRMED, Status.DECLINED, Status.EXPIRED, Status.CANCELLED, Status.MOVED}),
    Status.CONFIRMED: frozenset({Status.CANCELLED, Status.COMPLETED, Status.NO_SHOW}),
    Status.DECLINED: frozenset(),
    Status.EXPIRED: frozenset(),
    Status.CANCELLED: frozenset(),
    Status.COMPLETED: frozenset(),
    Status.NO_SHOW: frozenset(),
    Status.MOVED: frozenset(),
}


def check_transition(current: Status, target: Status) -> None:
    """Raise InvalidTransition unless `current -> target` is a lifecycle step."""
    if target not in ALLOWED[current]:
        raise InvalidTransition(current, target)
