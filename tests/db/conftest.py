"""Pools of calsvc's own (calsvc.db.pool.Database) on the test's database."""
from __future__ import annotations

import dataclasses

import pytest

from calsvc.config import DatabaseSettings
from calsvc.db.pool import Database


@pytest.fixture
async def make_db(database_url):
    """`await make_db(size)`: a Database of at most `size` connections, closed after the test."""
    made = []

    async def make(size: int = 4) -> Database:
        settings = dataclasses.replace(DatabaseSettings(), pool_min_size=0, pool_max_size=size)
        db = await Database.connect(database_url, settings)
        made.append(db)
        return db

    yield make
    for db in made:
        await db.close()
