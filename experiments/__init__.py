"""Runnable experiments: command lines that wire the jaxgan library together."""
