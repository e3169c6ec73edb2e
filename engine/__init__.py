"""Shared core of the engine: settings, the exception tree and the command line."""
