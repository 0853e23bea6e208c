"""furima's shared runtime: server and client bootstrap, auth, telemetry, errors, storage, events."""
