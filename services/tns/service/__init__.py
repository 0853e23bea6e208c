"""TnS use cases: moderation, enforcement, cases and appeals, rules, risk."""
