"""gRPC servicers of the marketing service."""
