"""pyinfra operations: read facts, compare with what was asked, yield commands only for the
difference (otherwise `host.noop`)."""
