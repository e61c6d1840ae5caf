"""Use cases: one transaction each, the rules, and what happens after commit."""
