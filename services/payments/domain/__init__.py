"""Payments domain layer."""
