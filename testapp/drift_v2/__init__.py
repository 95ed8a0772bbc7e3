"""The ``drift`` app a release after ``drift_v1``: its migrations are drift_v1's and one more,
which adds a field with a default, one with a database default, a NOT NULL field without a
default, a model, renames a field, and renames a model (Widget, now Component) and a field of it.
The test settings install this state."""
