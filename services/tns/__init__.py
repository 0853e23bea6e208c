"""Trust & Safety: moderation, enforcement, review cases and appeals, transaction risk."""
