"""Shared pytest configuration: each real service lives in its own fixture module."""

pytest_plugins = [
    "tests.fixtures.apiserver",
    "tests.fixtures.agent",
    "tests.fixtures.ldap",
    "tests.fixtures.libvirtd",
    "tests.fixtures.netns",
    "tests.fixtures.test_image",
    "tests.fixtures.operator",
    "tests.fixtures.postgres",
    "tests.fixtures.s3",
    "tests.fixtures.tgtd",
]
