"""pyinfra facts: commands plus parsers that read a host's state and change nothing."""
