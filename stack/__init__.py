"""Running the engine: Prefect set-up, the embedded single-machine stack, the ``oapip`` command."""
