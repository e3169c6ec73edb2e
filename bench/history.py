"""Finished jobs put straight into Prefect, for the benchmarks that need a long history."""

from __future__ import annotations

import asyncio
import time

__all__ = ["fill_history"]


def fill_history(n: int) -> float:
    """Put ``n`` successful echo jobs of user ``bench`` in Prefect's history (8 creates at
    once, against the Prefect API of the environment); seconds it took."""
    from prefect.client.orchestration import get_client
    from prefect.states import Completed

    async def fill() -> None:
        async with get_client() as client:
            deployment = await client.read_deployment_by_name("ogc-execute/echo@bench")
            gate = asyncio.Semaphore(8)

            async def one(i: int) -> None:
                async with gate:
                    await client.create_flow_run_from_deployment(
                        deployment.id,
                        parameters={"inputs": {"message": str(i)}},
                        tags=["oapip", "user:bench", "process:echo"],
                        name="echo",
                        state=Completed(),
                    )

            await asyncio.gather(*(one(i) for i in range(n)))

    started = time.perf_counter()
    asyncio.run(fill())
    return time.perf_counter() - started
