"""The engine's core: settings, the exception tree, secrets masking, naming conventions,
retries, outbound HTTP and OGC documents. It imports neither Prefect nor FastAPI."""
