"""The booking domain: practice model, slot engine, rules, lifecycle, persistence."""
