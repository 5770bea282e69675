"""The init phase of the Lambda handlers: no garbage collection during the import, what it built frozen."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from shoprec.lambda_init import init_phase


@pytest.fixture(autouse=True)
def collector_as_it_was() -> Iterator[None]:
    enabled = gc.isenabled()
    yield
    gc.unfreeze()
    if enabled:
        gc.enable()
    else:
        gc.disable()


def test_the_collector_is_paused_in_the_block_and_what_the_block_built_is_frozen_after() -> None:
    frozen_before = gc.get_freeze_count()
    with init_phase():
        assert not gc.isenabled()
        built = [[i] for i in range(1000)]
    assert gc.isenabled()
    assert gc.get_freeze_count() >= frozen_before + len(built)


def test_a_failing_block_gets_the_collector_back_and_freezes_nothing() -> None:
    frozen_before = gc.get_freeze_count()
    with pytest.raises(RuntimeError, match="init failed"), init_phase():
        raise RuntimeError("init failed")
    assert gc.isenabled()
    assert gc.get_freeze_count() == frozen_before


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    with init_phase():
        pass
    assert not gc.isenabled()
