"""Payments store layer."""
