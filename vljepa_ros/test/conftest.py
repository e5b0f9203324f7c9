"""Test-wide settings: the shipped DDS transport (discovery kept on this host) and one ROS domain per pytest run."""

import os

import pytest

from vljepa_ros.nodes.dds_transport import apply_transport_defaults

# Discovery traffic stays on loopback, and concurrent test runs on one machine cannot hear each other.
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
# The rest of config/transport.env (rmw_fastrtps, the large-image profile): every node and publisher process
# a test starts inherits it, as on a robot.
apply_transport_defaults()


@pytest.fixture(scope="module")
def ros():
    """An rclpy context for the tests of one module (nodes created in it are the test's to destroy)."""
    import rclpy

    rclpy.init()
    yield
    rclpy.try_shutdown()
