"""The practice configuration: one TOML file, validated on load with errors that name the field."""

from __future__ import annotations

import re
import tomllib
from datetime import date, time
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import core_schema

from scheduling.model import Channel

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Who may book a schedule window: the Telegram dialog's clients, or one partner ("partner:<id>").
CLIENTS = "clients"
PARTNER_PREFIX = "partner:"
_AUDIENCE_RE = re.compile(r"^(clients|partner:[a-z0-9][a-z0-9_-]{0,31})$")
_TIME_RE = re.compile(r"^(\d{1,2}):(\d{2})(:00)?$")


class ConfigError(Exception):
    """The practice file is unreadable or invalid; `errors` lists every problem, each naming its field."""

    def __init__(self, errors: list[str]):
        super().__init__("\n".join(errors))
        self.errors = errors


def _time_of_day(value: Any) -> time:
    if isinstance(value, time):
        return value
    if isinstance(value, str):
        m = _TIME_RE.match(value.strip())
        if m and int(m[1]) < 24 and int(m[2]) < 60:
            return time(int(m[1]), int(m[2]))
        if value.strip() == "24:00":
            return time.max  # end of day; only meaningful as a window's end
    raise ValueError(f"{value} is not a time of day (use HH:MM)")


_LANG_RE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")


class LocalText(str):
    """A practice text: a plain string for every language, or one wording per language.

    The string value is the practice language's wording (else the first given), so code that
    has no reader's language still reads sensibly; screens pick the reader's with `local()`.
    """

    wordings: dict[str, str]

    def __new__(cls, default: str, wordings: dict[str, str] | None = None) -> LocalText:
        text = super().__new__(cls, default)
        text.wordings = dict(wordings or {})
        return text

    def local(self, lang: str) -> str:
        """The wording in `lang` (or its base language), else the default."""
        if lang in self.wordings:
            return self.wordings[lang]
        return self.wordings.get(lang.split("-")[0], str(self))

    @classmethod
    def parse(cls, value: Any, practice_language: str = "en") -> LocalText:
        """A plain string, or a table of language -> wording (TOML `{ en = "...", pl = "..." }`)."""
        if isinstance(value, LocalText):
            return value
        if isinstance(value, str):
            return cls(value)
        if isinstance(value, dict):
            if not value:
                raise ValueError("give at least one language's wording")
            for lang, text in value.items():
                if not isinstance(lang, str) or not _LANG_RE.match(lang):
                    raise ValueError(f"{lang!r} is not a language code (e.g. en, pl, de)")
                if not isinstance(text, str):
                    raise ValueError(f"the {lang} wording is not a string")
            default = value.get(practice_language, next(iter(value.values())))
            return cls(default, value)
        raise ValueError("give a string, or a table of language = wording")

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        def validate(value: Any, info: ValidationInfo) -> LocalText:
            lang = (info.context or {}).get("language", "en")
            return cls.parse(value, lang)

        return core_schema.with_info_plain_validator_function(
            validate, serialization=core_schema.plain_serializer_function_ser_schema(lambda v: v.wordings or str(v))
        )


def local(text: str, lang: str) -> str:
    """The reader's wording of a practice text (plain strings read the same in every language)."""
    return text.local(lang) if isinstance(text, LocalText) else text


def _meeting_link(value: Any) -> str:
    """A video room URL, optionally with `{appointment}` where each visit's own room name goes."""
    text = str(value).strip()
    if not text:
        return ""
    if not text.startswith(("https://", "http://")):
        raise ValueError(f"{text!r} is not an http(s) URL")
    if "{" in text.replace("{appointment}", "") or "}" in text.replace("{appointment}", ""):
        raise ValueError("the only placeholder a link may hold is {appointment}")
    return text


MeetingLink = Annotated[str, BeforeValidator(_meeting_link)]


def _zone(value: Any) -> str:
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value} is not a known time zone (e.g. Europe/Warsaw)") from None
    return str(value)


