"""The engine's fast worker: warm job processes forked per flow run, picked up by event."""
