"""The rules of trust and safety: plain Python, no gRPC, no SQL."""
