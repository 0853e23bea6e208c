"""The ID platform: users, credentials, OAuth 2.0 clients, consent, tokens, signing keys."""
