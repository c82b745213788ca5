"""The appointment lifecycle: which status may follow which, checked in this one place."""

from __future__ import annotations

from scheduling.model import Status


class InvalidTransition(Exception):
    """A status change the lifecycle does not allow (e.g. approving a cancelled request)."""

    def __init__(self, current: Status, target: Status):
        super().__init__(f"{current} -> {target} is not allowed")
        self.current = current
        self.target = target


_ANSWERED = frozenset({Status.CONFIRMED, Status.DECLINED, Status.EXPIRED, Status.CANCELLED})

# An admin may delete a record in any state but deleted; that is the only way out of a final state.
ALLOWED: dict[Status, frozenset[Status]] = {
    Status.REQUESTED: _ANSWERED | {Status.MOVED, Status.DELETED},
    # A visit the practice proposed: the client accepts (confirmed) or declines, or it lapses.
    Status.PROPOSED: _ANSWERED | {Status.DELETED},
    Status.CONFIRMED: frozenset({Status.CANCELLED, Status.COMPLETED, Status.NO_SHOW, Status.DELETED}),
    Status.DECLINED: frozenset({Status.DELETED}),
    Status.EXPIRED: frozenset({Status.DELETED}),
    Status.CANCELLED: frozenset({Status.DELETED}),
    Status.COMPLETED: frozenset({Status.DELETED}),
    Status.NO_SHOW: frozenset({Status.DELETED}),
    Status.DELETED: frozenset(),
    Status.MOVED: frozenset({Status.DELETED}),
}


def check_transition(current: Status, target: Status) -> None:
    """Raise InvalidTransition unless `current -> target` is a lifecycle step."""
    if target not in ALLOWED[current]:
        raise InvalidTransition(current, target)
