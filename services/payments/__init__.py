"""The payments service: double-entry ledger, wallets, points."""
