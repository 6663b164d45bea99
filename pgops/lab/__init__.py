"""Disposable lab hosts: Debian 13 containers with systemd and sshd, reached over SSH."""

from pgops.lab.core import Lab

__all__ = ["Lab"]
