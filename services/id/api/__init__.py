"""gRPC servicers of the ID service: validate, call a use case, map the result."""
