"""Calendars other than plain CalDAV: busy feeds, Google and Microsoft 365 (OAuth), and the per-specialist router."""
