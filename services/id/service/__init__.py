"""Use cases of the ID service.

Each opens a transaction, applies the domain rules, persists through the repositories
and appends outbox and audit events.
"""
