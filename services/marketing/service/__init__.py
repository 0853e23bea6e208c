"""Marketing use cases: the domain and the store put to work."""
