"""The partner channel: an HTTP booking API for insurers and referral portals, and their signed webhooks."""
