"""Payments api layer."""
