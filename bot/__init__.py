"""Telegram front end of bookingbot."""
