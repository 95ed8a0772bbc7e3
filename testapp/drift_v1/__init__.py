"""The ``drift`` app as a release before the one in ``drift_v2``: the schema tests load dumps
between the two states (see tests/test_schema.py)."""
