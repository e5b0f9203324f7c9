"""Test-wide settings: keep DDS discovery on this host and give each pytest run its own ROS domain."""

import os

import pytest

# Discovery traffic stays on loopback, and concurrent test runs on one machine cannot hear each other.
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")


@pytest.fixture(scope="module")
def ros():
    """An rclpy context for the tests of one module (nodes created in it are the test's to destroy)."""
    import rclpy

    rclpy.init()
    yield
    rclpy.try_shutdown()
