"""gRPC servicers of the TnS service: convert the request, call a use case, map the result."""
