"""Use cases of the ID service: each opens a transaction, applies the domain rules,
persists through the repositories and appends outbox and audit events."""
