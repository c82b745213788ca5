"""Shared fixtures live in tests/fixtures/, one module per area."""

pytest_plugins = [
    "tests.fixtures.db",
    "tests.fixtures.caldav",
    "tests.fixtures.telegram",
    "tests.fixtures.practice",
    "tests.fixtures.bot",
    "tests.fixtures.proxy",
    "tests.fixtures.feeds",
    "tests.fixtures.series",
    "tests.fixtures.providers",
    "tests.fixtures.partner",
]
