"""Every Block type of the engine reads as declarative, documented configuration.

The checks of Prefect's ``BlockStandardTestSuite`` that need no network (the logo
check downloads an image; the engine's blocks carry no documentation URL yet).
"""

from __future__ import annotations

import re

import pytest
from prefect.blocks.core import Block

from blocks.calrissian import CalrissianBackend
from blocks.cwltool import CwltoolBackend
from blocks.package import ApplicationPackage
from blocks.s3 import S3ResultStorage, S3Source
from blocks.storage import LocalResultStorage
from blocks.toil_wes import ToilWesBackend
from blocks.workspace import WorkspaceApi

BLOCKS = [
    ApplicationPackage,
    CalrissianBackend,
    CwltoolBackend,
    LocalResultStorage,
    S3ResultStorage,
    S3Source,
    ToilWesBackend,
    WorkspaceApi,
]


@pytest.fixture(params=BLOCKS, ids=lambda b: b.__name__)
def block(request: pytest.FixtureRequest) -> type[Block]:
    return request.param


def test_has_a_description_and_a_slug(block: type[Block]):
    assert block.get_description()
    assert block._block_type_slug and re.fullmatch(r"[a-z0-9-]+", block._block_type_slug)


def test_all_fields_have_a_description(block: type[Block]):
    for name, field in block.model_fields.items():
        assert field.description, f"{block.__name__}.{name} has no description"
        assert field.description.endswith("."), f"{block.__name__}.{name}: end with a period"


@pytest.mark.parametrize(
    "block",
    BLOCKS,
    ids=lambda b: b.__name__,
)
def test_has_a_code_example_that_loads_it(block: type[Block]):
    example = block.get_code_example()
    assert example, f"{block.__name__} has no code example"
    assert re.search(rf"from \S+ import {block.__name__}\b", example), example
    assert re.search(rf"= {block.__name__}\.load\(\"[^\"]+\"\)", example), example
