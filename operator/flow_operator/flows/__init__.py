"""The pure decisions about Flows: schedules, versions, parameters and concurrency.

Nothing here talks to the cluster or reads a clock: every function takes the time (`now`)
and the objects it judges, so each decision is a table test. docs/flows.md describes them.
"""
