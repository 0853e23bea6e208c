"""Payments service layer."""
