"""The rules of marketing ops: plain Python, no gRPC, no SQL."""
