"""Finding a running stack again from another process: what the chaos script does with `make up`'s."""

import psycopg

from harness.stack import Stack


def test_a_running_stack_is_found_by_name_used_and_left_running(data_stack):
    found = Stack.attach(data_stack.name)

    assert found.attached and found.services == data_stack.services
    assert (found.ports, found.database_url) == (data_stack.ports, data_stack.database_url)
    assert found.images == data_stack.images
    found.pause_service("redis")
    found.resume_service("redis")  # waits until it answers again
    found.stop()
    with found:  # neither starts nor removes anything
        pass
    with psycopg.connect(found.database_url, connect_timeout=5) as connection:
        assert connection.execute("select 1").fetchone() == (1,)
    for container in found.containers.values():
        container.get_wrapped_container().reload()
        assert container.get_wrapped_container().status == "running"


def test_no_running_stack_of_that_name_is_none():
    assert Stack.attach("no-such-stack") is None
