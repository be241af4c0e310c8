"""What the test modules share: helpers, data factories, paths. Test modules import from here, never from each
other (tests/test_suite_shape.py checks it)."""