def _audiences(value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        raise ValueError('give a non-empty list such as ["clients", "partner:insurer"]')
    for item in value:
        if not isinstance(item, str) or not _AUDIENCE_RE.match(item):
            raise ValueError(f'{item!r} is neither "clients" nor "partner:<id>"')
    return list(dict.fromkeys(value))


def partner_audience(partner_id: str) -> str:
    """The `booking` entry that opens a window to one partner."""
    return f"{PARTNER_PREFIX}{partner_id}"


TimeOfDay = Annotated[time, BeforeValidator(_time_of_day)]
Audiences = Annotated[list[str], BeforeValidator(_audiences)]
TimeZoneName = Annotated[str, BeforeValidator(_zone)]
Identifier = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PracticeInfo(_Strict):
    name: LocalText
    timezone: TimeZoneName = "UTC"
    language: str = "en"
    country: str = Field("", pattern=r"^([A-Z]{2})?$", description="ISO code for reading local phone numbers")
    terms_url: str = ""
    privacy_url: str = ""
    # How clients reach the practice when the bot cannot help ("please contact the practice").
    phone: str = ""
    email: str = ""
    address: LocalText = LocalText("")
    policy_version: str = "1"
    approval_timeout_hours: float = Field(24, gt=0)
    reminder_hours: list[float] = Field([24], description="remind clients this long before a confirmed visit")
    busy_feed_minutes: float = Field(5, gt=0, le=24 * 60, description="how often busy feeds are read again")
    calendar_alert_minutes: int = Field(
        60, gt=0, description="tell the specialist and admins once calendar writes have failed this long"
    )
    admins: list[int] = []


# How much of a client leaves the database in calendar events and feeds (scheduling.privacy decides the rest).
CalendarDetail = Literal["minimal", "name", "full"]


class PrivacySettings(_Strict):
    """What calendars and feeds carry about clients, and how long clients' data is kept."""

    calendar_detail: CalendarDetail = Field(
        "minimal", description="minimal: service and initials; name: the client's name; full: phone, e-mail, note too"
    )
    feed_detail: CalendarDetail = Field("minimal", description="the same for the read-only ICS feeds")
    retention_months: int = Field(
        0, ge=0, le=600, description="erase a client this many months after their last visit; 0 keeps them"
    )


class SpecialistPrivacy(_Strict):
    """One specialist's own choice, over the practice's."""

    calendar_detail: CalendarDetail | None = None
    feed_detail: CalendarDetail | None = None


class Limits(_Strict):
    """How much one client may ask for: no one person holds every free time or floods the specialists."""

    pending_requests: int = Field(
        2, ge=1, le=50, description="undecided requests a client may have at once (a series counts as one)"
    )
    requests_per_day: int = Field(5, ge=1, le=200, description="requests a client may send in any 24 hours")
    sends_per_minute: int = Field(3, ge=1, le=60, description="taps on Send a client may make in a minute")


class Location(_Strict):
    id: Identifier
    name: LocalText
    address: LocalText = LocalText("")
    timezone: TimeZoneName | None = None
    kind: Literal["on_site", "online"] = "on_site"
    video_link: MeetingLink = Field("", description="video room for visits here, unless the specialist has one")


class Service(_Strict):
    id: Identifier
    name: LocalText
    category: LocalText = LocalText("")
    duration: int = Field(gt=0, le=24 * 60, description="minutes")
    buffer_after: int = Field(0, ge=0, description="minutes kept free after the appointment")
    start_every: int = Field(30, gt=0, le=24 * 60, description="start grid in minutes")
    full_hours_only: bool = False
    channels: list[Channel] = Field([Channel.ON_SITE], min_length=1)
    instructions: LocalText = LocalText("")
    # The channels the instructions are for (none given: every channel), e.g. "arrive early" on site only.
    instructions_channels: list[Channel] = []
    price: LocalText = LocalText("")
    # A group session: this many clients share one visit (one calendar event); 1 is an ordinary visit.
    seats: int = Field(1, ge=1, le=100, description="clients one visit seats (a group session above 1)")
    auto_approve: bool = Field(False, description="confirm requests at once instead of asking the specialist")

    def instructions_for(self, channel: str | None) -> LocalText:
        """The instructions that apply to a visit by `channel` (None: not chosen yet, all apply)."""
        if self.instructions_channels and channel is not None and channel not in self.instructions_channels:
            return LocalText("")
        return self.instructions


class CalDAVAccount(_Strict):
    url: str | None = None
    username: str = ""
    password_env: str = ""
    booking_calendar: str = "bookings"
    busy_calendars: list[str] = []


class BusyFeed(_Strict):
    """A published iCalendar address whose events block time; secret addresses come from the environment."""

    url: str = ""
    url_env: str = ""

    @model_validator(mode="after")
    def _one_source(self) -> BusyFeed:
        if bool(self.url) == bool(self.url_env):
            raise ValueError("give either url or url_env (the environment variable holding a secret address)")
        if self.url and not self.url.startswith(("https://", "http://")):
            raise ValueError(f"{self.url!r} is not an http(s) address")
        return self


def _feed(value: Any) -> Any:
    return {"url": value} if isinstance(value, str) else value


CalendarKind = Literal["caldav", "embedded", "google", "microsoft"]


class Window(_Strict):
    weekday: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    start: TimeOfDay
    end: TimeOfDay
    location: Identifier
    channels: list[Channel] | None = None
    booking: Audiences = [CLIENTS]

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.start == time.max:
            raise ValueError("start 24:00 is the end of the day, not a start")
        if self.end <= self.start:
            raise ValueError(f"end {self.end:%H:%M} is not after start {self.start:%H:%M}")
        return self


class DateException(_Strict):
    """A day off (no start/end: the whole day) or extra hours on one date."""

    date: date
    kind: Literal["off", "extra"]
    start: TimeOfDay | None = None
    end: TimeOfDay | None = None
    location: Identifier | None = None
    channels: list[Channel] | None = None
    booking: Audiences = [CLIENTS]

    @model_validator(mode="after")
    def _complete(self) -> DateException:
        if (self.start is None) != (self.end is None):
            raise ValueError("give both start and end, or neither")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError(f"end {self.end:%H:%M} is not after start {self.start:%H:%M}")
        if self.kind == "extra" and (self.start is None or self.location is None):
            raise ValueError("extra hours need start, end and location")
        return self


class CancellationPolicy(_Strict):
    free_until_hours: float = Field(24, ge=0)
    text: LocalText = LocalText("")


class Specialist(_Strict):
    id: Identifier
    name: str
    telegram_id: int | None = None
    services: list[str]
    caldav: CalDAVAccount = CalDAVAccount()
    schedule: list[Window] = []
    exceptions: list[DateException] = []
    min_notice_hours: float = Field(12, ge=0)
    horizon_days: int = Field(60, gt=0, le=730)
    cancellation: CancellationPolicy = CancellationPolicy()
    # A fixed room, or a template with {appointment} for a room per visit (e.g. https://meet.jit.si/harbour-{appointment}).
    video_link: MeetingLink = ""
    calendar: CalendarKind | None = Field(
        None, description="where bookings are written; default: caldav with a caldav.url, else embedded"
    )
    busy_feeds: list[Annotated[BusyFeed, BeforeValidator(_feed)]] = []
    privacy: SpecialistPrivacy = SpecialistPrivacy()

    @property
    def calendar_kind(self) -> CalendarKind:
        """Where this specialist's bookings are written."""
        return self.calendar or ("caldav" if self.caldav.url else "embedded")


class Partner(_Strict):
    """An insurer or referral portal booking through the HTTP API under its own rules."""

    id: Identifier
    name: str
    label: str = Field(description="shown to the specialist and written to the calendar event")
    key_envs: list[str] = Field(min_length=1, description="environment variables each holding one API key")
    services: list[str] = Field(min_length=1)
    min_notice_hours: float = Field(4, ge=0, description="replaces the specialists' own minimum notice")
    cancel_until_hours: float = Field(4, ge=0, description="the client may cancel until this long before")
    refusal_minutes: float = Field(30, ge=0, description="the specialist may refuse this long after the booking")
    min_weekly_slots: int = Field(0, ge=0, description="`bookingbot check` warns below this weekly supply")
    webhook_url: str | None = Field(None, pattern=r"^https?://")
    webhook_secret_env: str = ""
    rate_limit_per_minute: int = Field(120, gt=0)

    @property
    def audience(self) -> str:
        return partner_audience(self.id)


class Practice(_Strict):
    practice: PracticeInfo
    locations: list[Location] = Field(min_length=1)
    services: list[Service] = Field(min_length=1)
    specialists: list[Specialist] = Field(min_length=1)
    partners: list[Partner] = []
    privacy: PrivacySettings = PrivacySettings()
    limits: Limits = Limits()

    @cached_property
    def location_by_id(self) -> dict[str, Location]:
        return {loc.id: loc for loc in self.locations}

    @cached_property
    def service_by_id(self) -> dict[str, Service]:
        return {svc.id: svc for svc in self.services}

    @cached_property
    def specialist_by_id(self) -> dict[str, Specialist]:
        return {spec.id: spec for spec in self.specialists}

    @cached_property
    def partner_by_id(self) -> dict[str, Partner]:
        return {partner.id: partner for partner in self.partners}

    def zone(self, location_id: str) -> ZoneInfo:
        """The time zone slots at this location are computed and shown in."""
        return ZoneInfo(self.location_by_id[location_id].timezone or self.practice.timezone)

    def specialists_for(self, service_id: str, location_id: str) -> list[Specialist]:
        """Specialists who offer the service and work at the location at least once a week or by exception."""
        return [
            s
            for s in self.specialists
            if service_id in s.services
            and (
                any(w.location == location_id for w in s.schedule)
                or any(e.location == location_id for e in s.exceptions)
            )
        ]

    def categories(self) -> list[LocalText]:
        """Service categories in file order."""
        return list(dict.fromkeys(s.category for s in self.services))


def _references(p: Practice) -> list[str]:
    errors: list[str] = []
    for section in ("locations", "services", "specialists", "partners"):
        seen: set[str] = set()
        for i, item in enumerate(getattr(p, section)):
            if item.id in seen:
                errors.append(f"{section}[{i}].id: {item.id!r} is used twice")
            seen.add(item.id)
    for i, spec in enumerate(p.specialists):
        for j, sid in enumerate(spec.services):
            if sid not in p.service_by_id:
                errors.append(f"specialists[{i}].services[{j}]: no service with id {sid!r}")
        for j, w in enumerate(spec.schedule):
            if w.location not in p.location_by_id:
                errors.append(f"specialists[{i}].schedule[{j}].location: no location with id {w.location!r}")
        for j, e in enumerate(spec.exceptions):
            if e.location is not None and e.location not in p.location_by_id:
                errors.append(f"specialists[{i}].exceptions[{j}].location: no location with id {e.location!r}")
        if spec.calendar in ("embedded", "google", "microsoft") and spec.caldav.url:
            errors.append(f"specialists[{i}].calendar: {spec.calendar!r} does not use caldav.url; remove one of them")
        if spec.calendar == "caldav" and not spec.caldav.url:
            errors.append(f"specialists[{i}].caldav.url: required with calendar = 'caldav'")
        if spec.caldav.url and not spec.caldav.password_env:
            errors.append(f"specialists[{i}].caldav.password_env: name the environment variable holding the password")
        for kind, items in (("schedule", spec.schedule), ("exceptions", spec.exceptions)):
            for j, item in enumerate(items):
                for who in item.booking:
                    partner_id = who.removeprefix(PARTNER_PREFIX)
                    if who != CLIENTS and partner_id not in p.partner_by_id:
                        errors.append(f"specialists[{i}].{kind}[{j}].booking: no partner with id {partner_id!r}")
    if p.limits.requests_per_day < p.limits.pending_requests:
        errors.append(
            f"limits.requests_per_day: {p.limits.requests_per_day} is below pending_requests "
            f"({p.limits.pending_requests}); a client could never reach the pending limit"
        )
    for i, partner in enumerate(p.partners):
        for j, sid in enumerate(partner.services):
            if sid not in p.service_by_id:
                errors.append(f"partners[{i}].services[{j}]: no service with id {sid!r}")
            elif p.service_by_id[sid].seats > 1:
                # The partner API books whole visits; a seat in a group has no place in its contract yet.
                errors.append(f"partners[{i}].services[{j}]: {sid!r} is a group session (seats > 1)")
        if partner.webhook_url and not partner.webhook_secret_env:
            errors.append(f"partners[{i}].webhook_secret_env: name the environment variable holding the signing secret")
    return errors


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith(("function-", "literal[", "list[", "is-instance")):
            continue
        else:
            out += f".{part}" if out else part
    return out


def _message(err: Any) -> str:
    msg: str = err["msg"]
    if err["type"] == "extra_forbidden":
        return "unknown key (check the spelling)"
    if err["type"] == "missing":
        return "required"
    return msg.removeprefix("Value error, ")


def parse_practice(data: dict[str, Any]) -> Practice:
    """Validate already-parsed TOML data into a Practice, or raise ConfigError naming every bad field."""
    try:
        info = data.get("practice") if isinstance(data, dict) else None
        lang = info.get("language", "en") if isinstance(info, dict) else "en"
        practice = Practice.model_validate(data, context={"language": lang})
    except ValidationError as exc:
        raise ConfigError([f"{_path(e['loc'])}: {_message(e)}" for e in exc.errors()]) from None
    errors = _references(practice)
    if errors:
        raise ConfigError(errors)
    return practice


def load_practice(path: str | Path) -> Practice:
    """Read and validate the practice TOML file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found (create one with `bookingbot init`)"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot be read: {exc}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None
    return parse_practice(data)
